"""The emulator's two clocks.

Timestamps on the wire come from the wall clock the `Emulator` is given (`clock=`, injectable
for tests). Rate and cadence windows are measured on the event loop's clock instead, as the
README says: a test that fakes the wall clock still sees windows close in real time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from ._wire import utc

__all__ = ["loop_time", "now_utc"]


def loop_time() -> float:
    """The clock of rate and cadence windows: the running event loop's."""
    return asyncio.get_running_loop().time()


def now_utc(clock: Callable[[], float]) -> datetime:
    """The wall clock's time, as the aware UTC datetime every timestamp is made from."""
    return utc(clock())
