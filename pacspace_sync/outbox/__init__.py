# hand-written: the blocking twin of pacspace_async.outbox (a package, which the generator does not mirror)
"""A durable outbox for a blocking `PacSpace` client: emits stored first, then sent, each recorded once.

>>> from pacspace_sync.outbox import Outbox
>>> with PacSpace() as pac, Outbox(pac, store="sqlite:///pacspace-outbox.sqlite3") as outbox:
...     entry = outbox.emit(customer_id="cust_1", delta=Decimal("-1"), reason="usage", reference_id="inv_9")

The very same outbox as `pacspace_async.outbox` (the same stores, entries and errors): its drain
runs on the client's loop thread, so every thread of the process may emit through one outbox.
An `on_dead_letter` callable that is not a coroutine function runs in a worker thread there, so
it holds back neither the drain nor any other call. Close the outbox before the client (nested
``with`` blocks do).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
from collections.abc import Callable, Mapping
from datetime import timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any

import pacspace_async.outbox as _async_outbox
from pacspace_async.outbox import (
    DEFAULT_SQLITE_FILE,
    EntryState,
    MemoryStore,
    OutboxClock,
    OutboxEntry,
    OutboxFullError,
    OutboxStats,
    OutboxStore,
    SqliteStore,
    StoredEntry,
    StoreStats,
    open_store,
    retry_delay,
)
from pacspace_async.outbox._outbox import DeadLetterHook
from pacspace_sync._client import PacSpace

__all__ = [
    "DEFAULT_SQLITE_FILE",
    "EntryState",
    "MemoryStore",
    "Outbox",
    "OutboxClock",
    "OutboxEntry",
    "OutboxFullError",
    "OutboxStats",
    "OutboxStore",
    "SqliteStore",
    "StoreStats",
    "StoredEntry",
    "open_store",
    "retry_delay",
]


def _off_the_loop(hook: DeadLetterHook | None) -> DeadLetterHook | None:
    """A blocking hook runs in a worker thread: on the loop thread it would stall every call."""
    if hook is None or inspect.iscoroutinefunction(hook):
        return hook
    blocking: Callable[[OutboxEntry], Any] = hook

    async def in_a_thread(entry: OutboxEntry) -> None:
        result = await asyncio.to_thread(blocking, entry)
        if inspect.isawaitable(result):
            await result

    return in_a_thread


class Outbox:
    """Durable emits for a blocking client: ``outbox.emit(...)`` returns once the delta is
    stored; the drain started by ``with`` sends it, keeping each customer's order. See
    `pacspace_async.outbox.Outbox`.

    >>> with Outbox(pac, store="sqlite:///pacspace-outbox.sqlite3") as outbox:
    ...     entry = outbox.emit(customer_id="cust_1", delta=Decimal("-1"), reason="usage")
    """

    def __init__(
        self,
        pac: PacSpace,
        store: OutboxStore | str | os.PathLike[str] | None = None,
        *,
        max_entries: int = 100_000,
        max_bytes: int = 256 * 1024 * 1024,
        max_age: timedelta = timedelta(hours=24),
        drain_concurrency: int = 8,
        on_dead_letter: DeadLetterHook | None = None,
        keep_sent: timedelta = timedelta(days=7),
        clock: OutboxClock | None = None,
    ) -> None:
        self._portal = pac._portal
        self._wrapped = _async_outbox.Outbox(
            pac._wrapped,
            store,
            max_entries=max_entries,
            max_bytes=max_bytes,
            max_age=max_age,
            drain_concurrency=drain_concurrency,
            on_dead_letter=_off_the_loop(on_dead_letter),
            keep_sent=keep_sent,
            clock=clock,
        )

    def __repr__(self) -> str:
        return repr(self._wrapped)

    @property
    def store(self) -> OutboxStore:
        return self._wrapped.store

    @property
    def draining(self) -> bool:
        return self._wrapped.draining

    def emit(
        self,
        *,
        customer_id: str,
        delta: Decimal | int | str,
        reason: str,
        reference_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        adjusts: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> OutboxEntry:
        """Store one delta durably (the arguments of ``pac.balance.emit``) and return its entry;
        blocks until it is stored. Raises `OutboxFullError` when the outbox is full."""
        return self._portal.call(
            functools.partial(
                self._wrapped.emit,
                customer_id=customer_id,
                delta=delta,
                reason=reason,
                reference_id=reference_id,
                metadata=metadata,
                adjusts=adjusts,
                idempotency_key=idempotency_key,
            )
        )

    def get(self, entry_id: str) -> OutboxEntry | None:
        return self._portal.call(functools.partial(self._wrapped.get, entry_id))

    def stats(self) -> OutboxStats:
        return self._portal.call(self._wrapped.stats)

    def dead_letters(self, *, limit: int = 1000) -> list[OutboxEntry]:
        return self._portal.call(functools.partial(self._wrapped.dead_letters, limit=limit))

    def requeue(self, entry_id: str) -> bool:
        """Send a dead entry again (after fixing what refused it), with its own idempotency key."""
        return self._portal.call(functools.partial(self._wrapped.requeue, entry_id))

    def flush(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending (dead letters do not count); False if `timeout`
        seconds passed first. Needs the drain (``with``)."""
        return self._portal.call(functools.partial(self._wrapped.flush, timeout))

    def start(self) -> None:
        """Start the drain on the client's loop thread (``with`` does it)."""
        self._portal.call(self._wrapped.start)

    def close(self, *, timeout: float = 10.0) -> None:
        """Drain for up to `timeout` seconds, then stop; what is left stays stored for the next run."""
        self._portal.call(functools.partial(self._wrapped.aclose, timeout=timeout))

    def __enter__(self) -> Outbox:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
