"""Verify PacSpace webhook deliveries and turn them into typed events.

Pure: no I/O except the optional :meth:`WebhookVerifier.verify_aiohttp` helper, which only reads
the request it is given. Shared as-is by ``pacspace_sync``.

>>> verifier = WebhookVerifier("whsec_...")                      # doctest: +SKIP
>>> event = verifier.verify(request_headers, raw_body)          # doctest: +SKIP
>>> if isinstance(event.data, DeltaVerifiedData): ...           # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

import attrs

from . import _codec
from ._errors import ConfigurationError, InvalidArgumentError, WebhookVerificationError

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "MAX_TOLERANCE",
    "SECRET_ENV_VAR",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "CheckpointVerifiedData",
    "DeltaFailedData",
    "DeltaVerifiedData",
    "InMemoryReplayCache",
    "RecordCommittedData",
    "RecordFailedData",
    "ReplayCache",
    "WebhookEvent",
    "WebhookEventData",
    "WebhookVerifier",
    "signature_header",
]

SIGNATURE_HEADER = "X-PacSpace-Signature"
TIMESTAMP_HEADER = "X-PacSpace-Timestamp"
EVENT_ID_HEADER = "X-Event-ID"
EVENT_TYPE_HEADER = "X-Webhook-Event"
SECRET_ENV_VAR = "PACSPACE_WEBHOOK_SECRET"
# PacSpace requires rejecting deliveries older than five minutes: the window may shrink, never grow.
MAX_TOLERANCE = 300.0

_MS_THRESHOLD = 1_000_000_000_000
_UTC = timezone.utc


# --- signing ---------------------------------------------------------------------------------


def signature_header(secret: str, timestamp: str | int, body: bytes | str) -> str:
    """The ``X-PacSpace-Signature`` value PacSpace sends for this timestamp and raw body.

    For testing your own receiver (and for the emulator). The secret is used as UTF-8 text,
    ``whsec_`` prefix included, never base64-decoded; surrounding whitespace is dropped, as
    :class:`WebhookVerifier` does, so the two agree on a secret read from a file.

    >>> signature_header("whsec_test_secret_1", 1739270400, b"{}")[:3]
    'v1='
    """
    body_bytes = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    return "v1=" + _digest(secret.strip().encode("utf-8"), str(timestamp), body_bytes)


def _digest(secret: bytes, timestamp_text: str, body: bytes) -> str:
    # The timestamp is signed exactly as sent (seconds or ms), never normalised.
    message = timestamp_text.encode("ascii") + b"." + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


# --- replay cache ----------------------------------------------------------------------------


@runtime_checkable
class ReplayCache(Protocol):
    """Where a verifier remembers the deliveries it has accepted (plug in a shared store here).

    The verifier calls :meth:`seen` once per delivery, and only for a delivery that passed
    every other check, so a forger can neither add ids nor fill the store. ``event_id`` is the
    signed body's ``id``; for a body without one it is ``"sha256:"`` and the hex digest of the
    signed ``"{timestamp}.{body}"``, so an exact copy is still refused.
    """

    def seen(self, event_id: str, now: float, ttl: float) -> bool:
        """True if ``event_id`` was recorded less than ``ttl`` seconds before ``now``;
        otherwise record it (until ``now + ttl``) and return False. Must be atomic."""
        ...


class InMemoryReplayCache:
    """A bounded, thread-safe, per-process :class:`ReplayCache`.

    ``seen`` is atomic under a lock, so one cache can serve the threads of a web server and the
    sync client. Past ``max_entries`` the oldest entry is evicted before it expires, and a copy
    of that delivery would then pass: make ``max_entries`` larger than the number of deliveries
    you receive in twice the tolerance (10 minutes by default). Only verified deliveries are
    recorded, so only PacSpace's own traffic fills it. Several processes need a shared store.
    """

    __slots__ = ("_entries", "_lock", "_max_entries")

    def __init__(self, max_entries: int = 10_000) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise InvalidArgumentError("max_entries must be a positive integer")
        self._max_entries = max_entries
        self._entries: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, event_id: str, now: float, ttl: float) -> bool:
        with self._lock:
            self._purge(now)
            expires = self._entries.get(event_id)
            if expires is not None and expires > now:
                return True
            self._entries.pop(event_id, None)
            self._entries[event_id] = now + ttl
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
            return False

    def _purge(self, now: float) -> None:
        # Insertion order is expiry order while ttl and the clock are steady; if they are not,
        # a stale entry just lingers until evicted, and `seen` still checks expiry itself.
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if oldest > now:
                break
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return f"InMemoryReplayCache(max_entries={self._max_entries})"


# --- typed events ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class DeltaVerifiedData:
    """``delta.verified``: accepts both the SDK shape and the docs shape (``delta.amount``)."""

    record_id: str | None = None
    receipt_id: str | None = None
    verification_reference: str | None = None
    customer_id: str | None = None
    delta: Decimal | None = None
    sequence_number: str | None = None
    reference_id: str | None = None
    block_timestamp: str | None = None
    status: str | None = None
    verification_id: str | None = None
    verified_at: datetime | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class DeltaFailedData:
    """``delta.failed``."""

    record_id: str | None = None
    customer_id: str | None = None
    delta: Decimal | None = None
    error: str | None = None
    failed_at: datetime | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class CheckpointVerifiedData:
    """``checkpoint.verified``."""

    checkpoint_id: str | None = None
    customer_id: str | None = None
    period: str | None = None
    proof_root: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class RecordCommittedData:
    """``record.committed``."""

    receipt_id: str | None = None
    status: str | None = None
    verified_at: datetime | None = None
    verification_id: str | None = None
    item_count: int | None = None
    records: tuple[Any, ...] | None = None
    verification: Mapping[str, Any] | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class RecordFailedData:
    """``record.failed`` (``seq`` is 0-based)."""

    record_type: str | None = None
    entity_id: str | None = None
    seq: int | None = None
    code: str | None = None
    sentence: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


# What `WebhookEvent.data` can be: match on the class, the mapping covers unknown event types.
WebhookEventData: TypeAlias = (
    DeltaVerifiedData
    | DeltaFailedData
    | CheckpointVerifiedData
    | RecordCommittedData
    | RecordFailedData
    | Mapping[str, Any]
)


@attrs.frozen(kw_only=True)
class WebhookEvent:
    """A verified delivery. ``data`` is typed for known event types, the raw mapping otherwise.

    ``id`` is the signed body's ``id`` (a different ``X-Event-ID`` header is refused); only for a
    body without one is it the ``X-Event-ID`` header, which is not signed. ``created_at`` comes
    from ``createdAt`` or ``timestamp``. ``raw`` is the decoded body, unknown fields included.
    """

    id: str | None
    type: str
    created_at: datetime | None
    tenant_id: str | None
    data: WebhookEventData
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


# Field readers: each takes any decoded JSON value and never raises, so a wrong-typed field
# becomes None (still visible in `.raw`) instead of a crash.


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _first_text(*values: object) -> str | None:
    for value in values:
        if isinstance(value, str):
            return value
    return None


def _mapping(value: object) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _id_text(value: object) -> str | None:
    # Sequence numbers are strings in the SDK types; a server sending a number means the same.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(value)


_DECIMAL_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?", re.ASCII)


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    # Decimal() alone would also take "1_0", " 5 " and non-ASCII digits.
    if isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value):
        try:
            return Decimal(value)
        except InvalidOperation:
            return None
    return None


_ISO_8601 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]{1,12}))?)?)?"
    r"(Z|z|[+-][0-9]{2}(?::?[0-9]{2})?)?",
    re.ASCII,
)


def _datetime(value: object) -> datetime | None:
    """ISO 8601 text (``Z`` or an offset; naive means UTC) or Unix seconds/ms, else None.

    Hand-parsed: ``datetime.fromisoformat`` refuses ``Z`` and most fractions before 3.11.
    """
    number = _decimal(value) if isinstance(value, (int, Decimal)) else None
    if number is not None:
        try:
            # Inside the try: Decimal arithmetic itself can overflow on absurd exponents.
            seconds = number / 1000 if abs(number) >= _MS_THRESHOLD else number
            return datetime(1970, 1, 1, tzinfo=_UTC) + timedelta(seconds=float(seconds))
        except (OverflowError, ValueError, ArithmeticError):
            return None
    if not isinstance(value, str):
        return None
    match = _ISO_8601.fullmatch(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        tz = _UTC if offset is None or offset in ("Z", "z") else _offset(offset)
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError:
        return None


def _offset(text: str) -> timezone:
    digits = text[1:].replace(":", "")
    delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
    return timezone(-delta if text[0] == "-" else delta)


def _delta_verified(data: Mapping[str, Any]) -> DeltaVerifiedData:
    # Docs shape nests the delta: {"delta": {"customerId", "amount", "referenceId", ...}}.
    nested = _mapping(data.get("delta")) or {}
    return DeltaVerifiedData(
        record_id=_text(data.get("recordId")),
        receipt_id=_text(data.get("receiptId")),
        verification_reference=_text(data.get("verificationReference")),
        customer_id=_first_text(data.get("customerId"), nested.get("customerId")),
        delta=_decimal(nested.get("amount")) if nested else _decimal(data.get("delta")),
        sequence_number=_id_text(data.get("sequenceNumber")),
        reference_id=_first_text(data.get("referenceId"), nested.get("referenceId")),
        block_timestamp=_id_text(data.get("blockTimestamp")),
        status=_text(data.get("status")),
        verification_id=_text(data.get("verificationId")),
        verified_at=_datetime(data.get("verifiedAt")),
        raw=data,
    )


def _delta_failed(data: Mapping[str, Any]) -> DeltaFailedData:
    return DeltaFailedData(
        record_id=_text(data.get("recordId")),
        customer_id=_text(data.get("customerId")),
        delta=_decimal(data.get("delta")),
        error=_text(data.get("error")),
        failed_at=_datetime(data.get("failedAt")),
        raw=data,
    )


def _checkpoint_verified(data: Mapping[str, Any]) -> CheckpointVerifiedData:
    return CheckpointVerifiedData(
        checkpoint_id=_text(data.get("checkpointId")),
        customer_id=_text(data.get("customerId")),
        period=_text(data.get("period")),
        # Older docs call the same root `itemsRoot`.
        proof_root=_first_text(data.get("proofRoot"), data.get("itemsRoot")),
        raw=data,
    )


def _record_committed(data: Mapping[str, Any]) -> RecordCommittedData:
    records = data.get("records")
    return RecordCommittedData(
        receipt_id=_text(data.get("receiptId")),
        status=_text(data.get("status")),
        verified_at=_datetime(data.get("verifiedAt")),
        verification_id=_text(data.get("verificationId")),
        item_count=_int(data.get("itemCount")),
        records=tuple(records) if isinstance(records, list) else None,
        verification=_mapping(data.get("verification")),
        raw=data,
    )


def _record_failed(data: Mapping[str, Any]) -> RecordFailedData:
    return RecordFailedData(
        record_type=_text(data.get("recordType")),
        entity_id=_text(data.get("entityId")),
        seq=_int(data.get("seq")),
        code=_text(data.get("code")),
        sentence=_text(data.get("sentence")),
        raw=data,
    )


_DATA_PARSERS: Mapping[str, Callable[[Mapping[str, Any]], WebhookEventData]] = {
    "delta.verified": _delta_verified,
    "delta.failed": _delta_failed,
    "checkpoint.verified": _checkpoint_verified,
    "record.committed": _record_committed,
    "record.failed": _record_failed,
}


def _body_id(envelope: Mapping[str, Any]) -> str | None:
    """The envelope's ``id`` if it is non-empty text: the only event id the signature covers."""
    return _text(envelope.get("id")) or None


