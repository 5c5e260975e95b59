"""The SQLite store: one file on one machine, safe against a crash mid-write.

The stdlib driver blocks, so every operation runs in a worker thread (`asyncio.to_thread`),
one at a time per store. Each write is one ``BEGIN IMMEDIATE`` transaction; WAL lets readers
and a writer work together, ``synchronous=FULL`` makes a committed entry survive a power cut
(this is money), and the busy timeout lets several processes share the file.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .._errors import ConfigurationError
from ._sql import ADDED_COLUMNS, Dialect, SqlTransitions, entry_from_row
from ._store import (
    StoredEntry,
    StoreStats,
    full_error,
)

__all__ = ["DEFAULT_SQLITE_FILE", "SqliteStore"]

T = TypeVar("T")

DEFAULT_SQLITE_FILE = "pacspace-outbox.sqlite3"
_BUSY_TIMEOUT_MS = 10_000

_SQL = Dialect(table="outbox_entries", mark="?")

_SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS outbox_entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    body TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at REAL NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    lease_until REAL NOT NULL DEFAULT 0,
    record_id TEXT,
    error TEXT,
    error_code TEXT,
    needs_reconciliation INTEGER NOT NULL DEFAULT 0,
    trace_parent TEXT
);
CREATE INDEX IF NOT EXISTS outbox_entries_line ON outbox_entries (state, customer_id, seq);
CREATE INDEX IF NOT EXISTS outbox_entries_due ON outbox_entries (state, next_attempt_at, seq);
{_SQL.create_totals()};
{_SQL.count_totals()};
CREATE TRIGGER IF NOT EXISTS outbox_entries_in AFTER INSERT ON outbox_entries WHEN NEW.state != 'sent'
BEGIN {_SQL.totals_change("+", "NEW")}; END;
CREATE TRIGGER IF NOT EXISTS outbox_entries_sent AFTER UPDATE OF state ON outbox_entries
WHEN OLD.state != 'sent' AND NEW.state = 'sent'
BEGIN {_SQL.totals_change("-", "OLD")}; END;
CREATE TRIGGER IF NOT EXISTS outbox_entries_out AFTER DELETE ON outbox_entries WHEN OLD.state != 'sent'
BEGIN {_SQL.totals_change("-", "OLD")}; END;
COMMIT;
"""


