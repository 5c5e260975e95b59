"""Faults: 5xx, dropped connections before and after the write, slow answers; seeded."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal

import pytest

from pacspace_async import APIConnectionError, AsyncPacSpace, ServiceUnavailableError
from pacspace_async.testing import FAULT_KINDS, Emulator, Faults
from pacspace_async.testing._faults import FaultPlan

from .emulator_helpers import fast

FAULTS = Faults(rate=0.3, slow_seconds=0.005)


async def emit_many(emu: Emulator, count: int, *, references: bool) -> None:
    gate = asyncio.Semaphore(50)
    async with emu.client(max_retries=10) as client:
        pac = fast(client)

        async def one(index: int) -> None:
            async with gate:
                await pac.balance.emit(
                    customer_id=f"cust_{index % 7}",
                    delta=Decimal(index + 1),
                    reason="usage",
                    reference_id=f"inv_{index}" if references else None,
                )

        await asyncio.gather(*(one(index) for index in range(count)))


@pytest.mark.parametrize("references", [True, False], ids=["with-reference-ids", "auto-keys"])
async def test_1000_emits_through_30_percent_faults_leave_exactly_1000_deltas(references: bool) -> None:
    async with Emulator(faults=FAULTS, verify_delay=None) as emu:
        await emit_many(emu, 1000, references=references)
        deltas = emu.deltas()
        faults = Counter(r.fault for r in emu.requests if r.fault)
    assert len(deltas) == 1000
    assert sorted(d.delta for d in deltas) == [Decimal(n) for n in range(1, 1001)]
    assert len({d.idempotency_key for d in deltas}) == 1000
    # Every kind of fault really happened, drops after the write included.
    assert set(faults) == set(FAULT_KINDS)
    assert faults["drop_after_write"] > 20


async def test_a_drop_after_the_write_is_healed_by_the_replay() -> None:
    async with Emulator(verify_delay=None) as emu, emu.client() as client:
        emu.inject("drop_after_write", method="POST", path="/api/v1/balance/delta")
        record = await fast(client).balance.emit(customer_id="cust_1", delta=-5, reason="usage")
        log = emu.requests
    assert [(r.status, r.fault, r.replayed) for r in log] == [(None, "drop_after_write", False), (201, None, True)]
    assert [d.record_id for d in emu.deltas()] == [record.record_id]


async def test_faults_surface_as_sdk_errors_when_retries_run_out() -> None:
    async with Emulator() as emu, emu.client(max_retries=0) as pac:
        emu.inject("503")
        with pytest.raises(ServiceUnavailableError):
            await pac.balance.limits()
        emu.inject("drop_before_write")
        with pytest.raises(APIConnectionError):
            await pac.balance.emit(customer_id="cust_1", delta=1, reason="x")
        assert emu.deltas() == []
        emu.inject("slow", seconds=0.2)
        with pytest.raises(APIConnectionError):
            await pac.balance.limits(timeout=0.05)


async def sequential_faults(seed: int) -> list[str | None]:
    async with Emulator(seed=seed, faults=Faults(rate=0.5, slow_seconds=0.001)) as emu:
        key = emu.create_key()
        async with AsyncPacSpace(key, base_urls=emu.base_urls, max_retries=0) as pac:
            for index in range(40):
                try:
                    await pac.balance.emit(customer_id="cust_1", delta=1, reason="x", idempotency_key=f"k{index}")
                except Exception:
                    pass
        return [r.fault for r in emu.requests]


async def test_faults_are_reproducible_from_the_seed() -> None:
    first, again, other = await asyncio.gather(sequential_faults(7), sequential_faults(7), sequential_faults(8))
    assert first == again
    assert first != other
    assert 5 < sum(1 for fault in first if fault) < 35


def test_faults_are_checked() -> None:
    with pytest.raises(ValueError, match="rate"):
        Faults(rate=1.5)
    with pytest.raises(ValueError, match="kinds"):
        Faults(kinds=("404",))
    assert Faults(kinds="503").kinds == ("503",)


def test_faults_can_be_limited_to_paths() -> None:
    plan = FaultPlan(Faults(rate=1.0, kinds=("503",), paths=("/api/v1/balance/delta",)), seed=0)
    assert plan.decide("POST", "/api/v1/balance/delta", "/api/v1/balance/delta", "k") is not None
    assert plan.decide("GET", "/api/v1/balance/usage", "/api/v1/balance/usage", None) is None
    plan.inject("slow", path="/api/v1/balance/usage", seconds=0.5)
    decision = plan.decide("GET", "/api/v1/balance/usage", "/api/v1/balance/usage", None)
    assert decision is not None
    assert (decision.kind, decision.seconds) == ("slow", 0.5)
