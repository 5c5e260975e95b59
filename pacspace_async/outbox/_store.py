"""What every outbox store keeps and the one interface they share.

A store holds entries, never the API key: an entry is sent with whatever key the draining
client has. All times are Unix seconds given by the caller, so the rules are the same in every
store and tests need no clock of their own.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import attrs

from .._errors import ErrorAction, PacSpaceError

__all__ = [
    "EntryState",
    "OutboxFullError",
    "OutboxStore",
    "StoreStats",
    "StoredEntry",
    "dead_changes",
    "environment_of",
    "full_error",
    "requeue_changes",
    "retry_changes",
    "sent_changes",
]


class EntryState(str, enum.Enum):
    """Where an entry is: waiting to be sent, recorded by PacSpace, or given up on."""

    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


class OutboxFullError(PacSpaceError):
    """The outbox holds as many entries (or bytes) as it may: nothing was stored.

    Nothing is ever dropped to make room; the drain must catch up (PacSpace unreachable, a key
    refused, dead letters piling up) or the limits must be raised.
    """

    default_action = ErrorAction.ALERT_OPERATOR


def full_error(*, entries: int, size: int, max_entries: int, max_bytes: int) -> OutboxFullError:
    return OutboxFullError(
        f"the outbox is full ({entries} entries waiting or dead, {size} bytes; limits {max_entries} entries, "
        f"{max_bytes} bytes): nothing was stored; check outbox.stats() for a paused drain or dead letters, "
        "or raise max_entries/max_bytes"
    )


@attrs.frozen
class StoredEntry:
    """One delta as a store keeps it; `body` is the checked wire body as JSON text."""

    id: str
    customer_id: str
    idempotency_key: str
    body: str
    created_at: float
    state: EntryState = EntryState.PENDING
    attempts: int = 0
    next_attempt_at: float = 0.0
    record_id: str | None = None
    error: str | None = None
    error_code: str | None = None
    needs_reconciliation: bool = False
    trace_parent: str | None = None  # W3C traceparent of the span that stored it, if traced

    @property
    def size(self) -> int:
        """What the entry counts against `max_bytes`."""
        return len(self.body.encode("utf-8")) + len(self.idempotency_key)

    @property
    def environment(self) -> str:
        return environment_of(self.idempotency_key)


def environment_of(idempotency_key: str) -> str:
    """The environment an entry belongs to: its key's prefix (``sandbox:...``), set at enqueue.

    Only a client of that environment may send it: the key names the environment, so any other
    client would refuse it as input to fix, and the entry would be given up for nothing.
    """
    return idempotency_key.split(":", 1)[0]


# A store's state changes, in one place: each store applies them its own way (a dict update,
# an UPDATE statement). Every change also releases the entry's claim.
Changes = Mapping[str, object]


def sent_changes(record_id: str) -> Changes:
    return {"state": EntryState.SENT, "record_id": record_id, "error": None, "error_code": None}


def retry_changes(*, at: float, attempts: int, error: str | None, error_code: str | None) -> Changes:
    return {"next_attempt_at": at, "attempts": attempts, "error": error, "error_code": error_code}


def dead_changes(*, error: str, error_code: str | None, needs_reconciliation: bool) -> Changes:
    return {
        "state": EntryState.DEAD,
        "error": error,
        "error_code": error_code,
        "needs_reconciliation": needs_reconciliation,
    }


def requeue_changes(now: float) -> Changes:
    return {
        "state": EntryState.PENDING,
        "next_attempt_at": now,
        "attempts": 0,
        "error": None,
        "error_code": None,
        "needs_reconciliation": False,
    }


@attrs.frozen
class StoreStats:
    """Counts at one instant; `oldest_pending_at` is None when nothing is pending."""

    pending: int
    dead: int
    in_flight: int
    oldest_pending_at: float | None


@runtime_checkable
class OutboxStore(Protocol):
    """The interface every store implements; one contract test suite holds them to it.

    Order: an entry's place is the order it was added. Only the oldest pending entry of each
    customer may be claimed, and only when it is due and not already claimed (or its claim's
    lease has run out: the process that claimed it is taken to have died).
    """

    async def add(self, entry: StoredEntry, *, max_entries: int, max_bytes: int) -> None:
        """Store durably; raises `OutboxFullError` (storing nothing) when pending and dead
        entries would exceed either limit."""
        ...

    async def claim(
        self, *, now: float, limit: int, lease_seconds: float, environment: str | None = None
    ) -> Sequence[StoredEntry]:
        """Up to `limit` entries ready to send, oldest first, leased until ``now + lease_seconds``;
        only entries of `environment` (``"sandbox"``/``"production"``) when given."""
        ...

    async def mark_sent(self, entry_id: str, *, record_id: str) -> None: ...

    async def retry_later(
        self, entry_id: str, *, at: float, attempts: int, error: str | None, error_code: str | None
    ) -> None:
        """Back to pending, due at `at`, its claim released."""
        ...

    async def mark_dead(
        self, entry_id: str, *, error: str, error_code: str | None, needs_reconciliation: bool = False
    ) -> None: ...

    async def requeue(self, entry_id: str, *, now: float) -> bool:
        """A dead entry back to pending, due now, its error cleared; False if it is not dead."""
        ...

    async def get(self, entry_id: str) -> StoredEntry | None: ...

    async def dead_letters(self, *, limit: int = 1000) -> Sequence[StoredEntry]:
        """Dead entries, oldest first."""
        ...

    async def stats(self, *, now: float, environment: str | None = None) -> StoreStats:
        """Counts over every entry, or over `environment`'s."""
        ...

    async def has_pending(self, *, environment: str | None = None) -> bool:
        """Whether any entry (of `environment`) is pending: cheaper than `stats` on a long backlog."""
        ...

    async def prune(self, *, sent_before: float) -> int:
        """Forget sent entries stored before `sent_before`; returns how many."""
        ...

    async def aclose(self) -> None: ...