def _check_header_id(header_id: str | None, body_id: str | None) -> None:
    # The header is not signed: one that names another event than the signed body was changed
    # on the way, and trusting it would let a captured delivery speak for any event id.
    if header_id is None or body_id is None or header_id == body_id:
        return
    shown = f" ({header_id} vs {body_id})" if _SAFE_ID.fullmatch(header_id) and _SAFE_ID.fullmatch(body_id) else ""
    raise WebhookVerificationError(
        f"{EVENT_ID_HEADER} header disagrees with the signed body's id{shown}: the header was altered"
    )


def _parse_event(envelope: Mapping[str, Any], header_type: str | None, header_id: str | None) -> WebhookEvent:
    # The body is signed and the headers are not, so the body wins when both are present.
    event_type = _text(envelope.get("event")) or header_type
    if not event_type:
        raise WebhookVerificationError(
            f'delivery names no event type: no "event" field in the body and no {EVENT_TYPE_HEADER} header'
        )
    data = _mapping(envelope.get("data")) or {}
    parser = _DATA_PARSERS.get(event_type)
    return WebhookEvent(
        id=_body_id(envelope) or header_id,
        type=event_type,
        created_at=_datetime(envelope.get("createdAt")) or _datetime(envelope.get("timestamp")),
        tenant_id=_text(envelope.get("tenantId")),
        data=parser(data) if parser is not None else data,
        raw=envelope,
    )


