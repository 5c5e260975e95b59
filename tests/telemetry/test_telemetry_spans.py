"""Spans against the emulator: the call/attempt tree, retries, a 401, a 429 waited out, names."""

from __future__ import annotations

import logging
from decimal import Decimal

import aiohttp
import pytest
from conftest import SANDBOX_KEY, FakeClock, LoopbackServer, ok
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.trace import SpanKind, StatusCode

from pacspace_async import AsyncPacSpace, AuthenticationError, PacSpaceError
from pacspace_async._telemetry import safe_url
from pacspace_async._telemetry_routes import _TABLE
from pacspace_async.testing import Emulator

from .telemetry_helpers import Otel

DELTA = "/api/v1/balance/delta"
EMIT = {"customer_id": "cust_1", "delta": Decimal("-1.5"), "reason": "usage"}


async def test_a_call_with_retries_is_one_span_with_an_attempt_span_per_send(
    emu: Emulator, otel: Otel, fake_clock: FakeClock
) -> None:
    emu.inject("503", method="POST", path=DELTA)
    emu.inject("drop_before_write", method="POST", path=DELTA)
    async with emu.client(max_retries=3) as client:
        pac = otel.traced(client, clock=fake_clock.clock())
        record = await pac.balance.emit(**EMIT)

    (call,) = otel.named("pacspace balance.emit")
    assert call.kind is SpanKind.INTERNAL
    assert call.parent is None
    assert call.status.status_code is StatusCode.UNSET
    attributes = dict(call.attributes or {})
    assert attributes["pacspace.environment"] == "sandbox"
    assert attributes["pacspace.key_id"] == client.key_id
    assert attributes["pacspace.idempotency_key"] == record.idempotency_key
    assert attributes["pacspace.retries"] == 2
    assert attributes["pacspace.replayed"] is False
    attempts = otel.children(call)
    assert [span.name for span in attempts] == [f"POST {DELTA}"] * 3
    assert all(span.kind is SpanKind.CLIENT for span in attempts)
    assert [span.attributes.get("http.request.resend_count") for span in attempts if span.attributes] == [None, 1, 2]
    first, second, third = (dict(span.attributes or {}) for span in attempts)
    assert first["http.response.status_code"] == 503
    assert first["error.type"] == "SERVICE_UNAVAILABLE"
    assert "http.response.status_code" not in second
    assert second["error.type"] == "APIConnectionError"
    assert third["http.response.status_code"] == 201
    assert "error.type" not in third
    assert [span.status.status_code for span in attempts] == [StatusCode.ERROR, StatusCode.ERROR, StatusCode.UNSET]
    for attempt in (first, second, third):
        assert attempt["http.request.method"] == "POST"
        assert attempt["server.address"] == "127.0.0.1"
        assert attempt["server.port"] == int(emu.sandbox_url.rsplit(":", 1)[1])
        assert attempt["url.full"] == emu.sandbox_url + DELTA
        assert attempt["url.template"] == DELTA
    assert third["pacspace.request_id"] == attributes["pacspace.request_id"]
    # The waits between the sends, as events of the call, with what the SDK slept.
    retries = [event for event in call.events if event.name == "pacspace.retry"]
    assert [(e.attributes or {}).get("pacspace.retry.reason") for e in retries] == ["503", "connection"]
    assert [(e.attributes or {}).get("http.request.resend_count") for e in retries] == [1, 2]
    assert [(e.attributes or {}).get("pacspace.retry.wait") for e in retries] == fake_clock.sleeps


async def test_a_401_is_one_failed_attempt_and_a_failed_call(emu: Emulator, otel: Otel) -> None:
    key = emu.create_key()
    emu.revoke_key(key)
    async with AsyncPacSpace(key, base_urls=emu.base_urls) as client:
        pac = otel.traced(client)
        with pytest.raises(AuthenticationError):
            await pac.balance.usage()

    (call,) = otel.named("pacspace balance.usage")
    assert call.status.status_code is StatusCode.ERROR
    assert (call.attributes or {})["error.type"] == "API_KEY_REVOKED"
    assert (call.attributes or {})["pacspace.error.action"] == "alert_operator"
    (attempt,) = otel.children(call)
    assert attempt.name == "GET /api/v1/balance/usage"
    assert (attempt.attributes or {})["http.response.status_code"] == 401
    assert (attempt.attributes or {})["error.type"] == "API_KEY_REVOKED"
    assert "http.request.resend_count" not in (attempt.attributes or {})
    assert not call.events  # a refused key is never sent again


