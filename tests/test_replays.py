"""Replays are reported: `DeltaRecord.replayed` and the batch's replayed count, against the emulator.

The emulator answers a POST whose Idempotency-Key it has seen with the same body by replaying its
stored answer, with ``Idempotent-Replayed: true``; an item already recorded under another key comes
back with ``idempotent: true``.
"""

from __future__ import annotations

import pickle
from decimal import Decimal

import pytest

from pacspace_async import AsyncPacSpace, DeltaInput, DeltaStatus
from pacspace_async.testing import Emulator


def items(count: int) -> list[DeltaInput]:
    return [
        DeltaInput(customer_id=f"cust_{index % 7}", delta=Decimal(-index - 1), reason="usage", reference_id=f"u{index}")
        for index in range(count)
    ]


async def test_the_same_250_items_sent_again_are_all_reported_replayed(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    first = await pacspace_client.balance.emit_batch(items(250))
    assert (first.total_queued, first.replayed) == (250, 0)
    assert all(result.replayed is False for result in first.results)  # the emulator says "new"

    again = await pacspace_client.balance.emit_batch(items(250))

    assert len(pacspace_emulator.deltas()) == 250  # nothing new was stored ...
    assert again.replayed == 250  # ... and the result says so
    assert all(result.replayed is True for result in again.results)
    assert [r.record_id for r in again.results] == [r.record_id for r in first.results]
    posts = [r for r in pacspace_emulator.requests if r.method == "POST"]
    assert [r.replayed for r in posts] == [False] * 3 + [True] * 3  # 100 + 100 + 50, twice


async def test_a_batch_mixing_recorded_and_new_items_counts_only_the_recorded(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    await pacspace_client.balance.emit_batch(items(3))
    mixed = await pacspace_client.balance.emit_batch([*items(3)[:2], *items(5)[3:]], idempotency_key="mixed")
    assert [result.replayed for result in mixed.results] == [True, True, False, False]
    assert mixed.replayed == 2
    assert len(pacspace_emulator.deltas()) == 5


async def test_a_repeated_emit_is_reported_replayed_with_the_first_answers_status(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    emit = {"customer_id": "cust_1", "delta": Decimal("-4.20"), "reason": "usage", "reference_id": "inv_1"}
    first = await pacspace_client.balance.emit(**emit)
    assert first.replayed is False  # the emulator says "new" on every keyed POST it records
    assert first.status == DeltaStatus.QUEUED
    pacspace_emulator.settle()

    again = await pacspace_client.balance.emit(**emit)

    assert again.replayed is True
    assert again.record_id == first.record_id
    assert again.idempotency_key == first.idempotency_key
    # The status of the first answer, as documented: nothing was spent on a refresh ...
    assert again.status == DeltaStatus.QUEUED
    assert [r.method for r in pacspace_emulator.requests] == ["POST", "POST"]
    # ... and status() gives today's.
    assert (await pacspace_client.balance.status(again.record_id)).status == DeltaStatus.VERIFIED
    assert len(pacspace_emulator.deltas()) == 1
    # A fact about the answer, not the delta: equal records, whether replayed or not.
    assert again == first
    assert pickle.loads(pickle.dumps(again)).replayed is True


async def test_an_emit_of_an_item_recorded_under_another_key_is_replayed(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    (recorded,) = (await pacspace_client.balance.emit_batch(items(1))).results
    # The same item, another idempotency key: the emulator de-duplicates it by its reference id.
    again = await pacspace_client.balance.emit(
        customer_id="cust_0", delta=Decimal(-1), reason="usage", reference_id="u0", idempotency_key="other"
    )
    assert again.replayed is True
    assert again.record_id == recorded.record_id
    assert len(pacspace_emulator.deltas()) == 1


@pytest.mark.pacspace_emulator(verify_delay=None)
async def test_emit_and_wait_keeps_the_emits_replay_flag(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    emit = {"customer_id": "cust_1", "delta": Decimal(-1), "reason": "usage", "reference_id": "inv_2"}
    await pacspace_client.balance.emit(**emit)
    pacspace_emulator.settle()
    final = await pacspace_client.balance.emit_and_wait(**emit, timeout=5, poll_interval=0.01)
    assert final.status == DeltaStatus.VERIFIED  # the wait looked the status up ...
    assert final.replayed is True  # ... and the emit was a replay
