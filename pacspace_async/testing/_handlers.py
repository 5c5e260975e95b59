"""The route handlers, and the API's write rules: emit, batch, cadence, allowance, checkpoint.

A handler takes one `Call` (a request the pipeline already authenticated, rate limited and
decoded) and returns a `Reply`, or raises `ApiError`. Handlers are plain functions with no
``await``: each runs between two awaits of the event loop, so a write and the checks before it
happen at once (no other request sees the state half-changed). Read handlers only pick their
arguments out of the call and hand them to `_queries`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs

from .._environments import Environment
from ._clocks import loop_time
from ._deliveries import Dispatcher
from ._inputs import DeltaItem, bad_request, customer_id_value, optional_text
from ._keys import KeyRecord
from ._ledger import FAILED, VERIFIED, CheckpointState, DeltaState, Ledger
from ._merkle import canonical_json, exact_sum, merkle_root, to_hex
from ._queries import (
    compare,
    customer_detail,
    customers,
    customers_summary,
    derive,
    gaps,
    list_checkpoints,
    receipt,
    usage,
    verify,
)
from ._render import checkpoint_json, delta_json
from ._scope import SCOPE_LIMITS, resolve_window
from ._settings import Settings
from ._wire import ApiError, Reply, too_many_requests

__all__ = ["Call", "Handler"]

MAX_BATCH = 100


@attrs.frozen
class Call:
    """One request as a handler sees it, with what the handlers may use beyond the ledger."""

    environment: Environment
    ledger: Ledger
    key: KeyRecord | None
    query: Mapping[str, str]
    match: Mapping[str, str]
    body: Any
    idempotency_key: str | None
    now: datetime
    base_url: str
    settings: Settings
    schedule: Callable[[DeltaState | CheckpointState], None]  # start an item on its way to final
    dispatcher: Dispatcher

    def body_object(self) -> Mapping[str, Any]:
        if self.body is None:
            return {}
        if not isinstance(self.body, Mapping):
            raise ApiError(400, "VALIDATION_ERROR", "the request body must be a JSON object")
        return self.body


Handler = Callable[[Call], Reply]


# --- the write rules -------------------------------------------------------------------------


def _already_recorded(ledger: Ledger, item: DeltaItem) -> DeltaState | None:
    """The delta already recorded for this (customerId, referenceId); 409 if it differs."""
    key = item.reference_key
    found = None if key is None else ledger.by_reference.get(key)
    if found is not None and found.canonical != canonical_json(item.content()):
        raise ApiError(
            409,
            "DUPLICATE_REFERENCE_ID",
            f"referenceId {item.reference_id!r} of customer {item.customer_id} was already recorded "
            f"as {found.record_id} with different content",
            recordId=found.record_id,
        )
    return found


def _cadence_waits(ledger: Ledger, customers: Iterable[str], cadence: float | None) -> dict[str, float]:
    """Seconds each customer must still wait before its next write (absent: may write)."""
    if cadence is None:
        return {}
    now = loop_time()
    waits = {}
    for customer in customers:
        last = ledger.last_emit.get(customer)
        wait = None if last is None else last + cadence - now
        if wait is not None and wait > 0:
            waits[customer] = wait
    return waits


def _check_allowance(ledger: Ledger, allowance: int | None, count: int) -> None:
    """402 when `count` more deltas would pass the plan's allowance (FAILED ones do not count)."""
    if allowance is None:
        return
    reserved = sum(1 for d in ledger.deltas.values() if d.status != FAILED)
    if reserved + count > allowance:
        raise ApiError(
            402,
            "INSUFFICIENT_CREDITS",
            f"the plan's allowance of {allowance} deltas in {ledger.environment.value} is used up",
        )


def _write(call: Call, items: list[DeltaItem]) -> list[DeltaState]:
    """Record accepted items as one batch, start the cadence window, and start each on its way."""
    recorded = call.ledger.record(items, call.now, call.idempotency_key)
    moment = loop_time()
    for delta in recorded:
        call.ledger.last_emit[delta.customer_id] = moment
        call.schedule(delta)
    return recorded


