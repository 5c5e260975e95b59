"""What a test inspects: frozen snapshots of deltas and checkpoints, and the request log's lines.

Snapshots are copies: a test holding one sees the state of the moment it asked, and changing
it (even a nested metadata value) never changes what the emulator holds.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import attrs

from .._environments import Environment
from ._ledger import CheckpointState, DeltaState
from ._merkle import to_hex

__all__ = ["EmulatedCheckpoint", "EmulatedDelta", "RequestRecord", "snapshot_checkpoint", "snapshot_delta"]


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


def snapshot_delta(delta: DeltaState) -> EmulatedDelta:
    item = delta.item
    return EmulatedDelta(
        record_id=delta.record_id,
        environment=delta.environment,
        customer_id=delta.customer_id,
        delta=delta.delta,
        reason=item.reason,
        reference_id=item.reference_id,
        # A deep copy: a test changing a nested value must not change what the emulator holds.
        metadata=None if item.metadata is None else MappingProxyType(copy.deepcopy(dict(item.metadata))),
        status=delta.status,
        sequence_number=delta.sequence_number,
        content_hash=to_hex(delta.content_hash),
        proof_hash=to_hex(delta.proof_hash),
        previous_proof_hash=to_hex(delta.previous_proof_hash),
        item_hashes=tuple(to_hex(h) for h in delta.item_hashes),
        created_at=delta.created_at,
        verified_at=delta.verified_at,
        failed_at=delta.failed_at,
        error=delta.error,
        idempotency_key=delta.idempotency_key,
        verification_reference=delta.verification_reference,
    )


def snapshot_checkpoint(checkpoint: CheckpointState) -> EmulatedCheckpoint:
    scope = checkpoint.scope
    assert scope.start is not None
    assert scope.end is not None
    return EmulatedCheckpoint(
        checkpoint_id=checkpoint.checkpoint_id,
        environment=checkpoint.environment,
        customer_id=checkpoint.customer_id,
        period=scope.period,
        start=scope.start,
        end=scope.end,
        proof_root=to_hex(checkpoint.proof_root),
        record_ids=tuple(d.record_id for d in checkpoint.deltas),
        status=checkpoint.status,
        created_at=checkpoint.created_at,
    )