@pytest.mark.pacspace_emulator(rate_limit=20)
async def test_a_429_waited_out_at_the_gate_shows_the_wait(pacspace_emulator: Emulator, otel: Otel) -> None:
    # A burst of 20 is allowed, the next waits 1/20 s: real time, the emulator's bucket is real.
    async with pacspace_emulator.client() as client:
        pac = otel.traced(client)
        for _ in range(25):
            await pac.balance.limits()

    calls = otel.named("pacspace balance.limits")
    assert len(calls) == 25
    assert all(call.status.status_code is StatusCode.UNSET for call in calls)
    refused = [call for call in calls if any(event.name == "pacspace.retry" for event in call.events)]
    assert refused, "no call met a 429"
    for call in refused:
        attempts = otel.children(call)
        assert (attempts[0].attributes or {})["http.response.status_code"] == 429
        assert (attempts[0].attributes or {})["error.type"] == "RATE_LIMITED"
        assert (attempts[-1].attributes or {})["http.response.status_code"] == 200
        reasons = [(e.attributes or {})["pacspace.retry.reason"] for e in call.events if e.name == "pacspace.retry"]
        assert set(reasons) == {"429"}
    # Every call that waited at the gate says how long, as an event and in total.
    waited = [call for call in calls if "pacspace.gate.wait" in (call.attributes or {})]
    assert waited
    for call in waited:
        events = [e for e in call.events if e.name == "pacspace.gate.wait"]
        assert events
        total = sum(float((e.attributes or {})["pacspace.gate.wait"]) for e in events)  # type: ignore[arg-type]
        assert (call.attributes or {})["pacspace.gate.wait"] == pytest.approx(total)
        assert total > 0


async def test_every_call_is_named_after_its_public_method(emu: Emulator, otel: Otel) -> None:
    async with emu.client() as client:
        pac = otel.traced(client)
        record = await pac.balance.emit(**EMIT)
        await pac.balance.emit_batch([{**EMIT, "reference_id": "b1"}])
        emu.settle()
        period = emu.deltas()[0].created_at.strftime("%Y-%m")
        calls = [
            pac.balance.status(record.record_id),
            pac.balance.derive("cust_1"),
            pac.balance.compare("cust_1", your_balance=1, their_balance=1),
            pac.balance.receipt("cust_1"),
            pac.balance.invoice_proof("cust_1"),
            pac.balance.usage(),
            pac.balance.gaps("cust_1"),
            pac.balance.limits(),
            pac.checkpoints.create(customer_id="cust_1", period=period),
            pac.checkpoints.list().first_page(),
            pac.customers.list().first_page(),
            pac.customers.get("cust_1"),
            pac.customers.summary(),
            pac.webhook_deliveries.list().first_page(),
            pac.webhook_deliveries.retry("evt_missing"),
            pac.verify("0x" + "ab" * 32),
        ]
        for call in calls:
            try:
                await call
            except PacSpaceError:
                pass  # a refused call is named all the same

    names = {span.name for span in otel.spans() if span.kind is SpanKind.INTERNAL}
    assert names == {f"pacspace {operation}" for _, _, operation in _TABLE}
    attempts = {span.name for span in otel.spans() if span.kind is SpanKind.CLIENT}
    assert attempts == {f"{method} {template}" for method, template, _ in _TABLE}


def test_every_route_names_a_public_method() -> None:
    client = AsyncPacSpace(SANDBOX_KEY)
    for _, _, operation in _TABLE:
        target: object = client
        for part in operation.split("."):
            target = getattr(target, part)
        assert callable(target), operation


async def test_no_duplicate_spans_with_aiohttp_instrumentation_on(emu: Emulator, otel: Otel) -> None:
    instrumentor = AioHttpClientInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    try:
        # Made after instrument(): aiohttp's instrumentation hooks sessions as they are created.
        async with emu.client() as client:
            pac = otel.traced(client)
            await pac.balance.emit(**EMIT)
            await pac.balance.usage()
        # The instrumentation is really on: a plain aiohttp request of the test's own is traced.
        async with aiohttp.ClientSession() as session, session.get(emu.sandbox_url + "/api/v1/verify/0x00") as answer:
            await answer.read()
    finally:
        instrumentor.uninstrument()

    client_spans = [span for span in otel.spans() if span.kind is SpanKind.CLIENT]
    ours = [span for span in client_spans if span.parent is not None]
    assert sorted(span.name for span in ours) == ["GET /api/v1/balance/usage", f"POST {DELTA}"]
    theirs = [span for span in client_spans if span.parent is None]
    assert [span.name for span in theirs] == ["GET"]  # only the test's own request
    # aiohttp's duration metrics hold only the test's own request, ours only the SDK's two.
    counts = otel.counts_by_scope()
    assert counts == {"pacspace": 2, "opentelemetry.instrumentation.aiohttp_client": 1}, counts


