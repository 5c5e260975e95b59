"""A worker process killed with SIGKILL between a send and its acknowledgement, then restarted.

The crash point is made exact by the emulator: it carries out the first four sends and keeps
their answers back (`hold_answers`), so when the test kills the worker those four deltas are
recorded by PacSpace and still pending in the worker's file, with nothing else in flight.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from pacspace_async import AsyncPacSpace
from pacspace_async.outbox import EntryState, Outbox, OutboxEntry, SqliteStore, StoredEntry, StoreStats
from pacspace_async.testing import Emulator

from .outbox_worker import finish, spawn, wait_until

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is a POSIX signal")

DELTA_PATH = "/api/v1/balance/delta"
COUNT, CUSTOMERS, HELD, CONCURRENCY = 30, 10, 4, 8
# The successor's clock runs an hour ahead: past the dead worker's leases (minutes), well
# within max_age (a day), so it takes the entries over and may still send them.
LATER = 3600.0


async def enqueue(emu: Emulator, key: str, path: Path) -> list[OutboxEntry]:
    async with AsyncPacSpace(key, base_urls=emu.base_urls) as pac:
        outbox = Outbox(pac, path)  # not started: entries are stored, not sent
        entries = [
            await outbox.emit(
                customer_id=f"cust_{n % CUSTOMERS}", delta=Decimal(-n - 1), reason="usage", reference_id=f"inv_{n}"
            )
            for n in range(COUNT)
        ]
        await outbox.aclose()
    return entries


async def read_store(path: Path, ids: list[str]) -> tuple[StoreStats, list[StoredEntry]]:
    store = SqliteStore(path)
    try:
        stats = await store.stats(now=time.time())
        stored = [await store.get(entry_id) for entry_id in ids]
    finally:
        await store.aclose()
    assert all(entry is not None for entry in stored)
    return stats, [entry for entry in stored if entry is not None]


def test_a_worker_killed_between_send_and_acknowledgement_is_finished_by_its_successor_once(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    store = f"sqlite:///{path}"
    ids: list[str] = []

    def pending_and_in_flight() -> tuple[int, int]:
        stats = asyncio.run(read_store(path, ids))[0]
        return stats.pending, stats.in_flight

    with Emulator(verify_delay=None) as emu:
        key = emu.create_key()
        entries = asyncio.run(enqueue(emu, key, path))
        ids += [entry.id for entry in entries]

        with emu.hold_answers(method="POST", path=DELTA_PATH, count=HELD) as held:
            worker = spawn(store, emu.sandbox_url, key, "--concurrency", str(CONCURRENCY), "--short-waits")
            try:
                # Four customers wait on a held answer; the other six drain completely.
                drained = COUNT - HELD * (COUNT // CUSTOMERS)
                wait_until(
                    lambda: (
                        held.waiting == HELD
                        and len(emu.deltas()) == drained + HELD
                        and pending_and_in_flight() == (COUNT - drained, HELD)
                    ),
                    [worker],
                )
                in_flight = [
                    entry
                    for entry in asyncio.run(read_store(path, ids))[1]
                    if entry.state is EntryState.PENDING
                    and entry.attempts == 0
                    and entry.idempotency_key in {d.idempotency_key for d in emu.deltas()}
                ]
            finally:
                worker.send_signal(signal.SIGKILL)
                worker.communicate()
            assert worker.returncode == -signal.SIGKILL
        # The held answers went out to a dead process.

        assert len(in_flight) == HELD  # recorded by PacSpace, never acknowledged in the file
        # The successor starts after the dead worker's leases ran out.
        successor = spawn(store, emu.sandbox_url, key, "--clock-offset", str(LATER), "--short-waits")
        assert finish(successor) == {"pending": 0, "dead": 0, "in_flight": 0}

        deltas = emu.deltas()
        posts = [r for r in emu.requests if r.method == "POST" and r.path == DELTA_PATH]

    final_stats, stored = asyncio.run(read_store(path, ids))
    assert (final_stats.pending, final_stats.dead, final_stats.in_flight) == (0, 0, 0)
    # Every entry recorded once, in each customer's order, and acknowledged with its record.
    assert Counter(d.reference_id for d in deltas) == Counter(e.reference_id for e in entries)
    for customer in {e.customer_id for e in entries}:
        expected = [e.reference_id for e in entries if e.customer_id == customer]
        assert [d.reference_id for d in deltas if d.customer_id == customer] == expected
    recorded = {d.idempotency_key: d.record_id for d in deltas}
    assert all(entry.state is EntryState.SENT for entry in stored)
    assert {entry.idempotency_key: entry.record_id for entry in stored} == recorded
    # The four in flight were sent again with their own keys and answered from idempotency memory;
    # nothing else was sent twice.
    sends = Counter(r.idempotency_key for r in posts)
    resent = {entry.idempotency_key for entry in in_flight}
    assert {k for k, n in sends.items() if n > 1} == resent
    assert all(sends[k] == 2 for k in resent)
    assert Counter(r.idempotency_key for r in posts if r.replayed) == Counter(resent)
    assert all(r.status == 201 for r in posts)
