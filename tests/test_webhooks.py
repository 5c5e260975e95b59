"""Webhook verification: vectors, clock window, rotation, replay, parsing (docs/architecture.md, "Webhooks")."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from pacspace_async._errors import ConfigurationError, InvalidArgumentError, WebhookVerificationError
from pacspace_async.webhooks import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SECRET_ENV_VAR,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CheckpointVerifiedData,
    DeltaFailedData,
    DeltaVerifiedData,
    InMemoryReplayCache,
    RecordCommittedData,
    RecordFailedData,
    ReplayCache,
    WebhookEvent,
    WebhookVerifier,
    signature_header,
)

# --- PacSpace's signature test vectors (its SDK's output, cross-checked with openssl) --------

W1_SECRET = "whsec_test_secret_1"
W1_TS = "1739270400"
W1_BODY = (
    '{"id":"evt_1","event":"delta.verified","createdAt":"2026-02-11T10:40:00.000Z",'
    '"data":{"recordId":"rec_123","customerId":"cust_1","delta":-5}}'
)
W1_SIG = "v1=2d14e158327ec5411e2fcb74f3c2c79ee916040c6efa8c4903728dd67761ccd1"

W2_SECRET = "whsec_test_secret_1"
W2_TS = "1739270400000"
W2_BODY = '{"event":"delta.failed","data":{"recordId":"rec_9","error":"x"}}'
W2_SIG = "v1=aa6dd5a4ab2c7c2c894ec1626c46ef90d9ba4c987564f789fe0d6740009f130f"

W3_SECRET = "whsec_k7x9m2p4q8r1t5v3"
W3_TS = "1767225600"
W3_BODY = '{"event":"checkpoint.verified","timestamp":"2026-01-01T00:00:00Z","data":{}}'
W3_SIG = "v1=92843e0479967b547de00e438a0f54fa8679db4438feffa379029977fa5768db"

NOW = 1_739_270_400
SECRET = "whsec_own_secret_for_tests_9f8e7d"
OTHER_SECRET = "whsec_previous_secret_1a2b3c"
THIRD_SECRET = "whsec_unrelated_secret_zz"
ALL_SECRETS = (W1_SECRET, W3_SECRET, SECRET, OTHER_SECRET, THIRD_SECRET)


class Clock:
    """An injected clock the tests move by hand (no sleeps)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fixed(now: float) -> Callable[[], float]:
    return lambda: now


def sign(secret: str, timestamp: str, body: bytes | str) -> str:
    """Independent reference signer (hmac directly, not the module under test)."""
    raw = body.encode() if isinstance(body, str) else body
    return "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()


def headers_for(
    body: bytes | str,
    *,
    secret: str = SECRET,
    timestamp: str = str(NOW),
    event_id: str | None = None,
    event_type: str | None = None,
) -> dict[str, str]:
    headers = {SIGNATURE_HEADER: sign(secret, timestamp, body), TIMESTAMP_HEADER: timestamp}
    if event_id is not None:
        headers[EVENT_ID_HEADER] = event_id
    if event_type is not None:
        headers[EVENT_TYPE_HEADER] = event_type
    return headers


def verifier(secret: str | list[str] = SECRET, now: float = NOW, **kwargs: Any) -> WebhookVerifier:
    return WebhookVerifier(secret, clock=fixed(now), **kwargs)


def attempt(verify: Callable[[], WebhookEvent]) -> WebhookEvent | WebhookVerificationError:
    """The event, or the verification error; any other exception fails the test."""
    try:
        return verify()
    except WebhookVerificationError as error:
        return error


def rejected(verify: Callable[[], object]) -> WebhookVerificationError:
    with pytest.raises(WebhookVerificationError) as info:
        verify()
    error = info.value
    assert isinstance(error, ValueError)
    message = str(error)
    assert message
    assert "\n" not in message
    for secret in ALL_SECRETS:
        assert secret not in message
    return error


# --- vectors ----------------------------------------------------------------------------------


def test_w1_vector() -> None:
    headers = {SIGNATURE_HEADER: W1_SIG, TIMESTAMP_HEADER: W1_TS}
    event = verifier(W1_SECRET).verify(headers, W1_BODY.encode())

    assert event.id == "evt_1"
    assert event.type == "delta.verified"
    assert event.created_at == datetime(2026, 2, 11, 10, 40, tzinfo=timezone.utc)
    assert isinstance(event.data, DeltaVerifiedData)
    assert event.data.record_id == "rec_123"
    assert event.data.customer_id == "cust_1"
    assert event.data.delta == Decimal("-5")
    assert isinstance(event.data.delta, Decimal)
    assert event.raw == json.loads(W1_BODY)


def test_w2_vector_milliseconds() -> None:
    headers = {SIGNATURE_HEADER: W2_SIG, TIMESTAMP_HEADER: W2_TS}
    event = verifier(W2_SECRET).verify(headers, W2_BODY)

    assert event.type == "delta.failed"
    assert event.id is None
    assert event.data == DeltaFailedData(record_id="rec_9", error="x")


def test_w3_vector() -> None:
    headers = {SIGNATURE_HEADER: W3_SIG, TIMESTAMP_HEADER: W3_TS}
    event = verifier(W3_SECRET, now=int(W3_TS)).verify(headers, W3_BODY.encode())

    assert event.type == "checkpoint.verified"
    assert event.created_at == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert event.data == CheckpointVerifiedData()


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "expected"),
    [
        (W1_SECRET, W1_TS, W1_BODY, W1_SIG),
        (W2_SECRET, W2_TS, W2_BODY, W2_SIG),
        (W3_SECRET, W3_TS, W3_BODY, W3_SIG),
    ],
)
def test_signature_header_reproduces_vectors(secret: str, timestamp: str, body: str, expected: str) -> None:
    assert signature_header(secret, timestamp, body) == expected
    assert signature_header(secret, int(timestamp), body.encode()) == expected
    assert sign(secret, timestamp, body) == expected


