"""The 429 gate: one per client and environment, shared by its `with_options` copies and its sync facade.

A 429 says that the *key* sends too fast, not that one request was unlucky. If every request
retried on its own at the server's hint, twenty callers would come back in the same instant and
nineteen of them would be refused again. So a 429 closes the gate for the whole environment until
the hint has passed, and then lets the held requests out one at a time, paced at a rate the gate
learns from the server:

- the first 429 sets the pace to the hint (what a token bucket asks for one more request), at
  most one second apart;
- a 429 to a request that was sent at the gate's pace halves the rate (multiplicative decrease);
- every success raises it by a twentieth of the rate set by the latest slow-down (additive
  increase: a hint from a half-full bucket can be far too short, so the step is not fixed by it);
- after `QUIET_SECONDS` without a 429 the gate stops pacing altogether.

Each turn carries jitter on top (never less than the pace), so that clients in other processes
sharing the key drift apart instead of colliding. The gate holds no locks: it lives on the
client's event loop and changes only between awaits. Times are the caller's monotonic clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs

__all__ = ["RateGate", "QUIET_SECONDS"]

#: The first pace learned from a hint is at most this many seconds between requests: a hint of
#: "30 s" (a fixed window) says when to come back, not how fast to go afterwards.
FIRST_PACE_CAP = 1.0
#: However often the server refuses, the gate lets at least one request through this often.
SLOWEST_PACE = 30.0
FASTEST_PACE = 0.001
#: Jitter added to each turn, as a share of the pace.
SPREAD = 0.2
QUIET_SECONDS = 10.0


@attrs.define
class RateGate:
    """When the next request of one environment may go out."""

    #: No request starts before this (the latest 429's hint).
    closed_until: float = 0.0
    #: Seconds between two requests; 0 while not pacing.
    pace: float = 0.0
    #: The earliest start of the next turn handed out.
    next_turn: float = 0.0
    #: Bumped when turns already handed out became wrong (a slower pace, a later reopening):
    #: a request that waited for a turn of an older epoch asks again.
    epoch: int = 0
    last_refusal: float = -math.inf
    step: float = 0.0  # the additive increase per success, in requests per second

    def holds(self, now: float) -> bool:
        """True when a request sent `now` must ask for a turn (the hot path's only cost)."""
        return self.pace != 0.0 or now < self.closed_until

    def turn(self, now: float, jitter: Callable[[float, float], float], *, latest: float) -> float | None:
        """Take the next turn: the seconds to wait (0: go now), or None if it would start after `latest`.

        None takes nothing: the caller gives up without costing anyone else a turn.
        """
        if self.pace and now >= self.closed_until and now - self.last_refusal > QUIET_SECONDS:
            self.pace = 0.0  # no 429 for a while: the server's limit is not being reached
        if not self.pace:  # a closed gate always paces: not pacing means open
            return 0.0
        start = max(now, self.closed_until, self.next_turn)
        spread = jitter(0.0, self.pace * SPREAD) if start > now else 0.0
        return self._reserve(now, start, spread, latest)

    def _reserve(self, now: float, start: float, spread: float, latest: float) -> float | None:
        start += spread
        if start > latest:
            return None
        # The next turn counts from when this one really goes out, jitter included: two requests
        # are never closer than the pace.
        self.next_turn = start + self.pace
        return start - now

    def refused(self, now: float, hint: float, sent_at: float) -> None:
        """A 429 (not a cadence limit) answered a request sent at `sent_at`; `hint` is its wait."""
        hint = max(hint, 0.0)
        slower = False
        if not self.pace:
            self.pace = min(max(hint, FASTEST_PACE), FIRST_PACE_CAP)
            slower = True
        elif sent_at >= self.last_refusal:
            # Sent at the gate's pace and still refused: the pace is too fast. Requests sent
            # before the last refusal belong to the burst that caused it and change nothing.
            self.pace = min(self.pace * 2.0, SLOWEST_PACE)
            slower = True
        if slower:
            self.step = 1.0 / self.pace / 20.0
        self.last_refusal = now
        reopens = max(self.closed_until, now + hint)
        later = reopens > self.next_turn
        self.closed_until = reopens
        if slower or later:
            self.next_turn = reopens
            self.epoch += 1

    def succeeded(self) -> None:
        """A request answered without a 429: raise the rate a little."""
        if not self.pace:
            return
        rate = 1.0 / self.pace + self.step
        self.pace = max(1.0 / rate, FASTEST_PACE)
