"""Which failures are retried, and how long to wait: pure rules, no I/O.

Retried: 408, 429 (not CADENCE_LIMIT), 500, 502, 503, 504, connection errors and timeouts.
Never 401, 403 or any other 4xx: those need a person or a fixed input, not another try.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ._errors import RETRY_STATUSES, error_code, error_fields

__all__ = ["RetryPolicy", "backoff_delay", "parse_retry_after", "RETRYABLE_STATUSES"]

# Those whose action is RETRY, and 429 (WAIT_AND_RETRY) whose wait the SDK can sleep through.
RETRYABLE_STATUSES = RETRY_STATUSES | {429}
NOT_RETRIED_CODES = frozenset({"CADENCE_LIMIT"})


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


@attrs.frozen
class RetryPolicy:
    """How many times to retry, and the largest server wait the SDK will sleep through."""

    max_retries: int = 2
    max_retry_after: float = 60.0

    def is_retryable_status(self, status: int, body: Any) -> bool:
        return status in RETRYABLE_STATUSES and error_code(body) not in NOT_RETRIED_CODES

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
