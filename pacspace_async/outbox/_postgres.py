"""The Postgres store: one outbox shared by processes on several hosts.

A claim is one statement: each customer's oldest pending entry that is due and not leased,
locked with ``FOR UPDATE SKIP LOCKED`` (two workers never wait on, or take, the same row) and
leased in the same step, so a worker that dies holding claims loses them when the lease runs
out. The driver (psycopg 3, the ``[postgres]`` extra) is imported only when a store connects:
the core installs without it. Each store holds one connection and runs one statement at a time
on it; a broken connection is replaced on the next call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from .._errors import ConfigurationError
from ._store import EntryState, StoredEntry, StoreStats, full_error

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStore", "url_without_password"]

T = TypeVar("T")

_TABLE = "pacspace_outbox_entries"
# Any fixed number: serialises schema creation and the full-check of `add` across processes.
_LOCK_KEY = 0x7061_6373_6F62  # "pacsob"

_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {_TABLE} ("
    "seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, customer_id TEXT NOT NULL, "
    "idempotency_key TEXT NOT NULL, body TEXT NOT NULL, size BIGINT NOT NULL, created_at DOUBLE PRECISION NOT NULL, "
    "state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at DOUBLE PRECISION NOT NULL DEFAULT 0, "
    "lease_until DOUBLE PRECISION NOT NULL DEFAULT 0, record_id TEXT, error TEXT, error_code TEXT, "
    "needs_reconciliation BOOLEAN NOT NULL DEFAULT FALSE)",
    f"CREATE INDEX IF NOT EXISTS {_TABLE}_line ON {_TABLE} (state, customer_id, seq)",
)

_COLUMNS = (
    "id, customer_id, idempotency_key, body, created_at, state, attempts, next_attempt_at, "
    "record_id, error, error_code, needs_reconciliation"
)

# The oldest pending entry of each customer, if due and not leased; rows another worker is
# claiming or updating right now are skipped, not waited for. Postgres re-checks the row's own
# conditions after locking it, so an entry leased or sent a moment ago is not taken twice.
_CLAIM = (
    f"WITH picked AS (SELECT seq FROM {_TABLE} WHERE state = 'pending' AND seq IN ("
    f"  SELECT MIN(seq) FROM {_TABLE} WHERE state = 'pending' GROUP BY customer_id"
    ") AND next_attempt_at <= %(now)s AND lease_until <= %(now)s ORDER BY seq LIMIT %(limit)s "
    "FOR UPDATE SKIP LOCKED) "
    f"UPDATE {_TABLE} AS t SET lease_until = %(until)s FROM picked WHERE t.seq = picked.seq "
    f"RETURNING t.seq, {', '.join('t.' + column for column in _COLUMNS.split(', '))}"
)


def url_without_password(url: str) -> str:
    """The URL as it may be shown: any password replaced by ``****``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"{user}:****@{host}"))
    except ValueError:  # unparsable: show only the scheme
        return url.split("://", 1)[0] + "://****"


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


