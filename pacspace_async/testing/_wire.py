"""What the emulator puts on the wire: JSON with exact numbers, timestamps, errors, replies.

Independent of the SDK's own codec on purpose: the emulator plays the server, so an SDK bug in
encoding or decoding shows up in the tests instead of cancelling out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import attrs
from aiohttp import web

from ._merkle import json_text

__all__ = ["ApiError", "Reply", "dumps", "iso", "loads", "parse_instant", "too_many_requests", "utc", "wait_headers"]


def _timestamps(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; a Decimal is written as its exact number, a datetime as ISO 8601."""
    return json_text(value, default=_timestamps).encode("utf-8")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(data: bytes) -> Any:
    """Decode a request body; non-integer numbers become Decimal. ValueError if not JSON."""
    return json.loads(data.decode("utf-8"), parse_float=Decimal, parse_constant=_no_constant)


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def iso(moment: datetime | float) -> str:
    """``2026-02-11T10:30:12.456Z``: UTC with milliseconds."""
    if not isinstance(moment, datetime):
        moment = utc(moment)
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_instant(name: str, value: object) -> datetime:
    """An ISO 8601 instant (``Z`` or offset; a date means its first instant; naive is UTC)."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "VALIDATION_ERROR", f"{name} must be an ISO 8601 timestamp")
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, "VALIDATION_ERROR", f"{name} must be ISO 8601, got {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def wait_headers(seconds: float) -> dict[str, str]:
    """``Retry-After`` (whole seconds, at least 1) and ``retry-after-ms`` for a wait of `seconds`."""
    return {"Retry-After": str(max(1, math.ceil(seconds))), "retry-after-ms": str(max(1, math.ceil(seconds * 1000)))}


class ApiError(Exception):
    """An error answer: ``{"error": {"code", "message", ...extra}}`` with an HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra

    def reply(self) -> Reply:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        error.update({key: value for key, value in self.extra.items() if value is not None})
        return Reply(self.status, {"error": error}, self.headers)


def too_many_requests(code: str, message: str, wait: float, **extra: Any) -> ApiError:
    """A 429 that says how long to wait, in its headers and as ``retryAfterSeconds``."""
    return ApiError(429, code, message, headers=wait_headers(wait), retryAfterSeconds=round(wait, 3), **extra)


@attrs.frozen
class Reply:
    """One answer as a handler gives it: status, JSON body, extra headers."""

    status: int
    body: Any
    headers: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def ok(cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(status, {"success": True, "data": data}, dict(headers or {}))

    @property
    def success(self) -> bool:
        return 200 <= self.status < 300

    def response(self) -> web.Response:
        """The aiohttp answer: the JSON body and the extra headers (the pipeline adds its own)."""
        return web.Response(
            body=dumps(self.body), status=self.status, headers=dict(self.headers), content_type="application/json"
        )
