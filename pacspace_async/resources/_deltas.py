"""The wire body of a delta, and what a refused reuse of its reference id means to the caller."""

from __future__ import annotations

from typing import Any

from .._errors import IdempotencyConflictError, reworded
from ._args import MAX_REASON_LENGTH, amount_arg, customer_id_arg, mapping_arg, reference_id_arg, text_arg

__all__ = ["delta_body", "reference_conflict"]


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