class PostgresStore:
    """Entries in the table ``pacspace_outbox_entries`` of a Postgres database
    (``postgresql://user:password@host:5432/dbname``), created if missing."""

    def __init__(self, url: str) -> None:
        if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
            raise ConfigurationError("the Postgres outbox needs a 'postgresql://user:password@host/dbname' URL")
        self._url = url
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()  # one statement at a time on the one connection

    @property
    def url(self) -> str:
        """The store's URL with its password hidden."""
        return url_without_password(self._url)

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"

    # --- the interface ----------------------------------------------------------------------

    async def add(self, entry: StoredEntry, *, max_entries: int, max_bytes: int) -> None:
        async def add(db: psycopg.AsyncConnection[Any]) -> None:
            async with db.transaction():
                # Adders take turns: two of them must not both fit in the last free place.
                await db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                cursor = await db.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM {_TABLE} WHERE state != 'sent'"
                )
                row = await cursor.fetchone()
                assert row is not None
                count, size = int(row[0]), int(row[1])
                if count + 1 > max_entries or size + entry.size > max_bytes:
                    raise full_error(entries=count, size=size, max_entries=max_entries, max_bytes=max_bytes)
                await db.execute(
                    f"INSERT INTO {_TABLE} (id, customer_id, idempotency_key, body, size, created_at, state, "
                    "next_attempt_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
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

        await self._run(add)

    async def claim(self, *, now: float, limit: int, lease_seconds: float) -> Sequence[StoredEntry]:
        async def claim(db: psycopg.AsyncConnection[Any]) -> list[StoredEntry]:
            cursor = await db.execute(_CLAIM, {"now": now, "limit": limit, "until": now + lease_seconds})
            rows = await cursor.fetchall()
            return [_entry(row[1:]) for row in sorted(rows, key=lambda row: int(row[0]))]

        return await self._run(claim)

    async def mark_sent(self, entry_id: str, *, record_id: str) -> None:
        await self._update(
            "state = 'sent', record_id = %s, error = NULL, error_code = NULL, lease_until = 0", (record_id,), entry_id
        )

    async def retry_later(
        self, entry_id: str, *, at: float, attempts: int, error: str | None, error_code: str | None
    ) -> None:
        await self._update(
            "next_attempt_at = %s, attempts = %s, error = %s, error_code = %s, lease_until = 0",
            (at, attempts, error, error_code),
            entry_id,
        )

    async def mark_dead(
        self, entry_id: str, *, error: str, error_code: str | None, needs_reconciliation: bool = False
    ) -> None:
        await self._update(
            "state = 'dead', error = %s, error_code = %s, needs_reconciliation = %s, lease_until = 0",
            (error, error_code, needs_reconciliation),
            entry_id,
        )

    async def requeue(self, entry_id: str, *, now: float) -> bool:
        async def requeue(db: psycopg.AsyncConnection[Any]) -> bool:
            cursor = await db.execute(
                f"UPDATE {_TABLE} SET state = 'pending', next_attempt_at = %s, attempts = 0, error = NULL, "
                "error_code = NULL, needs_reconciliation = FALSE, lease_until = 0 WHERE id = %s AND state = 'dead'",
                (now, entry_id),
            )
            return cursor.rowcount == 1

        return await self._run(requeue)

    async def get(self, entry_id: str) -> StoredEntry | None:
        async def get(db: psycopg.AsyncConnection[Any]) -> StoredEntry | None:
            cursor = await db.execute(f"SELECT {_COLUMNS} FROM {_TABLE} WHERE id = %s", (entry_id,))
            row = await cursor.fetchone()
            return None if row is None else _entry(row)

        return await self._run(get)

    async def dead_letters(self, *, limit: int = 1000) -> Sequence[StoredEntry]:
        async def dead(db: psycopg.AsyncConnection[Any]) -> list[StoredEntry]:
            cursor = await db.execute(
                f"SELECT {_COLUMNS} FROM {_TABLE} WHERE state = 'dead' ORDER BY seq LIMIT %s", (limit,)
            )
            return [_entry(row) for row in await cursor.fetchall()]

        return await self._run(dead)

    async def stats(self, *, now: float) -> StoreStats:
        async def stats(db: psycopg.AsyncConnection[Any]) -> StoreStats:
            cursor = await db.execute(
                "SELECT COUNT(*) FILTER (WHERE state = 'pending'), "
                "COUNT(*) FILTER (WHERE state = 'pending' AND lease_until > %s), "
                "MIN(created_at) FILTER (WHERE state = 'pending'), "
                f"COUNT(*) FILTER (WHERE state = 'dead') FROM {_TABLE} WHERE state != 'sent'",
                (now,),
            )
            row = await cursor.fetchone()
            assert row is not None
            pending, in_flight, oldest, dead = row
            return StoreStats(pending=int(pending), dead=int(dead), in_flight=int(in_flight), oldest_pending_at=oldest)

        return await self._run(stats)

    async def aclose(self) -> None:
        async with self._lock:
            if self._connection is not None:
                await self._connection.close()
                self._connection = None

    # --- the connection -----------------------------------------------------------------------

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self._connection is not None and not self._connection.closed and not self._connection.broken:
            return self._connection
        try:
            import psycopg
        except ImportError:
            raise ConfigurationError("the Postgres outbox needs its driver: pip install 'pacspace[postgres]'") from None
        db: psycopg.AsyncConnection[Any] | None = None
        try:
            # autocommit: each statement is its own transaction unless a block opens one.
            db = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
            async with db.transaction():
                await db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                for statement in _SCHEMA:
                    await db.execute(statement)  # built from constants only
        except psycopg.Error as error:
            if db is not None:
                await db.close()
            # The driver's text may quote the connection string: never show its password.
            reason = str(error).strip().replace(self._url, self.url)
            password = urlsplit(self._url).password if "@" in self._url else None
            if password:
                reason = reason.replace(password, "****")
            # `from None`: the driver's own exception would carry the unscrubbed text along.
            raise ConfigurationError(
                f"cannot open the Postgres outbox {self.url} ({reason}); check the URL, the server and the user's "
                "rights to create a table"
            ) from None
        self._connection = db
        return db

    async def _run(self, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        async with self._lock:
            return await work(await self._connect())

    async def _update(self, assignments: str, values: tuple[object, ...], entry_id: str) -> None:
        async def update(db: psycopg.AsyncConnection[Any]) -> None:
            await db.execute(f"UPDATE {_TABLE} SET {assignments} WHERE id = %s", (*values, entry_id))

        await self._run(update)
