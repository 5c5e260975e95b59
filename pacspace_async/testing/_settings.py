"""The emulator's tunable behaviour, as the pipeline, the handlers and the settlement read it.

The `Emulator` itself is the settings object: a test may change ``emu.rate_limit`` or
``emu.allowance`` while it runs, and the next request sees the new value. The parts read the
values through this narrow view, so none of them depends on the facade.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

__all__ = ["FailRule", "Settings"]

FailRule = Callable[[Mapping[str, Any]], object]
"""Called with a delta (``recordId``, ``customerId``, ``delta`` as Decimal, ``reason``,
``referenceId``, ``metadata``, ``environment``, ``sequenceNumber``) when it is due to verify.
Truthy: the delta becomes FAILED (a str return value is used as its error text)."""


class Settings(Protocol):
    @property
    def verify_delay(self) -> float | None: ...

    @property
    def fail_rule(self) -> FailRule | None: ...

    @property
    def rate_limit(self) -> float | None: ...

    @property
    def cadence_seconds(self) -> float | None: ...

    @property
    def idempotency_pending_seconds(self) -> float: ...

    @property
    def allowance(self) -> int | None: ...
