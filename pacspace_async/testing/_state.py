"""The emulator's data: keys, one ledger per environment, and the Balance API's rules over it.

Nothing here does I/O or knows about aiohttp: each operation takes decoded input and returns
the ``data`` of an answer, or raises `ApiError`. The HTTP glue lives in `_emulator`.
"""

from __future__ import annotations

import copy
import decimal
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

import attrs

from .._environments import Environment
from ._merkle import (
    EXACT,
    ZERO_HASH,
    canonical_json,
    chain_proof,
    keccak256,
    leaf_hash,
    merkle_root,
    to_hex,
)
from ._wire import ApiError, iso, parse_instant, utc

__all__ = [
    "PERMISSIONS",
    "EmulatedCheckpoint",
    "EmulatedDelta",
    "KeyRecord",
    "Ledger",
    "RequestRecord",
    "SCOPE_LIMITS",
]

PERMISSIONS: frozenset[str] = frozenset(
    {
        "balance:write",  # POST /balance/delta, /balance/delta/batch
        "balance:read",  # GET /balance/delta/{id}, /balance/derive/{id}, /balance/gaps/{id}; POST /balance/compare
        "checkpoints:write",  # POST /balance/checkpoint
        "checkpoints:read",  # GET /balance/checkpoints
        "receipts:read",  # GET /balance/receipt/{id}, /balance/invoice-proof/{id}
        "customers:read",  # GET /balance/customers, /customers/summary, /customers/{id}
        "usage:read",  # GET /balance/usage, /balance/limits
        "webhooks:read",  # GET /balance/webhooks
        "webhooks:write",  # POST /balance/webhooks/{eventId}/retry
    }
)

SCOPE_LIMITS: Mapping[str, int] = {"maxScopeMonths": 12, "maxLastNDays": 366, "maxRetentionDays": 730}

QUEUED, PROCESSING, VERIFIED, FAILED = "QUEUED", "PROCESSING", "VERIFIED", "FAILED"
_CUSTOMER_ID = re.compile(r"[A-Za-z0-9_\-.:]{1,128}")
_PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
_MAX_DELTA = Decimal(1_000_000_000)
_ZERO = Decimal(0)


def exact_sum(values: Iterable[Decimal], start: Decimal = _ZERO) -> Decimal:
    """`start` plus `values`, never rounded (the default context keeps 28 digits).

    Exact only here, not for a whole request: a wider context set on the request's task would
    be copied into the timers and tasks it starts, and into a user's `fail_rule`.
    """
    with decimal.localcontext(EXACT):
        return sum(values, start)


