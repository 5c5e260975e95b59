"""The outbox drained against the emulator: outages, refusals, a revoked key, a crash."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from pacspace_async import APIConnectionError, AsyncPacSpace, ServiceUnavailableError
from pacspace_async.errors import InvalidArgumentError
from pacspace_async.outbox import (
    EntryState,
    MemoryStore,
    Outbox,
    OutboxClock,
    OutboxEntry,
    OutboxFullError,
    StoredEntry,
    retry_delay,
)
from pacspace_async.outbox._outbox import LEASE_SECONDS, MAX_RETRY_DELAY
from pacspace_async.testing import Emulator, Faults

DELTA_PATH = "/api/v1/balance/delta"


@attrs.define
class VirtualClock:
    """Outbox time that moves only when the drain waits; a wait costs a moment of real time
    so the emulator's answers still arrive."""

    now: float = 1_700_000_000.0
    sleeps: list[float] = attrs.Factory(list)

    def wall(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0.002)

    def clock(self) -> OutboxClock:
        return OutboxClock(wall=self.wall, sleep=self.sleep, jitter=lambda low, high: high)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(verify_delay=None) as emulator:
        yield emulator


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


def client(emu: Emulator, key: str | None = None, **options: Any) -> AsyncPacSpace:
    options.setdefault("max_retries", 0)  # the outbox's own retries are under test
    options.setdefault("deadline", 1.0)
    return AsyncPacSpace(key or emu.create_key(), base_urls=emu.base_urls, **options)


async def eventually(condition: Callable[[], Awaitable[bool]], *, rounds: int = 2000) -> None:
    for _ in range(rounds):
        if await condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never came true")


def posts(emu: Emulator) -> list[Any]:
    return [r for r in emu.requests if r.method == "POST" and r.path == DELTA_PATH]


async def emit_many(outbox: Outbox, count: int, customers: int = 3, start: int = 0) -> list[OutboxEntry]:
    return [
        await outbox.emit(
            customer_id=f"cust_{n % customers}", delta=Decimal(-n - 1), reason="usage", reference_id=f"inv_{n}"
        )
        for n in range(start, start + count)
    ]


def assert_recorded_once_in_order(emu: Emulator, entries: list[OutboxEntry]) -> None:
    deltas = emu.deltas()
    assert len(deltas) == len(entries)
    assert Counter(d.reference_id for d in deltas) == Counter(e.reference_id for e in entries)
    for customer in {e.customer_id for e in entries}:
        expected = [e.reference_id for e in entries if e.customer_id == customer]
        assert [d.reference_id for d in emu.deltas(customer)] == expected


def test_retry_delays_double_up_to_fifteen_minutes() -> None:
    top = [retry_delay(n, hint=None, jitter=lambda low, high: high) for n in (1, 2, 3, 10, 11, 50)]
    assert top == [1.0, 2.0, 4.0, 512.0, MAX_RETRY_DELAY, MAX_RETRY_DELAY]
    assert retry_delay(1, hint=None, jitter=lambda low, high: low) == 0.5
    assert retry_delay(1, hint=30.0, jitter=lambda low, high: high) == 30.0
    assert retry_delay(1, hint=10_000.0, jitter=lambda low, high: high) == MAX_RETRY_DELAY


async def test_emit_stores_the_key_emit_would_send_and_refuses_bad_input(emu: Emulator, clock: VirtualClock) -> None:
    async with client(emu) as pac:
        outbox = Outbox(pac, "memory://", clock=clock.clock())
        entry = await outbox.emit(customer_id="cust_1", delta="-1.50", reason="usage", reference_id="inv_1")
        fresh = await outbox.emit(customer_id="cust_1", delta=2, reason="top-up")
        own = await outbox.emit(customer_id="cust_1", delta=3, reason="x", idempotency_key="mine")
        with pytest.raises(InvalidArgumentError):
            await outbox.emit(customer_id="cust_1", delta=1.5, reason="usage")  # type: ignore[arg-type]

        assert entry.idempotency_key == "sandbox:balance.delta:cust_1:inv_1"
        assert fresh.idempotency_key.startswith("sandbox:balance.delta:")
        assert own.idempotency_key == "sandbox:mine"
        assert (entry.state, entry.delta, entry.record_id) == (EntryState.PENDING, Decimal("-1.50"), None)
        assert (await outbox.stats()).pending == 3
        assert posts(emu) == []  # nothing is sent without the drain

        async with outbox:
            assert await outbox.flush(timeout=10)
        sent = await outbox.get(entry.id)
        assert sent is not None
        assert sent.state is EntryState.SENT
        [recorded] = emu.deltas(status=None)[:1]
        assert sent.record_id == recorded.record_id
        assert [r.idempotency_key for r in posts(emu)] == [
            entry.idempotency_key,
            fresh.idempotency_key,
            own.idempotency_key,
        ]


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_lost_answers_and_errors_still_deliver_each_entry_once_in_order(
    emu: Emulator, clock: VirtualClock, tmp_path: Path, store: str
) -> None:
    emu.faults = Faults(rate=0.4, kinds=("503", "drop_before_write", "drop_after_write"), paths=(DELTA_PATH,))
    url = "memory://" if store == "memory" else f"sqlite:///{tmp_path}/outbox.sqlite3"
    async with client(emu) as pac, Outbox(pac, url, drain_concurrency=4, clock=clock.clock()) as outbox:
        entries = await emit_many(outbox, 30)
        assert await outbox.flush(timeout=30)

    assert any(r.fault == "drop_after_write" for r in posts(emu))  # some sends were recorded, unanswered
    assert_recorded_once_in_order(emu, entries)


