"""`balance.emit_batch` underneath: each item's wire body, the requests of up to 100 items,
their keys, the tally of their answers, and the error that stops a batch part-way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs

from .._batch_error import with_batch_progress
from .._errors import IdempotencyConflictError, InvalidArgumentError, PacSpaceError, reworded
from .._models import structure
from .._requester import APIResponse
from ..models.balance import BatchItemResult, BatchResult, DeltaInput
from ._base import CallOptions
from ._deltas import delta_body

__all__ = ["BATCH_LIMIT", "BatchTally", "batch_item", "send_batch"]

BATCH_LIMIT = 100
_ITEM_FIELDS = frozenset({"customer_id", "delta", "reason", "reference_id", "metadata"})

Post = Callable[..., Awaitable[APIResponse]]


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


def _count(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


@attrs.define
class BatchTally:
    """What the requests of one `emit_batch` recorded so far; `result()` at any point is the
    `BatchResult` to return, or the progress to raise with."""

    results: list[BatchItemResult] = attrs.Factory(list)
    queued: int = 0
    failed: int = 0
    keys: list[str] = attrs.Factory(list)
    raws: list[Mapping[str, Any]] = attrs.Factory(list)

    def add(self, response: APIResponse, *, offset: int, size: int) -> None:
        """Count the answer to the request of items ``offset .. offset + size - 1``. Counted
        whole or not at all: an answer that cannot be read raises before anything changes."""
        data = response.data if isinstance(response.data, Mapping) else {}
        answered = (item for item in data.get("results") or [] if isinstance(item, Mapping))
        results = []
        for position, item in enumerate(answered):
            local = item.get("index")
            local = local if isinstance(local, int) and 0 <= local < size else position
            results.append(structure({**item, "index": offset + local}, BatchItemResult, of=response))
        failed = sum(1 for result in results if result.failed)
        self.queued += _count(data.get("totalQueued"), len(results) - failed)
        self.failed += _count(data.get("totalFailed"), failed)
        self.results.extend(results)
        self.keys.append(response.idempotency_key or "")
        self.raws.append(data)

    def result(self) -> BatchResult:
        ordered = tuple(sorted(self.results, key=lambda result: result.index))
        return BatchResult(ordered, self.queued, self.failed, tuple(self.keys), tuple(self.raws))


def batch_reference_conflict(error: IdempotencyConflictError, *, first: int, last: int) -> IdempotencyConflictError:
    """`reference_conflict` for a batch request whose key the SDK derived from its items."""
    return reworded(
        error,
        f"the reference_ids of batch items {first}-{last} were already sent together with other content "
        "(another delta, reason or metadata); if this is a retry, send exactly the original items; "
        "if these are new events, use new reference_ids",
    )


async def send_batch(post: Post, bodies: Sequence[dict[str, Any]], options: CallOptions) -> BatchResult:
    """Send checked item `bodies` through `post` (a resource's ``_post``), up to `BATCH_LIMIT` per
    request, and tally the answers in the items' order.

    The caller's idempotency key gets ``:n`` for request n when there are several. A request
    that fails raises its error as a `BatchError` too, with what the requests before it recorded.
    """
    chunks = [bodies[start : start + BATCH_LIMIT] for start in range(0, len(bodies), BATCH_LIMIT)]
    tally = BatchTally()
    for number, chunk in enumerate(chunks):
        offset = number * BATCH_LIMIT
        sent = options
        if options.idempotency_key is not None and len(chunks) > 1:
            sent = attrs.evolve(options, idempotency_key=f"{options.idempotency_key}:{number}")
        # A batch whose every item names its business reference gets a key derived from them
        # (customer and reference, as for one emit), so resending the same items after a
        # failure replays instead of re-applying.
        reference = batch_reference(chunk)
        try:
            response = await post(
                "/api/v1/balance/delta/batch",
                sent,
                body={"deltas": chunk},
                operation="balance.delta.batch",
                reference=reference,
            )
            tally.add(response, offset=offset, size=len(chunk))
        except PacSpaceError as error:
            if isinstance(error, IdempotencyConflictError) and sent.idempotency_key is None and reference is not None:
                error = batch_reference_conflict(error, first=offset, last=offset + len(chunk) - 1)
            # What the earlier requests recorded is not lost with the error. The copy keeps the
            # error's traceback and cause, so it reads as the one error it is.
            batched = with_batch_progress(error, tally.result())
            raise batched.with_traceback(error.__traceback__) from error.__cause__
    return tally.result()
