"""Checks on call arguments, made before any I/O: a refusal names the argument and the fix."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from .. import _codec
from .._checks import count_arg, seconds_arg
from .._errors import InvalidArgumentError
from .._models import to_decimal

__all__ = [
    "CUSTOMER_ID_PATTERN",
    "amount_arg",
    "count_arg",
    "customer_id_arg",
    "mapping_arg",
    "path_segment",
    "seconds_arg",
    "text_arg",
]

CUSTOMER_ID_PATTERN = re.compile(r"[A-Za-z0-9_\-.:]{1,128}")
MAX_DELTA = Decimal(1_000_000_000)
METADATA_DEPTH = _codec.MAX_DEPTH - 10


def text_arg(name: str, value: object, *, max_length: int | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(f"{name} must be a non-empty string")
    if max_length is not None and len(value) > max_length:
        raise InvalidArgumentError(f"{name} must be at most {max_length} characters, got {len(value)}")
    return value


def customer_id_arg(value: object, name: str = "customer_id") -> str:
    if not isinstance(value, str) or not CUSTOMER_ID_PATTERN.fullmatch(value):
        raise InvalidArgumentError(f"{name} must be 1-128 characters of letters, digits, '_', '-', '.' or ':'")
    return value


def amount_arg(name: str, value: object, *, nonzero: bool = False) -> Decimal:
    """An exact amount: Decimal, int or str (a float is taken at its printed value)."""
    try:
        amount = to_decimal(value)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"{name} must be a Decimal, int or numeric string ({exc})") from None
    if not amount.is_finite():
        raise InvalidArgumentError(f"{name} must be a finite number, got {amount}")
    if nonzero and amount == 0:
        raise InvalidArgumentError(f"{name} must not be zero")
    if abs(amount) > MAX_DELTA:
        raise InvalidArgumentError(f"{name} must be within -1,000,000,000 and 1,000,000,000, got {amount}")
    return amount


def mapping_arg(name: str, value: object) -> dict[str, Any] | None:
    """A JSON object argument (metadata and the like), checked to encode."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise InvalidArgumentError(f"{name} must be a mapping with string keys")
    # The answer echoes it inside its own envelope; past the limit that answer could not be read.
    if _codec.deeper_than(dict(value), METADATA_DEPTH):
        raise InvalidArgumentError(f"{name} must not nest more than {METADATA_DEPTH} levels deep")
    try:
        _codec.dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"{name} must be JSON-serialisable: {exc}") from None
    return dict(value)


def path_segment(name: str, value: object) -> str:
    """A non-empty path parameter, percent-encoded with no safe characters (``/`` → ``%2F``)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(f"{name} must be a non-empty string")
    if value in (".", ".."):
        # A proxy may resolve them into another endpoint, with the key attached.
        raise InvalidArgumentError(f"{name} cannot be {value!r}")
    return quote(value, safe="")