def test_spec_behaviour_checks_on_w1() -> None:
    headers = {SIGNATURE_HEADER: W1_SIG, TIMESTAMP_HEADER: W1_TS}
    verifier(W1_SECRET, now=NOW + 299).verify(headers, W1_BODY)
    verifier(W1_SECRET, now=NOW - 300).verify(headers, W1_BODY)
    error = rejected(lambda: verifier(W1_SECRET, now=NOW + 301).verify(headers, W1_BODY))
    assert "too old" in str(error)
    assert "301s > 300s" in str(error)


def test_own_vectors_computed_with_hmac() -> None:
    for body in ('{"event":"x.y","data":{"a":1}}', "{}", '{"event":"e","note":"h\\u00e9llo \u00e9"}'):
        for secret in (SECRET, "no-prefix", "\u00fcnicode-secret"):
            for timestamp in (str(NOW), str(NOW * 1000 + 999)):
                headers = headers_for(body, secret=secret, timestamp=timestamp, event_type="x.y")
                event = verifier(secret).verify(headers, body.encode())
                assert event.raw == json.loads(body)
                assert headers[SIGNATURE_HEADER] == signature_header(secret, timestamp, body)


def test_str_and_bytes_bodies_are_the_same_delivery() -> None:
    body = '{"event":"customer.created","data":{"name":"Zo\u00eb"}}'
    headers = headers_for(body)
    check = verifier()
    raws: list[Any] = [body, body.encode(), bytearray(body.encode()), memoryview(body.encode())]
    for raw in raws:
        event = check.verify(headers, raw)
        assert event.type == "customer.created"
        assert event.data == {"name": "Zo\u00eb"}


# --- rotation ---------------------------------------------------------------------------------


def test_two_signatures_verify_with_either_secret() -> None:
    body = '{"event":"delta.verified","data":{}}'
    ts = str(NOW)
    header = f"{sign(SECRET, ts, body)}, {sign(OTHER_SECRET, ts, body)}"
    headers = {SIGNATURE_HEADER: header, TIMESTAMP_HEADER: ts}

    verifier(SECRET).verify(headers, body)
    verifier(OTHER_SECRET).verify(headers, body)
    rejected(lambda: verifier(THIRD_SECRET).verify(headers, body))


def test_verifier_with_several_secrets_accepts_any() -> None:
    body = '{"event":"delta.verified","data":{}}'
    rotating = verifier([SECRET, OTHER_SECRET])
    rotating.verify(headers_for(body, secret=SECRET), body)
    rotating.verify(headers_for(body, secret=OTHER_SECRET), body)
    error = rejected(lambda: rotating.verify(headers_for(body, secret=THIRD_SECRET), body))
    assert "does not match" in str(error)


def test_signature_list_tolerates_whitespace_and_other_versions() -> None:
    body = "{}"
    ts = str(NOW)
    good = sign(SECRET, ts, body)
    for header in (f"  {good}  ", f"v0=zz, {good}", f"t=1,{good},v2=abc", f"{good},", f"v1=00,{good}"):
        verifier().verify({SIGNATURE_HEADER: header, TIMESTAMP_HEADER: ts, EVENT_TYPE_HEADER: "x"}, body)


# --- the clock window -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "ok"),
    [(0, True), (300, True), (301, False), (-300, True), (-301, False), (10**6, False), (-(10**6), False)],
)
def test_timestamp_window_seconds(offset: int, ok: bool) -> None:
    """`offset` = how old the delivery is: positive is in the past, negative in the future."""
    body = '{"event":"delta.verified"}'
    headers = headers_for(body)
    check = verifier(now=NOW + offset)
    if ok:
        check.verify(headers, body)
    else:
        error = rejected(lambda: check.verify(headers, body))
        assert ("too old" if offset > 0 else "future") in str(error)


@pytest.mark.parametrize(("offset", "ok"), [(300, True), (301, False), (-300, True), (-301, False)])
def test_timestamp_window_milliseconds(offset: int, ok: bool) -> None:
    body = '{"event":"delta.verified"}'
    headers = headers_for(body, timestamp=str(NOW * 1000))
    check = verifier(now=NOW + offset)
    if ok:
        check.verify(headers, body)
    else:
        rejected(lambda: check.verify(headers, body))


def test_lowered_tolerance() -> None:
    body = "{}"
    headers = headers_for(body, event_type="x")
    verifier(now=NOW + 60, tolerance=60).verify(headers, body)
    rejected(lambda: verifier(now=NOW + 61, tolerance=60).verify(headers, body))
    assert verifier(tolerance=60).tolerance == 60


@pytest.mark.parametrize("tolerance", [301, 300.001, 600, 3600, 0, -1, float("nan"), float("inf"), True, "300"])
def test_tolerance_refused_at_construction(tolerance: Any) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        WebhookVerifier(SECRET, tolerance=tolerance)
    assert isinstance(info.value, ValueError)


def test_clock_that_returns_nan_fails_closed() -> None:
    body = "{}"
    rejected(lambda: verifier(now=float("nan")).verify(headers_for(body, event_type="x"), body))


# --- tampering --------------------------------------------------------------------------------


