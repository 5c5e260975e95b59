"""The read queries: derive, compare, checkpoints, receipt, verify, usage, gaps, customers.

Each is a function of a ledger and a request's decoded input that returns the ``data`` of the
answer, or raises `ApiError`. None changes the ledger, except that a receipt issues its proof
root (public verify answers for a root once it was handed out, as the real API does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from ._inputs import amount_value, bad_request, customer_id_value, int_value, optional_text
from ._ledger import FAILED, PROCESSING, QUEUED, VERIFIED, DeltaState, IssuedRoot, Ledger, verification_reference
from ._merkle import exact_sum, keccak256, merkle_root, to_hex
from ._render import checkpoint_json, delta_row, public_row
from ._scope import SCOPE_LIMITS, WINDOW_FIELDS, Scope, bucket, check_granularity, period_value, resolve_window
from ._wire import ApiError, iso

__all__ = [
    "compare",
    "customer_detail",
    "customers",
    "customers_summary",
    "derive",
    "gaps",
    "list_checkpoints",
    "receipt",
    "usage",
    "verify",
]


def _balance_scope(ledger: Ledger, fields: Mapping[str, object], customer_id: str, now: datetime) -> Scope:
    """A derive/compare scope, which may also start from a checkpoint or a record."""
    start_point = optional_text(fields, "startingCheckpoint")
    if start_point is None:
        return resolve_window(fields, now, max_months=SCOPE_LIMITS["maxScopeMonths"])
    combined = [name for name in WINDOW_FIELDS if fields.get(name) is not None]
    if combined:
        raise bad_request(
            f"startingCheckpoint cannot be combined with {', '.join(combined)}", "INVALID_SCOPE_COMBINATION"
        )
    kind = optional_text(fields, "startingCheckpointType") or "proofRoot"
    history = ledger.customer(customer_id)
    if kind in ("recordId", "anchorId"):
        anchor = ledger.deltas.get(start_point)
        if anchor is None or anchor.customer_id != customer_id:
            raise ApiError(404, "CHECKPOINT_NOT_FOUND", f"no record {start_point} for customer {customer_id}")
        through = exact_sum(
            d.delta for d in history if d.sequence_number <= anchor.sequence_number and d.status != FAILED
        )
        return Scope(None, None, after_sequence=anchor.sequence_number, starting_balance=through)
    if kind not in ("proofRoot", "itemsRoot", "checkpointId"):
        raise bad_request(f"startingCheckpointType must be proofRoot or recordId, got {kind!r}")
    for checkpoint in reversed(list(ledger.checkpoints.values())):
        if start_point in (to_hex(checkpoint.proof_root), checkpoint.checkpoint_id) and checkpoint.covers(customer_id):
            return Scope(
                None,
                None,
                starting_balance=checkpoint.closing_balances.get(customer_id, Decimal(0)),
                excluded=checkpoint.counted,
            )
    raise ApiError(404, "CHECKPOINT_NOT_FOUND", f"no checkpoint {start_point} covers customer {customer_id}")


def derive(ledger: Ledger, customer_id: str, query: Mapping[str, object], now: datetime) -> dict[str, Any]:
    history = ledger.customer(customer_id)
    scope = _balance_scope(ledger, query, customer_id, now)
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
        "deltas": [delta_row(d) for d in selected[offset : offset + limit]],
        "pagination": {"total": len(selected), "limit": limit, "offset": offset},
    }
    if granularity is not None:
        buckets: dict[str, list[DeltaState]] = {}
        for d in selected:
            buckets.setdefault(bucket(d.created_at, granularity), []).append(d)
        data["granularity"] = granularity
        data["breakdown"] = [
            {"bucket": name, "netChange": exact_sum(d.delta for d in items), "deltasCount": len(items)}
            for name, items in buckets.items()
        ]
    return data


def compare(ledger: Ledger, body: Mapping[str, object], now: datetime) -> dict[str, Any]:
    customer_id = customer_id_value(body.get("customerId"))
    yours = amount_value("yourBalance", body.get("yourBalance"))
    theirs = amount_value("theirBalance", body.get("theirBalance"))
    derived = derive(ledger, customer_id, {**body, "limit": 1}, now)
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


def list_checkpoints(ledger: Ledger, query: Mapping[str, object], now: datetime) -> dict[str, Any]:
    raw_customer = query.get("customerId")
    customer_id = None if raw_customer is None else customer_id_value(raw_customer)
    windowed = any(query.get(name) is not None for name in WINDOW_FIELDS)
    scope = resolve_window(query, now, max_months=10_000) if windowed else None
    limit = int_value(query, "limit", 50, lowest=1, highest=1000)
    offset = int_value(query, "offset", 0, lowest=0, highest=None)
    matching = [
        c
        for c in reversed(list(ledger.checkpoints.values()))
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
        "checkpoints": [checkpoint_json(c) for c in matching[offset : offset + limit]],
        "pagination": {"total": len(matching), "limit": limit, "offset": offset},
    }


def receipt(
    ledger: Ledger, customer_id: str, query: Mapping[str, object], now: datetime, base_url: str
) -> dict[str, Any]:
    """A scoped receipt over the customer's VERIFIED deltas; its root verifies publicly."""
    history = ledger.customer(customer_id)
    scope = resolve_window(query, now, max_months=SCOPE_LIMITS["maxScopeMonths"])
    assert scope.start is not None
    verified = [d for d in history if d.status == VERIFIED]
    included = tuple(d for d in verified if scope.contains(d))
    starting = exact_sum(d.delta for d in verified if d.created_at < scope.start)
    final = exact_sum((d.delta for d in included), starting)
    root = merkle_root(d.content_hash for d in included)
    root_hex = to_hex(root)
    environment = ledger.environment.value
    tag = keccak256(f"{environment}|{customer_id}|{scope.start}|{scope.end}|{root_hex}".encode())
    receipt_id = "rcpt_" + tag.hex()[:24]
    if included:
        ledger.issue(root_hex, IssuedRoot("receipt", deltas=included, issued_at=now))
    handle = "cus_" + keccak256(f"{environment}|{customer_id}".encode()).hex()[:12]
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
        "deltas": [delta_row(d) for d in included],
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


