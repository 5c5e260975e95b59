"""Webhook replay cache and secrets: the cache learns only what the signature covers, and only
from a delivery that passed every check; a secret reads the same from the constructor and the
environment."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pacspace_async import AsyncPacSpace
from pacspace_async._errors import ConfigurationError, InvalidArgumentError, WebhookVerificationError
from pacspace_async.webhooks import (
    EVENT_ID_HEADER,
    SECRET_ENV_VAR,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    InMemoryReplayCache,
    WebhookEvent,
    WebhookVerifier,
    signature_header,
)

NOW = 1_739_270_400
SECRET = "whsec_replay_tests_5c4b3a"
OTHER = "whsec_replay_tests_other_9z8y"


def sign(secret: str, timestamp: str, body: bytes | str) -> str:
    """Independent reference signer (hmac directly, not the module under test)."""
    raw = body.encode() if isinstance(body, str) else body
    return "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()


def delivery(
    event_id: str | None, *, header_id: str | None = "same", at: int = NOW, secret: str = SECRET, **fields: Any
) -> tuple[dict[str, str], bytes]:
    """A signed delivery; ``header_id="same"`` puts the body's id in X-Event-ID, None leaves it out."""
    envelope: dict[str, Any] = {"event": "delta.verified", "data": {"recordId": "rec_1"}, **fields}
    if event_id is not None:
        envelope = {"id": event_id, **envelope}
    body = json.dumps(envelope, separators=(",", ":")).encode()
    headers = {SIGNATURE_HEADER: sign(secret, str(at), body), TIMESTAMP_HEADER: str(at)}
    header = event_id if header_id == "same" else header_id
    if header is not None:
        headers[EVENT_ID_HEADER] = header
    return headers, body


def forge(captured: tuple[dict[str, str], bytes], header_id: str | None) -> tuple[dict[str, str], bytes]:
    """The captured delivery with only its unsigned X-Event-ID header changed (or removed)."""
    headers, body = captured
    headers = {k: v for k, v in headers.items() if k != EVENT_ID_HEADER}
    if header_id is not None:
        headers[EVENT_ID_HEADER] = header_id
    return headers, body


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A ReplayCache that records every call (and remembers, like a real store)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.store = InMemoryReplayCache()

    def seen(self, event_id: str, now: float, ttl: float) -> bool:
        self.calls.append(event_id)
        return self.store.seen(event_id, now, ttl)


def make(cache: Any = None, clock: Callable[[], float] | None = None) -> WebhookVerifier:
    return WebhookVerifier(SECRET, clock=clock or Clock(), replay_cache=cache)


def accepts(check: WebhookVerifier, sent: tuple[dict[str, str], bytes]) -> WebhookEvent:
    return check.verify(*sent)


def refuses(check: WebhookVerifier, sent: tuple[dict[str, str], bytes]) -> str:
    with pytest.raises(WebhookVerificationError) as info:
        check.verify(*sent)
    message = str(info.value)
    assert SECRET not in message
    assert "\n" not in message
    return message


# --- item 1: the cache cannot be poisoned -----------------------------------------------------


def test_a_forged_event_id_header_does_not_block_the_real_event() -> None:
    """The reported attack: one captured delivery, a forged X-Event-ID: evt_2."""
    check = make(InMemoryReplayCache())
    captured = delivery("evt_1")
    accepts(check, captured)
    refuses(check, forge(captured, "evt_2"))
    assert accepts(check, delivery("evt_2")).id == "evt_2"


def test_a_forged_copy_that_arrives_first_blocks_nothing() -> None:
    check = make(InMemoryReplayCache())
    captured = delivery("evt_1")
    assert "disagrees" in refuses(check, forge(captured, "evt_2"))
    # Neither the forged header's id nor the signed one was learned from the refused copy.
    accepts(check, captured)
    accepts(check, delivery("evt_2"))