def test_every_changed_byte_fails() -> None:
    headers = {SIGNATURE_HEADER: W1_SIG, TIMESTAMP_HEADER: W1_TS}
    check = verifier(W1_SECRET)
    raw = W1_BODY.encode()
    for index in range(len(raw)):
        tampered = bytearray(raw)
        tampered[index] ^= 0x01
        rejected(lambda body=bytes(tampered): check.verify(headers, body))  # type: ignore[misc]


def test_reserialized_json_fails() -> None:
    headers = {SIGNATURE_HEADER: W1_SIG, TIMESTAMP_HEADER: W1_TS}
    reserialized = json.dumps(json.loads(W1_BODY))  # ", " and ": " separators
    assert reserialized != W1_BODY
    error = rejected(lambda: verifier(W1_SECRET).verify(headers, reserialized))
    assert "re-serialised" in str(error)


def test_changed_timestamp_fails() -> None:
    headers = {SIGNATURE_HEADER: W1_SIG, TIMESTAMP_HEADER: str(NOW + 1)}
    rejected(lambda: verifier(W1_SECRET).verify(headers, W1_BODY))
    # Same instant in ms is a different signed string.
    headers = {SIGNATURE_HEADER: W1_SIG, TIMESTAMP_HEADER: str(NOW * 1000)}
    rejected(lambda: verifier(W1_SECRET).verify(headers, W1_BODY))


# --- malformed input --------------------------------------------------------------------------

GOOD = {SIGNATURE_HEADER: W1_SIG, TIMESTAMP_HEADER: W1_TS}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {SIGNATURE_HEADER: W1_SIG},
        {TIMESTAMP_HEADER: W1_TS},
        {SIGNATURE_HEADER: "", TIMESTAMP_HEADER: W1_TS},
        {SIGNATURE_HEADER: W1_SIG, TIMESTAMP_HEADER: ""},
        {SIGNATURE_HEADER: "t=1,v0=zz", TIMESTAMP_HEADER: W1_TS},
        {SIGNATURE_HEADER: W1_SIG.upper(), TIMESTAMP_HEADER: W1_TS},
        {SIGNATURE_HEADER: "v1=" + W1_SIG[3:].upper(), TIMESTAMP_HEADER: W1_TS},
        {SIGNATURE_HEADER: W1_SIG[3:], TIMESTAMP_HEADER: W1_TS},
        {SIGNATURE_HEADER: W1_SIG[:-1], TIMESTAMP_HEADER: W1_TS},
        {SIGNATURE_HEADER: W1_SIG + "0", TIMESTAMP_HEADER: W1_TS},
        {SIGNATURE_HEADER: "v1=\u00e9" + W1_SIG[4:], TIMESTAMP_HEADER: W1_TS},
        {SIGNATURE_HEADER: "v1= " + W1_SIG[3:], TIMESTAMP_HEADER: W1_TS},
        {SIGNATURE_HEADER: W1_SIG, TIMESTAMP_HEADER: "1739270400.0"},
        {SIGNATURE_HEADER: W1_SIG, TIMESTAMP_HEADER: "abc"},
        {SIGNATURE_HEADER: W1_SIG, TIMESTAMP_HEADER: "1e9"},
        {SIGNATURE_HEADER: W1_SIG, TIMESTAMP_HEADER: "+1739270400"},
        {SIGNATURE_HEADER: W1_SIG, TIMESTAMP_HEADER: "1_739_270_400"},
        {
            SIGNATURE_HEADER: W1_SIG,
            TIMESTAMP_HEADER: "\u0661\u0667\u0663\u0669\u0662\u0667\u0660\u0664\u0660\u0660",
        },
        {SIGNATURE_HEADER: W1_SIG, TIMESTAMP_HEADER: "9" * 5000},
        {SIGNATURE_HEADER: W1_SIG, TIMESTAMP_HEADER: 1739270400},
        {SIGNATURE_HEADER: None, TIMESTAMP_HEADER: W1_TS},
        {SIGNATURE_HEADER: 12, TIMESTAMP_HEADER: W1_TS},
        {SIGNATURE_HEADER: W1_SIG, TIMESTAMP_HEADER: b"\xff\xfe"},
        {SIGNATURE_HEADER: W1_SIG, TIMESTAMP_HEADER: []},
        {1: 2, SIGNATURE_HEADER: W1_SIG},
        {"X-PacSpace-Signatur\u212a": W1_SIG, TIMESTAMP_HEADER: W1_TS},
    ],
)
def test_malformed_headers_raise_verification_error(headers: Any) -> None:
    rejected(lambda: verifier(W1_SECRET).verify(headers, W1_BODY))


@pytest.mark.parametrize("headers", [None, "X-PacSpace-Signature: v1=00", [("a", "b")], 42, [1, 2]])
def test_headers_that_are_not_a_mapping(headers: Any) -> None:
    rejected(lambda: verifier(W1_SECRET).verify(headers, W1_BODY))


@pytest.mark.parametrize("body", [None, 42, {"event": "x"}, ["{}"], "\ud800"])
def test_bodies_of_the_wrong_type(body: Any) -> None:
    rejected(lambda: verifier(W1_SECRET).verify(GOOD, body))


def test_delivery_signed_with_an_empty_secret_fails() -> None:
    body = "{}"
    rejected(lambda: verifier().verify(headers_for(body, secret="", event_type="x"), body))


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'"text"',
        b"1",
        b"null",
        b"true",
        b"",
        b"{",
        b"{}{}",
        b"\xff\xfe{}",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b"\xef\xbb\xbf{}",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' + b"9" * 5000 + b"}",
    ],
)
def test_signed_bodies_that_are_not_a_json_object(body: bytes) -> None:
    """Correctly signed, so the failure is about the body itself."""
    error = rejected(lambda: verifier().verify(headers_for(body, event_type="x"), body))
    assert "body" in str(error)