def emit(call: Call) -> Reply:
    item = DeltaItem.parse(call.body)
    found = _already_recorded(call.ledger, item)
    if found is not None:
        return Reply.ok({**delta_json(found), "idempotent": True}, 200)
    cadence = call.settings.cadence_seconds
    waits = _cadence_waits(call.ledger, [item.customer_id], cadence)
    if waits:
        wait = waits[item.customer_id]
        raise too_many_requests(
            "CADENCE_LIMIT",
            f"customer {item.customer_id} was written less than {cadence:g}s ago",
            wait,
            customerId=item.customer_id,
        )
    _check_allowance(call.ledger, call.settings.allowance, 1)
    (delta,) = _write(call, [item])
    return Reply.ok(delta_json(delta), 201)


def _batch_row(index: int, delta: DeltaState) -> dict[str, Any]:
    return {
        "index": index,
        "customerId": delta.customer_id,
        "delta": delta.delta,
        "status": delta.status,
        "recordId": delta.record_id,
        "receiptId": to_hex(delta.proof_hash),
        "referenceId": delta.item.reference_id,
        "sequenceNumber": str(delta.sequence_number),
        "idempotent": False,
    }


def emit_batch(call: Call) -> Reply:
    """Each item succeeds or fails on its own: one request, one row per item, in order."""
    items = call.body_object().get("deltas")
    if not isinstance(items, list) or not items:
        raise bad_request("deltas must be a non-empty list")
    if len(items) > MAX_BATCH:
        raise bad_request(f"at most {MAX_BATCH} deltas per batch, got {len(items)}", "BATCH_TOO_LARGE")
    results: list[dict[str, Any] | None] = [None] * len(items)
    accepted: list[tuple[int, DeltaItem]] = []
    seen: dict[tuple[str, str], tuple[int, str]] = {}  # (customer, reference) -> first index, content
    for index, raw in enumerate(items):
        try:
            item = DeltaItem.parse(raw)
            found = _already_recorded(call.ledger, item)
        except ApiError as error:
            results[index] = {"index": index, "status": "FAILED", "error": error.code, "message": error.message}
            continue
        reference = item.reference_key
        if found is not None:
            results[index] = {**_batch_row(index, found), "idempotent": True}
        elif reference is not None and reference in seen:
            first, content = seen[reference]
            if content == canonical_json(item.content()):
                results[index] = {"duplicateOf": first}  # filled in below
            else:  # as a second emit with this reference would be: 409, here a failed row
                results[index] = {
                    "index": index,
                    "customerId": item.customer_id,
                    "status": "FAILED",
                    "error": "DUPLICATE_REFERENCE_ID",
                    "message": f"referenceId {item.reference_id!r} appears earlier in this batch "
                    "with different content",
                }
        else:
            if reference is not None:
                seen[reference] = (index, canonical_json(item.content()))
            accepted.append((index, item))
    waits = _cadence_waits(call.ledger, {item.customer_id for _, item in accepted}, call.settings.cadence_seconds)
    for index, item in accepted:
        if item.customer_id in waits:
            results[index] = {
                "index": index,
                "customerId": item.customer_id,
                "delta": item.delta,
                "status": "FAILED",
                "error": "CADENCE_LIMIT",
                "retryAfterSeconds": round(waits[item.customer_id], 3),
            }
    accepted = [(i, item) for i, item in accepted if item.customer_id not in waits]
    if accepted:
        _check_allowance(call.ledger, call.settings.allowance, len(accepted))
        recorded = _write(call, [item for _, item in accepted])
        for (index, _), delta in zip(accepted, recorded, strict=True):
            results[index] = _batch_row(index, delta)
    final: list[dict[str, Any]] = []
    for index, result in enumerate(results):
        assert result is not None
        if "duplicateOf" in result:
            first_row = results[result["duplicateOf"]]
            assert first_row is not None
            result = {**first_row, "index": index, "idempotent": True}
        final.append(result)
    failed = sum(1 for result in final if result["status"] == "FAILED")
    return Reply.ok(
        {
            "totalQueued": len(final) - failed,
            "totalFailed": failed,
            "results": final,
            "_efficiency": {"requests": 1, "items": len(final), "recorded": len(accepted)},
        }
    )