def test_a_header_id_that_disagrees_with_the_signed_id_is_refused_without_a_cache_too() -> None:
    check = make()
    message = refuses(check, forge(delivery("evt_1"), "evt_2"))
    assert EVENT_ID_HEADER in message
    assert "evt_1" in message
    assert "evt_2" in message
    # An unprintable header id is not echoed.
    assert "<" not in refuses(check, forge(delivery("evt_1"), "<script>"))
    # Agreeing, or absent, is fine.
    assert accepts(check, delivery("evt_1")).id == "evt_1"
    assert accepts(check, delivery("evt_1", header_id=None)).id == "evt_1"


def test_the_cache_hears_only_of_deliveries_that_passed_every_check() -> None:
    cache = Recorder()
    clock = Clock()
    check = make(cache, clock)
    headers, body = delivery("evt_ok")
    refusals = [
        forge((headers, body), "evt_victim"),  # header disagrees with the signed id
        delivery("evt_bad_sig", secret=OTHER),  # wrong secret
        delivery("evt_stale", at=NOW - 301),  # too old
        delivery("evt_future", at=NOW + 301),  # too far ahead
        ({**headers, EVENT_ID_HEADER: "evt_x"}, body + b" "),  # altered body
        ({SIGNATURE_HEADER: sign(SECRET, str(NOW), b"[1]"), TIMESTAMP_HEADER: str(NOW)}, b"[1]"),  # not an object
    ]
    no_type = json.dumps({"id": "evt_no_type"}).encode()
    refusals.append(
        ({SIGNATURE_HEADER: sign(SECRET, str(NOW), no_type), TIMESTAMP_HEADER: str(NOW)}, no_type)
    )  # no event type
    for sent in refusals:
        refuses(check, sent)
    assert cache.calls == []
    accepts(check, (headers, body))
    assert cache.calls == ["evt_ok"]
    refuses(check, (headers, body))  # the replay itself asks, and is refused
    assert cache.calls == ["evt_ok", "evt_ok"]


def test_forged_headers_cannot_flood_the_cache_and_evict_real_ids() -> None:
    cache = InMemoryReplayCache(max_entries=10)
    check = make(cache)
    earlier = delivery("evt_earlier")
    accepts(check, earlier)
    captured = delivery("evt_captured")
    accepts(check, captured)
    for number in range(100):
        refuses(check, forge(captured, f"evt_forged_{number}"))
    assert len(cache) == 2
    assert "evt_earlier" in refuses(check, earlier)  # still remembered: not evicted by forgeries


def test_a_body_without_an_id_is_keyed_by_its_signed_timestamp_and_body() -> None:
    cache = Recorder()
    clock = Clock()
    check = make(cache, clock)
    captured = delivery(None, header_id="evt_hdr")
    event = accepts(check, captured)
    assert event.id == "evt_hdr"  # shown, but not trusted by the cache
    body = captured[1]
    digest = hashlib.sha256(f"{NOW}.".encode() + body).hexdigest()
    assert cache.calls == [f"sha256:{digest}"]
    # A copy is refused however its unsigned header is changed.
    for header_id in ("evt_hdr", "evt_other", None):
        assert "same timestamp and body" in refuses(check, forge(captured, header_id))
    # Re-signed with another timestamp, it is another delivery.
    clock.now = NOW + 5
    accepts(check, delivery(None, header_id="evt_hdr", at=NOW + 5))


@pytest.mark.parametrize("odd_id", [None, "", 7, ["evt_1"], {"a": 1}, True])
def test_an_id_that_is_not_text_counts_as_no_id(odd_id: object) -> None:
    cache = Recorder()
    check = make(cache)
    envelope = {"id": odd_id, "event": "delta.failed", "data": {}}
    body = json.dumps(envelope).encode()
    sent = ({SIGNATURE_HEADER: sign(SECRET, str(NOW), body), TIMESTAMP_HEADER: str(NOW), EVENT_ID_HEADER: "7"}, body)
    assert accepts(check, sent).id == "7"
    assert cache.calls[0].startswith("sha256:")
    refuses(check, sent)


