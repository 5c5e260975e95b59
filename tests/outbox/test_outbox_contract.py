"""One contract for every outbox store: each store runs exactly these tests."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import attrs
import pytest

from pacspace_async.errors import ConfigurationError, PacSpaceError
from pacspace_async.outbox import (
    EntryState,
    MemoryStore,
    OutboxFullError,
    OutboxStore,
    SqliteStore,
    StoredEntry,
    open_store,
)
from pacspace_async.outbox._postgres import PostgresStore
from pacspace_async.outbox._sql import Dialect

NOW = 1_700_000_000.0
LEASE = 300.0
ROOMY = {"max_entries": 1000, "max_bytes": 1_000_000}

StoreFactory = Callable[[], OutboxStore]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    if request.param == "memory":
        shared = MemoryStore()
        return lambda: shared
    if request.param == "postgres":
        # Asked for here only: the other stores' runs need no server.
        url: str = request.getfixturevalue("postgres_url")
        return lambda: PostgresStore(url)
    return lambda: SqliteStore(tmp_path / "outbox.sqlite3")


@pytest.fixture
async def store(make_store: StoreFactory) -> AsyncIterator[OutboxStore]:
    opened = make_store()
    yield opened
    await opened.aclose()


def entry(n: int, customer: str = "cust_a", *, created_at: float = NOW, body: str = '{"delta":"-1"}') -> StoredEntry:
    return StoredEntry(
        id=f"e{n}",
        customer_id=customer,
        idempotency_key=f"sandbox:balance.delta:{n}",
        body=body,
        created_at=created_at + n,
        next_attempt_at=NOW,
    )


async def ids(store: OutboxStore, *, now: float = NOW, limit: int = 100) -> list[str]:
    return [e.id for e in await store.claim(now=now, limit=limit, lease_seconds=LEASE)]


async def test_an_added_entry_is_claimed_once_until_its_lease_runs_out(store: OutboxStore) -> None:
    await store.add(entry(1), **ROOMY)

    assert await ids(store) == ["e1"]
    assert await ids(store, now=NOW + LEASE - 1) == []
    # The process that claimed it is taken to have died: another takes it over.
    assert await ids(store, now=NOW + LEASE) == ["e1"]


async def test_only_each_customers_oldest_pending_entry_is_claimed(store: OutboxStore) -> None:
    for n, customer in enumerate(["cust_a", "cust_b", "cust_a", "cust_c", "cust_b"], start=1):
        await store.add(entry(n, customer), **ROOMY)

    assert await ids(store) == ["e1", "e2", "e4"]
    await store.mark_sent("e1", record_id="rec_1")
    assert await ids(store) == ["e3"]


async def test_an_entry_waiting_to_retry_holds_back_its_customer_only(store: OutboxStore) -> None:
    await store.add(entry(1, "cust_a"), **ROOMY)
    await store.add(entry(2, "cust_a"), **ROOMY)
    await store.add(entry(3, "cust_b"), **ROOMY)
    await ids(store)
    await store.retry_later("e1", at=NOW + 60, attempts=1, error="503", error_code="SERVICE_UNAVAILABLE")
    await store.retry_later("e3", at=NOW, attempts=0, error=None, error_code=None)

    assert await ids(store, now=NOW + 1) == ["e3"]
    assert await ids(store, now=NOW + 60) == ["e1"]
    retried = await store.get("e1")
    assert retried is not None
    assert (retried.attempts, retried.error, retried.error_code) == (1, "503", "SERVICE_UNAVAILABLE")


async def test_claim_respects_its_limit_oldest_first(store: OutboxStore) -> None:
    for n in range(1, 6):
        await store.add(entry(n, f"cust_{n}"), **ROOMY)

    assert await ids(store, limit=2) == ["e1", "e2"]
    assert await ids(store, limit=10) == ["e3", "e4", "e5"]


async def test_sent_entries_keep_their_record_id_and_leave_the_line(store: OutboxStore) -> None:
    await store.add(entry(1), **ROOMY)
    await ids(store)
    await store.mark_sent("e1", record_id="rec_1")

    sent = await store.get("e1")
    assert sent is not None
    assert (sent.state, sent.record_id, sent.idempotency_key) == (EntryState.SENT, "rec_1", "sandbox:balance.delta:1")
    assert await ids(store, now=NOW + 10 * LEASE) == []
    assert await store.get("nope") is None


async def test_dead_letters_keep_their_error_and_are_requeued(store: OutboxStore) -> None:
    await store.add(entry(1), **ROOMY)
    await store.add(entry(2), **ROOMY)
    await ids(store)
    await store.mark_dead("e1", error="the plan's allowance is used up", error_code="INSUFFICIENT_CREDITS")

    # A dead entry no longer holds back its customer.
    assert await ids(store) == ["e2"]
    [dead] = await store.dead_letters()
    assert (dead.id, dead.state, dead.error, dead.error_code) == (
        "e1",
        EntryState.DEAD,
        "the plan's allowance is used up",
        "INSUFFICIENT_CREDITS",
    )
    assert dead.needs_reconciliation is False

    assert await store.requeue("e1", now=NOW + 5) is True
    assert await store.requeue("e1", now=NOW + 5) is False  # not dead any more
    assert await store.requeue("e2", now=NOW + 5) is False  # never dead
    assert await store.dead_letters() == []
    requeued = await store.get("e1")
    assert requeued is not None
    assert (requeued.state, requeued.error, requeued.attempts) == (EntryState.PENDING, None, 0)
    # Back in its place: the oldest of its customer again.
    await store.mark_sent("e2", record_id="rec_2")
    assert await ids(store, now=NOW + 5) == ["e1"]


async def test_an_entry_too_old_is_marked_for_reconciliation(store: OutboxStore) -> None:
    await store.add(entry(1), **ROOMY)
    await store.mark_dead("e1", error="too old", error_code="OUTBOX_MAX_AGE", needs_reconciliation=True)

    [dead] = await store.dead_letters()
    assert dead.needs_reconciliation is True


async def test_stats_count_pending_dead_and_in_flight(store: OutboxStore) -> None:
    empty = await store.stats(now=NOW)
    assert (empty.pending, empty.dead, empty.in_flight, empty.oldest_pending_at) == (0, 0, 0, None)

    for n, customer in enumerate(["cust_a", "cust_b", "cust_c"], start=1):
        await store.add(entry(n, customer), **ROOMY)
    await ids(store, limit=1)
    await store.mark_dead("e3", error="no", error_code=None)

    stats = await store.stats(now=NOW)
    assert (stats.pending, stats.dead, stats.in_flight, stats.oldest_pending_at) == (2, 1, 1, NOW + 1)
    assert (await store.stats(now=NOW + LEASE)).in_flight == 0


async def test_a_full_store_refuses_and_stores_nothing(store: OutboxStore) -> None:
    limits = {"max_entries": 2, "max_bytes": 1_000_000}
    await store.add(entry(1), **limits)
    await store.add(entry(2), **limits)

    with pytest.raises(OutboxFullError, match="full") as caught:
        await store.add(entry(3), **limits)
    assert isinstance(caught.value, PacSpaceError)
    assert (await store.stats(now=NOW)).pending == 2
    assert await store.get("e3") is None

    # Sent entries leave room; dead ones do not (nothing is dropped to make room).
    await store.mark_sent("e1", record_id="rec_1")
    await store.add(entry(3), **limits)
    await store.mark_dead("e2", error="no", error_code=None)
    with pytest.raises(OutboxFullError):
        await store.add(entry(4), **limits)


async def test_the_byte_limit_counts_bodies_and_keys(store: OutboxStore) -> None:
    small = entry(1)
    limits = {"max_entries": 100, "max_bytes": small.size * 2}
    await store.add(small, **limits)
    with pytest.raises(OutboxFullError):
        await store.add(entry(2, body='{"delta":"-1","reason":"a longer body"}'), **limits)
    await store.add(entry(3), **limits)


async def test_entries_outlive_the_store_object(make_store: StoreFactory) -> None:
    first = make_store()
    await first.add(entry(1), **ROOMY)
    await first.claim(now=NOW, limit=10, lease_seconds=LEASE)  # then the process "dies"

    second = make_store()
    try:
        assert await ids(second, now=NOW + 1) == []  # the lease still holds
        assert await ids(second, now=NOW + LEASE) == ["e1"]
    finally:
        await first.aclose()
        await second.aclose()


# --- SQLite specifics --------------------------------------------------------------------------


async def test_the_sqlite_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "private.sqlite3")
    await store.add(entry(1), **ROOMY)
    await store.aclose()

    assert stat.S_IMODE((tmp_path / "private.sqlite3").stat().st_mode) == 0o600
    assert (tmp_path / "private.sqlite3-wal").exists() or (tmp_path / "private.sqlite3").stat().st_size > 0
    import sqlite3

    with sqlite3.connect(tmp_path / "private.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    default = open_store(None)
    assert isinstance(default, SqliteStore)
    assert default.path == Path("pacspace-outbox.sqlite3")
    relative = open_store("sqlite:///data/outbox.db")
    assert isinstance(relative, SqliteStore)
    assert relative.path == Path("data/outbox.db")
    absolute = open_store(f"sqlite:///{tmp_path}/o.db")
    assert isinstance(absolute, SqliteStore)
    assert absolute.path == tmp_path / "o.db"
    assert isinstance(open_store(tmp_path / "p.db"), SqliteStore)
    assert isinstance(open_store("memory://"), MemoryStore)
    mine = MemoryStore()
    assert open_store(mine) is mine


def test_an_unknown_store_url_is_refused_without_showing_its_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_store("mysql://user:hunter2@db/outbox")
    assert "hunter2" not in str(caught.value)
    assert "'mysql'" in str(caught.value)
    with pytest.raises(ConfigurationError):
        open_store(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        SqliteStore(":memory:")


async def test_a_sqlite_file_that_cannot_be_opened_says_how_to_fix_it(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "missing-dir" / "o.sqlite3")
    with pytest.raises(ConfigurationError, match="existing, writable directory"):
        await store.add(entry(1), **ROOMY)


# --- environments, pruning, trace context, old files -------------------------------------------


def production_entry(n: int, customer: str = "cust_a") -> StoredEntry:
    return StoredEntry(
        id=f"p{n}",
        customer_id=customer,
        idempotency_key=f"production:balance.delta:{n}",
        body='{"delta":"-1"}',
        created_at=NOW + n,
        next_attempt_at=NOW,
    )


async def test_claims_and_stats_can_keep_to_one_environment(store: OutboxStore) -> None:
    await store.add(entry(1, "cust_a"), **ROOMY)
    await store.add(production_entry(2, "cust_a"), **ROOMY)  # the same customer id, another environment
    await store.add(entry(3, "cust_a"), **ROOMY)

    production = await store.claim(now=NOW, limit=10, lease_seconds=LEASE, environment="production")
    assert [e.id for e in production] == ["p2"]
    sandbox = await store.claim(now=NOW, limit=10, lease_seconds=LEASE, environment="sandbox")
    assert [e.id for e in sandbox] == ["e1"]  # its own customer line: e3 waits for e1

    assert (await store.stats(now=NOW, environment="sandbox")).pending == 2
    assert (await store.stats(now=NOW, environment="production")).pending == 1
    assert (await store.stats(now=NOW)).pending == 3


async def test_prune_forgets_only_old_sent_entries(store: OutboxStore) -> None:
    for n in (1, 2, 3):
        await store.add(entry(n, f"cust_{n}"), **ROOMY)
    await store.mark_sent("e1", record_id="rec_1")
    await store.mark_sent("e3", record_id="rec_3")
    await store.mark_dead("e2", error="no", error_code=None)

    assert await store.prune(sent_before=NOW + 2) == 1  # e1 only: e3 is newer, e2 is dead
    assert await store.get("e1") is None
    assert (await store.get("e3")) is not None
    assert [e.id for e in await store.dead_letters()] == ["e2"]


async def test_the_limits_count_what_is_unsent_through_every_change(store: OutboxStore) -> None:
    limits = {"max_entries": 2, "max_bytes": 1_000_000}
    await store.add(entry(1, "cust_a"), **limits)
    await store.add(entry(2, "cust_b"), **limits)
    await store.mark_sent("e1", record_id="rec_1")
    await store.mark_sent("e1", record_id="rec_1")  # told twice: room is made once
    await store.prune(sent_before=NOW + 100)  # a sent entry leaving frees nothing more
    await store.add(entry(3, "cust_c"), **limits)
    with pytest.raises(OutboxFullError, match="2 entries"):
        await store.add(entry(4, "cust_d"), **limits)
    await store.mark_dead("e2", error="no", error_code=None)
    await store.requeue("e2", now=NOW)  # dead and pending both count
    with pytest.raises(OutboxFullError):
        await store.add(entry(4, "cust_d"), **limits)
    assert (await store.has_pending(environment="sandbox"), await store.has_pending(environment="production")) == (
        True,
        False,
    )


async def test_the_trace_context_is_kept_with_the_entry(store: OutboxStore) -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await store.add(attrs.evolve(entry(1), trace_parent=parent), **ROOMY)
    await store.add(entry(2, "cust_b"), **ROOMY)

    claimed = {e.id: e.trace_parent for e in await store.claim(now=NOW, limit=10, lease_seconds=LEASE)}
    assert claimed == {"e1": parent, "e2": None}


async def test_a_sqlite_file_of_an_earlier_version_is_brought_up_to_date(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # the first release's table: no trace_parent column
        db.execute(
            "CREATE TABLE outbox_entries (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, "
            "customer_id TEXT NOT NULL, idempotency_key TEXT NOT NULL, body TEXT NOT NULL, size INTEGER NOT NULL, "
            "created_at REAL NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
            "next_attempt_at REAL NOT NULL DEFAULT 0, lease_until REAL NOT NULL DEFAULT 0, record_id TEXT, "
            "error TEXT, error_code TEXT, needs_reconciliation INTEGER NOT NULL DEFAULT 0)"
        )
        db.execute(
            "INSERT INTO outbox_entries (id, customer_id, idempotency_key, body, size, created_at, state) "
            "VALUES ('old', 'cust_a', 'sandbox:balance.delta:old', '{}', 30, ?, 'pending')",
            (NOW,),
        )
    store = SqliteStore(path)
    try:
        with pytest.raises(OutboxFullError):  # the entries already there count against the limits
            await store.add(entry(9, "cust_z"), max_entries=1, max_bytes=1_000_000)
        assert [e.id for e in await store.claim(now=NOW, limit=10, lease_seconds=LEASE)] == ["old"]
        await store.add(attrs.evolve(entry(1, "cust_b"), trace_parent="00-x"), **ROOMY)
        assert (await store.get("e1")) is not None
        assert (await store.get("e1")).trace_parent == "00-x"  # type: ignore[union-attr]
    finally:
        await store.aclose()


async def test_a_customer_behind_a_long_backlog_of_another_is_still_claimed(
    store: OutboxStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # More due entries of one customer than a claim's first look covers (1024; 8 here): the
    # second customer's entry, behind them all, must still go out beside the first's oldest.
    monkeypatch.setattr(Dialect, "WINDOW", 8)
    for n in range(1, 20):
        await store.add(entry(n, "cust_a"), **ROOMY)
    await store.add(entry(20, "cust_b"), **ROOMY)

    assert await ids(store, limit=10) == ["e1", "e20"]
    assert await ids(store, limit=10) == []  # both in flight; nothing else may go