class Ids:
    """Seeded ids: ``rec_1f0c...``. The same seed gives the same sequence."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(f"pacspace-emulator-ids|{seed}")

    def new(self, prefix: str, bits: int = 64) -> str:
        return f"{prefix}_{self._random.getrandbits(bits):0{bits // 4}x}"


# --- keys ------------------------------------------------------------------------------------


@attrs.define
class KeyRecord:
    environment: Environment
    public_id: str
    secret: str = attrs.field(repr=False)
    permissions: frozenset[str] | None
    revoked: bool = False

    @property
    def key_id(self) -> str:
        return f"{self.environment.key_prefix}{self.public_id}"

    @property
    def full_key(self) -> str:
        return f"{self.key_id}.{self.secret}"

    def allows(self, permission: str) -> bool:
        return self.permissions is None or permission in self.permissions


# --- what tests inspect ----------------------------------------------------------------------


@attrs.frozen
class EmulatedDelta:
    """A delta as the emulator stored it (a snapshot: it does not change afterwards)."""

    record_id: str
    environment: Environment
    customer_id: str
    delta: Decimal
    reason: str
    reference_id: str | None
    metadata: Mapping[str, Any] | None
    status: str
    sequence_number: int
    content_hash: str
    proof_hash: str
    previous_proof_hash: str
    item_hashes: tuple[str, ...]
    created_at: datetime
    verified_at: datetime | None
    failed_at: datetime | None
    error: str | None
    idempotency_key: str | None
    verification_reference: str | None

    @property
    def receipt_id(self) -> str:
        return self.proof_hash


@attrs.frozen
class EmulatedCheckpoint:
    checkpoint_id: str
    environment: Environment
    customer_id: str | None
    period: str | None
    start: datetime
    end: datetime
    proof_root: str
    record_ids: tuple[str, ...]
    status: str
    created_at: datetime


@attrs.frozen
class RequestRecord:
    """One request the emulator received. `key_id` is ``pk_test_PUBLICID``, never the secret.

    `status` is None when the connection was dropped instead of answered; `fault` names the
    injected fault, if any; `replayed` marks an idempotent replay of a stored answer.
    """

    method: str
    path: str
    environment: Environment
    status: int | None
    key_id: str | None
    idempotency_key: str | None
    fault: str | None
    replayed: bool
    at: datetime


# --- inputs ----------------------------------------------------------------------------------


def _bad(message: str, code: str = "VALIDATION_ERROR") -> ApiError:
    return ApiError(400, code, message)


def customer_id_value(value: object, name: str = "customerId") -> str:
    if not isinstance(value, str) or not _CUSTOMER_ID.fullmatch(value):
        raise _bad(f"{name} must be 1-128 characters of letters, digits, '_', '-', '.' or ':'")
    return value


def amount_value(name: str, value: object, *, nonzero: bool = False) -> Decimal:
    """A JSON number (or, from a query string, its text)."""
    if isinstance(value, bool):
        raise _bad(f"{name} must be a number")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, str):
        try:
            amount = Decimal(value)
        except InvalidOperation:
            raise _bad(f"{name} must be a number, got {value!r}") from None
    else:
        raise _bad(f"{name} must be a number")
    if not amount.is_finite():
        raise _bad(f"{name} must be finite")
    if nonzero and amount == 0:
        raise _bad(f"{name} must not be zero")
    if abs(amount) > _MAX_DELTA:
        raise _bad(f"{name} must be within -1,000,000,000 and 1,000,000,000")
    return amount


def text_value(name: str, value: object, *, max_length: int | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad(f"{name} must be a non-empty string")
    if max_length is not None and len(value) > max_length:
        raise _bad(f"{name} must be at most {max_length} characters")
    return value


def int_value(fields: Mapping[str, object], name: str, default: int, *, lowest: int, highest: int | None) -> int:
    raw = fields.get(name)
    if raw is None:
        return default
    try:
        number = int(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) else None
    except ValueError:
        number = None
    if number is None or number < lowest or (highest is not None and number > highest):
        limit = f" and <= {highest}" if highest is not None else ""
        raise _bad(f"{name} must be a whole number >= {lowest}{limit}, got {raw!r}")
    return number


def optional_text(fields: Mapping[str, object], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _bad(f"{name} must be a non-empty string")
    return value


@attrs.frozen
class DeltaItem:
    """A checked delta of a request body."""

    customer_id: str
    delta: Decimal
    reason: str
    reference_id: str | None
    metadata: Mapping[str, Any] | None
    adjusts: Mapping[str, Any] | None

    @classmethod
    def parse(cls, body: object) -> DeltaItem:
        if not isinstance(body, Mapping):
            raise _bad("a delta must be a JSON object with customerId, delta and reason")
        reference = body.get("referenceId")
        metadata = body.get("metadata")
        adjusts = body.get("adjusts")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise _bad("metadata must be a JSON object")
        if adjusts is not None and not isinstance(adjusts, Mapping):
            raise _bad("adjusts must be a JSON object")
        return cls(
            customer_id=customer_id_value(body.get("customerId")),
            delta=amount_value("delta", body.get("delta"), nonzero=True),
            reason=text_value("reason", body.get("reason"), max_length=500),
            reference_id=None if reference is None else text_value("referenceId", reference, max_length=255),
            metadata=metadata,
            adjusts=adjusts,
        )

    def content(self) -> dict[str, Any]:
        """The fields a content hash covers (spec §9.2 leaf vectors use exactly these)."""
        item: dict[str, Any] = {"customerId": self.customer_id, "delta": self.delta, "reason": self.reason}
        if self.reference_id is not None:
            item["referenceId"] = self.reference_id
        if self.metadata is not None:
            item["metadata"] = dict(self.metadata)
        if self.adjusts is not None:
            item["adjusts"] = dict(self.adjusts)
        return item


# --- deltas ----------------------------------------------------------------------------------


@attrs.define(eq=False)
class DeltaState:
    record_id: str
    environment: Environment
    item: DeltaItem
    canonical: str
    sequence_number: int
    content_hash: bytes
    proof_hash: bytes
    previous_proof_hash: bytes
    item_hashes: tuple[bytes, ...]
    created_at: datetime
    idempotency_key: str | None
    status: str = QUEUED
    processing_at: datetime | None = None
    verified_at: datetime | None = None
    failed_at: datetime | None = None
    error: str | None = None
    verification_reference: str | None = None
    verification_id: str | None = None
    block_timestamp: str | None = None

    @property
    def customer_id(self) -> str:
        return self.item.customer_id

    @property
    def delta(self) -> Decimal:
        return self.item.delta

    @property
    def final(self) -> bool:
        return self.status in (VERIFIED, FAILED)

    def rule_input(self) -> dict[str, Any]:
        """What a `fail_rule` is given."""
        return {
            "recordId": self.record_id,
            "environment": self.environment.value,
            "sequenceNumber": self.sequence_number,
            **self.item.content(),
        }

    def wire(self) -> dict[str, Any]:
        """The delta as emit and status answer it."""
        data: dict[str, Any] = {
            "recordId": self.record_id,
            "status": self.status,
            "receiptId": to_hex(self.proof_hash),
            **self.item.content(),
            "sequenceNumber": str(self.sequence_number),
            "contentHash": to_hex(self.content_hash),
            "proofHash": to_hex(self.proof_hash),
            "previousProofHash": to_hex(self.previous_proof_hash),
            "itemHashes": [to_hex(h) for h in self.item_hashes],
            "createdAt": iso(self.created_at),
        }
        for name, value in (
            ("processingAt", self.processing_at),
            ("verifiedAt", self.verified_at),
            ("failedAt", self.failed_at),
        ):
            if value is not None:
                data[name] = iso(value)
        for name, text in (
            ("error", self.error),
            ("verificationReference", self.verification_reference),
            ("verificationId", self.verification_id),
            ("blockTimestamp", self.block_timestamp),
        ):
            if text is not None:
                data[name] = text
        return data

    def row(self) -> dict[str, Any]:
        """The delta as a line of a list (derive, customer activity, receipts)."""
        row: dict[str, Any] = {
            "recordId": self.record_id,
            "customerId": self.customer_id,
            "delta": self.delta,
            "reason": self.item.reason,
            "referenceId": self.item.reference_id,
            "status": self.status,
            "time": iso(self.created_at),
            "createdAt": iso(self.created_at),
            "sequenceNumber": str(self.sequence_number),
            "receiptId": to_hex(self.proof_hash),
            "contentHash": to_hex(self.content_hash),
            "verificationReference": self.verification_reference,
        }
        return row

    def public_row(self) -> dict[str, Any]:
        """What public verify shows: proof fingerprints and the amount, no business details."""
        return {
            "contentHash": to_hex(self.content_hash),
            "sequenceNumber": str(self.sequence_number),
            "delta": self.delta,
            "status": self.status,
            "time": iso(self.created_at),
        }

    def verified_event(self) -> dict[str, Any]:
        return {
            "recordId": self.record_id,
            "receiptId": to_hex(self.proof_hash),
            "verificationReference": self.verification_reference,
            "customerId": self.customer_id,
            "delta": self.delta,
            "reason": self.item.reason,
            "sequenceNumber": str(self.sequence_number),
            "referenceId": self.item.reference_id,
            "metadata": self.item.metadata,
            "blockTimestamp": self.block_timestamp,
            "status": "verified",
            "verificationId": self.verification_id,
            "verifiedAt": iso(self.verified_at) if self.verified_at else None,
            "proof": {
                "proofHash": to_hex(self.proof_hash),
                "contentHash": to_hex(self.content_hash),
                "itemHashes": [to_hex(h) for h in self.item_hashes],
                "previousProofHash": to_hex(self.previous_proof_hash),
            },
        }

    def failed_event(self) -> dict[str, Any]:
        return {
            "recordId": self.record_id,
            "receiptId": to_hex(self.proof_hash),
            "customerId": self.customer_id,
            "delta": self.delta,
            "referenceId": self.item.reference_id,
            "error": self.error,
            "failedAt": iso(self.failed_at) if self.failed_at else None,
        }

    def snapshot(self) -> EmulatedDelta:
        return EmulatedDelta(
            record_id=self.record_id,
            environment=self.environment,
            customer_id=self.customer_id,
            delta=self.delta,
            reason=self.item.reason,
            reference_id=self.item.reference_id,
            # A deep copy: a test changing a nested value must not change what the emulator holds.
            metadata=None if self.item.metadata is None else MappingProxyType(copy.deepcopy(dict(self.item.metadata))),
            status=self.status,
            sequence_number=self.sequence_number,
            content_hash=to_hex(self.content_hash),
            proof_hash=to_hex(self.proof_hash),
            previous_proof_hash=to_hex(self.previous_proof_hash),
            item_hashes=tuple(to_hex(h) for h in self.item_hashes),
            created_at=self.created_at,
            verified_at=self.verified_at,
            failed_at=self.failed_at,
            error=self.error,
            idempotency_key=self.idempotency_key,
            verification_reference=self.verification_reference,
        )


# --- scopes ----------------------------------------------------------------------------------


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    index = year * 12 + month  # the next month, 1-based month arithmetic
    end = datetime(index // 12, index % 12 + 1, 1, tzinfo=timezone.utc)
    return start, end


def _month_index(moment: datetime) -> int:
    return moment.year * 12 + moment.month - 1


@attrs.frozen
class Scope:
    """Which deltas a question covers: a window [start, end), or everything after a start point."""

    start: datetime | None
    end: datetime | None
    period: str | None = None
    after_sequence: int | None = None
    starting_balance: Decimal = _ZERO
    # Record ids already in `starting_balance` (a checkpoint's closing balance).
    excluded: frozenset[str] = frozenset()

    def contains(self, delta: DeltaState) -> bool:
        if self.after_sequence is not None and delta.sequence_number <= self.after_sequence:
            return False
        if delta.record_id in self.excluded:
            return False
        if self.start is not None and delta.created_at < self.start:
            return False
        return self.end is None or delta.created_at < self.end

    def wire(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.period is not None:
            data["period"] = self.period
        if self.start is not None:
            data["startDate"] = iso(self.start)
        if self.end is not None:
            data["endDate"] = iso(self.end)
        return data


_WINDOW_FIELDS = ("period", "timePreset", "startDate", "endDate")


def period_value(value: object) -> tuple[str, datetime, datetime]:
    match = _PERIOD.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _bad(f"period must be YYYY-MM, got {value!r}")
    start, end = month_bounds(int(match.group(1)), int(match.group(2)))
    return match.group(0), start, end


def resolve_window(fields: Mapping[str, object], now: datetime, *, max_months: int) -> Scope:
    """The window of period / timePreset / startDate+endDate; the current UTC month by default."""
    given = [name for name in _WINDOW_FIELDS if fields.get(name) is not None]
    period = fields.get("period")
    preset = fields.get("timePreset")
    start_text, end_text = fields.get("startDate"), fields.get("endDate")
    if period is not None and len(given) > 1:
        raise _bad("period cannot be combined with timePreset, startDate or endDate", "INVALID_SCOPE_COMBINATION")
    if preset is not None and preset not in ("current_month", "custom"):
        raise _bad(f"timePreset must be current_month or custom, got {preset!r}")
    has_dates = start_text is not None or end_text is not None
    if preset == "current_month" and has_dates:
        raise _bad("timePreset=current_month takes no startDate/endDate", "INVALID_SCOPE_COMBINATION")
    if has_dates and (start_text is None or end_text is None):
        raise _bad("startDate and endDate must be given together", "INVALID_SCOPE_COMBINATION")
    if preset == "custom" and not has_dates:
        raise _bad("timePreset=custom needs startDate and endDate", "INVALID_SCOPE_COMBINATION")
    if period is not None:
        name, start, end = period_value(period)
        return Scope(start, end, period=name)
    if has_dates:
        start = parse_instant("startDate", start_text)
        end = parse_instant("endDate", end_text)
        if start >= end:
            raise _bad("startDate must be before endDate (endDate is exclusive)")
        months = _month_index(end - timedelta(microseconds=1)) - _month_index(start) + 1
        if months > max_months:
            raise _bad(
                f"the window spans {months} months; the most allowed is {max_months} (see /api/v1/balance/limits)",
                "SCOPE_TOO_WIDE",
            )
        return Scope(start, end)
    start, end = month_bounds(now.year, now.month)
    return Scope(start, end, period=f"{now.year:04d}-{now.month:02d}")


def check_granularity(fields: Mapping[str, object]) -> str | None:
    granularity = fields.get("granularity")
    if granularity is not None and granularity not in ("day", "week", "month"):
        raise _bad(f"granularity must be day, week or month, got {granularity!r}")
    return granularity if isinstance(granularity, str) else None


def _bucket(moment: datetime, granularity: str) -> str:
    if granularity == "day":
        return moment.date().isoformat()
    if granularity == "week":
        return (moment.date() - timedelta(days=moment.weekday())).isoformat()
    return f"{moment.year:04d}-{moment.month:02d}"


# --- checkpoints and issued roots ------------------------------------------------------------


@attrs.define(eq=False)
class CheckpointState:
    checkpoint_id: str
    environment: Environment
    customer_id: str | None
    scope: Scope
    mode: str | None
    fingerprints: tuple[str, ...] | None
    deltas: tuple[DeltaState, ...]
    proof_root: bytes
    closing_balances: Mapping[str, Decimal]
    created_at: datetime
    # The record ids summed into `closing_balances`: a derive from this checkpoint adds every
    # other delta of the customer (later ones, and those still pending when it was taken).
    counted: frozenset[str] = frozenset()
    status: str = QUEUED
    verified_at: datetime | None = None
    verification_reference: str | None = None

    def wire(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "checkpointId": self.checkpoint_id,
            "status": self.status,
            "customerId": self.customer_id,
            **self.scope.wire(),
            "proofRoot": to_hex(self.proof_root),
            "deltaCount": len(self.deltas),
            "netChange": exact_sum(d.delta for d in self.deltas),
            "createdAt": iso(self.created_at),
        }
        if self.mode is not None:
            data["mode"] = self.mode
        if self.verified_at is not None:
            data["verifiedAt"] = iso(self.verified_at)
            data["verificationReference"] = self.verification_reference
        return data

    def verified_event(self) -> dict[str, Any]:
        return {
            "checkpointId": self.checkpoint_id,
            "customerId": self.customer_id,
            "period": self.scope.period,
            "proofRoot": to_hex(self.proof_root),
            "deltaCount": len(self.deltas),
            "verifiedAt": iso(self.verified_at) if self.verified_at else None,
            "verificationReference": self.verification_reference,
        }

    def covers(self, customer_id: str) -> bool:
        return self.customer_id == customer_id or (self.customer_id is None and customer_id in self.closing_balances)

    def snapshot(self) -> EmulatedCheckpoint:
        assert self.scope.start is not None
        assert self.scope.end is not None
        return EmulatedCheckpoint(
            checkpoint_id=self.checkpoint_id,
            environment=self.environment,
            customer_id=self.customer_id,
            period=self.scope.period,
            start=self.scope.start,
            end=self.scope.end,
            proof_root=to_hex(self.proof_root),
            record_ids=tuple(d.record_id for d in self.deltas),
            status=self.status,
            created_at=self.created_at,
        )


@attrs.frozen
class IssuedRoot:
    """A proof root the emulator handed out, so public verify can answer for it."""

    kind: str  # "delta" | "checkpoint" | "receipt"
    delta: DeltaState | None = None
    checkpoint: CheckpointState | None = None
    deltas: tuple[DeltaState, ...] = ()
    issued_at: datetime | None = None


@attrs.define
class Idempotent:
    """One Idempotency-Key: the request's fingerprint, and its answer once there is one."""

    fingerprint: str
    reply: Any = None  # a _wire.Reply once finished


