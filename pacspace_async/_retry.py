"""When to send a call again, and how long to wait first: pure rules, no I/O.

`RetryPolicy.decide` reads what one attempt came back with (an `Outcome`) against the status
table in `_errors` and answers `Return`, `Raise` or `Retry(wait)`; the requester only carries
the answer out. Retried: 408, 429 (not CADENCE_LIMIT), 500, 502, 503, 504, connection errors and
timeouts. Never 401, 403 or any other 4xx: those need a person or a fixed input, not another try.
See "Requests and retries" and "The 429 gate" in docs/architecture.md.
"""

from __future__ import annotations

import email.utils
import enum
import math
import random
import time
from collections.abc import Callable, Mapping
from typing import Literal

import attrs

from ._errors import error_code, error_fields
from ._status import NoAnswer, status_rule

__all__ = [
    "NOTHING_TAKEN",
    "RETURN",
    "Decision",
    "GiveUp",
    "Outcome",
    "Raise",
    "Retry",
    "RetryPolicy",
    "Return",
    "Tally",
    "Wait",
    "backoff_delay",
    "outcome_of_answer",
    "outcome_of_failure",
    "parse_retry_after",
]

#: A 2xx with this code: the first request with the same idempotency key is still running.
PENDING = "IDEMPOTENCY_PENDING"


def backoff_delay(attempt: int, *, jitter: Callable[[float, float], float] = random.uniform) -> float:
    """The wait before retry ``attempt`` (0-based): ``min(8, 0.5 * 2**k) * uniform(0.5, 1)``."""
    return min(8.0, 0.5 * 2.0 ** min(attempt, 16)) * jitter(0.5, 1.0)


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def parse_retry_after(
    headers: Mapping[str, str],
    body: object = None,
    *,
    now: Callable[[], float] = time.time,
) -> float | None:
    """The server's wait hint in seconds, or None.

    First of: body ``retryAfterSeconds`` (flat or under ``error``), ``retry-after-ms``,
    ``Retry-After`` as seconds, ``Retry-After`` as an HTTP-date. Headers are looked up
    case-insensitively when `headers` is a plain dict.

    >>> parse_retry_after({"Retry-After": "1.5"})
    1.5
    """
    for fields in (error_fields(body), body if isinstance(body, Mapping) else {}):
        from_body = _seconds(fields.get("retryAfterSeconds"))
        if from_body is not None:
            return from_body
    ms = _header(headers, "retry-after-ms")
    if ms is not None:
        millis = _seconds(ms)
        if millis is not None:
            return millis / 1000.0
    value = _header(headers, "retry-after")
    if value is None:
        return None
    seconds = _seconds(value.strip())
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value: str | None = headers.get(name)
    if value is not None:
        return value
    if isinstance(headers, dict):
        for key, item in headers.items():
            if key.lower() == name:
                return str(item)
    return None


# --- what an attempt came back with ------------------------------------------------------------


@attrs.frozen
class Outcome:
    """One attempt as the retry rules see it: a status (or no answer), a code, a wait hint."""

    status: int | NoAnswer
    #: The server's error code (a 2xx has one only when it says ``IDEMPOTENCY_PENDING``).
    code: str | None = None
    #: The server's wait in seconds (see `parse_retry_after`), read only for answers that are
    #: not a plain success.
    hint: float | None = None


# Built once: a plain success, the hot path, allocates no outcome of its own.
_SUCCESSES = tuple(Outcome(status) for status in range(200, 300))
_SUCCESS_STATUSES = frozenset(range(200, 300))
_NO_ANSWER = {True: Outcome(NoAnswer.LOST), False: Outcome(NoAnswer.BROKEN)}


def outcome_of_answer(
    status: int, body: object, headers: Mapping[str, str], now: Callable[[], float] = time.time
) -> Outcome:
    """The outcome of an HTTP answer; `body` is decoded, `now` the wall clock (HTTP-date hints)."""
    if 200 <= status < 300 and (
        # The usual success body has no code at all: the quick test spares reading one.
        (type(body) is dict and "error" not in body and "code" not in body) or error_code(body) is None
    ):
        return _SUCCESSES[status - 200]
    return Outcome(status, error_code(body), parse_retry_after(headers, body, now=now))


def outcome_of_failure(retryable: bool) -> Outcome:
    """The outcome of an attempt that got no HTTP answer (`TransportFailure.retryable`)."""
    return _NO_ANSWER[retryable]


@attrs.frozen
class Tally:
    """What a call has spent so far. Each `Retry` carries the next one."""

    #: Resends so far: what errors report as `retries_taken`.
    retries: int = 0
    #: Those that count against `max_retries` (a 429's do not).
    budget_used: int = 0
    #: 429s answered to this call.
    refusals: int = 0
    #: Waits for the first request with this idempotency key; these are not retries.
    pending_waits: int = 0

    @property
    def attempts(self) -> int:
        return 1 + self.retries + self.pending_waits