def test_the_window_is_twice_the_tolerance_from_acceptance() -> None:
    clock = Clock()
    check = WebhookVerifier(SECRET, clock=clock, tolerance=60, replay_cache=InMemoryReplayCache())
    accepts(check, delivery("evt_1"))
    clock.now = NOW + 119
    assert "120s" in refuses(check, delivery("evt_1", at=NOW + 119))  # PacSpace re-sent it: same event
    clock.now = NOW + 120
    accepts(check, delivery("evt_1", at=NOW + 120))


def test_one_verifier_shared_by_threads_accepts_each_delivery_once_and_is_not_poisoned() -> None:
    check = make(InMemoryReplayCache())
    captured = delivery("evt_captured")
    accepts(check, captured)
    threads_count = 16
    barrier = threading.Barrier(threads_count)
    outcomes: list[tuple[int, str]] = []
    lock = threading.Lock()
    same = delivery("evt_everyone")

    def worker(number: int) -> None:
        barrier.wait()
        results = []
        for sent in (forge(captured, f"evt_{number}"), delivery(f"evt_{number}"), same):
            try:
                check.verify(*sent)
                results.append((number, "ok"))
            except WebhookVerificationError:
                results.append((number, "refused"))
        with lock:
            outcomes.extend(results)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 3 * threads_count
    # Per thread: the forged copy refused, its own real delivery accepted; the shared one once overall.
    assert sum(1 for _, result in outcomes if result == "ok") == threads_count + 1


def test_an_exception_of_the_cache_store_itself_propagates() -> None:
    class Down:
        def seen(self, event_id: str, now: float, ttl: float) -> bool:
            raise ConnectionError("store unreachable")

    check = make(Down())
    with pytest.raises(ConnectionError):  # an outage, not a bad delivery: the endpoint answers 5xx
        accepts(check, delivery("evt_1"))
    refuses(check, forge(delivery("evt_1"), "evt_2"))  # a bad delivery never reaches the store


@pytest.mark.parametrize("cache", [{}, [], "cache", object()])
def test_a_replay_cache_without_seen_is_refused_at_construction(cache: object) -> None:
    with pytest.raises(InvalidArgumentError, match="seen"):
        make(cache)


@pytest.mark.parametrize("reading", [None, "now", Decimal(NOW), True, 10**400])
def test_a_clock_without_a_usable_time_fails_closed(reading: object) -> None:
    check = make(clock=lambda: reading)  # type: ignore[arg-type, return-value]
    assert "clock" in refuses(check, delivery("evt_1"))


IDS = st.one_of(st.none(), st.text(max_size=12), st.integers(), st.sampled_from(["evt_1", "evt_2", ""]))


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sends=st.lists(
        st.tuples(IDS, st.one_of(st.none(), st.sampled_from(["evt_1", "evt_2", "evt_3", " "]), st.text(max_size=8))),
        min_size=1,
        max_size=8,
    )
)
def test_fuzz_the_cache_grows_only_with_accepted_deliveries(sends: list[tuple[object, str | None]]) -> None:
    cache = InMemoryReplayCache()
    check = make(cache)
    accepted = 0
    for body_id, header_id in sends:
        envelope = {"id": body_id, "event": "delta.verified", "data": {}}
        body = json.dumps(envelope).encode()
        headers = {SIGNATURE_HEADER: sign(SECRET, str(NOW), body), TIMESTAMP_HEADER: str(NOW)}
        if header_id is not None:
            headers[EVENT_ID_HEADER] = header_id
        try:
            event = check.verify(headers, body)
        except WebhookVerificationError:
            pass
        else:
            accepted += 1
            if isinstance(body_id, str) and body_id:
                assert event.id == body_id
        assert len(cache) == accepted


# --- item 8: secrets read the same everywhere ---------------------------------------------------

SAME_AS_ONE = ["whsec_abc\n", " whsec_abc", "whsec_abc\r\n", "\twhsec_abc \n", "whsec_abc"]
SAME_AS_TWO = ["whsec_abc, whsec_def", "whsec_abc,whsec_def\n", " whsec_abc ,\twhsec_def "]


