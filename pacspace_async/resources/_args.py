"""Checks on call arguments, made before any I/O: a refusal names the argument and the fix."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from .. import _codec
from .._checks import count_arg, ordered_args, seconds_arg
from .._errors import InvalidArgumentError
from .._models import to_decimal

__all__ = [
    "CUSTOMER_ID_PATTERN",
    "MAX_CUSTOMER_ID_LENGTH",
    "MAX_REASON_LENGTH",
    "MAX_REFERENCE_ID_LENGTH",
    "amount_arg",
    "count_arg",
    "customer_id_arg",
    "customer_segment",
    "mapping_arg",
    "ordered_args",
    "path_segment",
    "reference_id_arg",
    "seconds_arg",
    "text_arg",
    "text_list_arg",
]

# PacSpace's own limits on what it stores: anything longer is refused by the server, so it is
# refused here before a request (and its retries) is spent on it.
MAX_CUSTOMER_ID_LENGTH = 128
MAX_REASON_LENGTH = 500
MAX_REFERENCE_ID_LENGTH = 255
CUSTOMER_ID_PATTERN = re.compile(rf"[A-Za-z0-9_\-.:]{{1,{MAX_CUSTOMER_ID_LENGTH}}}")
MAX_DELTA = Decimal(1_000_000_000)
METADATA_DEPTH = _codec.MAX_DEPTH - 10


def text_arg(name: str, value: object, *, max_length: int | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(f"{name} must be a non-empty string")
    if max_length is not None and len(value) > max_length:
        raise InvalidArgumentError(f"{name} must be at most {max_length} characters, got {len(value)}")
    return value


def text_list_arg(name: str, value: object) -> list[str]:
    """A list of non-empty strings (one string is not a list of its characters)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidArgumentError(f"{name} must be a list of non-empty strings, not {type(value).__name__}")
    if not all(isinstance(item, str) and item.strip() for item in value):
        raise InvalidArgumentError(f"{name} must be a list of non-empty strings")
    return list(value)


def customer_id_arg(value: object, name: str = "customer_id") -> str:
    if not isinstance(value, str) or not CUSTOMER_ID_PATTERN.fullmatch(value):
        raise InvalidArgumentError(
            f"{name} must be 1-{MAX_CUSTOMER_ID_LENGTH} characters of letters, digits, '_', '-', '.' or ':'"
        )
    return value


def reference_id_arg(value: object, name: str = "reference_id") -> str:
    return text_arg(name, value, max_length=MAX_REFERENCE_ID_LENGTH)


def _float_refusal(name: str, value: float) -> InvalidArgumentError:
    if not math.isfinite(value):
        return InvalidArgumentError(f"{name} must be a finite number, got {value!r}")
    # A float holds most decimal amounts only approximately (0.1 + 0.2 != 0.3): taking one
    # silently would record an amount the caller never wrote down.
    return InvalidArgumentError(
        f'{name} must be exact, not the float {value!r}: pass Decimal("{value!r}") or the string "{value!r}"'
    )


def amount_arg(name: str, value: object, *, nonzero: bool = False) -> Decimal:
    """An exact amount: Decimal, int or numeric str. A float is refused, with the fix."""
    if isinstance(value, float):
        raise _float_refusal(name, value)
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


def path_segment(name: str, value: object, *, max_length: int | None = None) -> str:
    """A non-empty path parameter, percent-encoded with no safe characters (``/`` → ``%2F``)."""
    value = text_arg(name, value, max_length=max_length)
    if value in (".", ".."):
        # A proxy may resolve them into another endpoint, with the key attached.
        raise InvalidArgumentError(f"{name} cannot be {value!r}")
    return quote(value, safe="")


def customer_segment(value: object, name: str = "customer_id") -> str:
    """A customer id as a path parameter: any text, percent-encoded; none longer than a
    customer id may be can exist, so a longer one is refused before the request."""
    return path_segment(name, value, max_length=MAX_CUSTOMER_ID_LENGTH)
