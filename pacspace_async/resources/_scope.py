"""The scope of a balance question (a month, a preset, a date range, or from a checkpoint).

Rules are checked before sending, as PacSpace would refuse them anyway (a refused request still
costs a round trip): a checkpoint start excludes every other scope field; ``period`` excludes
the preset and dates; only ``time_preset="custom"`` takes dates and needs both; without a
preset, dates come in pairs.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Union

import attrs

from .._errors import InvalidArgumentError
from .._models import parse_datetime
from ._args import amount_arg, count_arg, text_arg

__all__ = ["GRANULARITIES", "PERIOD_PATTERN", "TIME_PRESETS", "DateLike", "PeriodLike", "Scope"]

DateLike = Union[str, date, datetime]
PeriodLike = Union[str, date, datetime]

TIME_PRESETS = ("current_month", "custom")
GRANULARITIES = ("day", "week", "month")
PERIOD_PATTERN = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


def period_text(value: PeriodLike) -> str:
    """``"2026-11"`` from a string, a date or a datetime."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        value = value.astimezone(timezone.utc)  # PacSpace's months are UTC months
    if isinstance(value, (date, datetime)):
        return f"{value.year:04d}-{value.month:02d}"
    if not isinstance(value, str) or not PERIOD_PATTERN.fullmatch(value):
        raise InvalidArgumentError(f"period must be 'YYYY-MM' (or a date), got {value!r}")
    return value


def instant_text(name: str, value: DateLike) -> str:
    """ISO 8601 in UTC with ``Z``; a date means its first instant; a naive datetime is UTC."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        text = aware.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
        return text
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00Z"
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(f"{name} must be an ISO 8601 string, a date or a datetime, got {value!r}")
    try:
        parse_datetime(value)
    except ValueError:
        raise InvalidArgumentError(f"{name} must be ISO 8601 (like 2026-11-01T00:00:00Z), got {value!r}") from None
    return value


def _month_start(moment: datetime, months_back: int = 0) -> datetime:
    index = moment.year * 12 + (moment.month - 1) - months_back
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=timezone.utc)


def _choice(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is not None and value not in allowed:
        raise InvalidArgumentError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


@attrs.frozen
class Scope:
    """A checked scope; `wire()` gives the camelCase fields for a query or a body."""

    period: str | None = None
    time_preset: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    granularity: str | None = None
    starting_balance: Decimal | None = None
    starting_checkpoint: str | None = None
    starting_checkpoint_type: str | None = None

    @classmethod
    def check(
        cls,
        *,
        period: PeriodLike | None = None,
        time_preset: str | None = None,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        granularity: str | None = None,
        starting_balance: Decimal | int | str | None = None,
        starting_checkpoint: str | None = None,
        starting_checkpoint_type: str | None = None,
    ) -> Scope:
        windowed = [
            name
            for name, value in (
                ("period", period),
                ("time_preset", time_preset),
                ("start_date", start_date),
                ("end_date", end_date),
            )
            if value is not None
        ]
        if starting_checkpoint is not None and windowed:
            raise InvalidArgumentError(
                f"starting_checkpoint cannot be combined with {', '.join(windowed)}: "
                "a checkpoint start already fixes the window"
            )
        if starting_checkpoint_type is not None and starting_checkpoint is None:
            raise InvalidArgumentError("starting_checkpoint_type needs starting_checkpoint")
        if period is not None and len(windowed) > 1:
            others = ", ".join(name for name in windowed if name != "period")
            raise InvalidArgumentError(f"period cannot be combined with {others}; use one way to name the window")
        _choice("time_preset", time_preset, TIME_PRESETS)
        has_dates = start_date is not None or end_date is not None
        if time_preset == "current_month" and has_dates:
            raise InvalidArgumentError("time_preset='current_month' takes no start_date/end_date; use 'custom'")
        if time_preset == "custom" and (start_date is None or end_date is None):
            raise InvalidArgumentError("time_preset='custom' needs both start_date and end_date")
        if time_preset is None and has_dates and (start_date is None or end_date is None):
            raise InvalidArgumentError("start_date and end_date must be given together")
        start = None if start_date is None else instant_text("start_date", start_date)
        end = None if end_date is None else instant_text("end_date", end_date)
        if start is not None and end is not None and parse_datetime(start) >= parse_datetime(end):
            raise InvalidArgumentError("start_date must be before end_date (end_date is exclusive)")
        return cls(
            period=None if period is None else period_text(period),
            time_preset=time_preset,
            start_date=start,
            end_date=end,
            granularity=_choice("granularity", granularity, GRANULARITIES),
            starting_balance=None if starting_balance is None else amount_arg("starting_balance", starting_balance),
            starting_checkpoint=None
            if starting_checkpoint is None
            else text_arg("starting_checkpoint", starting_checkpoint),
            starting_checkpoint_type=None
            if starting_checkpoint_type is None
            else text_arg("starting_checkpoint_type", starting_checkpoint_type),
        )

    # --- the windows of the derive_* helpers: each is a scope, and nothing else -----------------

    @classmethod
    def current_month(cls) -> Scope:
        """The current UTC month, as PacSpace counts it (``timePreset=current_month``)."""
        return cls(time_preset="current_month")

    @classmethod
    def month(cls, period: PeriodLike) -> Scope:
        """One month, ``"YYYY-MM"`` or a date in it."""
        if period is None:
            # As a scope field, None would mean "no scope": the current month, not the one asked for.
            raise InvalidArgumentError(
                "derive_for_period needs a period ('YYYY-MM' or a date); for the current month use "
                "derive_current_month()"
            )
        return cls(period=period_text(period))

    @classmethod
    def months_back(cls, months: int, *, now: datetime) -> Scope:
        """The last `months` UTC months up to `now`, its own month included."""
        count_arg("months", months, positive=True, maximum=1200)
        return cls.check(time_preset="custom", start_date=_month_start(now, months - 1), end_date=_month_start(now, -1))

    @classmethod
    def days_back(cls, days: int, *, now: datetime) -> Scope:
        """The last `days` UTC days up to `now`, its own day included (ends at the next 00:00Z)."""
        count_arg("days", days, positive=True, maximum=36500)
        end = datetime(now.year, now.month, now.day, tzinfo=timezone.utc) + timedelta(days=1)
        return cls.check(time_preset="custom", start_date=end - timedelta(days=days), end_date=end)

    def wire(self) -> dict[str, object]:
        """The set fields under their wire names."""
        return {
            name: value
            for name, value in (
                ("period", self.period),
                ("timePreset", self.time_preset),
                ("startDate", self.start_date),
                ("endDate", self.end_date),
                ("granularity", self.granularity),
                ("startingBalance", self.starting_balance),
                ("startingCheckpoint", self.starting_checkpoint),
                ("startingCheckpointType", self.starting_checkpoint_type),
            )
            if value is not None
        }
