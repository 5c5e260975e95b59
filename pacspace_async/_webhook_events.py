"""The typed webhook events, read from a delivery's JSON by the SDK's one converter.

Every field is read by the same rules as the models' (`_models.converter`): text, money,
counts and instants mean the same in an event as in an answer, and a field in an unexpected
shape becomes None (it stays in ``.raw``). Public through :mod:`pacspace_async.webhooks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeAlias

import attrs

from ._models import converter, raw_field, read_shape

__all__ = [
    "CheckpointVerifiedData",
    "DeltaFailedData",
    "DeltaVerifiedData",
    "RecordCommittedData",
    "RecordFailedData",
    "WebhookEvent",
    "WebhookEventData",
    "read_event",
]


@attrs.frozen(kw_only=True)
class DeltaVerifiedData:
    """``delta.verified``: accepts both the SDK shape and the docs shape (``delta.amount``)."""

    record_id: str | None = None
    receipt_id: str | None = None
    verification_reference: str | None = None
    customer_id: str | None = None
    delta: Decimal | None = None
    sequence_number: str | None = None
    reference_id: str | None = None
    block_timestamp: str | None = None
    status: str | None = None
    verification_id: str | None = None
    verified_at: datetime | None = None
    raw: Mapping[str, Any] = raw_field()


@attrs.frozen(kw_only=True)
class DeltaFailedData:
    """``delta.failed``."""

    record_id: str | None = None
    customer_id: str | None = None
    delta: Decimal | None = None
    error: str | None = None
    failed_at: datetime | None = None
    raw: Mapping[str, Any] = raw_field()


@attrs.frozen(kw_only=True)
class CheckpointVerifiedData:
    """``checkpoint.verified``."""

    checkpoint_id: str | None = None
    customer_id: str | None = None
    period: str | None = None
    proof_root: str | None = None
    raw: Mapping[str, Any] = raw_field()


@attrs.frozen(kw_only=True)
class RecordCommittedData:
    """``record.committed``."""

    receipt_id: str | None = None
    status: str | None = None
    verified_at: datetime | None = None
    verification_id: str | None = None
    item_count: int | None = None
    records: tuple[Any, ...] | None = None
    verification: Mapping[str, Any] | None = None
    raw: Mapping[str, Any] = raw_field()


@attrs.frozen(kw_only=True)
class RecordFailedData:
    """``record.failed`` (``seq`` is 0-based)."""

    record_type: str | None = None
    entity_id: str | None = None
    seq: int | None = None
    code: str | None = None
    sentence: str | None = None
    raw: Mapping[str, Any] = raw_field()


# What `WebhookEvent.data` can be: match on the class, the mapping covers unknown event types.
WebhookEventData: TypeAlias = (
    DeltaVerifiedData
    | DeltaFailedData
    | CheckpointVerifiedData
    | RecordCommittedData
    | RecordFailedData
    | Mapping[str, Any]
)


@attrs.frozen(kw_only=True)
class WebhookEvent:
    """A verified delivery. ``data`` is typed for known event types, the raw mapping otherwise.

    ``id`` is the signed body's ``id`` (a different ``X-Event-ID`` header is refused); only for a
    body without one is it the ``X-Event-ID`` header, which is not signed. ``created_at`` comes
    from ``createdAt`` or ``timestamp``. ``raw`` is the decoded body, unknown fields included.
    """

    id: str | None
    type: str
    created_at: datetime | None
    tenant_id: str | None
    data: WebhookEventData
    raw: Mapping[str, Any] = raw_field()


# --- the other shapes PacSpace sends -----------------------------------------------------------


def _flatten_nested_delta(data: Mapping[str, Any]) -> Mapping[str, Any]:
    # The docs nest the delta, {"delta": {"customerId", "amount", "referenceId", ...}}; the SDK
    # sends it flat. Fields given at the top level win over the nested ones.
    nested = data.get("delta")
    if not isinstance(nested, Mapping) or not nested:
        return data
    flat = {**data, "delta": nested.get("amount")}
    for key in ("customerId", "referenceId"):
        if not isinstance(data.get(key), str) and key in nested:
            flat[key] = nested[key]
    return flat


def _items_root_as_proof_root(data: Mapping[str, Any]) -> Mapping[str, Any]:
    # Older docs call the proof root `itemsRoot`.
    if isinstance(data.get("proofRoot"), str) or "itemsRoot" not in data:
        return data
    return {**data, "proofRoot": data["itemsRoot"]}


read_shape(DeltaVerifiedData, _flatten_nested_delta)
read_shape(CheckpointVerifiedData, _items_root_as_proof_root)

_DATA_CLASSES: Mapping[str, type[Any]] = {
    "delta.verified": DeltaVerifiedData,
    "delta.failed": DeltaFailedData,
    "checkpoint.verified": CheckpointVerifiedData,
    "record.committed": RecordCommittedData,
    "record.failed": RecordFailedData,
}

# --- the envelope ------------------------------------------------------------------------------

_INSTANT: Any = datetime | None
_TEXT: Any = str | None


def body_text(value: object) -> str | None:
    """The envelope's ``id`` or ``event``: non-empty text, else None. Never a number made text:
    the id keys the replay cache and is compared with the unsigned ``X-Event-ID`` header, so
    it is taken exactly as signed."""
    return value if isinstance(value, str) and value else None


def read_event(
    envelope: Mapping[str, Any], *, event_type: str | None = None, event_id: str | None = None
) -> WebhookEvent:
    """The event a delivery's decoded JSON describes.

    `event_type` and `event_id` stand in for an ``event`` and an ``id`` the body lacks (the
    verifier passes the unsigned headers: the signed body wins). A delivery that names no event
    type raises ValueError.
    """
    if not isinstance(envelope, Mapping):
        raise TypeError(f"expected a JSON object for WebhookEvent, got {type(envelope).__name__}")
    kind = body_text(envelope.get("event")) or event_type
    if not kind:
        raise ValueError("the delivery names no event type")
    data = envelope.get("data")
    if not isinstance(data, Mapping):
        data = {}
    data_class = _DATA_CLASSES.get(kind)
    created_at = converter.structure(envelope.get("createdAt"), _INSTANT)
    return WebhookEvent(
        id=body_text(envelope.get("id")) or event_id,
        type=kind,
        created_at=created_at or converter.structure(envelope.get("timestamp"), _INSTANT),
        tenant_id=converter.structure(envelope.get("tenantId"), _TEXT),
        data=data if data_class is None else converter.structure(data, data_class),
        raw=envelope,
    )


converter.register_structure_hook(WebhookEvent, lambda envelope, _: read_event(envelope))
