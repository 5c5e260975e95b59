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
from ._sql import ADDED_COLUMNS, COLUMNS, Dialect, SqlTransitions, entry_from_row
from ._store import (
    StoredEntry,
    StoreStats,
    full_error,
)

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStore", "url_without_password"]

T = TypeVar("T")

_TABLE = "pacspace_outbox_entries"
# Any fixed number: serialises schema creation across processes.
_LOCK_KEY = 0x7061_6373_6F62  # "pacsob"

_SQL = Dialect(table=_TABLE, mark="%s", materialized="MATERIALIZED ")
_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {_TABLE} ("
    "seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, customer_id TEXT NOT NULL, "
    "idempotency_key TEXT NOT NULL, body TEXT NOT NULL, size BIGINT NOT NULL, created_at DOUBLE PRECISION NOT NULL, "
    "state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at DOUBLE PRECISION NOT NULL DEFAULT 0, "
    "lease_until DOUBLE PRECISION NOT NULL DEFAULT 0, record_id TEXT, error TEXT, error_code TEXT, "
    "needs_reconciliation BOOLEAN NOT NULL DEFAULT FALSE, trace_parent TEXT)",
    f"CREATE INDEX IF NOT EXISTS {_TABLE}_line ON {_TABLE} (state, customer_id, seq)",
    f"CREATE INDEX IF NOT EXISTS {_TABLE}_due ON {_TABLE} (state, next_attempt_at, seq)",
    # Tables made by an earlier version gain the columns added since.
    *(f"ALTER TABLE {_TABLE} ADD COLUMN IF NOT EXISTS {name} {kind}" for name, kind in ADDED_COLUMNS.items()),
    _SQL.create_totals(),
    # The trigger first: it blocks writers until commit, so the count below misses no change.
    f"CREATE OR REPLACE FUNCTION {_TABLE}_count() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"IF TG_OP = 'INSERT' THEN IF NEW.state <> 'sent' THEN {_SQL.totals_change('+', 'NEW')}; END IF; "
    f"ELSIF TG_OP = 'UPDATE' THEN IF OLD.state <> 'sent' AND NEW.state = 'sent' THEN "
    f"{_SQL.totals_change('-', 'OLD')}; END IF; "
    f"ELSIF OLD.state <> 'sent' THEN {_SQL.totals_change('-', 'OLD')}; END IF; RETURN NULL; END $$",
    f"DROP TRIGGER IF EXISTS {_TABLE}_counted ON {_TABLE}",
    f"CREATE TRIGGER {_TABLE}_counted AFTER INSERT OR UPDATE OF state OR DELETE ON {_TABLE} "
    f"FOR EACH ROW EXECUTE FUNCTION {_TABLE}_count()",
    _SQL.count_totals(),
)
# Read without locking the table: DDL on a table in use would queue behind (and ahead of) the
# other workers' statements, so it runs only when the table is missing or out of date.
_UP_TO_DATE = (
    "SELECT (SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() "
    f"AND table_name = '{_TABLE}' AND column_name = ANY(%s)), "
    f"to_regclass('{_SQL.totals}') IS NOT NULL AND to_regclass('{_TABLE}_due') IS NOT NULL"
)


# The oldest pending entry of each customer, if due and not leased; rows another worker is
# claiming or updating right now are skipped, not waited for. Postgres re-checks the row's own
# conditions after locking it, so an entry leased or sent a moment ago is not taken twice.
def _claim(heads: str) -> str:
    return (
        f"WITH RECURSIVE {heads}, picked AS (SELECT seq FROM {_TABLE} WHERE seq IN (SELECT seq FROM heads) "
        "AND state = 'pending' AND next_attempt_at <= %s AND lease_until <= %s ORDER BY seq LIMIT %s "
        "FOR UPDATE SKIP LOCKED) "
        f"UPDATE {_TABLE} AS t SET lease_until = %s FROM picked WHERE t.seq = picked.seq "
        f"RETURNING t.seq, {', '.join('t.' + column for column in COLUMNS)}"
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


class PostgresStore(SqlTransitions):
    """Entries in the table ``pacspace_outbox_entries`` of a Postgres database
    (``postgresql://user:password@host:5432/dbname``), created if missing."""

    _sql = _SQL

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
                # Adders take turns on the totals row: two must not both fit in the last free place.
                row = await (await db.execute(_SQL.unsent_totals() + " FOR UPDATE")).fetchone()
                assert row is not None
                count, size = int(row[0]), int(row[1])
                if count + 1 > max_entries or size + entry.size > max_bytes:
                    raise full_error(entries=count, size=size, max_entries=max_entries, max_bytes=max_bytes)
                await db.execute(*_SQL.insert(entry))

        await self._run(add)

    async def claim(
        self, *, now: float, limit: int, lease_seconds: float, environment: str | None = None
    ) -> Sequence[StoredEntry]:
        async def claim(db: psycopg.AsyncConnection[Any]) -> list[StoredEntry]:
            async def take(source: tuple[str, tuple[object, ...]], wanted: int) -> list[Any]:
                heads, values = source
                cursor = await db.execute(_claim(heads), (*values, now, now, wanted, now + lease_seconds))
                return await cursor.fetchall()

            # The earliest-due window first; every customer's head only when that window is full
            # and yet held too few (a few customers with long backlogs): see Dialect.WINDOW.
            rows = await take(_SQL.due_heads(now, environment), limit)
            if len(rows) < limit:
                due = await (await db.execute(*_SQL.due_count(now, environment))).fetchone()
                if due is not None and int(due[0]) >= _SQL.WINDOW:
                    rows += await take(_SQL.heads(environment), limit - len(rows))
            return [entry_from_row(row[1:]) for row in sorted(rows, key=lambda row: int(row[0]))]

        return await self._run(claim)

    async def has_pending(self, *, environment: str | None = None) -> bool:
        async def has_pending(db: psycopg.AsyncConnection[Any]) -> bool:
            return await (await db.execute(*_SQL.any_pending(environment))).fetchone() is not None

        return await self._run(has_pending)

    async def get(self, entry_id: str) -> StoredEntry | None:
        async def get(db: psycopg.AsyncConnection[Any]) -> StoredEntry | None:
            row = await (await db.execute(_SQL.select_by_id(), (entry_id,))).fetchone()
            return None if row is None else entry_from_row(row)

        return await self._run(get)

    async def dead_letters(self, *, limit: int = 1000) -> Sequence[StoredEntry]:
        async def dead(db: psycopg.AsyncConnection[Any]) -> list[StoredEntry]:
            cursor = await db.execute(_SQL.dead_letters(), (limit,))
            return [entry_from_row(row) for row in await cursor.fetchall()]

        return await self._run(dead)

    async def stats(self, *, now: float, environment: str | None = None) -> StoreStats:
        async def stats(db: psycopg.AsyncConnection[Any]) -> StoreStats:
            row = await (await db.execute(*_SQL.stats(now=now, environment=environment))).fetchone()
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
            wanted = [*COLUMNS, "seq", "size", "lease_until"]
            row = await (await db.execute(_UP_TO_DATE, (wanted,))).fetchone()
            if row is None or int(row[0]) < len(set(wanted)) or not row[1]:
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

    async def _execute(self, sql: str, values: tuple[object, ...]) -> int:
        """One statement (its own transaction); the number of rows it changed."""

        async def execute(db: psycopg.AsyncConnection[Any]) -> int:
            return (await db.execute(sql, values)).rowcount

        return await self._run(execute)