def verify(ledger: Ledger, proof_root: str, base_url: str) -> dict[str, Any]:
    """Public verify: ``verified: false`` (200) for a root the emulator never issued."""
    issued = ledger.roots.get(proof_root.lower())
    if issued is None:
        return {
            "verified": False,
            "proofRoot": proof_root,
            "message": f"this proof root was not issued in {ledger.environment.value}",
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
        "records": [public_row(d) for d in deltas],
        "verification": {
            "verificationReference": reference,
            "verificationExplorerUrl": f"{base_url}/verify/{proof_root.lower()}",
        },
    }


def usage(ledger: Ledger, allowance: int | None, now: datetime) -> dict[str, Any]:
    deltas = ledger.deltas.values()
    consumed = sum(1 for d in deltas if d.status == VERIFIED)
    pending = sum(1 for d in deltas if d.status in (QUEUED, PROCESSING))
    remaining = None if allowance is None else max(0, allowance - consumed - pending)
    return {
        "plan": "emulator" if allowance is None else "emulator-capped",
        "allowed": remaining is None or remaining > 0,
        "remaining": remaining,
        "includedDeltas": allowance,
        "consumedDeltas": consumed,
        "pendingDeltas": pending,
        "failedDeltas": sum(1 for d in deltas if d.status == FAILED),
        "period": f"{now.year:04d}-{now.month:02d}",
    }


