"""Settlement: recorded deltas and checkpoints reach their final status, and webhooks announce it.

While serving, each new item gets timers on the event loop (a delta turns PROCESSING half-way
through ``verify_delay``, then VERIFIED or, by the ``fail_rule``, FAILED). With
``verify_delay=None``, or once the emulator closed, items wait for `settle`, which finishes
them all at once. After close nothing is published: there is nobody to deliver webhooks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from .._environments import Environment
from ._deliveries import Dispatcher
from ._ledger import VERIFIED, CheckpointState, DeltaState, Ledger
from ._render import checkpoint_verified_event, delta_failed_event, delta_verified_event
from ._settings import Settings

__all__ = ["Settlement"]

Item = DeltaState | CheckpointState


def rule_input(delta: DeltaState) -> dict[str, Any]:
    """What a `fail_rule` is given."""
    return {
        "recordId": delta.record_id,
        "environment": delta.environment.value,
        "sequenceNumber": delta.sequence_number,
        **delta.item.content(),
    }


class Settlement:
    """Moves items to their final status: on timers while serving, or all at once in `settle`."""

    def __init__(
        self,
        *,
        ledgers: Mapping[Environment, Ledger],
        dispatcher: Dispatcher,
        settings: Settings,
        now: Callable[[], datetime],
    ) -> None:
        self._ledgers = ledgers
        self._dispatcher = dispatcher
        self._settings = settings
        self._now = now
        self._timers: dict[Item, list[asyncio.TimerHandle]] = {}
        self._unsettled: dict[Item, None] = {}  # pending with no timer (insertion ordered)
        self.closing = False  # set on close: requests still finishing schedule nothing more

    def schedule(self, item: Item) -> None:
        """Start a new item on its way (called by the handler that recorded it)."""
        delay = self._settings.verify_delay
        if self.closing or delay is None:  # no timers: pending until settle()
            self._unsettled[item] = None
            return
        loop = asyncio.get_running_loop()
        handles = [loop.call_later(delay, self._finish, item)]
        if isinstance(item, DeltaState):
            handles.insert(0, loop.call_later(delay / 2, self._processing, item))
        self._timers[item] = handles

    def settle(self) -> None:
        """Finish every pending item now."""
        pending = list(self._timers) + [item for item in self._unsettled if item not in self._timers]
        for item in pending:
            self._finish(item)

    def stop_timers(self) -> None:
        """On close: what was on its way stays pending, for a later `settle`."""
        for item, handles in self._timers.items():
            for handle in handles:
                handle.cancel()
            self._unsettled[item] = None
        self._timers.clear()

    def clear(self) -> None:
        """On reset: forget every pending item."""
        for handles in self._timers.values():
            for handle in handles:
                handle.cancel()
        self._timers.clear()
        self._unsettled.clear()

    def _processing(self, delta: DeltaState) -> None:
        self._ledgers[delta.environment].mark_processing(delta, self._now())

    def _finish(self, item: Item) -> None:
        for handle in self._timers.pop(item, ()):
            handle.cancel()
        self._unsettled.pop(item, None)
        ledger = self._ledgers[item.environment]
        now = self._now()
        publish = self._dispatcher.publish if not self.closing else (lambda *_: None)
        if isinstance(item, CheckpointState):
            if item.status != VERIFIED:
                ledger.mark_checkpoint_verified(item, now)
                publish(item.environment, "checkpoint.verified", checkpoint_verified_event(item))
            return
        if item.final:
            return
        ledger.mark_processing(item, now)
        error = self._failure(item)
        if error is None:
            ledger.mark_verified(item, now)
            publish(item.environment, "delta.verified", delta_verified_event(item))
        else:
            ledger.mark_failed(item, now, error)
            publish(item.environment, "delta.failed", delta_failed_event(item))

    def _failure(self, delta: DeltaState) -> str | None:
        rule = self._settings.fail_rule
        if rule is None:
            return None
        try:
            verdict = rule(rule_input(delta))
        except Exception as exc:
            return f"fail_rule raised {type(exc).__name__}: {exc}"
        if not verdict:
            return None
        return verdict if isinstance(verdict, str) else "rejected by the emulator's fail_rule"
