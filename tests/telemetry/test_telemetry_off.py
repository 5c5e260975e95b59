"""With the API absent or no SDK configured, telemetry is nothing: no span, no cost, no error."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from opentelemetry import metrics, trace

from pacspace_async import _telemetry, _telemetry_setup
from pacspace_async._environments import Environment
from pacspace_async._requester import Settings
from pacspace_async._telemetry_routes import UNKNOWN_ROUTE, route_of

from .telemetry_helpers import Otel

BASE = "https://app.pacspace.io"

ABSENT = textwrap.dedent(
    """
    import asyncio, logging, sys
    sys.modules["opentelemetry"] = None  # as if the [otel] extra were not installed
    from decimal import Decimal
    from pacspace_async import _telemetry
    from pacspace_async.testing import Emulator

    assert _telemetry.AVAILABLE is False
    assert _telemetry.current_trace_parent() is None
    with _telemetry.outbox_send_span("00-" + "1" * 32 + "-" + "2" * 16 + "-01"):
        pass
    _telemetry.record_outbox_stats(store="sqlite", pending=1, oldest_age=2.0)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("pacspace").addHandler(handler)
    logging.getLogger("pacspace").warning("no api")
    assert (records[0].trace_id, records[0].span_id) == ("0", "0")

    async def main():
        async with Emulator(verify_delay=None) as emu:
            emu.inject("503", method="POST", path="/api/v1/balance/delta")
            async with emu.client() as pac:
                fast = pac.with_options(timeout=5)
                record = await fast.balance.emit(customer_id="c", delta=Decimal(1), reason="x")
                assert record.record_id
    asyncio.run(main())
    assert not any(name.startswith("opentelemetry.") for name in sys.modules)
    print("ok")
    """
)


def test_without_the_api_every_hook_is_a_no_op_and_calls_work() -> None:
    result = subprocess.run([sys.executable, "-c", ABSENT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_with_the_api_and_no_sdk_a_call_records_nothing() -> None:
    # No global provider is ever set in this suite: nothing is built for a call.
    arguments = ("GET", "/api/v1/balance/usage", BASE, BASE + "/api/v1/balance/usage", Environment.SANDBOX, None, None)
    assert _telemetry.start_call(Settings(base_urls={}), *arguments) is None
    # Opted in to traceparent, but no caller span to pass on: still nothing.
    assert _telemetry.start_call(Settings(base_urls={}, send_traceparent=True), *arguments) is None


@pytest.mark.parametrize("fast", [True, False])
def test_a_global_provider_set_later_is_used_from_the_next_call(
    fast: bool, otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both ways of reading the global providers (the API's module globals, or its getters when a
    # provider is named by environment variable) see a provider set after the SDK was imported.
    # The globals are swapped for this test only (monkeypatch puts the unset ones back).
    monkeypatch.setattr(_telemetry_setup, "FAST_TRACER_PROVIDER", fast)
    monkeypatch.setattr(_telemetry_setup, "FAST_METER_PROVIDER", fast)
    arguments = ("GET", "/api/v1/balance/usage", BASE, BASE + "/api/v1/balance/usage", Environment.SANDBOX, None, None)
    assert _telemetry.start_call(Settings(base_urls={}), *arguments) is None
    if fast:
        monkeypatch.setattr(trace, "_TRACER_PROVIDER", otel.tracer_provider)
        monkeypatch.setattr(metrics._internal, "_METER_PROVIDER", otel.meter_provider)
    else:
        monkeypatch.setattr(trace, "get_tracer_provider", lambda: otel.tracer_provider)
        monkeypatch.setattr(metrics, "get_meter_provider", lambda: otel.meter_provider)
    call = _telemetry.start_call(Settings(base_urls={}), *arguments)
    assert call is not None
    call.end(None, 0)
    assert [span.name for span in otel.spans()] == ["pacspace balance.usage"]


def test_routes_prefer_literal_segments_and_never_match_an_empty_parameter() -> None:
    assert route_of("GET", "/api/v1/balance/customers/summary").operation == "customers.summary"
    assert route_of("GET", "/api/v1/balance/customers/cust%201").operation == "customers.get"
    assert route_of("POST", "/api/v1/balance/delta/batch").operation == "balance.emit_batch"
    assert route_of("GET", "/api/v1/balance/delta/batch").template == "/api/v1/balance/delta/{recordId}"
    assert route_of("GET", "/api/v1/balance/delta/") is UNKNOWN_ROUTE
    assert route_of("DELETE", "/api/v1/balance/delta") is UNKNOWN_ROUTE
    assert route_of("GET", "/api/v2/new") is UNKNOWN_ROUTE


def test_error_type_prefers_a_code_then_the_status_then_the_class() -> None:
    class WithCode(Exception):
        code = "RATE_LIMITED"
        status = 429

    class OddCode(Exception):
        code = "not a code, a sentence with spaces"
        status = 500

    assert _telemetry.error_type(WithCode()) == "RATE_LIMITED"
    assert _telemetry.error_type(OddCode()) == "500"
    assert _telemetry.error_type(TimeoutError()) == "TimeoutError"