def gaps(ledger: Ledger, customer_id: str, query: Mapping[str, object]) -> dict[str, Any]:
    """Runs of sequence numbers with no VERIFIED delta (FAILED, or still pending)."""
    history = ledger.customer(customer_id)
    latest = len(history)
    first = int_value(query, "fromSequence", 1, lowest=0, highest=None) or 1
    last = min(int_value(query, "toSequence", latest, lowest=0, highest=None), latest)
    limit = int_value(query, "limit", 100, lowest=1, highest=1000)
    found: list[dict[str, Any]] = []
    run: list[DeltaState] = []

    def close() -> None:
        if run:
            reasons = {FAILED if d.status == FAILED else "PENDING" for d in run}
            found.append(
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
        "gapCount": len(found),
        "gaps": found[:limit],
    }


def _customer_item(ledger: Ledger, customer_id: str, history: Sequence[DeltaState]) -> dict[str, Any]:
    return {
        "customerId": customer_id,
        "ledgerIdentifier": to_hex(keccak256(f"pacspace:ledger:v1:{ledger.environment.value}:{customer_id}".encode())),
        "totalDeltas": len(history),
        "computedBalance": exact_sum(d.delta for d in history if d.status != FAILED),
        "firstDeltaAt": iso(history[0].created_at),
        "lastDeltaAt": iso(history[-1].created_at),
    }


def _pagination(total: int, page: int, limit: int) -> dict[str, int]:
    return {"total": total, "page": page, "limit": limit, "totalPages": max(1, -(-total // limit))}


def customers(ledger: Ledger, query: Mapping[str, object]) -> dict[str, Any]:
    search = optional_text(query, "search")
    page = int_value(query, "page", 1, lowest=1, highest=None)
    limit = int_value(query, "limit", 25, lowest=1, highest=100)
    names = sorted(
        name
        for name, history in ledger.by_customer.items()
        if history and (not search or search.lower() in name.lower())
    )
    chosen = names[(page - 1) * limit : page * limit]
    return {
        "customers": [_customer_item(ledger, name, ledger.by_customer[name]) for name in chosen],
        "pagination": _pagination(len(names), page, limit),
    }


def customers_summary(ledger: Ledger) -> dict[str, Any]:
    deltas = list(ledger.deltas.values())
    by_status = {
        status: sum(1 for d in deltas if d.status == status) for status in (QUEUED, PROCESSING, VERIFIED, FAILED)
    }
    return {
        "totalCustomers": sum(1 for history in ledger.by_customer.values() if history),
        "totalDeltas": len(deltas),
        "verifiedDeltas": by_status[VERIFIED],
        "pendingDeltas": by_status[QUEUED] + by_status[PROCESSING],
        "failedDeltas": by_status[FAILED],
        "netBalance": exact_sum(d.delta for d in deltas if d.status != FAILED),
        "checkpoints": len(ledger.checkpoints),
        "verificationHealth": {
            "verifiedRatio": (by_status[VERIFIED] / len(deltas)) if deltas else 1.0,
            "byStatus": by_status,
        },
    }


def customer_detail(ledger: Ledger, customer_id: str, query: Mapping[str, object]) -> dict[str, Any]:
    history = ledger.customer(customer_id)
    page = int_value(query, "deltaPage", 1, lowest=1, highest=None)
    limit = int_value(query, "deltaLimit", 20, lowest=1, highest=1000)
    period = query.get("period")
    rows = history
    if period is not None:
        _, start, end = period_value(period)
        rows = [d for d in history if start <= d.created_at < end]
    newest_first = list(reversed(rows))
    chosen = newest_first[(page - 1) * limit : page * limit]
    latest = next((c for c in reversed(list(ledger.checkpoints.values())) if c.covers(customer_id)), None)
    return {
        **_customer_item(ledger, customer_id, history),
        "customerReference": to_hex(keccak256(customer_id.encode("utf-8"))),
        "customerPartition": ledger.environment.value,
        "latestCheckpoint": None if latest is None else checkpoint_json(latest),
        "recentActivity": {
            "items": [delta_row(d) for d in chosen],
            "pagination": _pagination(len(rows), page, limit),
        },
    }
