"""What the client-side summary scheduler (`pac.summaries`) reports: flushes and queue state."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

__all__ = ["FlushReport", "SummaryFailure", "SummaryProfile", "SummaryQueueState"]


class SummaryProfile(str, enum.Enum):
    """How often queued summaries are sent. `sub_daily` and `immediate` need ``enterprise=True``.

    >>> pac.summaries.configure(profile=SummaryProfile.SUB_DAILY, enterprise=True)
    """

    DAILY = "daily"
    SUB_DAILY = "sub_daily"
    IMMEDIATE = "immediate"

    @property
    def default_cadence(self) -> float:
        """Seconds between timed flushes when `configure` is given no `cadence`."""
        return _DEFAULT_CADENCE[self]


_DEFAULT_CADENCE = {
    SummaryProfile.DAILY: 86_400.0,
    # The official SDK marks 6 h as an unvalidated default; it is the only figure published.
    SummaryProfile.SUB_DAILY: 21_600.0,
    SummaryProfile.IMMEDIATE: 0.0,
}


@attrs.frozen
class SummaryFailure:
    """One summary a flush could not record; it is still queued and is sent again next time.

    `error` is the server's per-item code (e.g. ``"CADENCE_LIMIT"``) or, when the whole request
    failed, the error's class and message; `exception` is that error itself, when there was one.
    """

    customer_id: str
    reference_id: str
    error: str
    exception: Exception | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class FlushReport:
    """The outcome of one flush.

    `submitted` counts the summaries recorded and dequeued, replays included; `replayed` those
    PacSpace already had (sent again after a lost answer); `failed` those still queued.

    >>> report = await pac.summaries.flush()
    >>> report.submitted, report.failed, report.queued_after_flush
    """

    profile: SummaryProfile
    started_at: datetime
    finished_at: datetime
    attempted: int
    submitted: int
    failed: int
    replayed: int
    request_count: int
    queued_after_flush: int
    failures: tuple[SummaryFailure, ...] = ()


@attrs.frozen
class SummaryQueueState:
    """A snapshot of the scheduler: `is_running` is true while a timed flush is pending or underway."""

    profile: SummaryProfile
    cadence_seconds: float
    enterprise: bool
    queued_count: int
    is_running: bool
    next_flush_at: datetime | None = None
