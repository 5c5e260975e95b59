"""The emulator's own checks of what a request carries: ids, amounts, texts, counts, a delta.

Written apart from the SDK's argument checks on purpose, and never imported from them: the
emulator plays the server, and a fake that shared the client's checks would agree with every
client bug instead of refusing what the real API refuses. Each check raises a 400 `ApiError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from ._wire import ApiError

__all__ = [
    "DeltaItem",
    "amount_value",
    "bad_request",
    "customer_id_value",
    "int_value",
    "optional_text",
    "text_value",
]

_CUSTOMER_ID = re.compile(r"[A-Za-z0-9_\-.:]{1,128}")
_MAX_DELTA = Decimal(1_000_000_000)


def bad_request(message: str, code: str = "VALIDATION_ERROR") -> ApiError:
    return ApiError(400, code, message)


def customer_id_value(value: object, name: str = "customerId") -> str:
    if not isinstance(value, str) or not _CUSTOMER_ID.fullmatch(value):
        raise bad_request(f"{name} must be 1-128 characters of letters, digits, '_', '-', '.' or ':'")
    return value


def amount_value(name: str, value: object, *, nonzero: bool = False) -> Decimal:
    """A JSON number (or, from a query string, its text)."""
    if isinstance(value, bool):
        raise bad_request(f"{name} must be a number")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, str):
        try:
            amount = Decimal(value)
        except InvalidOperation:
            raise bad_request(f"{name} must be a number, got {value!r}") from None
    else:
        raise bad_request(f"{name} must be a number")
    if not amount.is_finite():
        raise bad_request(f"{name} must be finite")
    if nonzero and amount == 0:
        raise bad_request(f"{name} must not be zero")
    if abs(amount) > _MAX_DELTA:
        raise bad_request(f"{name} must be within -1,000,000,000 and 1,000,000,000")
    return amount


def text_value(name: str, value: object, *, max_length: int | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"{name} must be a non-empty string")
    if max_length is not None and len(value) > max_length:
        raise bad_request(f"{name} must be at most {max_length} characters")
    return value


def int_value(fields: Mapping[str, object], name: str, default: int, *, lowest: int, highest: int | None) -> int:
    raw = fields.get(name)
    if raw is None:
        return default
    try:
        number = int(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) else None
    except ValueError:
        number = None
    if number is None or number < lowest or (highest is not None and number > highest):
        limit = f" and <= {highest}" if highest is not None else ""
        raise bad_request(f"{name} must be a whole number >= {lowest}{limit}, got {raw!r}")
    return number


def optional_text(fields: Mapping[str, object], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise bad_request(f"{name} must be a non-empty string")
    return value


@attrs.frozen
class DeltaItem:
    """A checked delta of a request body."""

    customer_id: str
    delta: Decimal
    reason: str
    reference_id: str | None
    metadata: Mapping[str, Any] | None
    adjusts: Mapping[str, Any] | None

    @classmethod
    def parse(cls, body: object) -> DeltaItem:
        if not isinstance(body, Mapping):
            raise bad_request("a delta must be a JSON object with customerId, delta and reason")
        reference = body.get("referenceId")
        metadata = body.get("metadata")
        adjusts = body.get("adjusts")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise bad_request("metadata must be a JSON object")
        if adjusts is not None and not isinstance(adjusts, Mapping):
            raise bad_request("adjusts must be a JSON object")
        return cls(
            customer_id=customer_id_value(body.get("customerId")),
            delta=amount_value("delta", body.get("delta"), nonzero=True),
            reason=text_value("reason", body.get("reason"), max_length=500),
            reference_id=None if reference is None else text_value("referenceId", reference, max_length=255),
            metadata=metadata,
            adjusts=adjusts,
        )

    @property
    def reference_key(self) -> tuple[str, str] | None:
        """(customerId, referenceId): what makes a second emit of the same item a replay."""
        return None if self.reference_id is None else (self.customer_id, self.reference_id)

    def content(self) -> dict[str, Any]:
        """The fields a content hash covers (the API's published leaf vectors use exactly these)."""
        item: dict[str, Any] = {"customerId": self.customer_id, "delta": self.delta, "reason": self.reason}
        if self.reference_id is not None:
            item["referenceId"] = self.reference_id
        if self.metadata is not None:
            item["metadata"] = dict(self.metadata)
        if self.adjusts is not None:
            item["adjusts"] = dict(self.adjusts)
        return item