async def test_traceparent_is_sent_only_when_enabled(loopback: type[LoopbackServer], otel: Otel) -> None:
    server = loopback()

    async def answer(request: object) -> object:
        return ok({"used": 1})

    server.route("GET", "/api/v1/balance/usage", answer)  # type: ignore[arg-type]
    url = await server.start()
    tracer = otel.tracer_provider.get_tracer("test")
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": url}) as client:
        with tracer.start_as_current_span("agent step"):
            await otel.traced(client).balance.usage()
            await otel.traced(client, send_traceparent=True).balance.usage()
        await otel.traced(client, send_traceparent=True).balance.usage()  # no span of the caller's

    sent = [request.headers.get("traceparent") for request in server.requests]
    assert sent[0] is None
    _, second, third = (span.context for span in otel.named("GET /api/v1/balance/usage"))
    (caller,) = otel.named("agent step")
    assert second.trace_id == caller.context.trace_id
    assert sent[1] == f"00-{second.trace_id:032x}-{second.span_id:016x}-{int(second.trace_flags):02x}"
    # Outside the caller's span the SDK's own spans still record: the call sends its own trace.
    assert sent[2] == f"00-{third.trace_id:032x}-{third.span_id:016x}-{int(third.trace_flags):02x}"


async def test_traceparent_passes_a_caller_context_on_without_an_sdk(loopback: type[LoopbackServer]) -> None:
    from opentelemetry import trace

    server = loopback()

    async def answer(request: object) -> object:
        return ok({"used": 1})

    server.route("GET", "/api/v1/balance/usage", answer)  # type: ignore[arg-type]
    url = await server.start()
    remote = trace.SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=trace.TraceFlags(1))
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": url}) as client:
        opted_in = client._copy(client._requester.with_settings(send_traceparent=True), None)
        with trace.use_span(trace.NonRecordingSpan(remote)):
            await client.balance.usage()
            await opted_in.balance.usage()
    sent = [request.headers.get("traceparent") for request in server.requests]
    assert sent == [None, f"00-{0xABC:032x}-{0xDEF:016x}-01"]


def test_url_full_has_no_userinfo_fragment_or_key() -> None:
    # Base URLs with credentials are refused at configuration; the attribute is safe regardless.
    url = f"https://user:PASSWORD@api.example.test:8443/api/v1/balance/usage?customer={SANDBOX_KEY}#part"
    assert safe_url(url) == "https://api.example.test:8443/api/v1/balance/usage?customer=pk_test_pubSbx.****"


async def test_log_records_carry_the_trace_and_span_ids(
    emu: Emulator, otel: Otel, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pacspace")
    emu.inject("503", method="POST", path=DELTA)
    async with emu.client() as client:
        await otel.traced(client, clock=fake_clock.clock()).balance.emit(**EMIT)
    (call,) = otel.named("pacspace balance.emit")
    attempts = otel.children(call)
    ours = [record for record in caplog.records if record.name == "pacspace"]
    retry_lines = [record for record in ours if "retry" in record.getMessage()]
    answer_lines = [record for record in ours if "->" in record.getMessage()]
    assert retry_lines
    assert len(answer_lines) == 2
    trace_id = f"{call.context.trace_id:032x}"
    assert all(record.trace_id == trace_id for record in ours)  # type: ignore[attr-defined]
    # The retry line is the call's; each answer line is its attempt's.
    assert retry_lines[0].span_id == f"{call.context.span_id:016x}"  # type: ignore[attr-defined]
    assert [record.span_id for record in answer_lines] == [  # type: ignore[attr-defined]
        f"{attempt.context.span_id:016x}" for attempt in attempts
    ]
    # Outside any span the fields are there, as "0", so a format string never fails.
    logging.getLogger("pacspace").warning("outside")
    assert caplog.records[-1].trace_id == "0"  # type: ignore[attr-defined]
