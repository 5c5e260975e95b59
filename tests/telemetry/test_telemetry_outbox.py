"""The outbox traced end to end: a send links to the span that stored the entry; depth is a gauge."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pacspace_async.outbox import Outbox
from pacspace_async.testing import Emulator

from .telemetry_helpers import Otel


async def test_a_drained_entry_links_back_to_the_span_that_stored_it(otel: Otel, emu: Emulator, tmp_path: Path) -> None:
    tracer = otel.tracer_provider.get_tracer("agent")
    async with emu.client() as plain:
        pac = otel.traced(plain)
        store = f"sqlite:///{tmp_path / 'outbox.sqlite3'}"
        stored = Outbox(pac, store)  # stored now, sent by a later outbox (another process, say)
        with tracer.start_as_current_span("agent step") as step:
            entry = await stored.emit(customer_id="cust_1", delta=Decimal(-1), reason="usage", reference_id="r1")
        await stored.aclose()
        assert entry.state.value == "pending"

        async with Outbox(pac, store) as outbox:
            assert await outbox.flush(timeout=10) is True

    (send,) = otel.named("pacspace outbox.send")
    (link,) = send.links
    assert (link.context.trace_id, link.context.span_id) == (
        step.get_span_context().trace_id,
        step.get_span_context().span_id,
    )
    (call,) = otel.named("pacspace balance.emit")
    assert call.parent is not None
    assert call.parent.span_id == send.context.span_id
    assert (call.attributes or {})["pacspace.idempotency_key"] == entry.idempotency_key

    depths = otel.points("pacspace.outbox.depth")
    assert [dict(point.attributes) for point in depths] == [{"pacspace.outbox.store": "sqlite"}]