@pytest.mark.parametrize("kind", ["refuse", "503"], ids=["connections-refused", "503-answers"])
async def test_an_outage_longer_than_the_clients_deadline_then_recovery_delivers_everything_once(
    emu: Emulator, clock: VirtualClock, tmp_path: Path, kind: str
) -> None:
    async with client(emu, deadline=0.5) as pac, Outbox(pac, tmp_path / "o.sqlite3", clock=clock.clock()) as outbox:
        async with emu.outage(kind):
            entries = await emit_many(outbox, 6)
            # A plain emit, retrying on its own, gives up when its deadline passes.
            async with client(emu, max_retries=10, deadline=0.3) as direct:
                with pytest.raises(APIConnectionError if kind == "refuse" else ServiceUnavailableError):
                    await direct.balance.emit(customer_id="cust_direct", delta=-1, reason="usage")

            heads = entries[:3]  # each customer's oldest: the others wait behind it, untried

            async def tried_again_and_again() -> bool:
                stored = [await outbox.get(entry.id) for entry in heads]
                return all(entry is not None and entry.attempts >= 4 for entry in stored)

            await eventually(tried_again_and_again)
            waiting = [await outbox.get(entry.id) for entry in entries[3:]]
            assert [None if entry is None else entry.attempts for entry in waiting] == [0, 0, 0]
            stats = await outbox.stats()
            assert (stats.pending, stats.dead) == (6, 0)
            assert stats.oldest_pending_age is not None
            assert stats.oldest_pending_age > 0.5
            waits = [s for s in clock.sleeps if s > 0]
            assert waits
            assert max(waits) <= MAX_RETRY_DELAY

        assert await outbox.flush(timeout=30)

    assert_recorded_once_in_order(emu, entries)
    # After the outage each entry was sent once and recorded: no replay was needed.
    delivered = [r for r in posts(emu) if r.status == 201]
    assert sorted(r.idempotency_key or "" for r in delivered) == sorted(e.idempotency_key for e in entries)
    assert not any(r.replayed for r in posts(emu))
    if kind == "refuse":
        assert posts(emu) == delivered  # nothing reached the emulator while it was down


async def test_a_refusal_to_fix_is_dead_lettered_then_requeued(emu: Emulator, clock: VirtualClock) -> None:
    told: list[OutboxEntry] = []

    async def on_dead_letter(entry: OutboxEntry) -> None:
        told.append(entry)

    emu.allowance = 0
    async with client(emu) as pac, Outbox(pac, "memory://", on_dead_letter=on_dead_letter, clock=clock.clock()) as ob:
        entry = await ob.emit(customer_id="cust_1", delta=-5, reason="usage", reference_id="inv_1")
        assert await ob.flush(timeout=10)  # dead letters are not pending

        [dead] = await ob.dead_letters()
        assert (dead.id, dead.state, dead.error_code) == (entry.id, EntryState.DEAD, "INSUFFICIENT_CREDITS")
        assert dead.error is not None
        assert "allowance" in dead.error
        assert told == [dead]
        assert emu.deltas() == []

        emu.allowance = None  # the fix
        assert await ob.requeue(entry.id) is True
        assert await ob.flush(timeout=10)
        assert await ob.dead_letters() == []

    [recorded] = emu.deltas()
    assert recorded.reference_id == "inv_1"
    assert {r.idempotency_key for r in posts(emu)} == {entry.idempotency_key}