def _create_private(path: Path) -> None:
    """Create the file readable by its owner only, before SQLite opens it (SQLite gives its
    WAL and shared-memory files the database file's mode)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


class SqliteStore(SqlTransitions):
    """Entries in a SQLite file (default ``pacspace-outbox.sqlite3`` in the working directory)."""

    _sql = _SQL

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_SQLITE_FILE) -> None:
        self.path = Path(path)
        if str(path) in ("", ":memory:"):
            raise ConfigurationError("the SQLite outbox needs a file path (for memory, use MemoryStore or 'memory://')")
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one operation at a time on the one connection

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    # --- the interface ----------------------------------------------------------------------

    async def add(self, entry: StoredEntry, *, max_entries: int, max_bytes: int) -> None:
        def add(db: sqlite3.Connection) -> None:
            count, size = db.execute(_SQL.unsent_totals()).fetchone()
            if count + 1 > max_entries or size + entry.size > max_bytes:
                raise full_error(entries=count, size=size, max_entries=max_entries, max_bytes=max_bytes)
            db.execute(*_SQL.insert(entry))

        await self._write(add)

    async def claim(
        self, *, now: float, limit: int, lease_seconds: float, environment: str | None = None
    ) -> Sequence[StoredEntry]:
        def claim(db: sqlite3.Connection) -> list[StoredEntry]:
            # Each customer's oldest pending entry, when it is due and nobody holds a live lease.
            rows: list[Any] = []
            for heads, values in _claim_sources(now, environment, db):
                rows = db.execute(
                    f"WITH RECURSIVE {heads} SELECT {_SQL.columns} FROM outbox_entries WHERE seq IN "
                    "(SELECT seq FROM heads) AND next_attempt_at <= ? AND lease_until <= ? ORDER BY seq LIMIT ?",
                    (*values, now, now, limit),
                ).fetchall()
                if len(rows) >= limit:
                    break
            db.executemany(
                "UPDATE outbox_entries SET lease_until = ? WHERE id = ?",
                [(now + lease_seconds, row[0]) for row in rows],
            )
            return [entry_from_row(row) for row in rows]

        return await self._write(claim)

    async def has_pending(self, *, environment: str | None = None) -> bool:
        def has_pending(db: sqlite3.Connection) -> bool:
            return db.execute(*_SQL.any_pending(environment)).fetchone() is not None

        return await self._run(has_pending)

    async def get(self, entry_id: str) -> StoredEntry | None:
        def get(db: sqlite3.Connection) -> StoredEntry | None:
            row = db.execute(_SQL.select_by_id(), (entry_id,)).fetchone()
            return None if row is None else entry_from_row(row)

        return await self._run(get)

    async def dead_letters(self, *, limit: int = 1000) -> Sequence[StoredEntry]:
        def dead(db: sqlite3.Connection) -> list[StoredEntry]:
            return [entry_from_row(row) for row in db.execute(_SQL.dead_letters(), (limit,)).fetchall()]

        return await self._run(dead)

    async def stats(self, *, now: float, environment: str | None = None) -> StoreStats:
        def stats(db: sqlite3.Connection) -> StoreStats:
            pending, in_flight, oldest, dead = db.execute(*_SQL.stats(now=now, environment=environment)).fetchone()
            return StoreStats(pending=pending, dead=dead, in_flight=in_flight, oldest_pending_at=oldest)

        return await self._run(stats)

    async def aclose(self) -> None:
        def close() -> None:
            with self._lock:
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None

        await asyncio.to_thread(close)

    # --- the connection and its thread --------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            try:
                _create_private(self.path)
                # isolation_level=None: no implicit transactions, each write opens its own below.
                db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = FULL")
                db.executescript(_SCHEMA)
                _add_missing_columns(db)
            except (OSError, sqlite3.Error) as error:
                raise ConfigurationError(
                    f"cannot open the outbox file {str(self.path)!r} ({error}); give a path in an existing, "
                    "writable directory"
                ) from error
            self._connection = db
        return self._connection

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            with self._lock:
                return work(self._connect())

        return await asyncio.to_thread(run)

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def write(db: sqlite3.Connection) -> T:
            # IMMEDIATE takes the write lock up front: a claim's read and its lease update are one step.
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result

        return await self._run(write)

    async def _execute(self, sql: str, values: tuple[object, ...]) -> int:
        """One statement in its own write transaction; the number of rows it changed."""

        def execute(db: sqlite3.Connection) -> int:
            return db.execute(sql, values).rowcount

        return await self._write(execute)


def _claim_sources(
    now: float, environment: str | None, db: sqlite3.Connection
) -> Iterator[tuple[str, tuple[object, ...]]]:
    """Where a claim looks: the earliest-due window, then, if that window is full and yet held
    too few heads, every customer's head."""
    yield _SQL.due_heads(now, environment)
    if db.execute(*_SQL.due_count(now, environment)).fetchone()[0] >= _SQL.WINDOW:
        yield _SQL.heads(environment)


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Bring a file made by an earlier version up to date (a new column, nullable)."""
    present = {row[1] for row in db.execute("PRAGMA table_info(outbox_entries)")}
    for name, kind in ADDED_COLUMNS.items():
        if name not in present:
            try:
                db.execute(f"ALTER TABLE outbox_entries ADD COLUMN {name} {kind}")  # constants only
            except sqlite3.OperationalError as error:
                if "duplicate column" not in str(error):  # another process added it just now
                    raise
