"""Scopes: which deltas a question covers (a month, a date window, or what follows a start point)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from ._inputs import bad_request
from ._wire import iso, parse_instant

if TYPE_CHECKING:
    from ._ledger import DeltaState

__all__ = [
    "SCOPE_LIMITS",
    "WINDOW_FIELDS",
    "Scope",
    "bucket",
    "check_granularity",
    "period_value",
    "resolve_window",
]

SCOPE_LIMITS: Mapping[str, int] = {"maxScopeMonths": 12, "maxLastNDays": 366, "maxRetentionDays": 730}
WINDOW_FIELDS = ("period", "timePreset", "startDate", "endDate")

_PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


def _month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    index = year * 12 + month  # the next month, 1-based month arithmetic
    end = datetime(index // 12, index % 12 + 1, 1, tzinfo=timezone.utc)
    return start, end


def _month_index(moment: datetime) -> int:
    return moment.year * 12 + moment.month - 1


@attrs.frozen
class Scope:
    """Which deltas a question covers: a window [start, end), or everything after a start point."""

    start: datetime | None
    end: datetime | None
    period: str | None = None
    after_sequence: int | None = None
    starting_balance: Decimal = Decimal(0)
    # Record ids already in `starting_balance` (a checkpoint's closing balance).
    excluded: frozenset[str] = frozenset()

    def contains(self, delta: DeltaState) -> bool:
        if self.after_sequence is not None and delta.sequence_number <= self.after_sequence:
            return False
        if delta.record_id in self.excluded:
            return False
        if self.start is not None and delta.created_at < self.start:
            return False
        return self.end is None or delta.created_at < self.end

    def wire(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.period is not None:
            data["period"] = self.period
        if self.start is not None:
            data["startDate"] = iso(self.start)
        if self.end is not None:
            data["endDate"] = iso(self.end)
        return data


def period_value(value: object) -> tuple[str, datetime, datetime]:
    match = _PERIOD.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise bad_request(f"period must be YYYY-MM, got {value!r}")
    start, end = _month_bounds(int(match.group(1)), int(match.group(2)))
    return match.group(0), start, end


def resolve_window(fields: Mapping[str, object], now: datetime, *, max_months: int) -> Scope:
    """The window of period / timePreset / startDate+endDate; the current UTC month by default."""
    given = [name for name in WINDOW_FIELDS if fields.get(name) is not None]
    period = fields.get("period")
    preset = fields.get("timePreset")
    start_text, end_text = fields.get("startDate"), fields.get("endDate")
    if period is not None and len(given) > 1:
        raise bad_request(
            "period cannot be combined with timePreset, startDate or endDate", "INVALID_SCOPE_COMBINATION"
        )
    if preset is not None and preset not in ("current_month", "custom"):
        raise bad_request(f"timePreset must be current_month or custom, got {preset!r}")
    has_dates = start_text is not None or end_text is not None
    if preset == "current_month" and has_dates:
        raise bad_request("timePreset=current_month takes no startDate/endDate", "INVALID_SCOPE_COMBINATION")
    if has_dates and (start_text is None or end_text is None):
        raise bad_request("startDate and endDate must be given together", "INVALID_SCOPE_COMBINATION")
    if preset == "custom" and not has_dates:
        raise bad_request("timePreset=custom needs startDate and endDate", "INVALID_SCOPE_COMBINATION")
    if period is not None:
        name, start, end = period_value(period)
        return Scope(start, end, period=name)
    if has_dates:
        start = parse_instant("startDate", start_text)
        end = parse_instant("endDate", end_text)
        if start >= end:
            raise bad_request("startDate must be before endDate (endDate is exclusive)")
        months = _month_index(end - timedelta(microseconds=1)) - _month_index(start) + 1
        if months > max_months:
            raise bad_request(
                f"the window spans {months} months; the most allowed is {max_months} (see /api/v1/balance/limits)",
                "SCOPE_TOO_WIDE",
            )
        return Scope(start, end)
    start, end = _month_bounds(now.year, now.month)
    return Scope(start, end, period=f"{now.year:04d}-{now.month:02d}")


def check_granularity(fields: Mapping[str, object]) -> str | None:
    granularity = fields.get("granularity")
    if granularity is not None and granularity not in ("day", "week", "month"):
        raise bad_request(f"granularity must be day, week or month, got {granularity!r}")
    return granularity if isinstance(granularity, str) else None


def bucket(moment: datetime, granularity: str) -> str:
    """The name of the day, week (its Monday) or month `moment` falls in."""
    if granularity == "day":
        return moment.date().isoformat()
    if granularity == "week":
        return (moment.date() - timedelta(days=moment.weekday())).isoformat()
    return f"{moment.year:04d}-{moment.month:02d}"