def signed_with(secret: str) -> tuple[dict[str, str], bytes]:
    body = b'{"id":"evt_s","event":"delta.failed","data":{}}'
    return {SIGNATURE_HEADER: sign(secret, str(NOW), body), TIMESTAMP_HEADER: str(NOW)}, body


@pytest.mark.parametrize("text", SAME_AS_ONE + SAME_AS_TWO)
def test_a_secret_reads_the_same_from_the_constructor_and_the_environment(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv(SECRET_ENV_VAR, text)
    from_env = WebhookVerifier(clock=Clock())
    given_ = WebhookVerifier(text, clock=Clock())
    in_list = WebhookVerifier([text], clock=Clock())
    count = 2 if text in SAME_AS_TWO else 1
    for check in (from_env, given_, in_list):
        assert repr(check) == f"WebhookVerifier(secrets={count}, tolerance=300)"
        assert accepts(check, signed_with("whsec_abc")).id == "evt_s"
        if count == 2:
            accepts(check, signed_with("whsec_def"))


def test_signature_header_reads_the_secret_as_the_verifier_does() -> None:
    body = b"{}"
    assert signature_header("whsec_abc\n", NOW, body) == signature_header("whsec_abc", NOW, body)
    WebhookVerifier("whsec_abc\n", clock=Clock()).verify_signature(
        signature_header(" whsec_abc\n", NOW, body), str(NOW), body
    )


BAD = [
    ("whsec_abc\nwhsec_def", "whitespace"),  # two secrets joined by a newline: one that never matches
    ("whsec_abc whsec_def", "whitespace"),
    ("whsec_a\u200bbc", "invisible"),
    ("\ufeffwhsec_abc", "invisible"),
    ("whsec_abc,,whsec_def", "2 of 3"),
    ("whsec_abc,", "2 of 2"),
    (",whsec_abc", "1 of 2"),
]


@pytest.mark.parametrize(("text", "why"), BAD)
def test_a_bad_secret_is_refused_the_same_way_everywhere_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, text: str, why: str
) -> None:
    monkeypatch.setenv(SECRET_ENV_VAR, text)
    messages = []
    for build in (lambda: WebhookVerifier(), lambda: WebhookVerifier(text), lambda: AsyncPacSpace()):
        with pytest.raises(ConfigurationError) as info:
            build()
        messages.append(str(info.value))
    assert all(why in message for message in messages), messages
    assert SECRET_ENV_VAR in messages[0]
    for message in messages:
        for piece in ("whsec_abc", "whsec_def", "whsec_a", "bc"):
            assert piece not in message


def test_a_secret_that_is_not_text_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigurationError, match="copy it again") as info:
        WebhookVerifier("whsec_abc\ud800")
    assert "whsec_abc" not in str(info.value)


def test_the_client_accepts_a_secret_with_a_trailing_newline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV_VAR, raising=False)
    stamp = "1739270400"
    body = b'{"id":"evt_c","event":"delta.failed","data":{}}'
    headers = {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign("whsec_abc", stamp, body)}
    pac = AsyncPacSpace(webhook_secret="whsec_abc\n")
    assert repr(pac.webhooks) == "WebhookVerifier(secrets=1, tolerance=300)"
    monkeypatch.setenv(SECRET_ENV_VAR, "whsec_abc\n")
    assert repr(AsyncPacSpace().webhooks) == "WebhookVerifier(secrets=1, tolerance=300)"
    # Same secret both ways: the same signature passes (a fixed clock keeps the timestamp fresh).
    assert WebhookVerifier("whsec_abc\n", clock=Clock()).verify(headers, body).id == "evt_c"


def test_a_signalling_nan_tolerance_is_an_argument_error() -> None:
    with pytest.raises(InvalidArgumentError, match="tolerance"):
        WebhookVerifier(SECRET, tolerance=Decimal("sNaN"))  # type: ignore[arg-type]
