"""One environment's ledger: what is stored, and the only ways it changes.

Deltas are recorded with their content hashes, batch root and chained proof hash, then move
QUEUED → PROCESSING → VERIFIED or FAILED; checkpoints are added and move QUEUED → VERIFIED;
proof roots handed out are remembered so public verify can answer for them. The API's rules
(who may write what, when) live in `_handlers`; the answers to questions in `_queries`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

import attrs

from .._environments import Environment
from ._ids import Ids
from ._inputs import DeltaItem
from ._merkle import ZERO_HASH, canonical_json, chain_proof, keccak256, leaf_hash, merkle_root, to_hex
from ._scope import Scope
from ._wire import ApiError

__all__ = [
    "FAILED",
    "PROCESSING",
    "QUEUED",
    "VERIFIED",
    "CheckpointState",
    "DeltaState",
    "IssuedRoot",
    "Ledger",
    "verification_reference",
]

QUEUED, PROCESSING, VERIFIED, FAILED = "QUEUED", "PROCESSING", "VERIFIED", "FAILED"


def verification_reference(proof: bytes) -> str:
    """The emulator's stand-in for the public ledger record of a verified proof."""
    return to_hex(keccak256(b"pacspace:ledger-ref:v1:" + proof))


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

    def covers(self, customer_id: str) -> bool:
        return self.customer_id == customer_id or (self.customer_id is None and customer_id in self.closing_balances)


@attrs.frozen
class IssuedRoot:
    """A proof root the emulator handed out, so public verify can answer for it."""

    kind: str  # "delta" | "checkpoint" | "receipt"
    delta: DeltaState | None = None
    checkpoint: CheckpointState | None = None
    deltas: tuple[DeltaState, ...] = ()
    issued_at: datetime | None = None


# A checkpoint's identity for "the same checkpoint again": customer, window, fingerprints, mode.
ScopeKey = tuple[str | None, datetime | None, datetime | None, tuple[str, ...] | None, str | None]


class Ledger:
    """Everything one environment holds. Deltas are kept in the order they were recorded."""

    def __init__(self, environment: Environment, ids: Ids) -> None:
        self.environment = environment
        self.ids = ids
        self.deltas: dict[str, DeltaState] = {}
        self.by_customer: dict[str, list[DeltaState]] = {}
        self.by_reference: dict[tuple[str, str], DeltaState] = {}
        self.checkpoints: dict[str, CheckpointState] = {}
        self.checkpoint_by_scope: dict[ScopeKey, CheckpointState] = {}
        self.roots: dict[str, IssuedRoot] = {}
        self.last_emit: dict[str, float] = {}  # customer -> loop time of its last write (cadence)

    # --- looking up -------------------------------------------------------------------------

    def delta(self, record_id: str) -> DeltaState:
        found = self.deltas.get(record_id)
        if found is None:
            raise ApiError(404, "RECORD_NOT_FOUND", f"no delta {record_id} in {self.environment.value}")
        return found

    def customer(self, customer_id: str) -> list[DeltaState]:
        """The customer's deltas in sequence order; 404 for a customer with none."""
        history = self.by_customer.get(customer_id)
        if not history:
            raise ApiError(
                404,
                "CUSTOMER_NOT_FOUND",
                f"no customer {customer_id} in {self.environment.value}",
                customerId=customer_id,
            )
        return history

    # --- recording --------------------------------------------------------------------------

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
            key = item.reference_key
            if key is not None:
                self.by_reference[key] = delta
            self.issue(to_hex(delta.proof_hash), IssuedRoot("delta", delta=delta, issued_at=now))
            recorded.append(delta)
        return recorded

    def add_checkpoint(self, checkpoint: CheckpointState, scope_key: ScopeKey) -> None:
        self.checkpoints[checkpoint.checkpoint_id] = checkpoint
        self.checkpoint_by_scope[scope_key] = checkpoint
        if checkpoint.deltas:  # an empty root (32 zero bytes) proves nothing and is never "issued"
            self.issue(
                to_hex(checkpoint.proof_root),
                IssuedRoot(
                    "checkpoint", checkpoint=checkpoint, deltas=checkpoint.deltas, issued_at=checkpoint.created_at
                ),
            )

    def issue(self, root_hex: str, issued: IssuedRoot) -> None:
        """Remember a proof root handed out; the first issue of a root is the one verify shows."""
        self.roots.setdefault(root_hex, issued)

    # --- the lifecycle ----------------------------------------------------------------------

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

    def mark_checkpoint_verified(self, checkpoint: CheckpointState, now: datetime) -> None:
        checkpoint.status = VERIFIED
        checkpoint.verified_at = now
        checkpoint.verification_reference = verification_reference(checkpoint.proof_root)
