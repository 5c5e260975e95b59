"""Balance deltas as PacSpace records them."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from .._models import local_field, raw_field

__all__ = ["DeltaRecord", "DeltaStatus"]


class DeltaStatus(str, enum.Enum):
    """The lifecycle of a delta. Models keep the server's string, known or not:
    compare with ``record.status == DeltaStatus.VERIFIED``."""

    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    VERIFIED = "VERIFIED"
    FAILED = "FAILED"


FINAL_STATUSES = frozenset({DeltaStatus.VERIFIED.value, DeltaStatus.FAILED.value})


def _replay_field(default: Any = None) -> Any:
    # About the answer, not the delta: two reads of one delta compare equal whether or not one
    # of them was a replay.
    return local_field(default, eq=False)


@attrs.frozen
class DeltaRecord:
    """One recorded delta. `idempotency_key` is the key this SDK sent for it.

    `replayed` says whether PacSpace answered from its idempotency memory instead of recording
    anew: True when it says so (the ``Idempotent-Replayed: true`` header, or ``idempotent: true``
    in the answer), False when it says the delta is new, None when it says neither. A replay
    (for instance the same `reference_id` emitted again, or a retry whose first answer was lost)
    recorded nothing new, and its `status` is the one of the first answer: a delta verified
    since then still reads QUEUED here. ``await pac.balance.status(rec.record_id)`` gives the
    current status.
    """

    record_id: str
    status: str
    receipt_id: str | None = None
    customer_id: str | None = None
    delta: Decimal | None = None
    reason: str | None = None
    reference_id: str | None = None
    idempotency_key: str | None = local_field()
    replayed: bool | None = _replay_field()
    raw: Mapping[str, Any] = raw_field()

    @property
    def is_final(self) -> bool:
        """VERIFIED or FAILED (case-insensitive): nothing more will happen to it."""
        return self.status.upper() in FINAL_STATUSES


@attrs.frozen
class DeltaInput:
    """One item of `balance.emit_batch` (a mapping with the same snake_case keys works too)."""

    customer_id: str
    delta: Decimal | int | str
    reason: str
    reference_id: str | None = None
    metadata: Mapping[str, Any] | None = None


@attrs.frozen
class BatchItemResult:
    """What happened to one item of a batch; `index` is its position in your list.

    `replayed` is True when the item was already recorded (``idempotent: true``) or the whole
    request's answer was a stored one (the ``Idempotent-Replayed: true`` header: the same items
    sent again), False when PacSpace says it is new, None when it says neither. A replayed
    item's `status` is the one first answered; ``pac.balance.status(record_id)`` refreshes it.
    """

    index: int
    status: str
    customer_id: str | None = None
    delta: Decimal | None = None
    record_id: str | None = None
    reference_id: str | None = None
    idempotent: bool | None = None
    error: str | None = None
    # Built in code: what `idempotent` says. Read from an answer: the header is counted too.
    replayed: bool | None = _replay_field(attrs.Factory(lambda self: self.idempotent, takes_self=True))
    raw: Mapping[str, Any] = raw_field()

    @property
    def failed(self) -> bool:
        return self.status.upper() == DeltaStatus.FAILED.value


@attrs.frozen
class BatchResult:
    """The outcome of `balance.emit_batch`, in the order of the items sent."""

    results: tuple[BatchItemResult, ...]
    total_queued: int
    total_failed: int
    idempotency_keys: tuple[str, ...] = ()
    raw: tuple[Mapping[str, Any], ...] = attrs.field(default=(), eq=False, repr=False)

    @property
    def replayed(self) -> int:
        """How many items PacSpace answered from its idempotency memory (`results[i].replayed`):
        sent before, not applied again. All of them when the same items are sent again."""
        return sum(1 for result in self.results if result.replayed)

    @property
    def failures(self) -> tuple[BatchItemResult, ...]:
        return tuple(result for result in self.results if result.failed)


@attrs.frozen
class DerivedBalance:
    """A balance recomputed by PacSpace from the recorded deltas of a scope."""

    customer_id: str | None = None
    computed_balance: Decimal | None = None
    deltas_count: int | None = None
    latest_receipt_id: str | None = None
    deltas: tuple[Mapping[str, Any], ...] = ()
    period: str | None = None
    raw: Mapping[str, Any] = raw_field()


@attrs.frozen
class BalanceComparison:
    """PacSpace's neutral balance next to yours and your counterparty's."""

    customer_id: str | None = None
    neutral_balance: Decimal | None = None
    matches_yours: bool | None = None
    matches_theirs: bool | None = None
    raw: Mapping[str, Any] = raw_field()


@attrs.frozen
class Receipt:
    """A customer receipt or invoice proof. The four link fields are always present."""

    customer_id: str | None = None
    period: str | None = None
    receipt_id: str | None = None
    proof_root: str | None = None
    delta_count: int | None = None
    starting_balance: Decimal | None = None
    final_balance: Decimal | None = None
    verify_url: str | None = None
    verification_api_url: str | None = None
    access_hint: str | None = None
    customer_link_url: str | None = None
    customer_link_host: str | None = None
    verification: Mapping[str, Any] | None = None
    raw: Mapping[str, Any] = raw_field()


@attrs.frozen
class Usage:
    """How much of the plan's allowance is left."""

    remaining: int | None = None
    allowed: bool | None = None
    plan: str | None = None
    raw: Mapping[str, Any] = raw_field()


@attrs.frozen
class SequenceGaps:
    """Missing sequence numbers in a customer's ledger (the shape is not documented: see raw)."""

    customer_id: str | None = None
    gaps: tuple[Mapping[str, Any], ...] = ()
    raw: Mapping[str, Any] = raw_field()


@attrs.frozen
class ScopeLimits:
    """The widest scopes this account may ask for."""

    max_scope_months: int | None = None
    max_last_n_days: int | None = None
    max_retention_days: int | None = None
    raw: Mapping[str, Any] = raw_field()
