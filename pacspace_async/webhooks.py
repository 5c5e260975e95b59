"""Verify PacSpace webhook deliveries and turn them into typed events.

Pure: no I/O except the optional :meth:`WebhookVerifier.verify_aiohttp` helper, which only reads
the request it is given. Shared as-is by ``pacspace_sync``. This module is the verifier and
the public names; the typed events (read by the SDK's one converter, as the models are) live in
``_webhook_events``, the replay cache in ``_webhook_replay``.

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
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from . import _codec
from ._errors import ConfigurationError, InvalidArgumentError, WebhookVerificationError
from ._models import unix_seconds
from ._webhook_events import (
    CheckpointVerifiedData,
    DeltaFailedData,
    DeltaVerifiedData,
    RecordCommittedData,
    RecordFailedData,
    WebhookEvent,
    WebhookEventData,
    body_text,
    read_event,
)
from ._webhook_replay import InMemoryReplayCache, ReplayCache, replay_key

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
    """Whole Unix seconds from the header text, in seconds or milliseconds (13+ digits), by
    the rule that reads every Unix time on the wire (`_models.MILLISECONDS_FROM`)."""
    if not isinstance(text, str) or not _INTEGER.fullmatch(text):
        raise WebhookVerificationError(f"{TIMESTAMP_HEADER} must be an integer Unix time (seconds or ms)")
    return math.floor(unix_seconds(int(text)))


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


def _replay_message(key: str, body_id: str | None, window: float) -> str:
    if body_id is None:
        what = "the same delivery (same timestamp and body)"
    else:
        what = f"event id {key}" if _SAFE_ID.fullmatch(key) else "its event id"
    return f"replayed delivery: {what} was already accepted in the last {_seconds(window)}s"


def _read_event(envelope: Mapping[str, Any], header_type: str | None, header_id: str | None) -> WebhookEvent:
    # The body is signed and the headers are not, so the body wins when both are present.
    if not (body_text(envelope.get("event")) or header_type):
        raise WebhookVerificationError(
            f'delivery names no event type: no "event" field in the body and no {EVENT_TYPE_HEADER} header'
        )
    try:
        return read_event(envelope, event_type=header_type, event_id=header_id)
    except Exception:  # whatever the converter raises, the delivery is malformed
        # The fields are read leniently (a field in another shape becomes None), so this is a
        # safety net: verification raises WebhookVerificationError and nothing else.
        raise WebhookVerificationError("the delivery's JSON could not be read as an event") from None


def _check_header_id(header_id: str | None, body_id: str | None) -> None:
    # The header is not signed: one that names another event than the signed body was changed
    # on the way, and trusting it would let a captured delivery speak for any event id.
    if header_id is None or body_id is None or header_id == body_id:
        return
    shown = f" ({header_id} vs {body_id})" if _SAFE_ID.fullmatch(header_id) and _SAFE_ID.fullmatch(body_id) else ""
    raise WebhookVerificationError(
        f"{EVENT_ID_HEADER} header disagrees with the signed body's id{shown}: the header was altered"
    )


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
        event = _read_event(envelope, found.get(EVENT_TYPE_HEADER.lower()), header_id)
        body_id = body_text(envelope.get("id"))
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
        key = replay_key(body_id, timestamp, body)
        if self._replay_cache.seen(key, now, window):
            raise WebhookVerificationError(_replay_message(key, body_id, window))
