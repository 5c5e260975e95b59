"""Fault injection: seeded random faults, and scripted ones for a test that needs one exactly.

A random fault is decided from ``(seed, method, path, Idempotency-Key, n)``, where ``n`` counts
the earlier requests with the same method, path and key: the same requests draw the same
faults for the same seed, whatever order concurrent requests arrive in.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

import attrs

__all__ = ["FAULT_KINDS", "FaultPlan", "Faults", "HeldAnswers", "Hold", "Injection"]

FAULT_KINDS: tuple[str, ...] = ("500", "502", "503", "drop_before_write", "drop_after_write", "slow")
"""``500``/``502``/``503``: an error answer before anything is done. ``drop_before_write``: the
connection is cut before anything is done. ``drop_after_write``: the request is carried out and
stored, then the connection is cut without an answer (a retry with the same Idempotency-Key gets
the stored answer). ``slow``: the answer comes ``slow_seconds`` late."""


def _kinds(value: Iterable[str]) -> tuple[str, ...]:
    kinds = (value,) if isinstance(value, str) else tuple(value)
    unknown = [kind for kind in kinds if kind not in FAULT_KINDS]
    if unknown or not kinds:
        raise ValueError(f"fault kinds must be a non-empty subset of {FAULT_KINDS}, got {kinds!r}")
    return kinds


def _paths(value: Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


def _check_rate(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be within 0 and 1, got {value!r}")


def _check_seconds(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0.0:
        raise ValueError(f"{attribute.name} must be >= 0 seconds, got {value!r}")


@attrs.frozen
class Faults:
    """Random faults for a share `rate` of requests, drawn among `kinds`.

    `paths`: only requests whose path starts with one of these (default: every request).
    `seed`: default the emulator's seed.

    >>> Faults(rate=0.3, kinds=("503", "drop_after_write"), paths=("/api/v1/balance/delta",))
    """

    rate: float = attrs.field(default=0.0, converter=float, validator=_check_rate)
    kinds: tuple[str, ...] = attrs.field(default=FAULT_KINDS, converter=_kinds)
    slow_seconds: float = attrs.field(default=0.05, converter=float, validator=_check_seconds)
    seed: int | None = None
    paths: tuple[str, ...] | None = attrs.field(default=None, converter=_paths)

    def applies_to(self, path: str) -> bool:
        return self.paths is None or any(path.startswith(prefix) for prefix in self.paths)


@attrs.define
class Injection:
    """A scripted fault: the next `count` matching requests get `kind`."""

    kind: str
    count: int
    method: str | None
    path: str | None
    seconds: float | None

    def matches(self, method: str, path: str, template: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.path is None or self.path in (path, template)


@attrs.define(eq=False)
class Hold:
    """Answers kept back: the next `count` matching requests (None: all) wait, once carried
    out, until released."""

    count: int | None
    method: str | None
    path: str | None
    caught: int = 0
    waiting: int = 0
    released: asyncio.Event = attrs.field(factory=asyncio.Event)

    def catches(self, method: str, path: str, template: str) -> bool:
        if self.released.is_set() or self.count == 0:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.path is None or self.path in (path, template)

    async def wait(self) -> None:
        self.caught += 1
        if self.count is not None:
            self.count -= 1
        self.waiting += 1
        try:
            await self.released.wait()
        finally:
            self.waiting -= 1


class HeldAnswers:
    """The handle of `Emulator.hold_answers()`: how many answers wait, and their release.

    >>> with emu.hold_answers(method="POST", path="/api/v1/balance/delta") as held:
    ...     ...  # requests are carried out; their answers wait here
    """

    def __init__(self, hold: Hold, plan: FaultPlan, run: Callable[[Callable[[], Any]], Any]) -> None:
        self._hold = hold
        self._plan = plan
        self._run = run  # runs its argument on the emulator's loop

    def __repr__(self) -> str:
        return f"HeldAnswers(caught={self.caught}, waiting={self.waiting})"

    @property
    def caught(self) -> int:
        """Requests caught so far (their answers waiting or released)."""
        return int(self._run(lambda: self._hold.caught))

    @property
    def waiting(self) -> int:
        """Answers waiting now."""
        return int(self._run(lambda: self._hold.waiting))

    def release(self) -> None:
        """Send the answers kept back (to whoever still listens) and hold no more."""
        self._run(lambda: self._plan.release(self._hold))

    def __enter__(self) -> HeldAnswers:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


@attrs.frozen
class Decision:
    kind: str
    seconds: float = 0.0


class FaultPlan:
    """Decides each request's fault: scripted injections first, then the seeded random draw."""

    def __init__(self, faults: Faults | None, seed: int) -> None:
        self.faults = faults
        self.seed = seed
        self._seen: dict[str, int] = {}
        self._injections: list[Injection] = []
        self._holds: list[Hold] = []
        self.outage: str | None = None  # a 5xx kind: every API request gets it while it is set

    def inject(
        self,
        kind: str,
        *,
        count: int = 1,
        method: str | None = None,
        path: str | None = None,
        seconds: float | None = None,
    ) -> None:
        _kinds((kind,))
        if count < 1:
            raise ValueError("count must be >= 1")
        if seconds is not None and seconds < 0:
            raise ValueError("seconds must be >= 0")
        self._injections.append(Injection(kind, count, method.upper() if method else None, path, seconds))

    def hold(self, *, count: int | None, method: str | None, path: str | None) -> Hold:
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ValueError(f"count must be a whole number >= 1 or None, got {count!r}")
        hold = Hold(count, method.upper() if method else None, path)
        self._holds.append(hold)
        return hold

    def hold_for(self, method: str, path: str, template: str) -> Hold | None:
        return next((hold for hold in self._holds if hold.catches(method, path, template)), None)

    def release(self, hold: Hold) -> None:
        hold.released.set()
        if hold in self._holds:
            self._holds.remove(hold)

    def release_all(self) -> None:
        for hold in list(self._holds):
            self.release(hold)

    def reset(self) -> None:
        """Forget faults drawn and injected; answers held are released. An outage stays on:
        its switch ends it."""
        self._seen.clear()
        self._injections.clear()
        self.release_all()

    def decide(self, method: str, path: str, template: str, idempotency_key: str | None) -> Decision | None:
        if self.outage is not None:
            return Decision(self.outage)
        for injection in self._injections:
            if injection.matches(method, path, template):
                injection.count -= 1
                if injection.count <= 0:
                    self._injections.remove(injection)
                default = self.faults.slow_seconds if self.faults is not None else 0.05
                return Decision(injection.kind, default if injection.seconds is None else injection.seconds)
        faults = self.faults
        if faults is None or faults.rate <= 0.0 or not faults.applies_to(path):
            return None
        name = f"{method} {path} {idempotency_key or ''}"
        if len(self._seen) > 200_000:  # a long-running emulator: keep memory bounded
            self._seen.clear()
        occurrence = self._seen.get(name, 0)
        self._seen[name] = occurrence + 1
        seed = self.seed if faults.seed is None else faults.seed
        draw = random.Random(f"{seed}|{name}|{occurrence}")
        if draw.random() >= faults.rate:
            return None
        return Decision(draw.choice(faults.kinds), faults.slow_seconds)
