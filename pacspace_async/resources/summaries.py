"""``pac.summaries``: queue windowed usage totals and send them as paced batches.

A summary is one customer's usage total over a time window. Queued summaries are sent through
`balance.emit_batch` by `flush()`, by a timer task on the running event loop, or at `aclose()`.
No thread, no ``atexit`` hook: the scheduler lives and dies with its event loop.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import math
import secrets
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import attrs

from .._errors import BadRequestError, ConfigurationError, InvalidArgumentError, UnprocessableEntityError
from .._logging import logger
from .._models import parse_datetime
from .._requester import Clock
from ..models.summaries import FlushReport, SummaryFailure, SummaryProfile, SummaryQueueState
from ._args import MAX_REASON_LENGTH, amount_arg, customer_id_arg, mapping_arg, reference_id_arg, text_arg
from ._base import NO_OPTIONS, CallOptions, call_options
from ._batch import BATCH_LIMIT
from .balance import AsyncBalance

__all__ = ["AsyncSummaries", "summary_reference_id"]

_REASON_MAX = MAX_REASON_LENGTH
# Errors about the content of one request: the next chunk may well go through, so keep going.
# Anything else (auth, credits, rate limits, the network) would fail every chunk the same way.
_CHUNK_ERRORS = (InvalidArgumentError, BadRequestError, UnprocessableEntityError)


def _window(name: str, value: object) -> tuple[datetime, str]:
    """An aware UTC datetime and its canonical text (``...Z``; microseconds only when non-zero)."""
    # parse_datetime also takes epoch numbers; the API's windows are timestamps, so refuse them.
    if not isinstance(value, (datetime, str)):
        raise InvalidArgumentError(f"{name} must be a datetime or an ISO 8601 string, not {type(value).__name__}")
    try:
        moment = parse_datetime(value).astimezone(timezone.utc)
    except (TypeError, ValueError, OverflowError):
        raise InvalidArgumentError(
            f"{name} must be an ISO 8601 timestamp such as 2026-03-17T00:00:00Z, got {value!r}"
        ) from None
    return moment, moment.replace(tzinfo=None).isoformat() + "Z"


def _reference_id(customer_id: str, delta: Decimal, window_start: str, window_end: str) -> str:
    # The official SDK hashes the delta as a Python float (-1 -> -1.0); doing the same keeps
    # ids identical across both SDKs, so a switch between them cannot double-record a window.
    canonical = json.dumps(
        {"customerId": customer_id, "delta": float(delta), "windowStart": window_start, "windowEnd": window_end},
        sort_keys=True,
        separators=(",", ":"),
    )
    return "sum_" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:48]


def summary_reference_id(
    customer_id: str,
    delta: Decimal | int | str,
    window_start: datetime | str,
    window_end: datetime | str,
) -> str:
    """The default reference id of a summary, identical to the official SDK's.

    Timestamps are normalised to UTC first (naive means UTC), so equal instants give equal ids.

    >>> summary_reference_id("cust_1", -1, "2026-03-17T00:00:00Z", "2026-03-18T00:00:00Z")
    'sum_9a91e85a95e6821e0416faffd4e8c5e2de65dfe8e9388456'
    """
    return _reference_id(
        customer_id_arg(customer_id),
        amount_arg("delta", delta, nonzero=True),
        _window("window_start", window_start)[1],
        _window("window_end", window_end)[1],
    )


@attrs.frozen
class _Summary:
    customer_id: str
    delta: Decimal
    window_start: str
    window_end: str
    reason: str | None
    reference_id: str
    metadata: Mapping[str, Any] | None


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


class AsyncSummaries:
    """Client-side summary scheduler: queue usage totals per window, flush them in paced batches.

    Re-queuing a customer's window replaces the earlier total (last write wins). Summaries are
    sent every `cadence` seconds by a task on the running loop (started by the first `queue()`
    made inside one), by `flush()`, and by `aclose()`.

    >>> pac.summaries.queue(customer_id="cust_1", delta=Decimal("-42"),
    ...                     window_start="2026-03-17T00:00:00Z", window_end="2026-03-18T00:00:00Z")
    >>> report = await pac.summaries.flush()
    """

    def __init__(self, balance: AsyncBalance, clock: Clock | None = None) -> None:
        self._balance = balance
        self._clock = clock if clock is not None else Clock()
        self._queue: dict[str, _Summary] = {}
        # queue() bumps _version; a flush records the version it saw. The immediate profile's
        # task uses the pair to stop once nothing new arrived, instead of spinning on failures.
        self._version = 0
        self._flushed_version = 0
        self._task: asyncio.Task[None] | None = None
        self._sleeping: asyncio.Task[None] | None = None
        self._next_flush_at: float | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._last_request_at: float | None = None
        self._closed = False
        self._profile = SummaryProfile.DAILY
        self._enterprise = False
        self._cadence = SummaryProfile.DAILY.default_cadence
        self._max_deltas = BATCH_LIMIT
        self._interval = 6.0
        self._default_reason = "usage_summary"
        self._auto_flush = True

    def __repr__(self) -> str:
        return f"AsyncSummaries(profile={self._profile.value!r}, queued={len(self._queue)}, closed={self._closed})"

    # --- configuration ----------------------------------------------------------------------

    def configure(
        self,
        *,
        profile: SummaryProfile | str = SummaryProfile.DAILY,
        enterprise: bool = False,
        cadence: float | None = None,
        max_deltas_per_request: int = BATCH_LIMIT,
        max_requests_per_minute: float = 10,
        default_reason: str = "usage_summary",
        auto_flush: bool = True,
    ) -> None:
        """Set how and when summaries are sent; every option not given returns to its default.

        `cadence` is in seconds (default: daily 86400, sub_daily 21600, immediate 0).
        `sub_daily` and `immediate` need ``enterprise=True``. Requests are spaced at least
        ``60 / max_requests_per_minute`` seconds apart; each carries up to
        `max_deltas_per_request` summaries (clamped to 1..100).

        >>> pac.summaries.configure(profile="sub_daily", enterprise=True, cadence=3600)
        """
        try:
            chosen = SummaryProfile(profile)
        except ValueError:
            valid = ", ".join(repr(p.value) for p in SummaryProfile)
            raise ConfigurationError(f"profile must be one of {valid}, got {profile!r}") from None
        for name, flag in (("enterprise", enterprise), ("auto_flush", auto_flush)):
            if not isinstance(flag, bool):
                raise ConfigurationError(f"{name} must be True or False, got {flag!r}")
        if chosen is not SummaryProfile.DAILY and not enterprise:
            raise ConfigurationError(
                f"profile {chosen.value!r} is for enterprise accounts: pass enterprise=True if yours is one, "
                "or use profile='daily'"
            )
        if cadence is not None and (
            isinstance(cadence, bool) or not isinstance(cadence, (int, float)) or not 0 <= cadence < math.inf
        ):
            raise ConfigurationError(f"cadence must be a finite number of seconds >= 0, got {cadence!r}")
        if chosen is SummaryProfile.IMMEDIATE and cadence:
            raise ConfigurationError(
                "profile 'immediate' sends as soon as a summary is queued and takes no cadence; "
                "omit cadence, or use profile='sub_daily' with a cadence"
            )
        if chosen is not SummaryProfile.IMMEDIATE and cadence is not None and cadence <= 0:
            raise ConfigurationError(
                f"profile {chosen.value!r} needs a cadence > 0 seconds; use profile='immediate' to send at once"
            )
        if isinstance(max_deltas_per_request, bool) or not isinstance(max_deltas_per_request, int):
            raise ConfigurationError(f"max_deltas_per_request must be an int, got {max_deltas_per_request!r}")
        if (
            isinstance(max_requests_per_minute, bool)
            or not isinstance(max_requests_per_minute, (int, float))
            or not 0 < max_requests_per_minute < math.inf
        ):
            raise ConfigurationError(
                f"max_requests_per_minute must be a positive number, got {max_requests_per_minute!r}"
            )
        if not isinstance(default_reason, str) or not default_reason.strip() or len(default_reason) > _REASON_MAX:
            raise ConfigurationError(f"default_reason must be a non-empty string of at most {_REASON_MAX} characters")

        self._profile = chosen
        self._enterprise = enterprise
        self._cadence = chosen.default_cadence if cadence is None else float(cadence)
        # The API takes at most 100 deltas per batch; the official SDK clamps rather than refuses.
        self._max_deltas = min(max(max_deltas_per_request, 1), BATCH_LIMIT)
        self._interval = 60.0 / max_requests_per_minute
        self._default_reason = default_reason
        self._auto_flush = auto_flush
        self._restart_timer()

    # --- queueing ---------------------------------------------------------------------------

    def queue(
        self,
        *,
        customer_id: str,
        delta: Decimal | int | str,
        window_start: datetime | str,
        window_end: datetime | str,
        reason: str | None = None,
        reference_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Queue one customer's usage total for a window; returns its reference id. No I/O.

        Queuing the same customer and window again replaces the earlier total until it is sent.
        Timestamps are datetimes or ISO 8601 strings (naive means UTC).

        >>> ref = pac.summaries.queue(customer_id="cust_1", delta=Decimal("-12.5"),
        ...                           window_start="2026-03-17T00:00:00Z", window_end="2026-03-18T00:00:00Z")
        """
        self._check_open()
        customer = customer_id_arg(customer_id)
        amount = amount_arg("delta", delta, nonzero=True)
        start_at, start = _window("window_start", window_start)
        end_at, end = _window("window_end", window_end)
        if end_at <= start_at:
            raise InvalidArgumentError(f"window_end ({end}) must be after window_start ({start})")
        if reason is not None:
            text_arg("reason", reason, max_length=_REASON_MAX)
        reference = (
            _reference_id(customer, amount, start, end) if reference_id is None else reference_id_arg(reference_id)
        )
        extra = mapping_arg("metadata", metadata)
        self._queue[f"{customer}|{start}|{end}"] = _Summary(
            customer_id=customer,
            delta=amount,
            window_start=start,
            window_end=end,
            reason=reason,
            reference_id=reference,
            # A copy: the caller may reuse and change its dict before the flush sends this one.
            metadata=None if extra is None else copy.deepcopy(extra),
        )
        self._version += 1
        self._ensure_timer()
        return reference

    # --- sending ----------------------------------------------------------------------------

    async def flush(
        self,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> FlushReport:
        """Send everything queued now and report what happened. Waits for a flush underway.

        Recorded summaries leave the queue (a replay counts as recorded); failed ones stay and
        are listed in `failures`. Request errors are reported, not raised; bad options are
        raised before anything is sent. There is no `idempotency_key`: each flush sends fresh
        keys on purpose (see `_flush_locked`), and items are de-duplicated by reference id.

        >>> report = await pac.summaries.flush(timeout=10)
        """
        self._check_open()
        report = await self._flush(call_options(timeout, max_retries, extra_headers).checked())
        self._ensure_timer()
        return report

    async def _flush(self, options: CallOptions = NO_OPTIONS) -> FlushReport:
        """`options`: the per-call options of `emit_batch` for this flush's requests."""
        async with self._loop_lock():
            return await self._flush_locked(options)

    async def _flush_locked(self, options: CallOptions) -> FlushReport:
        started_at = self._now()
        self._flushed_version = self._version
        profile = self._profile
        size = self._max_deltas
        pending = list(self._queue.items())
        # A fresh key per flush, on purpose: a key derived from the items would make the server
        # replay an earlier answer, failures included. The server de-duplicates batch items by
        # reference id, so resending an item already recorded comes back as a replay.
        flush_id = secrets.token_hex(8)
        failures: list[SummaryFailure] = []
        attempted = submitted = replayed = requests = 0
        for number, begin in enumerate(range(0, len(pending), size)):
            chunk = pending[begin : begin + size]
            await self._pace()
            self._last_request_at = self._clock.monotonic()
            requests += 1
            attempted += len(chunk)
            try:
                result = await self._balance.emit_batch(
                    [self._wire(summary, profile) for _, summary in chunk],
                    idempotency_key=f"summaries:{flush_id}:{number}",
                    timeout=options.timeout,
                    max_retries=options.max_retries,
                    extra_headers=options.extra_headers,
                )
            except Exception as error:
                failures.extend(
                    SummaryFailure(summary.customer_id, summary.reference_id, _describe(error), error)
                    for _, summary in chunk
                )
                if isinstance(error, _CHUNK_ERRORS):
                    continue
                break
            by_index = {item.index: item for item in result.results}
            for position, (key, summary) in enumerate(chunk):
                item = by_index.get(position)
                if item is None or item.failed:
                    # No answer for an item is not a success: keep it, the resend is de-duplicated.
                    code = "NO_RESULT" if item is None else item.error or item.status
                    failures.append(SummaryFailure(summary.customer_id, summary.reference_id, code))
                    continue
                # The window may have been re-queued with a new total while this request was out.
                if self._queue.get(key) is summary:
                    del self._queue[key]
                submitted += 1
                replayed += item.replayed is True
        return FlushReport(
            profile=profile,
            started_at=started_at,
            finished_at=self._now(),
            attempted=attempted,
            submitted=submitted,
            failed=len(failures),
            replayed=replayed,
            request_count=requests,
            queued_after_flush=len(self._queue),
            failures=tuple(failures),
        )

    def _wire(self, summary: _Summary, profile: SummaryProfile) -> dict[str, Any]:
        return {
            "customer_id": summary.customer_id,
            # Sent exact (the official SDK sends a float); only the reference id uses the float.
            "delta": summary.delta,
            "reason": summary.reason or self._default_reason,
            "reference_id": summary.reference_id,
            "metadata": {
                "summaryWindowStart": summary.window_start,
                "summaryWindowEnd": summary.window_end,
                "summaryProfile": profile.value,
                "submissionType": "tenant_summary",
                **(summary.metadata or {}),
            },
        }

    async def _pace(self) -> None:
        # Spacing counts from the previous request, even one of an earlier flush.
        if self._last_request_at is None:
            return
        wait = self._last_request_at + self._interval - self._clock.monotonic()
        if wait > 0:
            await self._clock.sleep(wait)

    def _loop_lock(self) -> asyncio.Lock:
        # Created inside the running loop, and anew for another loop: a lock used in one loop
        # cannot be awaited in the next (pytest gives each test its own loop).
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    # --- the timer --------------------------------------------------------------------------

    def state(self) -> SummaryQueueState:
        """A snapshot: profile, cadence, how many summaries wait, and when the next flush is due.

        >>> pac.summaries.state().queued_count
        """
        due = self._next_flush_at
        return SummaryQueueState(
            profile=self._profile,
            cadence_seconds=self._cadence,
            enterprise=self._enterprise,
            queued_count=len(self._queue),
            is_running=self._timer_alive(),
            next_flush_at=None if due is None else datetime.fromtimestamp(due, tz=timezone.utc),
        )

    def _timer_alive(self) -> bool:
        task = self._task
        return task is not None and not task.done() and not task.get_loop().is_closed()

    def _ensure_timer(self) -> None:
        if self._closed or not self._auto_flush or not self._queue:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop in this thread: the next queue() or flush() made inside one starts it
        if self._timer_alive() and self._task is not None and self._task.get_loop() is loop:
            return
        self._task = loop.create_task(self._run(), name="pacspace-summaries")

    def _restart_timer(self) -> None:
        """Apply a new configuration now: wake a sleeping timer, or start/stop one as needed."""
        task = self._task
        if task is not None and self._sleeping is task and not task.done():
            try:
                same_loop = asyncio.get_running_loop() is task.get_loop()
            except RuntimeError:
                same_loop = False
            if not same_loop:
                return  # cancel() is not safe across loops; it reads the new cadence when it wakes
            task.cancel()
            self._task = None
        self._ensure_timer()

    def _keep_running(self, me: asyncio.Task[Any] | None) -> bool:
        if self._closed or not self._auto_flush or self._task is not me or not self._queue:
            return False
        # Immediate: stop when nothing new arrived, or failed items would be resent back to back.
        return self._profile is not SummaryProfile.IMMEDIATE or self._version != self._flushed_version

    async def _run(self) -> None:
        me = asyncio.current_task()
        while self._keep_running(me):
            if self._profile is not SummaryProfile.IMMEDIATE:
                self._sleeping, self._next_flush_at = me, self._clock.wall() + self._cadence
                try:
                    await self._clock.sleep(self._cadence)
                finally:
                    if self._sleeping is me:
                        self._sleeping, self._next_flush_at = None, None
                if not self._keep_running(me):
                    return
            try:
                report = await self._flush()
            except Exception:
                # Logged, never fatal: the next round tries again with everything still queued.
                logger.exception("pac.summaries: a scheduled flush failed; %d summaries stay queued", len(self._queue))
                if self._profile is SummaryProfile.IMMEDIATE:
                    return  # no cadence to wait on: the next queue() or flush() tries again
                continue
            if report.failures:
                logger.warning(
                    "pac.summaries: %d of %d summaries were not recorded and stay queued (first error: %s)",
                    report.failed,
                    report.attempted,
                    report.failures[0].error,
                )

    # --- lifetime ---------------------------------------------------------------------------

    async def aclose(self, *, flush: bool = True) -> FlushReport | None:
        """Stop the timer and, unless ``flush=False``, send what is queued. Idempotent.

        Afterwards `queue()` and `flush()` raise. Returns the final flush's report, or None
        with ``flush=False`` or when already closed.

        >>> report = await pac.summaries.aclose()
        """
        if self._closed:
            return None
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            if self._sleeping is task:
                task.cancel()
            # A flush underway is let finish: cut off, its request would only be sent again.
            await asyncio.wait({task})
            if not task.cancelled() and task.exception() is not None:
                logger.error("pac.summaries: the timer task ended with an error", exc_info=task.exception())
        if not flush:
            return None
        return await self._flush()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("pac.summaries is closed (aclose() was called); create a new client to queue more")

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.wall(), tz=timezone.utc)