# --- the rules of a delivery -----------------------------------------------------------------

_WANTED_HEADERS = frozenset(
    name.lower() for name in (SIGNATURE_HEADER, TIMESTAMP_HEADER, EVENT_ID_HEADER, EVENT_TYPE_HEADER)
)


def _read_headers(headers: object) -> dict[str, str]:
    """The four webhook headers, keyed in lower case (first occurrence wins, as in a multidict)."""
    items = getattr(headers, "items", None)
    if not callable(items):
        raise WebhookVerificationError("headers must be a mapping of header names to values")
    found: dict[str, str] = {}
    try:
        for key, value in items():
            name = _header_name(key)
            if name in _WANTED_HEADERS and name not in found:
                text = _header_value(name, value)
                if text is not None:
                    found[name] = text
    except WebhookVerificationError:
        raise
    except (TypeError, ValueError):  # items() that are not (name, value) pairs
        raise WebhookVerificationError("headers must be a mapping of header names to values") from None
    return found


def _header_name(key: object) -> str | None:
    if isinstance(key, (bytes, bytearray)):
        key = bytes(key).decode("latin-1")
    # ASCII only: str.lower() would fold e.g. the Kelvin sign into "k" and match a look-alike.
    if isinstance(key, str) and key.isascii():
        return key.strip().lower()
    return None