def test_event_type_is_required() -> None:
    body = '{"data":{}}'
    error = rejected(lambda: verifier().verify(headers_for(body), body))
    assert "event type" in str(error)
    # A non-string "event" is not a type either.
    body = '{"event":42}'
    rejected(lambda: verifier().verify(headers_for(body), body))


# --- headers lookup ---------------------------------------------------------------------------


def test_header_lookup_is_case_insensitive_and_accepts_common_shapes() -> None:
    check = verifier(W1_SECRET)
    shapes: list[Any] = [
        {"x-pacspace-signature": W1_SIG, "x-pacspace-timestamp": W1_TS},
        {"X-PACSPACE-SIGNATURE": W1_SIG, "X-PACSPACE-TIMESTAMP": W1_TS},
        {SIGNATURE_HEADER: [W1_SIG, "v1=junk"], TIMESTAMP_HEADER: (W1_TS,)},
        {SIGNATURE_HEADER: W1_SIG.encode(), TIMESTAMP_HEADER: W1_TS.encode()},
        {b"x-pacspace-signature": W1_SIG.encode(), b"x-pacspace-timestamp": W1_TS.encode()},
        {SIGNATURE_HEADER: W1_SIG, TIMESTAMP_HEADER: f" {W1_TS}\t"},
        CIMultiDict([("x-pacspace-signature", W1_SIG), ("X-PacSpace-Timestamp", W1_TS)]),
        # A multidict with a repeated header: the first one counts.
        CIMultiDict([(SIGNATURE_HEADER, W1_SIG), (SIGNATURE_HEADER, "v1=bad"), (TIMESTAMP_HEADER, W1_TS)]),
    ]
    for headers in shapes:
        assert check.verify(headers, W1_BODY).id == "evt_1"