async def test_a_full_outbox_refuses_the_emit(emu: Emulator, clock: VirtualClock, tmp_path: Path) -> None:
    async with client(emu) as pac:
        outbox = Outbox(pac, tmp_path / "o.sqlite3", max_entries=2, clock=clock.clock())
        await emit_many(outbox, 2)
        with pytest.raises(OutboxFullError):
            await outbox.emit(customer_id="cust_9", delta=-1, reason="usage")
        assert (await outbox.stats()).pending == 2
        await outbox.aclose()


async def test_a_revoked_key_pauses_the_drain_until_the_key_is_rotated(emu: Emulator, clock: VirtualClock) -> None:
    refused: list[Exception] = []
    key = emu.create_key()
    async with (
        client(emu, key, on_auth_error=refused.append) as pac,
        Outbox(pac, "memory://", clock=clock.clock()) as outbox,
    ):
        first = await emit_many(outbox, 1)
        assert await outbox.flush(timeout=10)

        emu.revoke_key(key)
        rest = await emit_many(outbox, 4, start=1)

        async def paused() -> bool:
            return (await outbox.stats()).paused

        await eventually(paused)
        sent_before = len(posts(emu))
        clock.now += 60  # time passes; a paused drain sends nothing
        await asyncio.sleep(0.05)
        stats = await outbox.stats()
        assert (stats.pending, stats.dead, stats.in_flight) == (4, 0, 0)
        assert len(posts(emu)) == sent_before
        assert refused
        assert all(getattr(e, "status", None) == 401 for e in refused)

        await pac.rotate_key(emu.create_key())
        assert await outbox.flush(timeout=10)
        assert not (await outbox.stats()).paused

    assert_recorded_once_in_order(emu, first + rest)


async def test_an_entry_older_than_max_age_is_never_resent(emu: Emulator, clock: VirtualClock) -> None:
    async with client(emu) as pac:
        outbox = Outbox(pac, "memory://", max_age=timedelta(hours=1), clock=clock.clock())
        entry = await outbox.emit(customer_id="cust_1", delta=-1, reason="usage", reference_id="inv_old")
        clock.now += 3601
        async with outbox:
            assert await outbox.flush(timeout=10)
            [dead] = await outbox.dead_letters()

    assert (dead.id, dead.needs_reconciliation, dead.error_code) == (entry.id, True, "OUTBOX_MAX_AGE")
    assert dead.error is not None
    assert entry.idempotency_key in dead.error
    assert posts(emu) == []


async def test_a_new_outbox_on_the_same_file_finishes_what_a_crashed_one_left(
    emu: Emulator, clock: VirtualClock, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.sqlite3"
    async with client(emu) as pac:
        crashed = Outbox(pac, path, clock=clock.clock())
        entries = await emit_many(outbox=crashed, count=5)
        # The crashed process had claimed everything and got the first one recorded, but died
        # before storing the answer.
        await crashed.store.claim(now=clock.now, limit=10, lease_seconds=LEASE_SECONDS)
        await pac.balance.emit(
            customer_id=entries[0].customer_id,
            delta=entries[0].delta,
            reason=entries[0].reason,
            reference_id=entries[0].reference_id,
            idempotency_key=entries[0].idempotency_key,
        )
        crashed.start()
        drain = crashed._drain
        assert drain is not None
        drain.cancel()  # the process is gone: no aclose, its claims stay in the file

        clock.now += LEASE_SECONDS
        async with Outbox(pac, f"sqlite:///{path}", clock=clock.clock()) as successor:
            assert await successor.flush(timeout=10)
            finished = [await successor.get(entry.id) for entry in entries]
            assert all(e is not None and e.state is EntryState.SENT and e.record_id for e in finished)
        await crashed.store.aclose()

    assert_recorded_once_in_order(emu, entries)
    assert sum(r.replayed for r in posts(emu)) >= 1  # the first one's resend was a replay


class FlakyStore(MemoryStore):
    """Fails to hand out entries the first `failures` times (a locked disk, say)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def claim(
        self, *, now: float, limit: int, lease_seconds: float, environment: str | None = None
    ) -> Sequence[StoredEntry]:
        if self.failures:
            self.failures -= 1
            raise OSError("disk I/O error")
        return await super().claim(now=now, limit=limit, lease_seconds=lease_seconds, environment=environment)


async def test_a_store_failure_does_not_stop_the_drain(emu: Emulator, clock: VirtualClock) -> None:
    store = FlakyStore(failures=2)
    async with client(emu) as pac, Outbox(pac, store, clock=clock.clock()) as outbox:
        entries = await emit_many(outbox, 3)
        assert await outbox.flush(timeout=10)
        assert outbox.draining

    assert store.failures == 0
    assert_recorded_once_in_order(emu, entries)