def _header_value(name: str, value: object) -> str | None:
    if isinstance(value, (list, tuple)):
        if not value:
            return None
        value = value[0]
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise WebhookVerificationError(f"header {_display(name)} is not ASCII") from None
    if not isinstance(value, str):
        raise WebhookVerificationError(f"header {_display(name)} must be text")
    # Surrounding spaces are not part of an HTTP field value (RFC 9110 §5.5).
    value = value.strip(" \t")
    return value or None


def _display(lower_name: str) -> str:
    for name in (SIGNATURE_HEADER, TIMESTAMP_HEADER, EVENT_ID_HEADER, EVENT_TYPE_HEADER):
        if name.lower() == lower_name:
            return name
    return lower_name


def _body_bytes(body: object) -> bytes:
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        try:
            return body.encode("utf-8")
        except UnicodeEncodeError:
            raise WebhookVerificationError("body is not valid UTF-8 text") from None
    raise WebhookVerificationError("body must be the raw request body as bytes or str")


_INTEGER = re.compile(r"-?[0-9]{1,19}", re.ASCII)


def _timestamp_seconds(text: object) -> int:
    """Unix seconds from the header text; 13+ digit values are milliseconds."""
    if not isinstance(text, str) or not _INTEGER.fullmatch(text):
        raise WebhookVerificationError(f"{TIMESTAMP_HEADER} must be an integer Unix time (seconds or ms)")
    value = int(text)
    return value // 1000 if abs(value) >= _MS_THRESHOLD else value


def _check_freshness(timestamp: int, now: float, tolerance: float) -> None:
    skew = now - timestamp
    # Written so that a NaN clock fails closed.
    if skew <= tolerance and -skew <= tolerance:
        return
    if skew > tolerance:
        raise WebhookVerificationError(
            f"timestamp too old ({_seconds(skew)}s > {_seconds(tolerance)}s tolerance): "
            "a stale or replayed delivery, or a wrong clock"
        )
    if -skew > tolerance:
        raise WebhookVerificationError(
            f"timestamp too far in the future ({_seconds(-skew)}s > {_seconds(tolerance)}s tolerance): "
            "check this machine's clock"
        )
    raise WebhookVerificationError("timestamp cannot be checked: the clock returned no usable time")


