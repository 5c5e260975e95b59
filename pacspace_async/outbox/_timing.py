"""When the drain sends: its clock, the wait after a failed send, and how long a claim holds."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import attrs

__all__ = ["FIRST_RETRY_DELAY", "LEASE_SECONDS", "MAX_RETRY_DELAY", "OutboxClock", "lease_for", "retry_delay"]

MAX_RETRY_DELAY = 15 * 60.0
FIRST_RETRY_DELAY = 1.0
# Longer than any one send (the client's deadline, 120 s by default; twice a longer deadline):
# a claim older than this belongs to a process that died, and another may take the entry over.
LEASE_SECONDS = 300.0


@attrs.frozen
class OutboxClock:
    """Time as the drain sees it: wall time (shared by processes) and its waits."""

    wall: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    jitter: Callable[[float, float], float] = random.uniform


def retry_delay(attempts: int, *, hint: float | None, jitter: Callable[[float, float], float]) -> float:
    """The wait after the `attempts`-th failed send: doubling from 1 s, capped at 15 minutes,
    never shorter than the server's hint; jittered down so processes drift apart."""
    base = min(MAX_RETRY_DELAY, FIRST_RETRY_DELAY * 2.0 ** min(max(attempts - 1, 0), 20))
    delay = base * jitter(0.5, 1.0)
    return min(MAX_RETRY_DELAY, max(delay, hint or 0.0))


def lease_for(deadline: float) -> float:
    """How long a claim holds: longer than any one send may take (the client's deadline), so an
    entry is only taken over from a process that died, never from one still sending it."""
    return max(LEASE_SECONDS, 2.0 * deadline)