def checkpoint(call: Call) -> Reply:
    """Create a checkpoint over the VERIFIED deltas of a window (the same scope and root again
    answers the existing one, 200 with ``idempotent: true``)."""
    ledger, body, now = call.ledger, call.body_object(), call.now
    raw_customer = body.get("customerId")
    customer_id = None if raw_customer is None else customer_id_value(raw_customer)
    if customer_id is not None:
        ledger.customer(customer_id)
    scope = resolve_window(body, now, max_months=SCOPE_LIMITS["maxScopeMonths"])
    assert scope.start is not None
    assert scope.end is not None
    if scope.start > now:
        raise bad_request("the checkpoint window starts in the future")
    mode = optional_text(body, "mode")
    raw_fingerprints = body.get("fingerprints")
    fingerprints: tuple[str, ...] | None = None
    if raw_fingerprints is not None:
        if not isinstance(raw_fingerprints, list) or not all(isinstance(f, str) and f for f in raw_fingerprints):
            raise bad_request("fingerprints must be a list of non-empty strings")
        fingerprints = tuple(raw_fingerprints)
    wanted = None if fingerprints is None else set(fingerprints)
    included = tuple(
        d
        for d in ledger.deltas.values()
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
    found = ledger.checkpoint_by_scope.get(scope_key)
    if found is not None and found.proof_root == root:
        return Reply.ok({**checkpoint_json(found), "idempotent": True}, 200)
    names = {customer_id} if customer_id is not None else {d.customer_id for d in included}
    counted_by = {
        name: [d for d in ledger.by_customer.get(name, ()) if d.status == VERIFIED and d.created_at < scope.end]
        for name in names
    }
    created = CheckpointState(
        checkpoint_id=ledger.ids.new("chk"),
        environment=ledger.environment,
        customer_id=customer_id,
        scope=scope,
        mode=mode,
        fingerprints=fingerprints,
        deltas=included,
        proof_root=root,
        closing_balances={name: exact_sum(d.delta for d in deltas) for name, deltas in counted_by.items()},
        created_at=now,
        counted=frozenset(d.record_id for deltas in counted_by.values() for d in deltas),
    )
    ledger.add_checkpoint(created, scope_key)
    call.schedule(created)
    return Reply.ok({**checkpoint_json(created), "idempotent": False}, 201)


# --- the reads -------------------------------------------------------------------------------


def status(call: Call) -> Reply:
    return Reply.ok(delta_json(call.ledger.delta(call.match["recordId"])))


def derive_balance(call: Call) -> Reply:
    return Reply.ok(derive(call.ledger, call.match["customerId"], call.query, call.now))


def compare_balances(call: Call) -> Reply:
    return Reply.ok(compare(call.ledger, call.body_object(), call.now))


def find_gaps(call: Call) -> Reply:
    return Reply.ok(gaps(call.ledger, call.match["customerId"], call.query))


def checkpoints(call: Call) -> Reply:
    return Reply.ok(list_checkpoints(call.ledger, call.query, call.now))


def scoped_receipt(call: Call) -> Reply:
    return Reply.ok(receipt(call.ledger, call.match["customerId"], call.query, call.now, call.base_url))


def plan_usage(call: Call) -> Reply:
    return Reply.ok(usage(call.ledger, call.settings.allowance, call.now))


def limits(call: Call) -> Reply:
    return Reply.ok(dict(SCOPE_LIMITS))


def customer_list(call: Call) -> Reply:
    return Reply.ok(customers(call.ledger, call.query))


def customer_summary(call: Call) -> Reply:
    return Reply.ok(customers_summary(call.ledger))


def customer(call: Call) -> Reply:
    return Reply.ok(customer_detail(call.ledger, call.match["customerId"], call.query))


def deliveries(call: Call) -> Reply:
    return Reply.ok(call.dispatcher.listing(call.environment, call.query))


def retry_delivery(call: Call) -> Reply:
    sent = call.dispatcher.retry(call.environment, call.match["eventId"])
    return Reply.ok({**sent[0].wire(), "deliveries": [d.wire() for d in sent]})


def public_verify(call: Call) -> Reply:
    source = call.query.get("source")
    if source is not None and source not in ("db", "chain", "both"):
        raise bad_request(f"source must be db, chain or both, got {source!r}")
    data = verify(call.ledger, call.match["proofRoot"], call.base_url)
    if source is not None:
        data["source"] = source
    return Reply.ok(data)
