"""What callers see of the outbox: an entry and the outbox's counts."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import attrs

from .. import _codec
from ._store import EntryState, StoredEntry

__all__ = ["OutboxEntry", "OutboxStats", "public_entry"]


@attrs.frozen
class OutboxEntry:
    """One delta in the outbox. `record_id` is set once PacSpace recorded it; a dead entry
    carries the error that stopped it, and `needs_reconciliation` when it was too old to resend."""

    id: str
    idempotency_key: str
    state: EntryState
    customer_id: str
    delta: Decimal
    reason: str
    reference_id: str | None
    created_at: datetime
    attempts: int
    record_id: str | None = None
    error: str | None = None
    error_code: str | None = None
    needs_reconciliation: bool = False


@attrs.frozen
class OutboxStats:
    pending: int
    dead: int
    in_flight: int
    oldest_pending_age: float | None  # seconds
    paused: bool
    # Pending entries stored by a client of the other environment: this outbox never sends them
    # (their keys name that environment); a drain with a key of theirs will.
    other_environment: int = 0


def public_entry(entry: StoredEntry) -> OutboxEntry:
    body = _codec.decode(entry.body)
    return OutboxEntry(
        id=entry.id,
        idempotency_key=entry.idempotency_key,
        state=entry.state,
        customer_id=entry.customer_id,
        delta=Decimal(body["delta"]),
        reason=body["reason"],
        reference_id=body.get("referenceId"),
        created_at=datetime.fromtimestamp(entry.created_at, timezone.utc),
        attempts=entry.attempts,
        record_id=entry.record_id,
        error=entry.error,
        error_code=entry.error_code,
        needs_reconciliation=entry.needs_reconciliation,
    )
