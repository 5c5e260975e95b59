"""`Outbox`: emits stored durably first, then sent by a drain task, each exactly once.

An entry's idempotency key is fixed when it is stored and sent with every attempt, from any
process, so a send whose answer was lost (a crash, an outage) is recorded once when repeated.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .. import _codec
from .._environments import Environment
from .._errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    ConfigurationError,
    ErrorAction,
    PacSpaceError,
    PermissionDeniedError,
)
from .._idempotency import IdempotencyKeys
from .._logging import logger
from .._telemetry import current_trace_parent, metrics_enabled, outbox_send_span, record_outbox_stats
from ..resources._deltas import delta_body
from ._memory import MemoryStore
from ._postgres import PostgresStore
from ._sqlite import DEFAULT_SQLITE_FILE, SqliteStore
from ._store import OutboxStore, StoredEntry, StoreStats
from ._timing import LEASE_SECONDS, MAX_RETRY_DELAY, OutboxClock, lease_for, retry_delay
from ._views import OutboxEntry, OutboxStats, public_entry

if TYPE_CHECKING:
    from .._client import AsyncPacSpace

__all__ = [
    "LEASE_SECONDS",
    "MAX_RETRY_DELAY",
    "Outbox",
    "OutboxClock",
    "OutboxEntry",
    "OutboxStats",
    "lease_for",
    "open_store",
    "retry_delay",
]

_IDLE_POLL = 1.0
_PRUNE_EVERY = 3600.0
_REPORT_EVERY = 10.0
_OPERATION = "balance.delta"

DeadLetterHook = Callable[["OutboxEntry"], "Awaitable[None] | None"]


def open_store(store: OutboxStore | str | os.PathLike[str] | None) -> OutboxStore:
    """A store object, or one from a URL: ``sqlite:///relative/path``, ``sqlite:////absolute/path``,
    ``memory://``; None: the SQLite file ``pacspace-outbox.sqlite3`` in the working directory."""
    if store is None:
        return SqliteStore(DEFAULT_SQLITE_FILE)
    if isinstance(store, os.PathLike):
        return SqliteStore(store)
    if isinstance(store, str):
        if store.startswith("sqlite:///"):
            return SqliteStore(store[len("sqlite:///") :])
        if store == "memory://":
            return MemoryStore()
        if store.startswith(("postgresql://", "postgres://")):
            return PostgresStore(store)
        scheme = store.split("://", 1)[0] if "://" in store else ""
        # Only the scheme is shown: a database URL may hold a password.
        raise ConfigurationError(
            f"unsupported outbox store URL scheme {scheme!r}: use 'sqlite:///path/to/file.sqlite3' or 'memory://'"
        )
    if isinstance(store, OutboxStore):
        return store
    raise ConfigurationError("store must be an outbox store, a store URL or None")


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
    return value


