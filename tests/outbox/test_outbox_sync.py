"""The blocking outbox: many threads emitting through one, each entry recorded once, in order."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

import pacspace_async.outbox as async_outbox
from pacspace_async.testing import Emulator
from pacspace_sync import PacSpace
from pacspace_sync.outbox import EntryState, Outbox, OutboxEntry, OutboxFullError


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    emulator = Emulator(verify_delay=None).start_in_thread()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def pac(emu: Emulator) -> Iterator[PacSpace]:
    emu.reset()
    emu.allowance = None
    with PacSpace(emu.create_key("sandbox"), base_urls=emu.base_urls, max_retries=0, deadline=5.0) as client:
        yield client


def test_the_names_are_the_async_packages_own() -> None:
    assert OutboxEntry is async_outbox.OutboxEntry
    assert OutboxFullError is async_outbox.OutboxFullError
    assert EntryState is async_outbox.EntryState


def test_threads_emitting_through_one_outbox_are_each_recorded_once_in_order(
    emu: Emulator, pac: PacSpace, tmp_path: Path
) -> None:
    threads, each = 8, 25
    stored: list[OutboxEntry] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    with Outbox(pac, tmp_path / "outbox.sqlite3") as outbox:

        def agent(n: int) -> None:
            start.wait()
            for i in range(each):
                entry = outbox.emit(
                    customer_id=f"cust_t{n}", delta=Decimal(-i - 1), reason="usage", reference_id=f"t{n}_{i}"
                )
                with lock:
                    stored.append(entry)

        workers = [threading.Thread(target=agent, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert outbox.draining
        assert outbox.flush(timeout=60)
        stats = outbox.stats()
        assert (stats.pending, stats.dead, stats.in_flight) == (0, 0, 0)
        sent = outbox.get(stored[0].id)
        assert sent is not None
        assert sent.state is EntryState.SENT
        assert sent.record_id

    assert not outbox.draining
    deltas = emu.deltas()
    assert len(deltas) == threads * each
    assert set(Counter(d.reference_id for d in deltas).values()) == {1}
    for n in range(threads):
        assert [d.reference_id for d in emu.deltas(f"cust_t{n}")] == [f"t{n}_{i}" for i in range(each)]


def test_a_dead_letter_reaches_a_blocking_hook_off_the_loop_then_is_requeued(emu: Emulator, pac: PacSpace) -> None:
    told: list[tuple[OutboxEntry, bool]] = []
    loop_thread = pac._portal.thread

    def on_dead_letter(entry: OutboxEntry) -> None:
        told.append((entry, threading.current_thread() is loop_thread))

    emu.allowance = 0
    with Outbox(pac, "memory://", on_dead_letter=on_dead_letter) as outbox:
        entry = outbox.emit(customer_id="cust_dead", delta=-5, reason="usage", reference_id="inv_dead")
        assert outbox.flush(timeout=30)  # dead letters are not pending
        [dead] = outbox.dead_letters()
        assert (dead.id, dead.error_code) == (entry.id, "INSUFFICIENT_CREDITS")
        assert told == [(dead, False)]

        emu.allowance = None  # the fix
        assert outbox.requeue(entry.id) is True
        assert outbox.requeue(entry.id) is False  # no longer dead
        assert outbox.flush(timeout=30)
        assert outbox.dead_letters() == []
    assert [d.reference_id for d in emu.deltas("cust_dead")] == ["inv_dead"]


def test_a_full_outbox_refuses_and_what_is_stored_survives_a_restart(
    emu: Emulator, pac: PacSpace, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.sqlite3"
    first = Outbox(pac, path, max_entries=2)  # no drain: a process that dies before sending
    first.emit(customer_id="cust_r", delta=1, reason="top-up", reference_id="r1")
    first.emit(customer_id="cust_r", delta=2, reason="top-up", reference_id="r2")
    with pytest.raises(OutboxFullError):
        first.emit(customer_id="cust_r", delta=3, reason="top-up", reference_id="r3")
    assert first.stats().pending == 2
    first.close()
    assert emu.deltas("cust_r") == []

    with Outbox(pac, path) as again:
        assert again.flush(timeout=30)
    assert [d.reference_id for d in emu.deltas("cust_r")] == ["r1", "r2"]


def test_flush_needs_the_drain(pac: PacSpace) -> None:
    outbox = Outbox(pac, "memory://")
    with pytest.raises(RuntimeError, match="needs the drain"):
        outbox.flush(timeout=1)
    outbox.close()
