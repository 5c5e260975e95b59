"""The sync facade: a call made inside the caller thread's span belongs to that span's trace."""

from __future__ import annotations

from decimal import Decimal

from opentelemetry.trace import SpanKind

from pacspace_async.testing import Emulator
from pacspace_sync import PacSpace

from .telemetry_helpers import Otel


def traced_sync(client: PacSpace, otel: Otel) -> PacSpace:
    """A copy of the sync `client` (same event loop and pools) whose telemetry goes to `otel`."""
    return PacSpace._from_async(otel.traced(client._wrapped), client._portal)


def test_a_sync_call_outside_any_span_is_a_root_with_its_attempts(
    pacspace_emulator_thread: Emulator, otel: Otel
) -> None:
    key = pacspace_emulator_thread.create_key()
    with PacSpace(key, base_urls=pacspace_emulator_thread.base_urls) as client:
        traced_sync(client, otel).balance.emit(customer_id="cust_1", delta=Decimal(1), reason="x")
    (call,) = otel.named("pacspace balance.emit")
    assert call.parent is None
    assert [span.name for span in otel.children(call)] == ["POST /api/v1/balance/delta"]


def test_a_sync_call_inside_a_parent_span_is_its_child(pacspace_emulator_thread: Emulator, otel: Otel) -> None:
    key = pacspace_emulator_thread.create_key()
    tracer = otel.tracer_provider.get_tracer("agent")
    with PacSpace(key, base_urls=pacspace_emulator_thread.base_urls) as client:
        pac = traced_sync(client, otel)
        with tracer.start_as_current_span("agent step") as parent:
            pac.balance.emit(customer_id="cust_1", delta=Decimal(1), reason="x")
            pac.balance.usage()
    calls = [span for span in otel.spans() if span.kind is SpanKind.INTERNAL and span.name.startswith("pacspace ")]
    assert [span.name for span in calls] == ["pacspace balance.emit", "pacspace balance.usage"]
    for call in calls:
        assert call.parent is not None
        assert call.parent.span_id == parent.get_span_context().span_id
        assert call.context.trace_id == parent.get_span_context().trace_id
