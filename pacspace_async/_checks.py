"""Checks on numbers the caller passes (seconds, counts), shared by every layer."""

from __future__ import annotations

import math

from ._errors import InvalidArgumentError

__all__ = ["count_arg", "ordered_args", "seconds_arg"]


def count_arg(name: str, value: object, *, positive: bool = False, maximum: int | None = None) -> int:
    """A whole number: >= 0 (or >= 1 when `positive`), at most `maximum`."""
    lowest = 1 if positive else 0
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise InvalidArgumentError(f"{name} must be a whole number >= {lowest}, got {value!r}")
    if maximum is not None and value > maximum:
        raise InvalidArgumentError(f"{name} must be at most {maximum}, got {value}")
    return value


def seconds_arg(name: str, value: object) -> float:
    """A positive, finite number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise InvalidArgumentError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def ordered_args(low_name: str, low: int | None, high_name: str, high: int | None) -> None:
    """Two bounds of one range, when both are given, in order (``low <= high``)."""
    if low is not None and high is not None and low > high:
        raise InvalidArgumentError(f"{low_name} ({low}) must not be greater than {high_name} ({high})")