class Outbox:
    """Durable emits: ``await outbox.emit(...)`` returns once the delta is stored; the drain
    started by ``async with`` sends it, keeping each customer's order, until PacSpace records it.

    >>> async with Outbox(pac, store="sqlite:///pacspace-outbox.sqlite3") as outbox:
    ...     entry = await outbox.emit(customer_id="cust_1", delta=Decimal("-1"), reason="usage",
    ...                               reference_id="inv_9")
    """

    def __init__(
        self,
        pac: AsyncPacSpace,
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
        self._pac = pac
        self._store = open_store(store)
        self._max_entries = int(_positive("max_entries", max_entries))
        self._max_bytes = int(_positive("max_bytes", max_bytes))
        if not isinstance(max_age, timedelta) or max_age <= timedelta(0):
            raise ConfigurationError(f"max_age must be a positive timedelta, got {max_age!r}")
        self._max_age = max_age.total_seconds()
        if not isinstance(keep_sent, timedelta) or keep_sent < timedelta(0):
            raise ConfigurationError(f"keep_sent must be a timedelta >= 0, got {keep_sent!r}")
        self._keep_sent = keep_sent.total_seconds()
        self._pruned_at: float | None = None
        self._environment = pac.environment.value
        self._settings = pac._requester.settings
        self._lease = lease_for(self._settings.deadline)
        self._store_kind = type(self._store).__name__.removesuffix("Store").lower()
        self._reported_at = float("-inf")
        self._concurrency = int(_positive("drain_concurrency", drain_concurrency))
        self._on_dead_letter = on_dead_letter
        self._clock = clock or OutboxClock()
        self._keys = IdempotencyKeys(pac.environment)
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._drain: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._paused_key: str | None = None  # the key refused, while the drain waits for another
        self._paused_at = 0.0
        self._paused = False

    def __repr__(self) -> str:
        return f"Outbox(store={self._store!r}, draining={self.draining})"

    @property
    def store(self) -> OutboxStore:
        return self._store

    @property
    def draining(self) -> bool:
        return self._drain is not None and not self._drain.done()

    # --- the caller's side ----------------------------------------------------------------------

    async def emit(
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
        """Store one delta durably (the arguments of ``pac.balance.emit``) and return its entry.

        The idempotency key is fixed now, as ``emit`` would choose it (yours, else derived from
        `reference_id` and the customer, else fresh), and every send uses it. Raises
        `OutboxFullError` when the outbox is full; bad arguments raise before anything is stored.
        """
        body = delta_body(
            customer_id=customer_id,
            delta=delta,
            reason=reason,
            reference_id=reference_id,
            metadata=metadata,
            adjusts=adjusts,
        )
        key = self._keys.for_call(
            operation=_OPERATION, caller_key=idempotency_key, reference=reference_id, scope=body["customerId"]
        )
        now = self._clock.wall()
        entry = StoredEntry(
            id=f"obx_{uuid.uuid4().hex}",
            customer_id=body["customerId"],
            idempotency_key=key,
            body=_codec.dumps(body).decode("utf-8"),
            created_at=now,
            next_attempt_at=now,
            trace_parent=current_trace_parent(),  # the send, maybe elsewhere and later, links back to it
        )
        await self._store.add(entry, max_entries=self._max_entries, max_bytes=self._max_bytes)
        self._wake.set()
        return public_entry(entry)

    async def get(self, entry_id: str) -> OutboxEntry | None:
        entry = await self._store.get(entry_id)
        return None if entry is None else public_entry(entry)

    async def stats(self) -> OutboxStats:
        """Counts of this outbox's environment (the client's); `other_environment` counts the rest."""
        now = self._clock.wall()
        raw: StoreStats = await self._store.stats(now=now, environment=self._environment)
        # Counted, not subtracted from a total: an emit landing between two reads is no stranger.
        others = [env.value for env in Environment if env.value != self._environment]
        elsewhere = sum([(await self._store.stats(now=now, environment=other)).pending for other in others])
        oldest = None if raw.oldest_pending_at is None else max(0.0, now - raw.oldest_pending_at)
        return OutboxStats(
            pending=raw.pending,
            dead=raw.dead,
            in_flight=raw.in_flight,
            oldest_pending_age=oldest,
            paused=self._paused,
            other_environment=elsewhere,
        )

    async def dead_letters(self, *, limit: int = 1000) -> list[OutboxEntry]:
        return [public_entry(entry) for entry in await self._store.dead_letters(limit=limit)]

    async def requeue(self, entry_id: str) -> bool:
        """Send a dead entry again (after fixing what refused it), with its own idempotency key."""
        requeued = await self._store.requeue(entry_id, now=self._clock.wall())
        self._wake.set()
        return requeued

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until nothing is pending (dead letters do not count); False if `timeout`
        seconds passed first. Needs the drain (``async with``)."""
        if not self.draining:
            raise RuntimeError("flush() needs the drain: use 'async with Outbox(...) as outbox'")
        try:
            await asyncio.wait_for(self._until_empty(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def _until_empty(self) -> None:
        self._wake.set()  # once: waking the drain on every look would make it spin
        while await self._store.has_pending(environment=self._environment):
            if not self.draining:
                raise RuntimeError("the outbox drain stopped")
            self._progress.clear()
            await self._progress.wait()

    # --- lifetime ---------------------------------------------------------------------------------

    async def __aenter__(self) -> Outbox:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def start(self) -> None:
        """Start the drain task on the running loop (``async with`` does it)."""
        if self._drain is None or self._drain.done():
            self._drain = asyncio.get_running_loop().create_task(self._run(), name="pacspace-outbox-drain")

    async def aclose(self, *, timeout: float = 10.0) -> None:
        """Drain for up to `timeout` seconds, then stop; what is left stays stored for the next run."""
        if self.draining:
            await self.flush(timeout)
        await self._stop()
        await self._store.aclose()

    async def _stop(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None:
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)
        sending = list(self._sending)
        for task in sending:
            task.cancel()
        await asyncio.gather(*sending, return_exceptions=True)

    # --- the drain --------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                self._wake.clear()
                if self._paused and not self._may_resume():
                    await self._idle(_IDLE_POLL)
                    continue
                free = self._concurrency - len(self._sending)
                claimed: Sequence[StoredEntry] = ()
                if free > 0:
                    try:
                        await self._prune_now_and_then()
                        await self._report_now_and_then()
                        claimed = await self._store.claim(
                            now=self._clock.wall(), limit=free, lease_seconds=self._lease, environment=self._environment
                        )
                    except Exception:  # a locked or full disk, a dropped database: try again soon
                        logger.exception("pacspace outbox: the store failed to hand out entries")
                for entry in claimed:
                    task = asyncio.get_running_loop().create_task(self._send(entry))
                    self._sending.add(task)
                    task.add_done_callback(self._sent)
                if not claimed:
                    self._progress.set()  # nothing ready: let flush() look again
                    await self._idle(_IDLE_POLL)
        finally:
            self._progress.set()

    async def _report_now_and_then(self) -> None:
        """Depth and oldest age for the ``pacspace.outbox.*`` gauges, when metrics are collected."""
        now = self._clock.wall()
        if now - self._reported_at < _REPORT_EVERY or not metrics_enabled(self._settings.meter_provider):
            return
        self._reported_at = now
        stats = await self.stats()
        record_outbox_stats(
            store=self._store_kind,
            pending=stats.pending,
            oldest_age=stats.oldest_pending_age,
            meter_provider=self._settings.meter_provider,
        )

    async def _prune_now_and_then(self) -> None:
        now = self._clock.wall()
        if self._pruned_at is not None and now - self._pruned_at < _PRUNE_EVERY:
            return
        if self._pruned_at is None:
            others = (await self.stats()).other_environment
            if others:
                logger.warning(
                    "pacspace outbox: %d pending entries belong to the other environment; this drain "
                    "(%s) leaves them for a client of theirs",
                    others,
                    self._environment,
                )
        self._pruned_at = now
        await self._store.prune(sent_before=now - self._keep_sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Storing the outcome failed: the lease runs out and the entry is sent again with
            # its key, which PacSpace answers from its idempotency memory.
            logger.error("pacspace outbox: could not store a send's outcome", exc_info=task.exception())
        self._progress.set()
        self._wake.set()

    def _may_resume(self) -> bool:
        # A new key (rotate_key, a provider read again) ends the pause; so does the longest
        # retry delay, so a key fixed where the client cannot see it is tried again.
        key_changed = self._pac.key_id != self._paused_key
        if key_changed or self._clock.wall() - self._paused_at >= MAX_RETRY_DELAY:
            self._paused = False
            logger.info("pacspace outbox: resuming the drain (key now %s)", self._pac.key_id)
        return not self._paused

    async def _idle(self, seconds: float) -> None:
        """Sleep (on the injectable clock) until `seconds` pass or something wakes the drain."""
        if self._wake.is_set():
            return
        waits = [asyncio.ensure_future(self._clock.sleep(seconds)), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _send(self, entry: StoredEntry) -> None:
        now = self._clock.wall()
        try:
            if now - entry.created_at > self._max_age:
                # PacSpace may have forgotten the key by now: resending could record it twice.
                await self._dead(
                    entry,
                    f"not sent within max_age ({self._max_age:.0f} s); check in PacSpace whether "
                    f"idempotency key {entry.idempotency_key} was recorded before sending it again",
                    "OUTBOX_MAX_AGE",
                    needs_reconciliation=True,
                )
                return
            if self._paused:
                await self._release(entry)
                return
            body = _codec.decode(entry.body)
            with outbox_send_span(entry.trace_parent, tracer_provider=self._settings.tracer_provider):
                record = await self._pac.balance.emit(
                    customer_id=body["customerId"],
                    delta=body["delta"],
                    reason=body["reason"],
                    reference_id=body.get("referenceId"),
                    metadata=body.get("metadata"),
                    adjusts=body.get("adjusts"),
                    idempotency_key=entry.idempotency_key,
                )
        except asyncio.CancelledError:
            await asyncio.shield(self._release(entry))
            raise
        except (AuthenticationError, PermissionDeniedError) as error:
            self._pause(error)
            await self._release(entry)
        except PacSpaceError as error:
            await self._failed(entry, error)
        except Exception as error:  # a bug or a broken store row: keep the entry, try later
            logger.exception("pacspace outbox: unexpected error sending entry %s", entry.id)
            await self._retry(entry, f"{type(error).__name__}: {error}", None, None)
        else:
            await self._store.mark_sent(entry.id, record_id=record.record_id)

    def _pause(self, error: APIStatusError) -> None:
        if not self._paused:
            logger.warning(
                "pacspace outbox: key %s was refused (%s); the drain pauses until the key changes",
                error.key_id or self._pac.key_id,
                error.status,
            )
        self._paused = True
        self._paused_key = self._pac.key_id
        self._paused_at = self._clock.wall()

    async def _failed(self, entry: StoredEntry, error: PacSpaceError) -> None:
        code = getattr(error, "code", None)
        if error.action is ErrorAction.FIX_INPUT and not isinstance(error, APIConnectionError):
            await self._dead(entry, error.message, code)
            return
        # An outage, a rate limit, or a problem for an operator (configuration): the entry
        # waits; nothing is given up that a person could still fix.
        await self._retry(entry, error.message, code, getattr(error, "retry_after", None))

    async def _retry(self, entry: StoredEntry, message: str, code: str | None, hint: float | None) -> None:
        attempts = entry.attempts + 1
        delay = retry_delay(attempts, hint=hint, jitter=self._clock.jitter)
        await self._store.retry_later(
            entry.id, at=self._clock.wall() + delay, attempts=attempts, error=message, error_code=code
        )

    async def _release(self, entry: StoredEntry) -> None:
        await self._store.retry_later(
            entry.id, at=entry.next_attempt_at, attempts=entry.attempts, error=entry.error, error_code=entry.error_code
        )

    async def _dead(
        self, entry: StoredEntry, message: str, code: str | None, *, needs_reconciliation: bool = False
    ) -> None:
        await self._store.mark_dead(entry.id, error=message, error_code=code, needs_reconciliation=needs_reconciliation)
        logger.warning("pacspace outbox: entry %s is a dead letter (%s)", entry.id, code or message)
        hook = self._on_dead_letter
        if hook is None:
            return
        dead = await self._store.get(entry.id)
        try:
            result = hook(public_entry(dead if dead is not None else entry))
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("pacspace outbox: on_dead_letter raised for entry %s", entry.id)
