"""JSON on the wire, with money as `Decimal` both ways.

`json` cannot write a `Decimal` as a number, and a float would turn 0.3 into
0.30000000000000004. Decimals are written as placeholders and swapped for their exact
text afterwards; the placeholder carries a per-process random token so no user string
can forge one.
"""

from __future__ import annotations

import json
import re
import secrets
from decimal import Decimal
from typing import Any

__all__ = ["dumps", "loads", "decimal_text"]

_TOKEN = secrets.token_hex(8)
_PLACEHOLDER = re.compile(rf'"\\u0000{_TOKEN}:([^"\\]+)\\u0000"')
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_decoder = json.JSONDecoder(parse_float=Decimal, parse_constant=_no_constants)


def decimal_text(value: Decimal) -> str:
    """A finite Decimal as JSON number text (``1E+2`` is valid JSON)."""
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite number")
    return str(value)


def _swap(value: Any) -> tuple[Any, bool]:
    if isinstance(value, Decimal):
        return f"\x00{_TOKEN}:{decimal_text(value)}\x00", True
    if isinstance(value, dict):
        found = False
        out = {}
        for key, item in value.items():
            out[key], hit = _swap(item)
            found = found or hit
        return (out, True) if found else (value, False)
    if isinstance(value, (list, tuple)):
        items = [_swap(item) for item in value]
        if any(hit for _, hit in items):
            return [item for item, _ in items], True
        return value, False
    return value, False


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; Decimals become exact JSON numbers."""
    swapped, has_decimal = _swap(value)
    text = _encoder.encode(swapped)
    if has_decimal:
        text = _PLACEHOLDER.sub(r"\1", text)
    return text.encode("utf-8")


def loads(data: bytes | str) -> Any:
    """Decode JSON; non-integer numbers become Decimal. Empty or non-JSON input gives None."""
    if not data:
        return None
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return _decoder.decode(text)
    except (UnicodeDecodeError, ValueError):
        return None
