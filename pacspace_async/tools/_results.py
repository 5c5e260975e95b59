"""What a tool call hands back to the model: JSON-safe results and structured errors."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import Any

import attrs

from .._errors import ConflictError, ErrorAction, InvalidArgumentError, PacSpaceError

__all__ = ["error_result", "refusal", "to_jsonable"]

_NEXT_STEP: Mapping[ErrorAction, str] = {
    ErrorAction.FIX_INPUT: (
        "The request was refused because of its arguments: correct them as the message says, then call again. "
        "Do not repeat the same call unchanged."
    ),
    ErrorAction.RETRY: (
        "A temporary failure: call the tool again with exactly the same arguments (the same reference_id); "
        "it is never counted twice."
    ),
    ErrorAction.WAIT_AND_RETRY: (
        "Wait retry_after seconds (a few seconds if it is null), then call the tool again with exactly the "
        "same arguments (the same reference_id)."
    ),
    ErrorAction.ALERT_OPERATOR: (
        "Stop and tell a human operator: the API key, its permissions or the set-up must be fixed. "
        "Retrying will not help."
    ),
}

_POLICY_STEP = (
    "This agent's policy does not allow this call; nothing was sent. Do not retry it or work around it "
    "(for instance by splitting an amount): tell a human operator what you wanted to do."
)

_CONFLICT_STEP = (
    "This reference_id (or idempotency key) was already used with different arguments. If you are retrying, "
    "send exactly the original arguments; if this is a new event, use a new reference_id."
)

_ERROR_EXTRAS = ("customer_id", "record_id", "last_status", "key_id", "method", "path")


def error_result(error: PacSpaceError) -> dict[str, Any]:
    """A `PacSpaceError` as the structured, JSON-safe result a tool call returns.

    ``{"ok": false, "error": {"class", "action", "retryable", "retry_after", "message", "status",
    "code", "idempotency_key", "request_id", "next_step", ...}}``. Never a secret: messages are
    redacted by the SDK and the response body is left out.
    """
    action = error.action
    details: dict[str, Any] = {
        "class": type(error).__name__,
        "action": action.value,
        "retryable": error.retryable,
        "retry_after": _float_or_none(getattr(error, "retry_after", None)),
        "message": error.message,
        "status": getattr(error, "status", None),
        "code": getattr(error, "code", None),
        "idempotency_key": error.idempotency_key,
        "request_id": getattr(error, "request_id", None),
        "next_step": _next_step(error),
    }
    for name in _ERROR_EXTRAS:
        value = getattr(error, name, None)
        if isinstance(value, str):
            details[name] = value
    return {"ok": False, "error": details}


def _next_step(error: PacSpaceError) -> str:
    if isinstance(error, ConflictError):
        return _CONFLICT_STEP
    if str(getattr(error, "code", "")).startswith(("POLICY_", "APPROVAL_")):
        return _POLICY_STEP
    return _NEXT_STEP.get(error.action, "")


def _float_or_none(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def refusal(message: str, code: str, problems: list[str] | None = None) -> dict[str, Any]:
    result = error_result(InvalidArgumentError(message))
    result["error"]["code"] = code
    if problems is not None:
        result["error"]["errors"] = problems
    return result


def _instant(value: datetime) -> str:
    if value.tzinfo is not None and value.utcoffset() == timezone.utc.utcoffset(None):
        return value.replace(tzinfo=None).isoformat() + "Z"
    return value.isoformat()


def to_jsonable(value: Any) -> Any:
    """SDK results as plain JSON values: attrs models become dicts of their fields and public
    properties (``raw`` left out), Decimal a string, datetime ISO 8601, enums their value."""
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return _instant(value)
    if isinstance(value, date):
        return value.isoformat()
    if attrs.has(type(value)):
        out = {f.name: to_jsonable(getattr(value, f.name)) for f in attrs.fields(type(value)) if f.name != "raw"}
        for klass in type(value).__mro__:
            for name, member in vars(klass).items():
                if isinstance(member, property) and not name.startswith("_") and name not in out:
                    out[name] = to_jsonable(getattr(value, name))
        return out
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(item) for item in value]
    return str(value)
