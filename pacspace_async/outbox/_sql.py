"""The statements the SQL stores share: SQLite and Postgres differ in placeholders and in how
they claim, not in what an entry is or how it changes."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import attrs

from ._store import (
    Changes,
    EntryState,
    StoredEntry,
    dead_changes,
    requeue_changes,
    retry_changes,
    sent_changes,
)

__all__ = ["COLUMNS", "Dialect", "SqlTransitions", "entry_from_row"]

COLUMNS = (
    "id",
    "customer_id",
    "idempotency_key",
    "body",
    "created_at",
    "state",
    "attempts",
    "next_attempt_at",
    "record_id",
    "error",
    "error_code",
    "needs_reconciliation",
    "trace_parent",
)

# Columns added after the first release, created on files and tables made before them.
ADDED_COLUMNS = {"trace_parent": "TEXT"}


def entry_from_row(row: Sequence[Any]) -> StoredEntry:
    """A row of `COLUMNS`, in order."""
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
        trace_parent=row[12],
    )


def _value(value: object) -> object:
    # Drivers differ on enums (psycopg writes an Enum's *name*): store the plain value.
    return value.value if isinstance(value, enum.Enum) else value


@attrs.frozen
class Dialect:
    """One table's statements with one placeholder style (``?`` for SQLite, ``%s`` for psycopg)."""

    table: str
    mark: str
    # Postgres may otherwise fold a CTE into the query around it and run it once per outer row.
    materialized: str = ""

    @property
    def columns(self) -> str:
        return ", ".join(COLUMNS)

    def insert(self, entry: StoredEntry) -> tuple[str, tuple[object, ...]]:
        names = ("id", "customer_id", "idempotency_key", "body", "size", "created_at", "state", "next_attempt_at")
        values = (
            entry.id,
            entry.customer_id,
            entry.idempotency_key,
            entry.body,
            entry.size,
            entry.created_at,
            entry.state.value,
            entry.next_attempt_at,
        )
        extra = {"trace_parent": entry.trace_parent}
        all_names = (*names, *extra)
        marks = ", ".join([self.mark] * len(all_names))
        return f"INSERT INTO {self.table} ({', '.join(all_names)}) VALUES ({marks})", (*values, *extra.values())

    @property
    def totals(self) -> str:
        """The one-row table of entries and bytes counting against the limits (pending and dead).

        Kept by triggers in the same transaction as every change, so `add` checks the limits
        with one row read instead of a count over a backlog that may be 100,000 entries long.
        """
        return f"{self.table}_totals"

    def create_totals(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {self.totals} "
            "(id INTEGER PRIMARY KEY CHECK (id = 1), entries BIGINT NOT NULL, bytes BIGINT NOT NULL)"
        )

    def count_totals(self) -> str:
        """The first count, from the entries themselves; a no-op once the row exists."""
        return (
            f"INSERT INTO {self.totals} (id, entries, bytes) SELECT 1, COUNT(*), COALESCE(SUM(size), 0) "
            f"FROM {self.table} WHERE state != 'sent' ON CONFLICT (id) DO NOTHING"
        )

    def totals_change(self, sign: str, row: str) -> str:
        """The statement a trigger runs: `sign` ``+``/``-``, `row` ``NEW``/``OLD``."""
        return f"UPDATE {self.totals} SET entries = entries {sign} 1, bytes = bytes {sign} {row}.size"

    def unsent_totals(self) -> str:
        """Entries and bytes that count against the limits: pending and dead (sent ones do not)."""
        return f"SELECT entries, bytes FROM {self.totals} WHERE id = 1"

    def update(
        self, entry_id: str, changes: Changes, *, only_if_state: str | None = None
    ) -> tuple[str, tuple[object, ...]]:
        """Apply `changes` and release the claim (``lease_until = 0``)."""
        assignments = ", ".join(f"{name} = {self.mark}" for name in changes)
        sql = f"UPDATE {self.table} SET {assignments}, lease_until = 0 WHERE id = {self.mark}"
        values: tuple[object, ...] = (*(_value(v) for v in changes.values()), entry_id)
        if only_if_state is not None:
            sql += f" AND state = {self.mark}"
            values = (*values, only_if_state)
        return sql, values

    def select_by_id(self) -> str:
        return f"SELECT {self.columns} FROM {self.table} WHERE id = {self.mark}"

    def dead_letters(self) -> str:
        return f"SELECT {self.columns} FROM {self.table} WHERE state = 'dead' ORDER BY seq LIMIT {self.mark}"

    def environment_filter(self, environment: str | None) -> tuple[str, tuple[object, ...]]:
        """An ``AND`` clause keeping one environment's entries (their keys start ``sandbox:``...)."""
        if environment is None:
            return "", ()
        prefix = f"{environment}:"
        return f" AND substr(idempotency_key, 1, {len(prefix)}) = {self.mark}", (prefix,)

    # How many of the earliest-due entries a claim looks at first. After an outage the backlog
    # may be 100,000 entries long, and the drain claims after every send: a claim must not read
    # it all. Among the earliest due, most are their customer's oldest (many customers), or the
    # few customers are quickly walked one by one (`heads`).
    WINDOW = 1024

    def due_heads(self, now: float, environment: str | None) -> tuple[str, tuple[object, ...]]:
        """``due`` and ``heads(seq)`` CTEs: among the `WINDOW` earliest-due pending entries, those
        no older pending entry of the same customer holds back."""
        where, values = self.environment_filter(environment)
        t, m = self.table, self.mark
        sql = (
            f"due AS {self.materialized}(SELECT seq, customer_id FROM {t} "
            f"WHERE state = 'pending'{where} AND next_attempt_at <= {m} "
            f"ORDER BY next_attempt_at, seq LIMIT {self.WINDOW}), "
            f"heads(seq) AS {self.materialized}(SELECT seq FROM due WHERE NOT EXISTS (SELECT 1 FROM "
            f"{t} AS older WHERE older.state = 'pending' AND older.customer_id = due.customer_id "
            f"AND older.seq < due.seq{where.replace('idempotency_key', 'older.idempotency_key')}))"
        )
        return sql, (*values, now, *values)

    def due_count(self, now: float, environment: str | None) -> tuple[str, tuple[object, ...]]:
        """How many entries are due, counted up to `WINDOW` (a bounded look)."""
        where, values = self.environment_filter(environment)
        return (
            f"SELECT COUNT(*) FROM (SELECT 1 FROM {self.table} WHERE state = 'pending'{where} "
            f"AND next_attempt_at <= {self.mark} LIMIT {self.WINDOW}) AS due",
            (*values, now),
        )

    def heads(self, environment: str | None) -> tuple[str, tuple[object, ...]]:
        """``customers`` and ``heads(seq)``, for a ``WITH RECURSIVE``: each customer's oldest pending entry.

        The customers are walked one index probe at a time (a loose index scan): a probe per
        customer, not a look at every pending entry. Used when the earliest-due window holds
        too few heads (a few customers with long backlogs).
        """
        where, values = self.environment_filter(environment)
        t = self.table
        pending = f"FROM {t} WHERE state = 'pending'{where}"
        sql = (
            f"customers(customer_id) AS (SELECT MIN(customer_id) {pending} UNION ALL "
            f"SELECT (SELECT MIN(customer_id) {pending} AND customer_id > customers.customer_id) "
            "FROM customers WHERE customers.customer_id IS NOT NULL), "
            f"heads(seq) AS (SELECT (SELECT MIN(seq) {pending} AND customer_id = customers.customer_id) "
            "FROM customers WHERE customers.customer_id IS NOT NULL)"
        )
        return sql, values * 3

    def any_pending(self, environment: str | None) -> tuple[str, tuple[object, ...]]:
        where, values = self.environment_filter(environment)
        return f"SELECT 1 FROM {self.table} WHERE state = 'pending'{where} LIMIT 1", values

    def stats(self, *, now: float, environment: str | None) -> tuple[str, tuple[object, ...]]:
        """pending, in flight, oldest pending created_at, dead."""
        where, values = self.environment_filter(environment)
        m = self.mark
        sql = (
            "SELECT COALESCE(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0), "
            f"COALESCE(SUM(CASE WHEN state = 'pending' AND lease_until > {m} THEN 1 ELSE 0 END), 0), "
            "MIN(CASE WHEN state = 'pending' THEN created_at END), "
            "COALESCE(SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END), 0) "
            f"FROM {self.table} WHERE state != 'sent'{where}"
        )
        return sql, (now, *values)

    def prune(self, sent_before: float) -> tuple[str, tuple[object, ...]]:
        return f"DELETE FROM {self.table} WHERE state = 'sent' AND created_at < {self.mark}", (sent_before,)