def _reference_key(item: DeltaItem) -> tuple[str, str] | None:
    return None if item.reference_id is None else (item.customer_id, item.reference_id)


def verification_reference(proof: bytes) -> str:
    return to_hex(keccak256(b"pacspace:ledger-ref:v1:" + proof))


# --- one environment's ledger ----------------------------------------------------------------


class Ledger:
    """Everything one environment holds. Deltas are kept in the order they were recorded."""

    def __init__(self, environment: Environment, ids: Ids) -> None:
        self.environment = environment
        self.ids = ids
        self.deltas: dict[str, DeltaState] = {}
        self.by_customer: dict[str, list[DeltaState]] = {}
        self.by_reference: dict[tuple[str, str], DeltaState] = {}
        self.checkpoints: dict[str, CheckpointState] = {}
        self.checkpoint_by_scope: dict[tuple[Any, ...], CheckpointState] = {}
        self.roots: dict[str, IssuedRoot] = {}
        self.idempotency: dict[str, Idempotent] = {}
        self.last_emit: dict[str, float] = {}

    # --- recording --------------------------------------------------------------------------

    def existing(self, item: DeltaItem) -> DeltaState | None:
        """The delta already recorded for this (customerId, referenceId); 409 if it differs."""
        key = _reference_key(item)
        found = None if key is None else self.by_reference.get(key)
        if found is not None and found.canonical != canonical_json(item.content()):
            raise ApiError(
                409,
                "DUPLICATE_REFERENCE_ID",
                f"referenceId {item.reference_id!r} of customer {item.customer_id} was already recorded "
                f"as {found.record_id} with different content",
                recordId=found.record_id,
            )
        return found

    def cadence_wait(self, customer_id: str, now: float, cadence: float | None) -> float | None:
        """Seconds until this customer may be written again, or None."""
        if cadence is None:
            return None
        last = self.last_emit.get(customer_id)
        if last is None:
            return None
        wait = last + cadence - now
        return wait if wait > 0 else None

    def reserved(self) -> int:
        """Deltas that count against an allowance: everything not FAILED."""
        return sum(1 for d in self.deltas.values() if d.status != FAILED)

    def record(self, items: Sequence[DeltaItem], now: datetime, idempotency_key: str | None) -> list[DeltaState]:
        """Record items as one verification batch: content hashes, batch root, chained proofs."""
        canonicals = [canonical_json(item.content()) for item in items]
        hashes = tuple(leaf_hash(item.content()) for item in items)
        batch_root = merkle_root(hashes)
        recorded: list[DeltaState] = []
        for item, canonical, content_hash in zip(items, canonicals, hashes, strict=True):
            history = self.by_customer.setdefault(item.customer_id, [])
            previous = history[-1].proof_hash if history else ZERO_HASH
            delta = DeltaState(
                record_id=self.ids.new("rec"),
                environment=self.environment,
                item=item,
                canonical=canonical,
                sequence_number=len(history) + 1,
                content_hash=content_hash,
                proof_hash=chain_proof(previous, batch_root),
                previous_proof_hash=previous,
                item_hashes=hashes,
                created_at=now,
                idempotency_key=idempotency_key,
            )
            history.append(delta)
            self.deltas[delta.record_id] = delta
            key = _reference_key(item)
            if key is not None:
                self.by_reference[key] = delta
            self.roots.setdefault(to_hex(delta.proof_hash), IssuedRoot("delta", delta=delta, issued_at=now))
            recorded.append(delta)
        return recorded

    def mark_processing(self, delta: DeltaState, now: datetime) -> None:
        if delta.status == QUEUED:
            delta.status = PROCESSING
            delta.processing_at = now

    def mark_verified(self, delta: DeltaState, now: datetime) -> None:
        delta.status = VERIFIED
        delta.verified_at = now
        delta.verification_reference = verification_reference(delta.proof_hash)
        delta.verification_id = "ver_" + keccak256(delta.proof_hash).hex()[:24]
        seconds = now.timestamp()
        delta.block_timestamp = f"{int(seconds)}.{int((seconds % 1) * 1e9):09d}"

    def mark_failed(self, delta: DeltaState, now: datetime, error: str) -> None:
        delta.status = FAILED
        delta.failed_at = now
        delta.error = error

    # --- reading ----------------------------------------------------------------------------

    def delta(self, record_id: str) -> DeltaState:
        found = self.deltas.get(record_id)
        if found is None:
            raise ApiError(404, "RECORD_NOT_FOUND", f"no delta {record_id} in {self.environment.value}")
        return found

    def customer(self, customer_id: str) -> list[DeltaState]:
        history = self.by_customer.get(customer_id)
        if not history:
            raise ApiError(
                404,
                "CUSTOMER_NOT_FOUND",
                f"no customer {customer_id} in {self.environment.value}",
                customerId=customer_id,
            )
        return history

    def scope(self, fields: Mapping[str, object], customer_id: str, now: datetime) -> Scope:
        """A derive/compare scope, which may also start from a checkpoint or a record."""
        start_point = optional_text(fields, "startingCheckpoint")
        if start_point is None:
            return resolve_window(fields, now, max_months=SCOPE_LIMITS["maxScopeMonths"])
        combined = [name for name in _WINDOW_FIELDS if fields.get(name) is not None]
        if combined:
            raise _bad(f"startingCheckpoint cannot be combined with {', '.join(combined)}", "INVALID_SCOPE_COMBINATION")
        kind = optional_text(fields, "startingCheckpointType") or "proofRoot"
        history = self.customer(customer_id)
        if kind in ("recordId", "anchorId"):
            anchor = self.deltas.get(start_point)
            if anchor is None or anchor.customer_id != customer_id:
                raise ApiError(404, "CHECKPOINT_NOT_FOUND", f"no record {start_point} for customer {customer_id}")
            through = exact_sum(
                d.delta for d in history if d.sequence_number <= anchor.sequence_number and d.status != FAILED
            )
            return Scope(None, None, after_sequence=anchor.sequence_number, starting_balance=through)
        if kind not in ("proofRoot", "itemsRoot", "checkpointId"):
            raise _bad(f"startingCheckpointType must be proofRoot or recordId, got {kind!r}")
        for checkpoint in reversed(list(self.checkpoints.values())):
            if start_point in (to_hex(checkpoint.proof_root), checkpoint.checkpoint_id) and checkpoint.covers(
                customer_id
            ):
                return Scope(
                    None,
                    None,
                    starting_balance=checkpoint.closing_balances.get(customer_id, _ZERO),
                    excluded=checkpoint.counted,
                )
        raise ApiError(404, "CHECKPOINT_NOT_FOUND", f"no checkpoint {start_point} covers customer {customer_id}")

    # --- answers ----------------------------------------------------------------------------

    def derive(self, customer_id: str, query: Mapping[str, object], now: datetime) -> dict[str, Any]:
        history = self.customer(customer_id)
        scope = self.scope(query, customer_id, now)
        granularity = check_granularity(query)
        raw_start = query.get("startingBalance")
        starting = scope.starting_balance if raw_start is None else amount_value("startingBalance", raw_start)
        limit = int_value(query, "limit", 100, lowest=1, highest=1000)
        offset = int_value(query, "offset", 0, lowest=0, highest=None)
        selected = [d for d in history if scope.contains(d) and d.status != FAILED]
        balance = exact_sum((d.delta for d in selected), starting)
        data: dict[str, Any] = {
            "customerId": customer_id,
            "computedBalance": balance,
            "startingBalance": starting,
            "deltasCount": len(selected),
            "pendingCount": sum(1 for d in selected if d.status != VERIFIED),
            "latestReceiptId": to_hex(selected[-1].proof_hash) if selected else None,
            **scope.wire(),
            "deltas": [d.row() for d in selected[offset : offset + limit]],
            "pagination": {"total": len(selected), "limit": limit, "offset": offset},
        }
        if granularity is not None:
            buckets: dict[str, list[DeltaState]] = {}
            for d in selected:
                buckets.setdefault(_bucket(d.created_at, granularity), []).append(d)
            data["granularity"] = granularity
            data["breakdown"] = [
                {"bucket": name, "netChange": exact_sum(d.delta for d in items), "deltasCount": len(items)}
                for name, items in buckets.items()
            ]
        return data

    def compare(self, body: Mapping[str, object], now: datetime) -> dict[str, Any]:
        customer_id = customer_id_value(body.get("customerId"))
        yours = amount_value("yourBalance", body.get("yourBalance"))
        theirs = amount_value("theirBalance", body.get("theirBalance"))
        derived = self.derive(customer_id, {**body, "limit": 1}, now)
        neutral: Decimal = derived["computedBalance"]
        return {
            "customerId": customer_id,
            "neutralBalance": neutral,
            "yourBalance": yours,
            "theirBalance": theirs,
            "matchesYours": yours == neutral,
            "matchesTheirs": theirs == neutral,
            "yourDifference": exact_sum((yours, neutral.copy_negate())),
            "theirDifference": exact_sum((theirs, neutral.copy_negate())),
            "deltasCount": derived["deltasCount"],
            **{name: derived[name] for name in ("period", "startDate", "endDate") if name in derived},
        }

    def checkpoint(self, body: Mapping[str, object], now: datetime) -> tuple[CheckpointState, bool]:
        """Create (or find: same scope and same root) a checkpoint. Returns (checkpoint, created)."""
        raw_customer = body.get("customerId")
        customer_id = None if raw_customer is None else customer_id_value(raw_customer)
        if customer_id is not None:
            self.customer(customer_id)
        scope = resolve_window(body, now, max_months=SCOPE_LIMITS["maxScopeMonths"])
        assert scope.start is not None
        assert scope.end is not None
        if scope.start > now:
            raise _bad("the checkpoint window starts in the future")
        mode = optional_text(body, "mode")
        raw_fingerprints = body.get("fingerprints")
        fingerprints: tuple[str, ...] | None = None
        if raw_fingerprints is not None:
            if not isinstance(raw_fingerprints, list) or not all(isinstance(f, str) and f for f in raw_fingerprints):
                raise _bad("fingerprints must be a list of non-empty strings")
            fingerprints = tuple(raw_fingerprints)
        wanted = None if fingerprints is None else set(fingerprints)
        included = tuple(
            d
            for d in self.deltas.values()
            if d.status == VERIFIED
            and scope.contains(d)
            and (customer_id is None or d.customer_id == customer_id)
            and (
                wanted is None
                or not wanted.isdisjoint(
                    {d.record_id, to_hex(d.content_hash), to_hex(d.proof_hash), d.item.reference_id or ""}
                )
            )
        )
        root = merkle_root(d.content_hash for d in included)
        scope_key = (customer_id, scope.start, scope.end, fingerprints, mode)
        found = self.checkpoint_by_scope.get(scope_key)
        if found is not None and found.proof_root == root:
            return found, False
        customers = {customer_id} if customer_id is not None else {d.customer_id for d in included}
        counted_by = {
            name: [d for d in self.by_customer.get(name, ()) if d.status == VERIFIED and d.created_at < scope.end]
            for name in customers
        }
        closing = {name: exact_sum(d.delta for d in deltas) for name, deltas in counted_by.items()}
        checkpoint = CheckpointState(
            checkpoint_id=self.ids.new("chk"),
            environment=self.environment,
            customer_id=customer_id,
            scope=scope,
            mode=mode,
            fingerprints=fingerprints,
            deltas=included,
            proof_root=root,
            closing_balances=closing,
            created_at=now,
            counted=frozenset(d.record_id for deltas in counted_by.values() for d in deltas),
        )
        self.checkpoints[checkpoint.checkpoint_id] = checkpoint
        self.checkpoint_by_scope[scope_key] = checkpoint
        if included:  # an empty root (32 zero bytes) proves nothing and is never "issued"
            self.roots.setdefault(
                to_hex(root), IssuedRoot("checkpoint", checkpoint=checkpoint, deltas=included, issued_at=now)
            )
        return checkpoint, True

    def mark_checkpoint_verified(self, checkpoint: CheckpointState, now: datetime) -> None:
        checkpoint.status = VERIFIED
        checkpoint.verified_at = now
        checkpoint.verification_reference = verification_reference(checkpoint.proof_root)

    def list_checkpoints(self, query: Mapping[str, object], now: datetime) -> dict[str, Any]:
        raw_customer = query.get("customerId")
        customer_id = None if raw_customer is None else customer_id_value(raw_customer)
        windowed = any(query.get(name) is not None for name in _WINDOW_FIELDS)
        scope = resolve_window(query, now, max_months=10_000) if windowed else None
        limit = int_value(query, "limit", 50, lowest=1, highest=1000)
        offset = int_value(query, "offset", 0, lowest=0, highest=None)
        matching = [
            c
            for c in reversed(list(self.checkpoints.values()))
            if (customer_id is None or c.covers(customer_id))
            and (
                scope is None
                or (
                    scope.start is not None
                    and scope.end is not None
                    and c.scope.start is not None
                    and c.scope.end is not None
                    and scope.start <= c.scope.start
                    and c.scope.end <= scope.end
                )
            )
        ]
        return {
            "checkpoints": [c.wire() for c in matching[offset : offset + limit]],
            "pagination": {"total": len(matching), "limit": limit, "offset": offset},
        }

    def receipt(self, customer_id: str, query: Mapping[str, object], now: datetime, base_url: str) -> dict[str, Any]:
        """A scoped receipt over the customer's VERIFIED deltas; its root verifies publicly."""
        history = self.customer(customer_id)
        scope = resolve_window(query, now, max_months=SCOPE_LIMITS["maxScopeMonths"])
        assert scope.start is not None
        verified = [d for d in history if d.status == VERIFIED]
        included = tuple(d for d in verified if scope.contains(d))
        starting = exact_sum(d.delta for d in verified if d.created_at < scope.start)
        final = exact_sum((d.delta for d in included), starting)
        root = merkle_root(d.content_hash for d in included)
        root_hex = to_hex(root)
        tag = keccak256(f"{self.environment.value}|{customer_id}|{scope.start}|{scope.end}|{root_hex}".encode())
        receipt_id = "rcpt_" + tag.hex()[:24]
        if included:
            self.roots.setdefault(root_hex, IssuedRoot("receipt", deltas=included, issued_at=now))
        handle = "cus_" + keccak256(f"{self.environment.value}|{customer_id}".encode()).hex()[:12]
        host = base_url.split("://", 1)[-1]
        access_hint = "".join("ABCDEFGHJKLMNPQRSTUVWXYZ23456789"[b % 32] for b in tag[-6:])
        verify_url = f"{base_url}/receipt/{receipt_id}"
        api_url = f"{base_url}/api/v1/verify/{root_hex}"
        return {
            "customerId": customer_id,
            **scope.wire(),
            "receiptId": receipt_id,
            "generatedAt": iso(now),
            "proofRoot": root_hex,
            "deltaCount": len(included),
            "deltasCount": len(included),
            "startingBalance": starting,
            "finalBalance": final,
            "deltas": [d.row() for d in included],
            "verifyUrl": verify_url,
            "verificationApiUrl": api_url,
            "accessHint": access_hint,
            "customerLinkUrl": f"{base_url}/c/{handle}",
            "customerLinkHost": host,
            "verification": {
                "verifyUrl": verify_url,
                "verificationApiUrl": api_url,
                "itemHashes": [to_hex(d.content_hash) for d in included],
            },
        }

    def verify(self, proof_root: str, base_url: str) -> dict[str, Any]:
        """Public verify: ``verified: false`` (200) for a root the emulator never issued."""
        issued = self.roots.get(proof_root.lower())
        if issued is None:
            return {
                "verified": False,
                "proofRoot": proof_root,
                "message": f"this proof root was not issued in {self.environment.value}",
            }
        if issued.kind == "delta":
            assert issued.delta is not None
            delta = issued.delta
            deltas: tuple[DeltaState, ...] = (delta,)
            verified = delta.status == VERIFIED
            reference = delta.verification_reference
            message = {
                VERIFIED: "verified",
                FAILED: f"verification failed: {delta.error}",
            }.get(delta.status, f"recorded, not verified yet ({delta.status})")
        elif issued.kind == "checkpoint":
            assert issued.checkpoint is not None
            deltas = issued.deltas
            verified = issued.checkpoint.status == VERIFIED
            reference = issued.checkpoint.verification_reference
            message = "verified" if verified else f"checkpoint not verified yet ({issued.checkpoint.status})"
        else:
            deltas = issued.deltas
            verified = True
            reference = verification_reference(bytes.fromhex(proof_root[2:]))
            message = "verified"
        times = [d.created_at for d in deltas]
        return {
            "verified": verified,
            "proofRoot": proof_root.lower(),
            "kind": issued.kind,
            "recordedAt": iso(issued.issued_at) if issued.issued_at else None,
            "message": message,
            "summary": {
                "recordCount": len(deltas),
                "netChange": exact_sum(d.delta for d in deltas),
                "firstRecordAt": iso(min(times)) if times else None,
                "lastRecordAt": iso(max(times)) if times else None,
            },
            "records": [d.public_row() for d in deltas],
            "verification": {
                "verificationReference": reference,
                "verificationExplorerUrl": f"{base_url}/verify/{proof_root.lower()}",
            },
        }

    def usage(self, allowance: int | None, now: datetime) -> dict[str, Any]:
        consumed = sum(1 for d in self.deltas.values() if d.status == VERIFIED)
        pending = sum(1 for d in self.deltas.values() if d.status in (QUEUED, PROCESSING))
        remaining = None if allowance is None else max(0, allowance - consumed - pending)
        return {
            "plan": "emulator" if allowance is None else "emulator-capped",
            "allowed": remaining is None or remaining > 0,
            "remaining": remaining,
            "includedDeltas": allowance,
            "consumedDeltas": consumed,
            "pendingDeltas": pending,
            "failedDeltas": sum(1 for d in self.deltas.values() if d.status == FAILED),
            "period": f"{now.year:04d}-{now.month:02d}",
        }

    def gaps(self, customer_id: str, query: Mapping[str, object]) -> dict[str, Any]:
        """Runs of sequence numbers with no VERIFIED delta (FAILED, or still pending)."""
        history = self.customer(customer_id)
        latest = len(history)
        first = int_value(query, "fromSequence", 1, lowest=0, highest=None) or 1
        last = min(int_value(query, "toSequence", latest, lowest=0, highest=None), latest)
        limit = int_value(query, "limit", 100, lowest=1, highest=1000)
        gaps: list[dict[str, Any]] = []
        run: list[DeltaState] = []

        def close() -> None:
            if run:
                reasons = {FAILED if d.status == FAILED else "PENDING" for d in run}
                gaps.append(
                    {
                        "fromSequence": run[0].sequence_number,
                        "toSequence": run[-1].sequence_number,
                        "count": len(run),
                        "reason": reasons.pop() if len(reasons) == 1 else "MIXED",
                        "recordIds": [d.record_id for d in run],
                    }
                )
                run.clear()

        for delta in history[first - 1 : last]:
            if delta.status == VERIFIED:
                close()
            else:
                run.append(delta)
        close()
        return {
            "customerId": customer_id,
            "fromSequence": first,
            "toSequence": last,
            "latestSequence": latest,
            "gapCount": len(gaps),
            "gaps": gaps[:limit],
        }

    # --- customers --------------------------------------------------------------------------

    def _customer_item(self, customer_id: str, history: Sequence[DeltaState]) -> dict[str, Any]:
        return {
            "customerId": customer_id,
            "ledgerIdentifier": to_hex(
                keccak256(f"pacspace:ledger:v1:{self.environment.value}:{customer_id}".encode())
            ),
            "totalDeltas": len(history),
            "computedBalance": exact_sum(d.delta for d in history if d.status != FAILED),
            "firstDeltaAt": iso(history[0].created_at),
            "lastDeltaAt": iso(history[-1].created_at),
        }

    def customers(self, query: Mapping[str, object]) -> dict[str, Any]:
        search = optional_text(query, "search")
        page = int_value(query, "page", 1, lowest=1, highest=None)
        limit = int_value(query, "limit", 25, lowest=1, highest=100)
        names = sorted(
            name
            for name, history in self.by_customer.items()
            if history and (not search or search.lower() in name.lower())
        )
        chosen = names[(page - 1) * limit : page * limit]
        return {
            "customers": [self._customer_item(name, self.by_customer[name]) for name in chosen],
            "pagination": {
                "total": len(names),
                "page": page,
                "limit": limit,
                "totalPages": max(1, -(-len(names) // limit)),
            },
        }

    def customers_summary(self) -> dict[str, Any]:
        deltas = list(self.deltas.values())
        by_status = {
            status: sum(1 for d in deltas if d.status == status) for status in (QUEUED, PROCESSING, VERIFIED, FAILED)
        }
        return {
            "totalCustomers": sum(1 for history in self.by_customer.values() if history),
            "totalDeltas": len(deltas),
            "verifiedDeltas": by_status[VERIFIED],
            "pendingDeltas": by_status[QUEUED] + by_status[PROCESSING],
            "failedDeltas": by_status[FAILED],
            "netBalance": exact_sum(d.delta for d in deltas if d.status != FAILED),
            "checkpoints": len(self.checkpoints),
            "verificationHealth": {
                "verifiedRatio": (by_status[VERIFIED] / len(deltas)) if deltas else 1.0,
                "byStatus": by_status,
            },
        }

    def customer_detail(self, customer_id: str, query: Mapping[str, object]) -> dict[str, Any]:
        history = self.customer(customer_id)
        page = int_value(query, "deltaPage", 1, lowest=1, highest=None)
        limit = int_value(query, "deltaLimit", 20, lowest=1, highest=1000)
        period = query.get("period")
        rows = history
        if period is not None:
            _, start, end = period_value(period)
            rows = [d for d in history if start <= d.created_at < end]
        newest_first = list(reversed(rows))
        chosen = newest_first[(page - 1) * limit : page * limit]
        latest = next((c for c in reversed(list(self.checkpoints.values())) if c.covers(customer_id)), None)
        return {
            **self._customer_item(customer_id, history),
            "customerReference": to_hex(keccak256(customer_id.encode("utf-8"))),
            "customerPartition": self.environment.value,
            "latestCheckpoint": None if latest is None else latest.wire(),
            "recentActivity": {
                "items": [d.row() for d in chosen],
                "pagination": {
                    "total": len(rows),
                    "page": page,
                    "limit": limit,
                    "totalPages": max(1, -(-len(rows) // limit)),
                },
            },
        }


def snapshot_deltas(
    ledgers: Iterable[Ledger],
    *,
    customer_id: str | None,
    status: str | None,
    keep: Callable[[DeltaState], bool] | None = None,
) -> list[EmulatedDelta]:
    out: list[EmulatedDelta] = []
    for ledger in ledgers:
        for delta in ledger.deltas.values():
            if customer_id is not None and delta.customer_id != customer_id:
                continue
            if status is not None and delta.status != status:
                continue
            if keep is not None and not keep(delta):
                continue
            out.append(delta.snapshot())
    return out


def now_utc(clock: Callable[[], float]) -> datetime:
    return utc(clock())