def _seconds(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


_V1_HEX = re.compile(r"[0-9a-f]{64}", re.ASCII)


def _v1_signatures(header: object) -> list[str]:
    """The well-formed ``v1=`` values of a signature header (other versions are ignored)."""
    if not isinstance(header, str):
        raise WebhookVerificationError(f"{SIGNATURE_HEADER} must be text")
    parts = [part.strip() for part in header.split(",")]
    v1 = [part[3:] for part in parts if part.startswith("v1=")]
    if not v1:
        raise WebhookVerificationError(f"{SIGNATURE_HEADER} has no v1= signature")
    # Uppercase hex is refused, as PacSpace's own verifier does; it also keeps compare_digest
    # (which rejects non-ASCII str) away from attacker-chosen text.
    return [value for value in v1 if _V1_HEX.fullmatch(value)]


def _decode_envelope(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookVerificationError("body is not valid UTF-8") from None
    try:
        # Decimal keeps money exact; NaN/Infinity and absurd nesting are refused.
        value = _codec.decode(text)
    except ValueError:
        raise WebhookVerificationError("body is not valid JSON") from None
    if not isinstance(value, dict):
        raise WebhookVerificationError("body must be a JSON object")
    return value


_SAFE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}", re.ASCII)
_DIGEST_KEY_PREFIX = "sha256:"


def _replay_key(body_id: str | None, timestamp: str, body: bytes) -> str:
    """What the replay cache remembers: only what the signature covers.

    The signed body's ``id``, so PacSpace's own re-sends of an event (signed afresh) count as
    one. A body without an ``id`` is keyed by a digest of the signed ``"{timestamp}.{body}"``:
    an exact copy of it is refused, a re-send with a new timestamp is not. The unsigned
    ``X-Event-ID`` header is never used, or a captured delivery could block any id.
    """
    if body_id is not None:
        return body_id
    return _DIGEST_KEY_PREFIX + hashlib.sha256(timestamp.encode("ascii") + b"." + body).hexdigest()


def _replay_message(key: str, body_id: str | None, window: float) -> str:
    if body_id is None:
        what = "the same delivery (same timestamp and body)"
    else:
        what = f"event id {key}" if _SAFE_ID.fullmatch(key) else "its event id"
    return f"replayed delivery: {what} was already accepted in the last {_seconds(window)}s"


# --- configuration ---------------------------------------------------------------------------


def _load_secrets(secret_or_secrets: str | Sequence[str] | None) -> tuple[bytes, ...]:
    """The signing keys. A str argument reads exactly as the environment variable does."""
    from_env = secret_or_secrets is None
    if secret_or_secrets is None:
        raw = os.environ.get(SECRET_ENV_VAR, "")
        if not raw.strip():
            raise ConfigurationError(
                "no webhook signing secret: pass WebhookVerifier('whsec_...') or set "
                f"{SECRET_ENV_VAR} (the whsec_ secret shown once when the webhook was created)"
            )
        texts: list[object] = [raw]
    elif isinstance(secret_or_secrets, str):
        texts = [secret_or_secrets]
    elif isinstance(secret_or_secrets, Sequence) and not isinstance(secret_or_secrets, (bytes, bytearray)):
        texts = list(secret_or_secrets)
    else:
        raise ConfigurationError("the webhook secret must be a str (or a sequence of str for rotation)")
    if not texts:
        raise ConfigurationError("no webhook signing secret: pass at least one 'whsec_...' secret")
    secrets: list[str] = []
    for text in texts:
        if not isinstance(text, str):
            raise ConfigurationError("each webhook secret must be a str")
        secrets.extend(_split_secrets(text))
    count = len(secrets)
    keys = [_secret_key(secret, _position(index, count, from_env), count > 1) for index, secret in enumerate(secrets)]
    return tuple(dict.fromkeys(keys))


def _split_secrets(text: str) -> list[str]:
    # Comma-separated, so a rotation is a config change; surrounding whitespace is dropped
    # because a secret pasted from a terminal or read from a file usually ends in a newline,
    # and a whsec_ secret never contains whitespace.
    return [part.strip() for part in text.split(",")]


def _position(index: int, count: int, from_env: bool) -> str:
    """Which secret a message is about, by position: any part of a bad secret may be the secret."""
    which = "the webhook secret" if count == 1 else f"webhook secret {index + 1} of {count}"
    return f"{which} in {SECRET_ENV_VAR}" if from_env else which


def _secret_key(secret: str, where: str, several: bool) -> bytes:
    if not secret:
        if several:
            raise ConfigurationError(f"{where} is empty: separate secrets with single commas, none at either end")
        raise ConfigurationError(f"empty webhook secret: pass the 'whsec_...' secret or set {SECRET_ENV_VAR}")
    if not secret.isprintable() or any(char.isspace() for char in secret):
        # Two secrets joined by a newline or a space would fail every delivery, silently.
        raise ConfigurationError(
            f"{where} contains whitespace or invisible characters: copy it again, and separate "
            "several secrets with commas"
        )
    try:
        return secret.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(f"{where} is not valid text: copy it again") from None


def _check_tolerance(tolerance: object) -> float:
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, Decimal)):
        raise InvalidArgumentError("tolerance must be a number of seconds")
    try:
        value = float(tolerance)
    except ValueError:  # Decimal("sNaN")
        value = math.nan
    if not 0 < value <= MAX_TOLERANCE:
        raise InvalidArgumentError(
            f"tolerance must be more than 0 and at most {MAX_TOLERANCE:g} seconds (got {value:g}): "
            "PacSpace deliveries older than five minutes must be rejected"
        )
    return value


