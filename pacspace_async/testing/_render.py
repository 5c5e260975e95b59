"""The JSON shapes of the ledger's deltas and checkpoints, as answers and webhook events carry them."""

from __future__ import annotations

from typing import Any

from ._ledger import CheckpointState, DeltaState
from ._merkle import exact_sum, to_hex
from ._wire import iso

__all__ = [
    "checkpoint_json",
    "checkpoint_verified_event",
    "delta_failed_event",
    "delta_json",
    "delta_row",
    "delta_verified_event",
    "public_row",
]


def delta_json(delta: DeltaState) -> dict[str, Any]:
    """The delta as emit and status answer it."""
    data: dict[str, Any] = {
        "recordId": delta.record_id,
        "status": delta.status,
        "receiptId": to_hex(delta.proof_hash),
        **delta.item.content(),
        "sequenceNumber": str(delta.sequence_number),
        "contentHash": to_hex(delta.content_hash),
        "proofHash": to_hex(delta.proof_hash),
        "previousProofHash": to_hex(delta.previous_proof_hash),
        "itemHashes": [to_hex(h) for h in delta.item_hashes],
        "createdAt": iso(delta.created_at),
    }
    for name, value in (
        ("processingAt", delta.processing_at),
        ("verifiedAt", delta.verified_at),
        ("failedAt", delta.failed_at),
    ):
        if value is not None:
            data[name] = iso(value)
    for name, text in (
        ("error", delta.error),
        ("verificationReference", delta.verification_reference),
        ("verificationId", delta.verification_id),
        ("blockTimestamp", delta.block_timestamp),
    ):
        if text is not None:
            data[name] = text
    return data


def delta_row(delta: DeltaState) -> dict[str, Any]:
    """The delta as a line of a list (derive, customer activity, receipts)."""
    return {
        "recordId": delta.record_id,
        "customerId": delta.customer_id,
        "delta": delta.delta,
        "reason": delta.item.reason,
        "referenceId": delta.item.reference_id,
        "status": delta.status,
        "time": iso(delta.created_at),
        "createdAt": iso(delta.created_at),
        "sequenceNumber": str(delta.sequence_number),
        "receiptId": to_hex(delta.proof_hash),
        "contentHash": to_hex(delta.content_hash),
        "verificationReference": delta.verification_reference,
    }


def public_row(delta: DeltaState) -> dict[str, Any]:
    """What public verify shows: proof fingerprints and the amount, no business details."""
    return {
        "contentHash": to_hex(delta.content_hash),
        "sequenceNumber": str(delta.sequence_number),
        "delta": delta.delta,
        "status": delta.status,
        "time": iso(delta.created_at),
    }


def delta_verified_event(delta: DeltaState) -> dict[str, Any]:
    return {
        "recordId": delta.record_id,
        "receiptId": to_hex(delta.proof_hash),
        "verificationReference": delta.verification_reference,
        "customerId": delta.customer_id,
        "delta": delta.delta,
        "reason": delta.item.reason,
        "sequenceNumber": str(delta.sequence_number),
        "referenceId": delta.item.reference_id,
        "metadata": delta.item.metadata,
        "blockTimestamp": delta.block_timestamp,
        "status": "verified",
        "verificationId": delta.verification_id,
        "verifiedAt": iso(delta.verified_at) if delta.verified_at else None,
        "proof": {
            "proofHash": to_hex(delta.proof_hash),
            "contentHash": to_hex(delta.content_hash),
            "itemHashes": [to_hex(h) for h in delta.item_hashes],
            "previousProofHash": to_hex(delta.previous_proof_hash),
        },
    }


def delta_failed_event(delta: DeltaState) -> dict[str, Any]:
    return {
        "recordId": delta.record_id,
        "receiptId": to_hex(delta.proof_hash),
        "customerId": delta.customer_id,
        "delta": delta.delta,
        "referenceId": delta.item.reference_id,
        "error": delta.error,
        "failedAt": iso(delta.failed_at) if delta.failed_at else None,
    }


def checkpoint_json(checkpoint: CheckpointState) -> dict[str, Any]:
    data: dict[str, Any] = {
        "checkpointId": checkpoint.checkpoint_id,
        "status": checkpoint.status,
        "customerId": checkpoint.customer_id,
        **checkpoint.scope.wire(),
        "proofRoot": to_hex(checkpoint.proof_root),
        "deltaCount": len(checkpoint.deltas),
        "netChange": exact_sum(d.delta for d in checkpoint.deltas),
        "createdAt": iso(checkpoint.created_at),
    }
    if checkpoint.mode is not None:
        data["mode"] = checkpoint.mode
    if checkpoint.verified_at is not None:
        data["verifiedAt"] = iso(checkpoint.verified_at)
        data["verificationReference"] = checkpoint.verification_reference
    return data


def checkpoint_verified_event(checkpoint: CheckpointState) -> dict[str, Any]:
    return {
        "checkpointId": checkpoint.checkpoint_id,
        "customerId": checkpoint.customer_id,
        "period": checkpoint.scope.period,
        "proofRoot": to_hex(checkpoint.proof_root),
        "deltaCount": len(checkpoint.deltas),
        "verifiedAt": iso(checkpoint.verified_at) if checkpoint.verified_at else None,
        "verificationReference": checkpoint.verification_reference,
    }
