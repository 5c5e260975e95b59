"""JSON on the wire, with money as `Decimal` both ways.

`json` cannot write a `Decimal` as a number, and a float would turn 0.3 into
0.30000000000000004. Decimals are written as placeholders and swapped for their exact
text afterwards; the placeholder carries a per-process random token so no user string
can forge one.
"""

from __future__ import annotations

import json
import secrets
from decimal import Decimal
from typing import Any

__all__ = ["dumps", "decode", "loads", "decimal_text", "deeper_than", "MAX_DEPTH"]

_TOKEN = secrets.token_hex(8)
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_decoder = json.JSONDecoder(parse_float=Decimal, parse_constant=_no_constants)


def decimal_text(value: Decimal) -> str:
    """A finite Decimal as JSON number text (``1E+2`` is valid JSON)."""
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite number")
    return str(value)


_SWAPPABLE = (Decimal, dict, list, tuple)


def _swap(value: Any, found: list[str]) -> Any:
    """`value` with every Decimal replaced by its placeholder; the very same object if none.

    The exact text of each Decimal is appended to `found`.
    """
    if isinstance(value, Decimal):
        text = decimal_text(value)
        found.append(text)
        return f"\x00{_TOKEN}:{text}\x00"
    if isinstance(value, dict):
        out: dict[Any, Any] | None = None
        for key, item in value.items():
            if isinstance(item, _SWAPPABLE):
                swapped = _swap(item, found)
                if swapped is not item:
                    if out is None:
                        out = dict(value)
                    out[key] = swapped
        return value if out is None else out
    if isinstance(value, (list, tuple)):
        items: list[Any] | None = None
        for index, item in enumerate(value):
            if isinstance(item, _SWAPPABLE):
                swapped = _swap(item, found)
                if swapped is not item:
                    if items is None:
                        items = list(value)
                    items[index] = swapped
        return value if items is None else items
    return value


_text_of = json.encoder.encode_basestring  # what the encoder above writes a str with


def _flat_object(value: dict[Any, Any]) -> str | None:
    """The JSON of an object of str keys and str/Decimal/int/bool/None values, else None.

    Most request bodies have this shape (an emit is three such fields); writing them directly
    gives the very text the encoder would (same string escaping, ``int.__repr__``, the
    Decimal's exact text) without walking and re-scanning them. Anything else (floats,
    nested values, subclasses) takes the general path.
    """
    parts = []
    for key, item in value.items():
        if type(key) is not str:
            return None
        kind = type(item)
        if kind is str:
            text = _text_of(item)
        elif kind is Decimal:
            text = decimal_text(item)
        elif kind is int:
            text = int.__repr__(item)
        elif item is None:
            text = "null"
        elif item is True:
            text = "true"
        elif item is False:
            text = "false"
        else:
            return None
        parts.append(f"{_text_of(key)}:{text}")
    return "{" + ",".join(parts) + "}"


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; Decimals become exact JSON numbers."""
    if type(value) is dict:
        flat = _flat_object(value)
        if flat is not None:
            return flat.encode("utf-8")
    found: list[str] = []
    try:
        text = _encoder.encode(_swap(value, found))
    except RecursionError:
        raise ValueError("the value nests too deeply to be written as JSON") from None
    if found:
        # Each placeholder is a JSON string holding NUL, the per-process token and the number's
        # text; only the placeholders made above can carry the token, so swapping each back by
        # plain replacement is exact (and cheaper than a regex with a template).
        for number in found:  # a repeated number is already gone after its first replace
            text = text.replace(f'"\\u0000{_TOKEN}:{number}\\u0000"', number)
    return text.encode("utf-8")


# No PacSpace answer nests more than a handful of levels. The limit is checked, not left to the
# interpreter: Python 3.11's decoder raises RecursionError far sooner than 3.13's, which decodes
# thousands of levels and leaves every recursive reader of the result (redaction, models) to fail.
MAX_DEPTH = 100


_CONTAINERS = (dict, list, tuple)


def deeper_than(value: Any, limit: int) -> bool:
    """Whether objects and arrays in `value` nest more than `limit` levels (walked without recursion)."""
    if not isinstance(value, _CONTAINERS):
        return False
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, _CONTAINERS):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def decode(data: bytes | str) -> Any:
    """Strict JSON text → Python; non-integer numbers become Decimal.

    Raises ValueError for anything else: invalid UTF-8 or JSON, NaN/Infinity, or nesting deeper
    than `MAX_DEPTH`, on every Python version alike.
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data  # UnicodeDecodeError is a ValueError
    try:
        value = _decoder.decode(text)
    except RecursionError:
        raise ValueError(f"JSON nested more than {MAX_DEPTH} levels deep") from None
    # Nesting takes brackets: a text with few of them (any emit answer) needs no walk.
    if text.count("[") + text.count("{") > MAX_DEPTH and deeper_than(value, MAX_DEPTH):
        raise ValueError(f"JSON nested more than {MAX_DEPTH} levels deep")
    return value


def loads(data: bytes | str) -> Any:
    """Decode an answer: as `decode`, but empty or unreadable input gives None."""
    if not data:
        return None
    try:
        return decode(data)
    except ValueError:
        return None
