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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .._errors import ConfigurationError
from ._store import EntryState, StoredEntry, StoreStats, full_error

__all__ = ["DEFAULT_SQLITE_FILE", "SqliteStore"]

T = TypeVar("T")

DEFAULT_SQLITE_FILE = "pacspace-outbox.sqlite3"
_BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
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
    needs_reconciliation INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_entries_line ON outbox_entries (state, customer_id, seq);
"""

_COLUMNS = (
    "id, customer_id, idempotency_key, body, created_at, state, attempts, next_attempt_at, "
    "record_id, error, error_code, needs_reconciliation"
)


def _entry(row: Sequence[Any]) -> StoredEntry:
    return StoredEntry(
        id=row[0],
        customer_id=row[1],
        idempotency_key=row[2],
        body=row[3],
        created_at=row[4],
        state=EntryState(row[5]),
        attempts=row[6],
        next_attempt_at=row[7],
        record_id=row[8],
        error=row[9],
        error_code=row[10],
        needs_reconciliation=bool(row[11]),
    )


def _create_private(path: Path) -> None:
    """Create the file readable by its owner only, before SQLite opens it (SQLite gives its
    WAL and shared-memory files the database file's mode)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


class SqliteStore:
    """Entries in a SQLite file (default ``pacspace-outbox.sqlite3`` in the working directory)."""

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
            count, size = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox_entries WHERE state != 'sent'"
            ).fetchone()
            if count + 1 > max_entries or size + entry.size > max_bytes:
                raise full_error(entries=count, size=size, max_entries=max_entries, max_bytes=max_bytes)
            db.execute(
                "INSERT INTO outbox_entries (id, customer_id, idempotency_key, body, size, created_at, state, "
                "next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.id,
                    entry.customer_id,
                    entry.idempotency_key,
                    entry.body,
                    entry.size,
                    entry.created_at,
                    entry.state.value,
                    entry.next_attempt_at,
                ),
            )

        await self._write(add)

    async def claim(self, *, now: float, limit: int, lease_seconds: float) -> Sequence[StoredEntry]:
        def claim(db: sqlite3.Connection) -> list[StoredEntry]:
            # Each customer's oldest pending entry, when it is due and nobody holds a live lease.
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM outbox_entries WHERE seq IN ("
                "  SELECT MIN(seq) FROM outbox_entries WHERE state = 'pending' GROUP BY customer_id"
                ") AND next_attempt_at <= ? AND lease_until <= ? ORDER BY seq LIMIT ?",
                (now, now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE outbox_entries SET lease_until = ? WHERE id = ?",
                [(now + lease_seconds, row[0]) for row in rows],
            )
            return [_entry(row) for row in rows]

        return await self._write(claim)

    async def mark_sent(self, entry_id: str, *, record_id: str) -> None:
        await self._update(
            "state = 'sent', record_id = ?, error = NULL, error_code = NULL, lease_until = 0", (record_id,), entry_id
        )

    async def retry_later(
        self, entry_id: str, *, at: float, attempts: int, error: str | None, error_code: str | None
    ) -> None:
        await self._update(
            "next_attempt_at = ?, attempts = ?, error = ?, error_code = ?, lease_until = 0",
            (at, attempts, error, error_code),
            entry_id,
        )

    async def mark_dead(
        self, entry_id: str, *, error: str, error_code: str | None, needs_reconciliation: bool = False
    ) -> None:
        await self._update(
            "state = 'dead', error = ?, error_code = ?, needs_reconciliation = ?, lease_until = 0",
            (error, error_code, int(needs_reconciliation)),
            entry_id,
        )

    async def requeue(self, entry_id: str, *, now: float) -> bool:
        def requeue(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE outbox_entries SET state = 'pending', next_attempt_at = ?, attempts = 0, error = NULL, "
                "error_code = NULL, needs_reconciliation = 0, lease_until = 0 WHERE id = ? AND state = 'dead'",
                (now, entry_id),
            )
            return cursor.rowcount == 1

        return await self._write(requeue)

    async def get(self, entry_id: str) -> StoredEntry | None:
        def get(db: sqlite3.Connection) -> StoredEntry | None:
            row = db.execute(f"SELECT {_COLUMNS} FROM outbox_entries WHERE id = ?", (entry_id,)).fetchone()
            return None if row is None else _entry(row)

        return await self._run(get)

    async def dead_letters(self, *, limit: int = 1000) -> Sequence[StoredEntry]:
        def dead(db: sqlite3.Connection) -> list[StoredEntry]:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM outbox_entries WHERE state = 'dead' ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
            return [_entry(row) for row in rows]

        return await self._run(dead)

    async def stats(self, *, now: float) -> StoreStats:
        def stats(db: sqlite3.Connection) -> StoreStats:
            pending, in_flight, oldest = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(lease_until > ?), 0), MIN(created_at) FROM outbox_entries "
                "WHERE state = 'pending'",
                (now,),
            ).fetchone()
            (dead,) = db.execute("SELECT COUNT(*) FROM outbox_entries WHERE state = 'dead'").fetchone()
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

    async def _update(self, assignments: str, values: tuple[object, ...], entry_id: str) -> None:
        def update(db: sqlite3.Connection) -> None:
            db.execute(f"UPDATE outbox_entries SET {assignments} WHERE id = ?", (*values, entry_id))

        await self._write(update)
