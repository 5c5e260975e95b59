"""One way to read the wire: a model and a webhook event read the same JSON value the same way
(one converter, one reader per type), and a model is built once, with every value it holds
(docs/architecture.md, "Models and the wire")."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import cattrs
import pytest
from multidict import CIMultiDict

import pacspace_async
import pacspace_async._webhook_events
from pacspace_async import _codec, webhooks
from pacspace_async._errors import WebhookVerificationError
from pacspace_async._models import (
    MILLISECONDS_FROM,
    converter,
    local_field,
    parse_datetime,
    raw_field,
    read_shape,
    structure,
    unix_seconds,
)
from pacspace_async.models import Checkpoint, DeltaRecord, Usage
from pacspace_async.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeltaFailedData,
    DeltaVerifiedData,
    InMemoryReplayCache,
    RecordCommittedData,
    WebhookEvent,
    WebhookVerifier,
)

NOW = 1_739_270_400
AT_NOW = datetime(2025, 2, 11, 10, 40, tzinfo=timezone.utc)
SECRET = "whsec_wire_reading_tests_4d3c2b"


def deliver(envelope: Mapping[str, Any], *, timestamp: str = str(NOW), verifier: WebhookVerifier | None = None) -> Any:
    """Sign `envelope` as PacSpace does (hmac directly) and verify it; the event."""
    body = _codec.dumps(envelope)
    signature = "v1=" + hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    check = verifier or WebhookVerifier(SECRET, clock=lambda: NOW)
    return check.verify({SIGNATURE_HEADER: signature, TIMESTAMP_HEADER: timestamp}, body)


class Answer:
    """What `structure` is told about the exchange an answer came from."""

    request_id = "req_1"
    idempotency_key = "idem_1"
    headers = CIMultiDict({"Idempotent-Replayed": "true"})


# --- instants ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (NOW, AT_NOW),
        (NOW * 1000, AT_NOW),
        (NOW * 1000 + 123, AT_NOW + timedelta(milliseconds=123)),
        (Decimal("1739270400.5"), AT_NOW + timedelta(milliseconds=500)),
        (Decimal("1739270400123.4"), AT_NOW + timedelta(microseconds=123400)),
        ("2025-02-11T10:40:00Z", AT_NOW),
        ("2025-02-11T12:40:00.250+02:00", AT_NOW + timedelta(milliseconds=250)),
        (10**30, None),
        ("2025-13-45T99:00:00Z", None),
    ],
)
def test_the_same_value_is_the_same_instant_in_a_model_and_in_a_webhook_event(
    value: object, expected: datetime | None
) -> None:
    model = structure({"checkpointId": "chk_1", "createdAt": value}, Checkpoint)
    event = deliver({"event": "delta.failed", "createdAt": value, "data": {"failedAt": value}})
    assert isinstance(event.data, DeltaFailedData)
    assert model.created_at == event.created_at == event.data.failed_at == expected


def test_the_header_timestamp_follows_the_same_unit_rule() -> None:
    # A delivery stamped in milliseconds is fresh at NOW, and its ms createdAt is NOW as well.
    event = deliver({"event": "delta.failed", "createdAt": NOW * 1000}, timestamp=str(NOW * 1000))
    assert event.created_at == AT_NOW


def test_unix_time_is_milliseconds_from_10_to_the_12() -> None:
    assert unix_seconds(MILLISECONDS_FROM - 1) == MILLISECONDS_FROM - 1
    assert unix_seconds(MILLISECONDS_FROM) == Decimal(1_000_000_000)
    assert unix_seconds(-MILLISECONDS_FROM) == Decimal(-1_000_000_000)
    assert parse_datetime(MILLISECONDS_FROM) == datetime(2001, 9, 9, 1, 46, 40, tzinfo=timezone.utc)
    # Just below the rule, seconds: the year 33658, which no datetime holds.
    with pytest.raises(ValueError, match="Unix time"):
        parse_datetime(MILLISECONDS_FROM - 1)


@pytest.mark.parametrize("value", [10**30, -(10**30), float("inf"), float("nan"), Decimal("NaN"), Decimal("-Infinity")])
def test_numbers_out_of_range_are_value_errors(value: object) -> None:
    with pytest.raises(ValueError, match="is not a Unix time"):
        parse_datetime(value)


# --- text, money and counts ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("cust_1", "cust_1"), (5, "5"), (True, None), (["x"], None), ({"id": 1}, None)],
)
def test_text_reads_the_same(value: object, expected: str | None) -> None:
    model = structure({"recordId": "r", "status": "QUEUED", "customerId": value}, DeltaRecord)
    event = deliver({"event": "delta.failed", "tenantId": value, "data": {"customerId": value}})
    assert model.customer_id == event.data.customer_id == event.tenant_id == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, Decimal(12)),
        (Decimal("-42.50"), Decimal("-42.50")),
        ("-0.10", Decimal("-0.10")),
        ("1E+2", Decimal("1E+2")),
        # Decimal() alone reads all of these; none is an amount PacSpace sends.
        ("1_000", None),
        (" 5", None),
        ("\u0665", None),
        ("NaN", None),
        ("-Infinity", None),
        ("1e", None),
        (True, None),
    ],
)
def test_money_reads_the_same(value: object, expected: Decimal | None) -> None:
    model = structure({"recordId": "r", "status": "QUEUED", "delta": value}, DeltaRecord)
    event = deliver({"event": "delta.failed", "data": {"delta": value}})
    assert isinstance(event.data, DeltaFailedData)
    assert model.delta == event.data.delta == expected
    if expected is not None:
        assert str(model.delta) == str(event.data.delta) == str(expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3), ("4", 4), (Decimal("2.0"), 2), (Decimal("2.5"), None), (True, None), ("1_0", None), ("x", None)],
)
def test_counts_read_the_same(value: object, expected: int | None) -> None:
    model = structure({"remaining": value}, Usage)
    event = deliver({"event": "record.committed", "data": {"itemCount": value}})
    assert isinstance(event.data, RecordCommittedData)
    assert model.remaining == event.data.item_count == expected


def test_a_list_field_takes_a_json_array_only() -> None:
    event = deliver({"event": "record.committed", "data": {"records": "ab"}})
    assert event.data.records is None  # not ("a", "b")
    assert deliver({"event": "record.committed", "data": {"records": [1]}}).data.records == (1,)


# --- the event types on the converter --------------------------------------------------------

DOCS_SHAPE = {
    "event": "delta.verified",
    "timestamp": "2025-02-11T10:40:00.000Z",
    "data": {
        "receiptId": "rcpt_7",
        "verifiedAt": NOW * 1000,
        "delta": {"customerId": "cust_b", "amount": 12, "referenceId": "ref_9"},
    },
}


def test_the_event_types_are_read_by_the_shared_converter() -> None:
    delivered = deliver(DOCS_SHAPE)
    assert converter.structure(DOCS_SHAPE, WebhookEvent) == delivered
    data = structure(DOCS_SHAPE["data"], DeltaVerifiedData)
    assert (
        data
        == delivered.data
        == DeltaVerifiedData(
            receipt_id="rcpt_7", customer_id="cust_b", delta=Decimal(12), reference_id="ref_9", verified_at=AT_NOW
        )
    )
    assert data.raw == DOCS_SHAPE["data"]  # the shape it came in, not the one it was read from
    with pytest.raises(TypeError, match="expected a JSON object"):
        converter.structure([DOCS_SHAPE], WebhookEvent)
    with pytest.raises(ValueError, match="no event type"):
        converter.structure({"data": {}}, WebhookEvent)


def test_a_shape_is_given_before_a_class_is_read() -> None:
    with pytest.raises(RuntimeError, match="DeltaRecord"):
        read_shape(DeltaRecord, dict)


class Broken:
    def __init__(self, structure: Any) -> None:
        self.structure = structure


def test_whatever_the_converter_raises_verification_raises_a_verification_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = InMemoryReplayCache()
    check = WebhookVerifier(SECRET, clock=lambda: NOW, replay_cache=cache)
    for failure in (
        cattrs.ClassValidationError("While structuring DeltaFailedData", [KeyError("x")], DeltaFailedData),
        RuntimeError("a converter bug"),
        RecursionError(),
    ):

        def broken(*_: object, failure: Exception = failure) -> object:
            raise failure

        # A stand-in for a converter bug (every field is read leniently, so none is known).
        monkeypatch.setattr(pacspace_async._webhook_events, "converter", Broken(broken))
        with pytest.raises(WebhookVerificationError, match="could not be read as an event") as info:
            deliver({"id": "evt_1", "event": "delta.failed", "data": {}}, verifier=check)
        assert info.value.__cause__ is None
    assert len(cache) == 0  # a refused delivery leaves no trace


def test_the_public_import_paths_are_unchanged() -> None:
    for name in webhooks.__all__:
        assert getattr(webhooks, name) is not None
    for name in ("DeltaVerifiedData", "InMemoryReplayCache", "ReplayCache", "WebhookEvent", "WebhookVerifier"):
        assert getattr(pacspace_async, name) is getattr(webhooks, name)
    assert pacspace_async.signature_header is webhooks.signature_header


# --- built once ------------------------------------------------------------------------------

SEEN: list[tuple[object, ...]] = []


@attrs.frozen
class Witness:
    """Records what it holds when it is built: a model changed afterwards would show defaults."""

    record_id: str
    idempotency_key: str | None = local_field()
    replayed: bool | None = local_field()
    raw: Mapping[str, Any] = raw_field()

    def __attrs_post_init__(self) -> None:
        SEEN.append((self.record_id, self.idempotency_key, self.replayed, dict(self.raw)))


def test_a_model_is_built_with_every_value_it_holds() -> None:
    SEEN.clear()
    wire = {"recordId": "rec_1", "extra": 1}
    witness = structure(wire, Witness, of=Answer())
    (seen,) = SEEN
    assert seen == ("rec_1", "idem_1", True, wire)
    assert (witness.idempotency_key, witness.replayed, witness.raw) == ("idem_1", True, wire)
    SEEN.clear()
    converter.structure(wire, Witness)  # nested models are read the same way
    (seen,) = SEEN
    assert seen == ("rec_1", None, None, wire)


def test_models_read_from_an_answer_stay_frozen() -> None:
    record = structure({"recordId": "r", "status": "QUEUED"}, DeltaRecord, of=Answer())
    assert (record.idempotency_key, record.replayed) == ("idem_1", True)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        record.replayed = False  # type: ignore[misc]
