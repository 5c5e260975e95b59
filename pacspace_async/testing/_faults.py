"""Fault injection: seeded random faults, and scripted ones for a test that needs one exactly.

A random fault is decided from ``(seed, method, path, Idempotency-Key, n)``, where ``n`` counts
the earlier requests with the same method, path and key: the same requests draw the same
faults for the same seed, whatever order concurrent requests arrive in.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import attrs

__all__ = ["FAULT_KINDS", "Faults", "FaultPlan", "Injection"]

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

    def reset(self) -> None:
        self._seen.clear()
        self._injections.clear()

    def decide(self, method: str, path: str, template: str, idempotency_key: str | None) -> Decision | None:
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