# --- the verifier ----------------------------------------------------------------------------


class WebhookVerifier:
    """Checks that a delivery comes from PacSpace, is fresh, and was not replayed.

    ``secret_or_secrets``: the ``whsec_`` secret, or several during a rotation (a delivery signed
    by any of them passes); default ``PACSPACE_WEBHOOK_SECRET``. Text is read the same way from
    both: comma-separated for several, surrounding whitespace (a trailing newline) dropped.
    ``tolerance``: the largest accepted clock skew, either direction, in seconds (at most 300).
    ``replay_cache``: remembers accepted deliveries for twice the tolerance (the span during
    which a captured delivery would still pass the timestamp check). It is keyed by the signed
    body's ``id``, or for a body without one by a digest of the signed timestamp and body, and
    it learns a delivery only once every other check has passed.

    Thread-safe: it keeps no state of its own beyond its configuration, so one verifier (and
    one :class:`InMemoryReplayCache`) can serve every thread.

    >>> verifier = WebhookVerifier(["whsec_new", "whsec_old"], replay_cache=InMemoryReplayCache())
    >>> verifier
    WebhookVerifier(secrets=2, tolerance=300)
    """

    __slots__ = ("_clock", "_replay_cache", "_secrets", "_tolerance")

    def __init__(
        self,
        secret_or_secrets: str | Sequence[str] | None = None,
        *,
        tolerance: float = MAX_TOLERANCE,
        clock: Callable[[], float] = time.time,
        replay_cache: ReplayCache | None = None,
    ) -> None:
        self._tolerance = _check_tolerance(tolerance)
        self._secrets = _load_secrets(secret_or_secrets)
        if not callable(clock):
            raise InvalidArgumentError("clock must be a callable returning Unix time in seconds")
        self._clock = clock
        if replay_cache is not None and not callable(getattr(replay_cache, "seen", None)):
            raise InvalidArgumentError(
                "replay_cache must have a seen(event_id, now, ttl) method (see ReplayCache), or be None"
            )
        self._replay_cache = replay_cache

    @property
    def tolerance(self) -> float:
        return self._tolerance

    def __repr__(self) -> str:
        return f"WebhookVerifier(secrets={len(self._secrets)}, tolerance={self._tolerance:g})"

    __str__ = __repr__

    def verify(self, headers: Mapping[str, Any], body: bytes | str) -> WebhookEvent:
        """Verify a delivery and return its typed event; raise :class:`WebhookVerificationError`.

        ``headers``: any mapping (case-insensitive lookup; a list value counts by its first
        element). ``body``: the raw body exactly as received, never re-serialised JSON.
        An ``X-Event-ID`` header that differs from the signed body's ``id`` is refused.
        Every problem with the delivery raises :class:`WebhookVerificationError`; only an
        exception of a custom replay cache itself (its store is down) propagates unchanged, so
        the endpoint answers 5xx and PacSpace delivers again later.
        """
        found = _read_headers(headers)
        signature = found.get(SIGNATURE_HEADER.lower())
        timestamp = found.get(TIMESTAMP_HEADER.lower())
        if timestamp is None:
            raise WebhookVerificationError(f"missing {TIMESTAMP_HEADER} header")
        if signature is None:
            raise WebhookVerificationError(f"missing {SIGNATURE_HEADER} header")
        body_bytes = _body_bytes(body)
        now = self._now()
        self._check(signature, timestamp, body_bytes, now)
        envelope = _decode_envelope(body_bytes)
        header_id = found.get(EVENT_ID_HEADER.lower())
        try:
            event = _parse_event(envelope, found.get(EVENT_TYPE_HEADER.lower()), header_id)
        except WebhookVerificationError:
            raise
        except (TypeError, ValueError, ArithmeticError, RecursionError):  # pragma: no cover - safety net
            raise WebhookVerificationError("the delivery's JSON could not be read as an event") from None
        body_id = _body_id(envelope)
        _check_header_id(header_id, body_id)
        # Last, once everything else has passed: a refused delivery must leave no trace.
        self._check_replay(body_id, timestamp, body_bytes, now)
        return event

    def verify_signature(self, signature: str, timestamp: str, body: bytes | str) -> None:
        """Check the timestamp and the signature alone (no JSON, no replay cache)."""
        self._check(signature, timestamp, _body_bytes(body), self._now())

    async def verify_aiohttp(self, request: web.BaseRequest) -> WebhookEvent:
        """:meth:`verify` an ``aiohttp.web`` request (reads its body; read errors propagate).

        >>> event = await verifier.verify_aiohttp(request)   # doctest: +SKIP
        """
        body = await request.read()
        return self.verify(request.headers, body)

    def _now(self) -> float:
        now = self._clock()
        # A NaN passes here and is caught by the freshness check, which fails closed.
        if not isinstance(now, bool) and isinstance(now, (int, float)):
            try:
                return float(now)
            except OverflowError:
                pass
        raise WebhookVerificationError("timestamp cannot be checked: the clock returned no usable time")

    def _check(self, signature: object, timestamp: object, body: bytes, now: float) -> None:
        if not isinstance(timestamp, str):
            raise WebhookVerificationError(f"{TIMESTAMP_HEADER} must be text")
        timestamp = timestamp.strip(" \t")
        _check_freshness(_timestamp_seconds(timestamp), now, self._tolerance)
        candidates = _v1_signatures(signature)
        if not candidates:
            raise WebhookVerificationError(f"{SIGNATURE_HEADER} is malformed: expected v1=<64 lowercase hex>")
        matched = False
        # Every candidate against every secret, without stopping early: constant-time compares,
        # and no timing hint about which secret or position matched.
        for secret in self._secrets:
            expected = _digest(secret, timestamp, body)
            for candidate in candidates:
                matched |= hmac.compare_digest(candidate, expected)
        if not matched:
            raise WebhookVerificationError(
                f"{SIGNATURE_HEADER} does not match: wrong secret, or the body was altered or re-serialised"
            )

    def _check_replay(self, body_id: str | None, timestamp: str, body: bytes, now: float) -> None:
        if self._replay_cache is None:
            return
        window = 2 * self._tolerance
        # The header is already stripped the way _check reads it, so this is the signed text.
        key = _replay_key(body_id, timestamp, body)
        if self._replay_cache.seen(key, now, window):
            raise WebhookVerificationError(_replay_message(key, body_id, window))