NOTHING_TAKEN = Tally()


# --- the decisions -----------------------------------------------------------------------------


class Return(enum.Enum):
    """Hand the answer to the caller (an enum of one, so that ``is RETURN`` narrows the type)."""

    RETURN = "return"


RETURN = Return.RETURN


class GiveUp(enum.Enum):
    """Why a call raises instead of sending again."""

    FINAL = "the answer is not retried"
    KEY_REFUSED = "the key was refused"
    NO_RETRIES_LEFT = "max_retries is used up"
    WAIT_TOO_LONG = "the server's wait is above max_retry_after"
    DEADLINE = "the wait would pass the call's deadline"
    STILL_PENDING = "the first request with this idempotency key was still running at the deadline"


@attrs.frozen
class Raise:
    """Raise the error of this attempt (for `STILL_PENDING`: a timeout that says so)."""

    why: GiveUp
    #: A 429: how long the client's gate stays closed, for every request of the environment.
    gate_wait: float | None = None


class Wait(enum.Enum):
    """What a retry waits for."""

    BACKOFF = "backoff"  # a failure that may pass: one of max_retries
    PENDING = "pending"  # the first request with this key to finish: not a retry
    GATE = "gate"  # a 429: the wait is spent at the client's rate gate, with everyone else's


@attrs.frozen
class Retry:
    """Send the very same request again (same idempotency key) after `wait` seconds."""

    wait: float
    taken: Tally
    kind: Wait = Wait.BACKOFF

    @property
    def gate_wait(self) -> float | None:
        """A 429: how long the client's gate stays closed (this request waits there, not here)."""
        return self.wait if self.kind is Wait.GATE else None


Decision = Literal[Return.RETURN] | Raise | Retry

# The decisions that carry nothing of the call's own, built once.
_RAISE = {why: Raise(why) for why in GiveUp}


@attrs.frozen
class RetryPolicy:
    """How many times to retry, and the largest server wait the SDK will sleep through."""

    max_retries: int = 2
    max_retry_after: float = 60.0

    def decide(
        self,
        outcome: Outcome,
        taken: Tally,
        time_left: float,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> Decision:
        """What to do after an attempt, given what the call has spent and the seconds left.

        Pure: the same arguments (and `jitter`) give the same decision.
        """
        status = outcome.status
        if status in _SUCCESS_STATUSES:
            if outcome.code != PENDING:
                return RETURN
            wait = self.pending_delay(taken.pending_waits, outcome.hint, jitter=jitter)
            if wait >= time_left:
                return _RAISE[GiveUp.STILL_PENDING]
            return Retry(wait, attrs.evolve(taken, pending_waits=taken.pending_waits + 1), Wait.PENDING)
        rule = status_rule(status, outcome.code)
        if rule.key_refused:
            return _RAISE[GiveUp.KEY_REFUSED]
        if not rule.retried:
            return _RAISE[GiveUp.FINAL]
        if not rule.uses_budget:
            return self._at_gate(outcome.hint, taken, jitter)
        if taken.budget_used >= self.max_retries:
            return _RAISE[GiveUp.NO_RETRIES_LEFT]
        if outcome.hint is not None and outcome.hint > self.max_retry_after:
            return _RAISE[GiveUp.WAIT_TOO_LONG]
        wait = self.delay(taken.budget_used, outcome.hint, jitter=jitter)
        if wait >= time_left:
            return _RAISE[GiveUp.DEADLINE]
        return Retry(wait, attrs.evolve(taken, retries=taken.retries + 1, budget_used=taken.budget_used + 1))

    def _at_gate(self, hint: float | None, taken: Tally, jitter: Callable[[float, float], float]) -> Decision:
        # The key sends too fast: whatever this call does, the gate holds back every request of
        # the environment until the wait has passed. The deadline is checked at the gate.
        wait = hint if hint is not None else backoff_delay(taken.refusals, jitter=jitter)
        if self.max_retries == 0:
            return Raise(GiveUp.NO_RETRIES_LEFT, gate_wait=wait)
        if wait > self.max_retry_after:
            return Raise(GiveUp.WAIT_TOO_LONG, gate_wait=wait)
        return Retry(wait, attrs.evolve(taken, retries=taken.retries + 1, refusals=taken.refusals + 1), Wait.GATE)

    def delay(
        self,
        attempt: int,
        hint: float | None,
        *,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> float:
        """The server's hint when there is one, else exponential backoff with jitter."""
        return hint if hint is not None else backoff_delay(attempt, jitter=jitter)

    def pending_delay(
        self,
        waits: int,
        hint: float | None,
        *,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> float:
        """The wait before resending a request the server reports as still in progress.

        The server's hint, but never below a floor that grows with each wait: a hint of 0
        must not turn into a tight loop against a payments API.
        """
        floor = min(2.0, 0.1 * 2.0 ** min(waits, 5))
        return max(self.delay(min(waits, 4), hint, jitter=jitter), floor)
