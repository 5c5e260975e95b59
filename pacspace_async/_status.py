"""The status table: what each answer means for the caller, and what the SDK does about it itself.

One place, read by the errors (each error's `action`) and by the retry policy (what is sent
again, and whether it counts against `max_retries`). See docs/architecture.md, "Requests and
retries".
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

__all__ = ["STATUS_TABLE", "ErrorAction", "NoAnswer", "StatusRule", "action_for_status", "status_rule"]


class ErrorAction(str, enum.Enum):
    """What an agent should do about an error, without a human reading it."""

    RETRY = "retry"
    WAIT_AND_RETRY = "wait_and_retry"
    FIX_INPUT = "fix_input"
    ALERT_OPERATOR = "alert_operator"


class NoAnswer(enum.Enum):
    """An attempt that got no HTTP status, as a row of the status table."""

    LOST = "connection failed, dropped or timed out"  # the request may not have arrived
    BROKEN = "TLS failure or invalid URL"  # the same request can only fail the same way


@attrs.frozen
class StatusRule:
    """One row: the caller's next step, and whether the SDK sends the same request again."""

    action: ErrorAction
    #: Sent again by the SDK itself, with the same idempotency key.
    retried: bool = False
    #: Each resend counts against `max_retries`. A 429's do not: a rate limit is the key's, so
    #: its wait is spent at the client's gate, bounded by the call's deadline.
    uses_budget: bool = True
    #: The key was refused: `on_auth_error` is told, and a key provider is read again (401).
    key_refused: bool = False


_FIX_INPUT = StatusRule(ErrorAction.FIX_INPUT)
_OPERATOR = StatusRule(ErrorAction.ALERT_OPERATOR)  # 3xx too: a redirect is never followed with a key
_LATER = StatusRule(ErrorAction.RETRY)  # other 5xx (501, 505): worth a later try, not an instant one

#: Rows by status, by (status, server code) where a code changes the row, and for no answer.
#: A status not listed takes its class's row: 3xx `_OPERATOR`, 4xx `_FIX_INPUT`, 5xx `_LATER`.
STATUS_TABLE: Mapping[int | tuple[int, str] | NoAnswer, StatusRule] = {
    **dict.fromkeys((400, 402, 404, 409, 412, 422), _FIX_INPUT),
    **dict.fromkeys((401, 403), StatusRule(ErrorAction.ALERT_OPERATOR, key_refused=True)),
    **dict.fromkeys((408, 500, 502, 503, 504, NoAnswer.LOST), StatusRule(ErrorAction.RETRY, retried=True)),
    NoAnswer.BROKEN: _OPERATOR,
    429: StatusRule(ErrorAction.WAIT_AND_RETRY, retried=True, uses_budget=False),
    # One customer written to too often: waiting at the client-wide gate would hold back every
    # other customer's writes, so the caller decides when to write to this one again.
    (429, "CADENCE_LIMIT"): StatusRule(ErrorAction.WAIT_AND_RETRY),
}


def status_rule(status: int | NoAnswer, code: str | None = None) -> StatusRule:
    """The table's row for an answer: its code's, else its status's, else its status class's."""
    if isinstance(status, NoAnswer):
        return STATUS_TABLE[status]
    if code is not None:
        by_code = STATUS_TABLE.get((status, code))
        if by_code is not None:
            return by_code
    rule = STATUS_TABLE.get(status)
    if rule is not None:
        return rule
    if status < 400:
        return _OPERATOR
    return _LATER if status >= 500 else _FIX_INPUT


def action_for_status(status: int) -> ErrorAction:
    """The agent's next step for an HTTP error status."""
    return status_rule(status).action