class WerkzeugLikeHeaders:
    """Not a Mapping: iterating yields pairs and items() is a generator, as in Flask."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def items(self) -> Any:
        yield from self.pairs


def test_flask_style_headers_object() -> None:
    headers: Any = WerkzeugLikeHeaders([("X-Pacspace-Signature", W1_SIG), ("X-Pacspace-Timestamp", W1_TS)])
    assert verifier(W1_SECRET).verify(headers, W1_BODY).id == "evt_1"


# --- replay cache -----------------------------------------------------------------------------


def test_replayed_event_id_is_rejected_until_it_expires() -> None:
    clock = Clock(NOW)
    check = WebhookVerifier(SECRET, clock=clock, replay_cache=InMemoryReplayCache())
    body = '{"id":"evt_a1b2c3d4","event":"delta.verified","data":{}}'
    headers = headers_for(body, event_id="evt_a1b2c3d4")

    check.verify(headers, body)
    error = rejected(lambda: check.verify(headers, body))
    assert "replayed" in str(error)
    assert "evt_a1b2c3d4" in str(error)

    # Still within the window in which the captured delivery would pass the timestamp check.
    clock.now = NOW + 250
    rejected(lambda: check.verify(headers_for(body, event_id="evt_a1b2c3d4", timestamp=str(NOW + 250)), body))

    # Past it, the same id (freshly signed) is accepted again.
    clock.now = NOW + 601
    fresh = headers_for(body, event_id="evt_a1b2c3d4", timestamp=str(NOW + 601))
    assert check.verify(fresh, body).type == "delta.verified"


def test_replay_with_a_changed_event_id_header_is_caught_by_the_signed_id() -> None:
    check = verifier(replay_cache=InMemoryReplayCache())
    body = '{"id":"evt_signed","event":"delta.verified"}'
    check.verify(headers_for(body, event_id="evt_signed"), body)
    rejected(lambda: check.verify(headers_for(body, event_id="evt_header_2"), body))
    rejected(lambda: check.verify(headers_for(body), body))


def test_replay_cache_is_not_touched_by_rejected_deliveries() -> None:
    cache = InMemoryReplayCache()
    check = verifier(replay_cache=cache)
    body = '{"event":"delta.verified"}'
    bad = headers_for(body, event_id="evt_x", secret=THIRD_SECRET)
    rejected(lambda: check.verify(bad, body))
    assert len(cache) == 0
    check.verify(headers_for(body, event_id="evt_x"), body)
    assert len(cache) == 1


def test_deliveries_without_ids_are_deduplicated_only_as_exact_copies() -> None:
    clock = Clock(NOW)
    check = WebhookVerifier(SECRET, clock=clock, replay_cache=InMemoryReplayCache())
    body = '{"event":"delta.verified"}'
    check.verify(headers_for(body), body)
    rejected(lambda: check.verify(headers_for(body), body))
    clock.now = NOW + 1  # re-signed with a new timestamp: another delivery, as far as anyone can tell
    check.verify(headers_for(body, timestamp=str(NOW + 1)), body)


def test_custom_replay_cache_gets_the_ids_and_the_window() -> None:
    calls: list[tuple[str, float, float]] = []

    class Recorder:
        def seen(self, event_id: str, now: float, ttl: float) -> bool:
            calls.append((event_id, now, ttl))
            return False

    assert isinstance(Recorder(), ReplayCache)
    body = '{"id":"evt_body","event":"delta.verified"}'
    verifier(replay_cache=Recorder(), tolerance=120).verify(headers_for(body, event_id="evt_body"), body)
    assert calls == [("evt_body", NOW, 240)]


def test_in_memory_replay_cache_expiry_and_bound() -> None:
    cache = InMemoryReplayCache(max_entries=3)
    assert cache.seen("a", 0, 10) is False
    assert cache.seen("a", 5, 10) is True
    assert cache.seen("a", 10, 10) is False  # expired at exactly now + ttl, recorded again
    for name in ("b", "c", "d"):
        assert cache.seen(name, 11, 10) is False
    assert len(cache) == 3
    assert cache.seen("a", 12, 10) is False  # evicted as the oldest
    assert cache.seen("d", 12, 10) is True
    assert cache.seen("zz", 1000, 10) is False
    assert len(cache) == 1  # everything else expired
    assert repr(cache) == "InMemoryReplayCache(max_entries=3)"


@pytest.mark.parametrize("max_entries", [0, -1, True, 1.5, "10"])
def test_in_memory_replay_cache_refuses_bad_bounds(max_entries: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        InMemoryReplayCache(max_entries=max_entries)


def test_in_memory_replay_cache_is_thread_safe() -> None:
    cache = InMemoryReplayCache()
    results: list[bool] = []
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        for index in range(200):
            results.append(cache.seen(f"evt_{index}", NOW, 600))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(False) == 200  # each id accepted exactly once
    assert len(results) == 16 * 200


# --- constant-time comparison -----------------------------------------------------------------


def test_comparison_uses_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    real = hmac.compare_digest
    calls: list[tuple[object, object]] = []

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("pacspace_async.webhooks.hmac.compare_digest", spy)
    verifier(W1_SECRET).verify(GOOD, W1_BODY)
    assert calls
    calls.clear()
    rejected(lambda: verifier(THIRD_SECRET).verify(GOOD, W1_BODY))
    assert calls


# --- typed events -----------------------------------------------------------------------------


def parse(body: dict[str, Any] | str, **header_kwargs: Any) -> WebhookEvent:
    raw = body if isinstance(body, str) else json.dumps(body)
    return verifier().verify(headers_for(raw, **header_kwargs), raw)


def test_delta_verified_sdk_shape() -> None:
    event = parse(
        '{"id":"evt_2","event":"delta.verified","tenantId":"ten_9","createdAt":"2026-05-02T08:00:00.123Z",'
        '"data":{"recordId":"rec_1","receiptId":"rcpt_1","verificationReference":"0.0.123@1.2",'
        '"customerId":"cust_a","delta":-42.50,"sequenceNumber":"17","referenceId":"inv_1",'
        '"blockTimestamp":"1746172800.000000001","somethingNew":{"x":1}}}'
    )
    assert event.id == "evt_2"
    assert event.tenant_id == "ten_9"
    assert event.created_at == datetime(2026, 5, 2, 8, 0, 0, 123000, tzinfo=timezone.utc)
    assert event.data == DeltaVerifiedData(
        record_id="rec_1",
        receipt_id="rcpt_1",
        verification_reference="0.0.123@1.2",
        customer_id="cust_a",
        delta=Decimal("-42.50"),
        sequence_number="17",
        reference_id="inv_1",
        block_timestamp="1746172800.000000001",
    )
    assert isinstance(event.data, DeltaVerifiedData)
    assert str(event.data.delta) == "-42.50"  # exact, never a float
    assert event.data.raw["somethingNew"] == {"x": 1}


def test_delta_verified_docs_shape() -> None:
    event = parse(
        {
            "event": "delta.verified",
            "timestamp": "2026-02-11T10:30:12.456Z",
            "data": {
                "receiptId": "rcpt_7",
                "deltaIndex": 3,
                "status": "verified",
                "verifiedAt": "2026-02-11T10:30:12.456Z",
                "verificationId": "ver_1",
                "delta": {"customerId": "cust_b", "amount": 12, "reason": "usage", "referenceId": "ref_9"},
                "proof": {"proofHash": "0x" + "ab" * 32},
            },
        }
    )
    assert isinstance(event.data, DeltaVerifiedData)
    assert event.created_at == datetime(2026, 2, 11, 10, 30, 12, 456000, tzinfo=timezone.utc)
    assert event.data.customer_id == "cust_b"
    assert event.data.delta == Decimal(12)
    assert event.data.reference_id == "ref_9"
    assert event.data.status == "verified"
    assert event.data.verification_id == "ver_1"
    assert event.data.verified_at == event.created_at


def test_delta_failed() -> None:
    event = parse(
        # A delivery in the official SDK's typed shape, spaces and all.
        '{"id": "evt_01", "event": "delta.failed", "tenantId": "ten_9",'
        ' "createdAt": "2026-05-02T08:00:00.000Z",'
        ' "data": {"recordId": "rec_44", "customerId": "cust_a", "delta": -3, "error": "validation failed",'
        ' "failedAt": "2026-05-02T07:59:58.000Z"}}'
    )
    assert event.data == DeltaFailedData(
        record_id="rec_44",
        customer_id="cust_a",
        delta=Decimal(-3),
        error="validation failed",
        failed_at=datetime(2026, 5, 2, 7, 59, 58, tzinfo=timezone.utc),
    )


def test_checkpoint_verified() -> None:
    event = parse(
        {
            "event": "checkpoint.verified",
            "data": {
                "checkpointId": "chk_1",
                "customerId": "cust_1",
                "period": "2026-01",
                "proofRoot": "0xab",
            },
        }
    )
    assert event.data == CheckpointVerifiedData(
        checkpoint_id="chk_1", customer_id="cust_1", period="2026-01", proof_root="0xab"
    )
    old = parse({"event": "checkpoint.verified", "data": {"itemsRoot": "0xcd"}})
    assert isinstance(old.data, CheckpointVerifiedData)
    assert old.data.proof_root == "0xcd"


def test_record_committed() -> None:
    event = parse(
        {
            "event": "record.committed",
            "data": {
                "receiptId": "rcpt_3",
                "status": "VERIFIED",
                "verifiedAt": "2026-03-01T12:00:00+01:00",
                "verificationId": "ver_3",
                "itemCount": 2,
                "records": [{"seq": 0}, {"seq": 1}],
                "verification": {"verified": True},
            },
        }
    )
    assert isinstance(event.data, RecordCommittedData)
    assert event.data.receipt_id == "rcpt_3"
    assert event.data.status == "VERIFIED"
    assert event.data.verified_at == datetime(2026, 3, 1, 11, 0, tzinfo=timezone.utc)
    assert event.data.item_count == 2
    assert event.data.records == ({"seq": 0}, {"seq": 1})
    assert event.data.verification == {"verified": True}


def test_record_failed() -> None:
    event = parse(
        {
            "event": "record.failed",
            "data": {
                "recordType": "invoice",
                "entityId": "ent_1",
                "seq": 0,
                "code": "BAD",
                "sentence": "no.",
            },
        }
    )
    assert event.data == RecordFailedData(record_type="invoice", entity_id="ent_1", seq=0, code="BAD", sentence="no.")


def test_unknown_event_type_keeps_the_raw_mapping() -> None:
    event = parse({"event": "customer.shared_record_viewed", "data": {"customerId": "c", "amount": 1.5}})
    assert event.type == "customer.shared_record_viewed"
    assert event.data == {"customerId": "c", "amount": Decimal("1.5")}


def test_event_type_and_id_from_headers_when_the_body_lacks_them() -> None:
    event = parse({"data": {"recordId": "rec_1"}}, event_type="delta.failed", event_id="evt_h")
    assert event.type == "delta.failed"
    assert event.id == "evt_h"
    assert isinstance(event.data, DeltaFailedData)
    # The signed body wins over the unsigned header (an id that disagrees is refused outright).
    event = parse({"event": "delta.verified", "id": "evt_b"}, event_type="delta.failed", event_id="evt_b")
    assert event.type == "delta.verified"
    assert event.id == "evt_b"


def test_wrong_typed_fields_become_none_and_stay_in_raw() -> None:
    # (A number where text is expected is read as text, as in the models: tests/test_wire_reading.py.)
    data = {
        "recordId": True,
        "receiptId": ["x"],
        "customerId": None,
        "delta": "not a number",
        "sequenceNumber": 7,
        "verifiedAt": "yesterday",
        "referenceId": {"a": 1},
    }
    event = parse(
        {"id": 1, "event": "delta.verified", "tenantId": [2], "createdAt": "2026-13-45T99:00:00Z", "data": data}
    )
    assert event.id is None
    assert event.tenant_id is None
    assert event.created_at is None
    assert isinstance(event.data, DeltaVerifiedData)
    assert event.data.record_id is None
    assert event.data.receipt_id is None
    assert event.data.delta is None
    assert event.data.sequence_number == "7"
    assert event.data.verified_at is None
    assert event.data.reference_id is None
    assert event.data.raw["recordId"] is True

    odds: tuple[object, ...] = ([], "text", 3, None)
    for odd in odds:
        event = parse({"event": "record.failed", "data": odd})
        assert event.data == RecordFailedData()
        assert event.raw["data"] == odd
    event = parse({"event": "record.committed", "data": {"itemCount": True, "records": "no", "verification": 1}})
    assert event.data == RecordCommittedData()


def test_delta_as_text_and_timestamps_as_numbers() -> None:
    event = parse({"event": "delta.failed", "createdAt": NOW * 1000, "data": {"delta": "-0.10"}})
    assert isinstance(event.data, DeltaFailedData)
    assert event.data.delta == Decimal("-0.10")
    assert event.created_at == datetime.fromtimestamp(NOW, tz=timezone.utc)
    for junk in ("1_000", " 5", "\u0665", "NaN", "Infinity", "1e"):
        assert parse({"event": "delta.failed", "data": {"delta": junk}}).data == DeltaFailedData()


def test_raw_is_excluded_from_eq_and_repr() -> None:
    a = parse({"event": "delta.failed", "data": {"recordId": "r", "extra": 1}})
    b = parse({"event": "delta.failed", "data": {"recordId": "r", "extra": 2}})
    assert a == b
    assert "extra" not in repr(a)
    assert "raw" not in repr(a.data)


# --- secrets stay secret ----------------------------------------------------------------------


def test_secret_never_appears_in_repr_str_or_errors() -> None:
    check = WebhookVerifier([SECRET, OTHER_SECRET], clock=fixed(NOW), tolerance=120)
    for text in (repr(check), str(check)):
        assert SECRET not in text
        assert OTHER_SECRET not in text
        assert "whsec" not in text
    assert repr(check) == "WebhookVerifier(secrets=2, tolerance=120)"

    body = '{"event":"delta.verified"}'
    expected = sign(SECRET, str(NOW), body)
    messages = []
    for headers in (
        headers_for(body, secret=THIRD_SECRET),
        {SIGNATURE_HEADER: "v1=" + "0" * 64, TIMESTAMP_HEADER: str(NOW)},
        headers_for(body, timestamp=str(NOW - 1000)),
        {SIGNATURE_HEADER: "garbage", TIMESTAMP_HEADER: str(NOW)},
        {},
    ):
        with pytest.raises(WebhookVerificationError) as info:
            check.verify(headers, body)
        messages.append(str(info.value))
        messages.append(repr(info.value))
    with pytest.raises(WebhookVerificationError) as info:
        check.verify(headers_for(body), body + " ")
    messages.append(str(info.value))
    for message in messages:
        assert SECRET not in message
        assert OTHER_SECRET not in message
        assert expected[3:] not in message


@pytest.mark.parametrize(
    "secret",
    ["", " \n", [], ["", SECRET], [SECRET, 5], b"whsec_bytes", 42, {SECRET}, f"{SECRET}\n{OTHER_SECRET}"],
)
def test_bad_secrets_are_configuration_errors(secret: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        WebhookVerifier(secret)
    assert isinstance(info.value, ValueError)
    assert SECRET not in str(info.value)


# --- environment ------------------------------------------------------------------------------


def test_secret_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV_VAR, W1_SECRET)
    assert WebhookVerifier(clock=fixed(NOW)).verify(GOOD, W1_BODY).id == "evt_1"


def test_several_secrets_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV_VAR, f"{THIRD_SECRET}, {W1_SECRET}")
    check = WebhookVerifier(clock=fixed(NOW))
    assert repr(check) == "WebhookVerifier(secrets=2, tolerance=300)"
    check.verify(GOOD, W1_BODY)


@pytest.mark.parametrize("value", [None, "", "  ", ","])
def test_missing_secret_in_environment(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv(SECRET_ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(SECRET_ENV_VAR, value)
    with pytest.raises(ConfigurationError) as info:
        WebhookVerifier()
    assert SECRET_ENV_VAR in str(info.value)


def test_explicit_secret_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV_VAR, THIRD_SECRET)
    verifier(W1_SECRET).verify(GOOD, W1_BODY)


# --- verify_signature -------------------------------------------------------------------------


def test_verify_signature() -> None:
    check = verifier(W1_SECRET)
    check.verify_signature(W1_SIG, W1_TS, W1_BODY)
    check.verify_signature(W1_SIG, W1_TS, W1_BODY.encode())
    rejected(lambda: check.verify_signature(W1_SIG, W1_TS, W1_BODY + " "))
    rejected(lambda: check.verify_signature(W1_SIG, "17392704OO", W1_BODY))
    rejected(lambda: verifier(W1_SECRET, now=NOW + 301).verify_signature(W1_SIG, W1_TS, W1_BODY))
    rejected(lambda: check.verify_signature(None, W1_TS, W1_BODY))  # type: ignore[arg-type]
    rejected(lambda: check.verify_signature(W1_SIG, None, W1_BODY))  # type: ignore[arg-type]
    # Signature-only: a body that is not a JSON object is fine here.
    check.verify_signature(sign(W1_SECRET, W1_TS, b"\xff[]"), W1_TS, b"\xff[]")


def test_timestamp_is_checked_before_the_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []

    def never_called(a: Any, b: Any) -> bool:
        calls.append(a)
        return False

    monkeypatch.setattr("pacspace_async.webhooks.hmac.compare_digest", never_called)
    error = rejected(lambda: verifier(W1_SECRET, now=NOW + 301).verify(GOOD, W1_BODY))
    assert "too old" in str(error)
    assert calls == []


# --- fuzzing ----------------------------------------------------------------------------------

HEADER_NAMES = st.one_of(
    st.sampled_from(
        [
            SIGNATURE_HEADER,
            TIMESTAMP_HEADER,
            EVENT_ID_HEADER,
            EVENT_TYPE_HEADER,
            SIGNATURE_HEADER.lower(),
            TIMESTAMP_HEADER.upper(),
            "Content-Type",
        ]
    ),
    st.text(max_size=24),
)
SIGNATURE_TEXT = st.lists(
    st.one_of(
        st.just(W1_SIG),
        st.just(W1_SIG.upper()),
        st.from_regex(r"v1=[0-9a-fA-F]{0,70}", fullmatch=True),
        st.sampled_from(["v0=zz", "t=1", "v1=", " v1 = ", ","]),
        st.text(max_size=80),
    ),
    max_size=4,
).map(",".join)
TIMESTAMP_TEXT = st.one_of(
    st.sampled_from([W1_TS, W2_TS, "", "-1", "0", "1e12", W1_TS + ".5", " " + W1_TS]),
    st.integers().map(str),
    st.text(max_size=24),
)
SCALARS = st.one_of(st.text(max_size=80), st.binary(max_size=80), st.none(), st.integers(), st.floats(), st.booleans())
VALUES = st.one_of(SCALARS, SIGNATURE_TEXT, TIMESTAMP_TEXT, st.lists(st.one_of(SCALARS, SIGNATURE_TEXT), max_size=3))
BODIES = st.one_of(
    st.text(),
    st.binary(),
    st.just(W1_BODY),
    st.just(W1_BODY.encode()),
    st.integers(min_value=0, max_value=len(W1_BODY)).map(lambda n: W1_BODY[:n]),
    st.binary(max_size=40).map(lambda tail: W1_BODY.encode() + tail),
    st.text(max_size=40).map(lambda tail: W1_BODY + tail),
    st.none(),
    st.integers(),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)


@st.composite
def header_maps(draw: st.DrawFn) -> Any:
    kind = draw(st.integers(min_value=0, max_value=2))
    if kind == 0:
        return draw(st.dictionaries(HEADER_NAMES, VALUES, max_size=6))
    # Valid-looking: start from the real W1 headers, then damage or extend them.
    headers: dict[Any, Any] = {SIGNATURE_HEADER: W1_SIG, TIMESTAMP_HEADER: W1_TS}
    headers.update(draw(st.dictionaries(HEADER_NAMES, VALUES, max_size=3)))
    if kind == 2:
        return CIMultiDict((str(k), str(v)) for k, v in headers.items())
    return headers


@settings(max_examples=1000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers=header_maps(), body=BODIES, skew=st.sampled_from([0, 300, -300, 301, -301]))
def test_fuzz_only_verification_errors_escape(headers: Any, body: Any, skew: int) -> None:
    check = WebhookVerifier(W1_SECRET, clock=fixed(NOW + skew), replay_cache=InMemoryReplayCache())
    outcome = attempt(lambda: check.verify(headers, body))
    if isinstance(outcome, WebhookVerificationError):
        assert isinstance(outcome, ValueError)
        assert "\n" not in str(outcome)
        assert W1_SECRET not in str(outcome)
    else:
        assert isinstance(outcome, WebhookEvent)


JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=30),
        st.sampled_from(["2026-02-11T10:30:12.456Z", "2026-02-30T00:00:00Z", "2026-01-01T24:00:00+99:99"]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
DATA_KEYS = [
    "recordId", "receiptId", "verificationReference", "customerId", "delta", "sequenceNumber", "referenceId",
    "blockTimestamp", "status", "verificationId", "verifiedAt", "error", "failedAt", "checkpointId", "period",
    "proofRoot", "itemsRoot", "itemCount", "records", "verification", "recordType", "entityId", "seq", "code",
    "sentence", "amount",
]  # fmt: skip
EVENT_TYPES = st.one_of(
    st.sampled_from(
        ["delta.verified", "delta.failed", "checkpoint.verified", "record.committed", "record.failed", "x"]
    ),
    JSON,
)
DATA = st.one_of(
    st.dictionaries(st.sampled_from(DATA_KEYS), st.one_of(JSON, st.dictionaries(st.sampled_from(DATA_KEYS), JSON))),
    JSON,
)
ENVELOPES = st.fixed_dictionaries(
    {},
    optional={
        "id": JSON,
        "event": EVENT_TYPES,
        "tenantId": JSON,
        "createdAt": JSON,
        "timestamp": JSON,
        "data": DATA,
        "extra": JSON,
    },
)


@settings(max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(envelope=ENVELOPES, header_type=st.one_of(st.none(), st.text(max_size=20)), as_text=st.booleans())
def test_fuzz_signed_payloads_parse_or_raise_verification_error(
    envelope: dict[str, Any], header_type: str | None, as_text: bool
) -> None:
    """Correctly signed, so every value reaches the event parser."""
    body = json.dumps(envelope)
    headers = headers_for(body, event_type=header_type)
    raw: bytes | str = body if as_text else body.encode()
    outcome = attempt(lambda: verifier().verify(headers, raw))
    if isinstance(outcome, WebhookVerificationError):
        assert "event type" in str(outcome)
    else:
        assert outcome.raw == json.loads(body, parse_float=Decimal)
        assert isinstance(outcome.type, str)
        assert outcome.type


# --- aiohttp ----------------------------------------------------------------------------------


async def test_verify_aiohttp_against_a_real_server() -> None:
    check = WebhookVerifier(SECRET, clock=fixed(NOW), replay_cache=InMemoryReplayCache())
    received: list[WebhookEvent] = []

    async def receive(request: web.Request) -> web.Response:
        try:
            event = await check.verify_aiohttp(request)
        except WebhookVerificationError as error:
            return web.Response(status=400, text=str(error))
        received.append(event)
        return web.Response(status=200, text=event.type)

    app = web.Application()
    app.router.add_post("/webhooks/pacspace", receive)
    body = b'{"id":"evt_9","event":"delta.verified","data":{"recordId":"rec_1","delta":-1.25}}'

    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        assert client.server.host == "127.0.0.1"
        good = headers_for(body, event_id="evt_9")
        response = await client.post("/webhooks/pacspace", data=body, headers=good)
        assert response.status == 200
        assert await response.text() == "delta.verified"

        replay = await client.post("/webhooks/pacspace", data=body, headers=good)
        assert replay.status == 400
        assert "replayed" in await replay.text()

        altered = body.replace(b"-1.25", b"-9.25")
        tampered = await client.post("/webhooks/pacspace", data=altered, headers=good)
        assert tampered.status == 400

        missing = await client.post("/webhooks/pacspace", data=body)
        assert missing.status == 400
        assert TIMESTAMP_HEADER in await missing.text()

    assert len(received) == 1
    assert isinstance(received[0].data, DeltaVerifiedData)
    assert received[0].data.delta == Decimal("-1.25")


def test_client_exposes_its_verifier_as_pac_webhooks(monkeypatch: pytest.MonkeyPatch) -> None:
    from pacspace_async import AsyncPacSpace, ConfigurationError

    secret = "whsec_client_secret"
    body = b'{"id":"evt_c","event":"delta.failed","data":{"recordId":"rec_9","error":"x"}}'
    stamp = str(int(time.time()))
    headers = {"X-PacSpace-Timestamp": stamp, "X-PacSpace-Signature": signature_header(secret, stamp, body)}
    assert AsyncPacSpace(webhook_secret=secret).webhooks.verify(headers, body).type == "delta.failed"
    monkeypatch.setenv("PACSPACE_WEBHOOK_SECRET", secret)
    assert AsyncPacSpace().webhooks.verify(headers, body).id == "evt_c"
    monkeypatch.delenv("PACSPACE_WEBHOOK_SECRET")
    with pytest.raises(ConfigurationError, match="webhook_secret"):
        _ = AsyncPacSpace().webhooks
    with pytest.raises(ConfigurationError):
        AsyncPacSpace(webhook_secret="")
    assert secret not in repr(AsyncPacSpace(webhook_secret=secret).webhooks)
