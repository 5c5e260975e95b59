"""Scrub anything shaped like an API key secret out of text meant for people.

The SDK never formats a secret on purpose; this is the second line of defence for text
it does not control (server messages, user log calls, exception chains).
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "****"

# pk_{test|live}_{publicId}.{secret}: keep the public part, which is safe to show. A secret
# may hold any visible ASCII, quotes and brackets included, so all up to whitespace goes.
_KEY_SHAPED = re.compile(r"(pk_(?:test|live)_[^\s.]*)\.\S+")


def redact(text: str) -> str:
    """Replace the secret half of every key-shaped token.

    >>> redact("key pk_live_abc.s3cr3t rejected")
    'key pk_live_abc.**** rejected'
    """
    if "pk_" not in text:
        return text
    return _KEY_SHAPED.sub(rf"\1.{REDACTED}", text)


def redact_json(value: Any) -> Any:
    """`redact` every string in decoded JSON (an error body the server filled in)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_json(key): redact_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    return value
