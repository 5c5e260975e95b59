"""The wire body of a delta, and what a refused reuse of its reference id means to the caller."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .._errors import IdempotencyConflictError, InvalidArgumentError, reworded
from ..models.balance import DeltaInput
from ._args import (
    MAX_REASON_LENGTH,
    amount_arg,
    customer_id_arg,
    mapping_arg,
    reference_id_arg,
    text_arg,
)

__all__ = ["batch_item", "batch_reference", "batch_reference_conflict", "delta_body", "reference_conflict"]

_ITEM_FIELDS = frozenset({"customer_id", "delta", "reason", "reference_id", "metadata"})


def delta_body(
    *,
    customer_id: object,
    delta: object,
    reason: object,
    reference_id: object = None,
    metadata: object = None,
    adjusts: object = None,
) -> dict[str, Any]:
    """The wire body of one delta, every field checked."""
    body: dict[str, Any] = {
        "customerId": customer_id_arg(customer_id),
        "delta": amount_arg("delta", delta, nonzero=True),
        "reason": text_arg("reason", reason, max_length=MAX_REASON_LENGTH),
    }
    if reference_id is not None:
        body["referenceId"] = reference_id_arg(reference_id)
    if metadata is not None:
        body["metadata"] = mapping_arg("metadata", metadata)
    if adjusts is not None:
        body["adjusts"] = mapping_arg("adjusts", adjusts)
    return body


def batch_item(index: int, item: DeltaInput | Mapping[str, Any]) -> dict[str, Any]:
    """The wire body of item `index` of a batch; a refusal names the item."""
    fields = attrs.asdict(item, recurse=False) if isinstance(item, DeltaInput) else item
    if not isinstance(fields, Mapping):
        raise InvalidArgumentError(f"batch item {index} must be a DeltaInput or a mapping, not {type(item).__name__}")
    unknown = set(fields) - _ITEM_FIELDS
    if unknown:
        raise InvalidArgumentError(f"batch item {index} has unknown fields {sorted(unknown)} (use snake_case names)")
    try:
        return delta_body(**fields)
    except InvalidArgumentError as error:
        raise InvalidArgumentError(f"batch item {index}: {error.message}") from None
    except TypeError:
        raise InvalidArgumentError(f"batch item {index} needs customer_id, delta and reason") from None


def batch_reference(chunk: Sequence[Mapping[str, Any]]) -> str | None:
    """The business reference of one batch request: every item's customer and reference id,
    or None when an item has no reference id (the request then gets a fresh key)."""
    if not all(item.get("referenceId") for item in chunk):
        return None
    return "\x1f".join(f"{item['customerId']}\x1e{item['referenceId']}" for item in chunk)


def reference_conflict(
    error: IdempotencyConflictError, *, reference_id: str, customer_id: str | None
) -> IdempotencyConflictError:
    """A 409 for a key the SDK derived from `reference_id`, told in the caller's terms.

    The server speaks of an idempotency key the caller never chose; what the caller did was
    reuse a reference id, and the fix is about that reference id.
    """
    whose = "" if customer_id is None else f" of customer {customer_id}"
    return reworded(
        error,
        f"reference_id {reference_id!r}{whose} was already used with other content (another delta, reason, "
        "metadata or adjusts); if this is a retry, send exactly the original content; if it is a new event, "
        "use a new reference_id",
    )


def batch_reference_conflict(error: IdempotencyConflictError, *, first: int, last: int) -> IdempotencyConflictError:
    """`reference_conflict` for a batch request whose key the SDK derived from its items."""
    return reworded(
        error,
        f"the reference_ids of batch items {first}-{last} were already sent together with other content "
        "(another delta, reason or metadata); if this is a retry, send exactly the original items; "
        "if these are new events, use new reference_ids",
    )