class SqlTransitions:
    """The state changes both SQL stores make alike: one UPDATE (or DELETE) each, in the store's
    dialect, run by the store's own `_execute` (a worker thread for SQLite, psycopg for Postgres)."""

    _sql: Dialect

    async def _execute(self, sql: str, values: tuple[object, ...]) -> int:
        """Run one statement in its own transaction; the number of rows it changed."""
        raise NotImplementedError

    async def mark_sent(self, entry_id: str, *, record_id: str) -> None:
        await self._execute(*self._sql.update(entry_id, sent_changes(record_id)))

    async def retry_later(
        self, entry_id: str, *, at: float, attempts: int, error: str | None, error_code: str | None
    ) -> None:
        changes = retry_changes(at=at, attempts=attempts, error=error, error_code=error_code)
        await self._execute(*self._sql.update(entry_id, changes))

    async def mark_dead(
        self, entry_id: str, *, error: str, error_code: str | None, needs_reconciliation: bool = False
    ) -> None:
        changes = dead_changes(error=error, error_code=error_code, needs_reconciliation=needs_reconciliation)
        await self._execute(*self._sql.update(entry_id, changes))

    async def requeue(self, entry_id: str, *, now: float) -> bool:
        return await self._execute(*self._sql.update(entry_id, requeue_changes(now), only_if_state="dead")) == 1

    async def prune(self, *, sent_before: float) -> int:
        return await self._execute(*self._sql.prune(sent_before))
