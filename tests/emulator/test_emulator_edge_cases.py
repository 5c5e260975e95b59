"""Edge cases a reviewer found in the emulator: in-batch duplicates, deriving from a checkpoint,
closing mid-request, exact money beyond 28 digits, and the "slow" fault on every answer."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import aiohttp
import pytest
from aiohttp import web

from pacspace_async import AsyncPacSpace, ConflictError, DeltaInput
from pacspace_async.testing import Emulator

DELTA = "/api/v1/balance/delta"


async def test_a_batch_repeating_a_reference_with_other_content_fails_that_item() -> None:
    async with Emulator(verify_delay=None) as emu, emu.client() as pac:
        result = await pac.balance.emit_batch(
            [
                DeltaInput(customer_id="c1", delta=Decimal("-1"), reason="usage", reference_id="r1"),
                DeltaInput(customer_id="c1", delta=Decimal("-999"), reason="usage", reference_id="r1"),
                DeltaInput(customer_id="c1", delta=Decimal("-1"), reason="usage", reference_id="r1"),
            ]
        )
        first, other, same = result.results
        assert not first.failed
        assert other.failed
        assert other.error == "DUPLICATE_REFERENCE_ID"
        assert same.replayed  # the very same item again is a replay, as before
        assert same.record_id == first.record_id
        assert [d.delta for d in emu.deltas()] == [Decimal("-1")]


async def test_deriving_from_a_checkpoint_adds_every_delta_it_did_not_count() -> None:
    async with Emulator(verify_delay=None) as emu, emu.client() as pac:
        await pac.balance.emit(customer_id="c1", delta=10, reason="top_up", reference_id="a")
        emu.settle()
        await pac.balance.emit(customer_id="c1", delta=5, reason="top_up", reference_id="b")  # still QUEUED
        checkpoint = await pac.checkpoints.create(customer_id="c1")
        emu.settle()
        await pac.balance.emit(customer_id="c1", delta=7, reason="top_up", reference_id="c")  # later, same month
        emu.settle()
        everything = await pac.balance.derive("c1")
        assert everything.computed_balance == Decimal("22")
        for start, kind in ((checkpoint.proof_root, "proofRoot"), (checkpoint.checkpoint_id, "checkpointId")):
            assert start is not None
            derived = await pac.balance.derive("c1", starting_checkpoint=start, starting_checkpoint_type=kind)
            assert derived.computed_balance == Decimal("22"), kind
            assert derived.deltas_count == 2, kind  # the pending +5 and the later +7


async def test_closing_mid_request_leaves_no_verification_and_no_webhook_behind() -> None:
    hits: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        hits.append(await request.read())
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        emu = Emulator(verify_delay=0.01)
        await emu.start()
        emu.register_webhook(f"http://127.0.0.1:{runner.addresses[0][1]}/hook")
        key = emu.create_key()
        emu.inject("slow", path=DELTA, seconds=0.2)
        async with aiohttp.ClientSession() as session:
            body = {"customerId": "c1", "delta": 1, "reason": "x"}
            sending = asyncio.ensure_future(
                session.post(emu.sandbox_url + DELTA, json=body, headers={"X-Api-Key": key})
            )
            await asyncio.sleep(0.05)  # the request is inside its slow fault
            await emu.aclose()
            response = await sending
            response.release()
        await asyncio.sleep(0.1)  # past verify_delay: nothing may fire now
        assert hits == []
        assert [d.status for d in emu.deltas()] == ["QUEUED"]  # recorded, not verified by a timer
        emu.settle()  # still finishes it, as at any time; no webhook goes out after close
        assert [d.status for d in emu.deltas()] == ["VERIFIED"]
        await asyncio.sleep(0.05)
        assert hits == []
    finally:
        await runner.cleanup()


async def test_money_stays_exact_beyond_28_significant_digits() -> None:
    long_amount = Decimal("-0.12345678901234567890123456789012345")
    async with Emulator(verify_delay=None) as emu, emu.client() as pac:
        record = await pac.balance.emit(customer_id="c1", delta=long_amount, reason="usage")
        assert record.delta == long_amount
        await pac.balance.emit(customer_id="c2", delta=Decimal("1000000"), reason="usage")
        await pac.balance.emit(customer_id="c2", delta=Decimal("1E-24"), reason="usage")
        derived = await pac.balance.derive("c2")
        assert derived.computed_balance == Decimal("1000000.000000000000000000000001")
        # Amounts that differ only past the 28th digit are different bodies: 409, not a replay.
        one, other = Decimal("1.00000000000000000000000000001"), Decimal("1.00000000000000000000000000002")
        await pac.balance.emit(customer_id="c3", delta=one, reason="x", idempotency_key="k1")
        with pytest.raises(ConflictError) as info:
            await pac.balance.emit(customer_id="c3", delta=other, reason="x", idempotency_key="k1")
        assert info.value.code == "IDEMPOTENCY_KEY_REUSED"
        assert len(emu.deltas("c3")) == 1


async def test_a_slow_fault_delays_a_replay_too() -> None:
    async with Emulator(verify_delay=None) as emu, AsyncPacSpace(emu.create_key(), base_urls=emu.base_urls) as pac:
        first = await pac.balance.emit(customer_id="c1", delta=1, reason="x", idempotency_key="same")
        emu.inject("slow", path=DELTA, seconds=0.2)
        started = time.monotonic()
        again = await pac.balance.emit(customer_id="c1", delta=1, reason="x", idempotency_key="same")
        assert time.monotonic() - started >= 0.2
        assert again.record_id == first.record_id
        assert emu.requests[-1].fault == "slow"


async def test_a_fail_rule_runs_under_the_callers_decimal_context() -> None:
    # Regression: an exact (unbounded) context set for a whole request leaked into the
    # verification timer, where `delta / 3` raised MemoryError and failed the delta.
    def rule(delta: dict[str, object]) -> bool:
        amount = delta["delta"]
        assert isinstance(amount, Decimal)
        return amount / 3 < -10

    async with Emulator(verify_delay=0.01, fail_rule=rule) as emu, emu.client() as pac:
        record = await pac.balance.emit(customer_id="c1", delta=Decimal("-1"), reason="usage")
        final = await pac.balance.wait_for_verified(record.record_id, timeout=5, poll_interval=0.01)
        assert final.status == "VERIFIED"


async def test_settle_after_close_finishes_what_was_pending() -> None:
    emu = Emulator(verify_delay=None)
    await emu.start()
    async with emu.client() as pac:
        await pac.balance.emit(customer_id="c1", delta=1, reason="x")
    await emu.aclose()
    emu.settle()
    assert [d.status for d in emu.deltas()] == ["VERIFIED"]
