"""JSON with exact Decimals, and the forward-compatible attrs models (docs/architecture.md, "Models and the wire")."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pacspace_async import _codec
from pacspace_async._errors import PacSpaceError
from pacspace_async._models import camel, parse_datetime, structure, to_decimal
from pacspace_async.models import DeltaRecord, DeltaStatus, ProofVerification, VerificationSummary

# --- dumps --------------------------------------------------------------------------------


def test_decimal_sum_is_written_exactly() -> None:
    assert _codec.dumps({"delta": Decimal("0.1") + Decimal("0.2")}) == b'{"delta":0.3}'


def test_nested_decimals() -> None:
    value = {
        "deltas": [{"delta": Decimal("-42.50")}, {"delta": Decimal("1E+2")}],
        "meta": {"a": [Decimal("0.000001"), 1, "x"], "t": (Decimal("7"),)},
        "plain": 0.5,
    }
    out = _codec.dumps(value)
    assert out == b'{"deltas":[{"delta":-42.50},{"delta":1E+2}],"meta":{"a":[0.000001,1,"x"],"t":[7]},"plain":0.5}'
    assert json.loads(out, parse_float=Decimal) == {
        "deltas": [{"delta": Decimal("-42.50")}, {"delta": Decimal("100")}],
        "meta": {"a": [Decimal("0.000001"), 1, "x"], "t": [7]},
        "plain": Decimal("0.5"),
    }


def test_without_decimals_output_is_compact_json() -> None:
    assert _codec.dumps({"a": [1, "b", None, True], "c": {}}) == b'{"a":[1,"b",null,true],"c":{}}'
    assert _codec.dumps({"name": "caf\u00e9"}) == '{"name":"caf\u00e9"}'.encode()


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_non_finite_decimal_is_refused(bad: Decimal) -> None:
    with pytest.raises(ValueError, match="finite"):
        _codec.dumps({"delta": bad})


def test_float_nan_is_refused() -> None:
    with pytest.raises(ValueError):
        _codec.dumps({"x": float("nan")})


@pytest.mark.parametrize("text", ["\x00deadbeef:1\x00", "\x00" + "0" * 16 + ":1\x00", "\\u0000x:1\\u0000", "\x00:\x00"])
def test_a_user_string_that_looks_like_a_placeholder_stays_a_string(text: str) -> None:
    out = _codec.dumps({"delta": Decimal("1.5"), "reason": text})
    assert json.loads(out) == {"delta": 1.5, "reason": text}


@given(st.decimals(allow_nan=False, allow_infinity=False), st.text())
def test_dumps_round_trips_decimals_and_strings(amount: Decimal, text: str) -> None:
    out = _codec.dumps({"delta": amount, "reason": text, "items": [amount, text]})
    decoded = json.loads(out, parse_float=Decimal, parse_int=Decimal)
    assert decoded["reason"] == text
    assert decoded["items"][1] == text
    assert decoded["delta"] == amount
    assert decoded["items"][0] == amount


# --- loads --------------------------------------------------------------------------------


def test_loads_decimal_for_fractions_and_int_for_integers() -> None:
    value = _codec.loads(b'{"delta": -42.50, "count": 3, "big": 1e2, "nested": [0.1]}')
    assert value == {"delta": Decimal("-42.50"), "count": 3, "big": Decimal("1E+2"), "nested": [Decimal("0.1")]}
    assert type(value["delta"]) is Decimal
    assert type(value["count"]) is int
    assert type(value["nested"][0]) is Decimal
    assert _codec.loads('{"a": 1}') == {"a": 1}


@pytest.mark.parametrize("data", [b"", "", b"{not json", b"\xff\xfe", "<html>502</html>", b'{"a": 1'])
def test_loads_empty_or_invalid_gives_none(data: bytes | str) -> None:
    assert _codec.loads(data) is None


@pytest.mark.parametrize("data", [b"NaN", b'{"delta": NaN}', b'{"delta": -Infinity}'])
def test_loads_rejects_non_json_constants(data: bytes) -> None:
    # Regression: json's default parse_constant used to turn these into floats.
    assert _codec.loads(data) is None


# --- models -------------------------------------------------------------------------------

WIRE_DELTA: dict[str, Any] = {
    "recordId": "rec_1",
    "status": "WEIRD_NEW",
    "receiptId": "0x" + "ab" * 32,
    "customerId": "cust_1",
    "delta": Decimal("-12.50"),
    "reason": "usage",
    "referenceId": "inv_1",
    "unknownField": 1,
}


def test_nesting_is_limited_alike_on_every_python() -> None:
    # 3.11's decoder raised RecursionError at ~1,000 levels, 3.13's decodes far deeper and left
    # every recursive reader of the result to fail: the limit is the codec's own now.
    limit = _codec.MAX_DEPTH
    assert _codec.decode(b"[" * limit + b"]" * limit) is not None
    for deep in (b"[" * (limit + 1) + b"]" * (limit + 1), b'{"a":' * 5000 + b"1" + b"}" * 5000):
        with pytest.raises(ValueError, match="nested more than"):
            _codec.decode(deep)
        assert _codec.loads(deep) is None
    # Wide is not deep: many brackets side by side are walked and accepted.
    assert len(_codec.decode(b"[" + b",".join([b"[[1]]"] * 500) + b"]")) == 500
    assert _codec.deeper_than({"a": [{"b": 1}]}, 2) is True
    assert _codec.deeper_than({"a": [{"b": 1}]}, 3) is False
    assert _codec.deeper_than("text", 0) is False


def test_dumps_of_absurd_nesting_is_a_value_error() -> None:
    nested: list[Any] = []
    for _ in range(5000):
        nested = [nested, Decimal("1.5")]
    with pytest.raises(ValueError, match="nests too deeply"):
        _codec.dumps({"metadata": nested})


def test_camel() -> None:
    assert camel("record_id") == "recordId"
    assert camel("first_record_at") == "firstRecordAt"
    assert camel("verified") == "verified"


def test_delta_record_from_camel_case_keeps_unknowns() -> None:
    record = structure(WIRE_DELTA, DeltaRecord)
    assert record.record_id == "rec_1"
    assert record.status == "WEIRD_NEW"
    assert record.receipt_id == "0x" + "ab" * 32
    assert record.customer_id == "cust_1"
    assert record.delta == Decimal("-12.50")
    assert type(record.delta) is Decimal
    assert record.reason == "usage"
    assert record.reference_id == "inv_1"
    assert record.idempotency_key is None
    assert record.raw == WIRE_DELTA
    assert record.raw["unknownField"] == 1
    assert not record.is_final


@attrs.frozen
class _Exchange:
    request_id: str | None = None
    idempotency_key: str | None = None


def test_a_model_built_from_an_answer_holds_the_key_that_was_sent() -> None:
    data = {"recordId": "rec_1", "status": "QUEUED", "idempotencyKey": "from-the-wire"}
    sent = structure(data, DeltaRecord, of=_Exchange(idempotency_key="sandbox:balance.delta:k1"))
    assert sent.idempotency_key == "sandbox:balance.delta:k1"
    # Not read from the wire, and nothing to fill in when no key was sent (a GET).
    assert structure(data, DeltaRecord).idempotency_key is None
    assert structure(data, DeltaRecord, of=_Exchange(request_id="req_1")).idempotency_key is None
    # A model without the field is left alone.
    verification = structure({"verified": True}, ProofVerification, of=_Exchange(idempotency_key="k"))
    assert not hasattr(verification, "idempotency_key")


def test_raw_is_neither_in_repr_nor_in_eq() -> None:
    record = structure(WIRE_DELTA, DeltaRecord)
    assert "unknownField" not in repr(record)
    assert "raw" not in repr(record)
    same_fields = structure({**WIRE_DELTA, "unknownField": 2, "another": "x"}, DeltaRecord)
    assert same_fields == record
    assert same_fields.raw != record.raw
    assert attrs.evolve(record, status="FAILED") != record


@pytest.mark.parametrize(
    ("value", "expected"), [(-12, Decimal("-12")), ("0.30", Decimal("0.30")), (0.1, Decimal("0.1"))]
)
def test_delta_amount_is_decimal(value: object, expected: Decimal) -> None:
    record = structure({"recordId": "r", "status": "QUEUED", "delta": value}, DeltaRecord)
    assert record.delta == expected
    assert type(record.delta) is Decimal


@pytest.mark.parametrize(
    ("status", "final"), [("VERIFIED", True), ("verified", True), ("FAILED", True), ("QUEUED", False), ("NEW", False)]
)
def test_is_final(status: str, final: bool) -> None:
    assert structure({"recordId": "r", "status": status}, DeltaRecord).is_final is final
    assert (status == DeltaStatus.VERIFIED) is (status == "VERIFIED")


def test_proof_verification_with_nested_summary() -> None:
    wire = {
        "verified": True,
        "proofRoot": "0x" + "cd" * 32,
        "recordedAt": "2026-02-11T10:30:12.456Z",
        "summary": {
            "recordCount": 5,
            "netChange": -575,
            "startingBalance": "100.00",
            "endingBalance": Decimal("-475.00"),
            "firstRecordAt": "2026-02-01T00:00:00+02:00",
            "lastRecordAt": 1_770_805_812,
            "extra": "kept",
        },
        "records": [{"itemHash": "0x1"}, {"itemHash": "0x2"}],
        "verification": {"chainId": 295},
        "message": "ok",
        "newTopLevel": [1],
    }
    proof = structure(wire, ProofVerification)
    assert proof.verified is True
    assert proof.proof_root == "0x" + "cd" * 32
    assert proof.recorded_at == datetime(2026, 2, 11, 10, 30, 12, 456000, tzinfo=timezone.utc)
    assert isinstance(proof.summary, VerificationSummary)
    assert proof.summary.record_count == 5
    assert proof.summary.net_change == Decimal("-575")
    assert proof.summary.starting_balance == Decimal("100.00")
    assert proof.summary.ending_balance == Decimal("-475.00")
    assert proof.summary.first_record_at == datetime(2026, 1, 31, 22, 0, tzinfo=timezone.utc)
    assert proof.summary.last_record_at == datetime.fromtimestamp(1_770_805_812, tz=timezone.utc)
    assert proof.summary.raw == wire["summary"]
    assert [dict(r) for r in proof.records] == wire["records"]
    assert isinstance(proof.records, tuple)
    assert proof.verification == {"chainId": 295}
    assert proof.message == "ok"
    assert proof.raw["newTopLevel"] == [1]


def test_proof_verification_minimal() -> None:
    proof = structure({"verified": False}, ProofVerification)
    assert proof.verified is False
    assert proof.summary is None
    assert proof.records == ()


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ([WIRE_DELTA], "expected a JSON object for DeltaRecord, got list"),
        ("rec_1", "got str"),
        (None, "DeltaRecord"),
        ({"status": "QUEUED"}, "missing field 'recordId'"),
        ({"recordId": "r"}, "missing field 'status'"),
        ({"recordId": ["r"], "status": "QUEUED"}, "list is not text"),
    ],
)
def test_unreadable_answers_raise_a_readable_pacspace_error(data: object, needle: str) -> None:
    with pytest.raises(PacSpaceError) as info:
        structure(data, DeltaRecord)
    text = str(info.value)
    assert needle in text
    assert "DeltaRecord" in text
    assert "\n" not in text
    assert info.value.__cause__ is None


def test_missing_required_field_of_proof_verification() -> None:
    with pytest.raises(PacSpaceError, match="missing field 'verified'"):
        structure({"summary": {}}, ProofVerification)


@pytest.mark.parametrize("flag", ["false", "true", 0, 1, None])
def test_verified_must_be_a_real_boolean(flag: object) -> None:
    # bool("false") is True: a string must not silently become verified=True
    with pytest.raises(PacSpaceError, match="ProofVerification"):
        structure({"verified": flag}, ProofVerification)


def test_an_optional_field_in_an_unexpected_shape_becomes_none_and_stays_in_raw() -> None:
    wire = {"recordId": "r", "status": "QUEUED", "delta": "lots", "customerId": {"id": 1}}
    record = structure(wire, DeltaRecord)
    assert record.delta is None
    assert record.customer_id is None
    assert record.raw["delta"] == "lots"
    assert record.raw["customerId"] == {"id": 1}


def test_numeric_ids_become_text() -> None:
    record = structure({"recordId": 123, "status": "QUEUED", "customerId": 7}, DeltaRecord)
    assert record.record_id == "123"
    assert record.customer_id == "7"


# --- to_decimal and parse_datetime --------------------------------------------------------


def test_to_decimal() -> None:
    assert to_decimal(Decimal("1.10")) == Decimal("1.10")
    assert to_decimal(3) == Decimal(3)
    assert to_decimal("-0.5") == Decimal("-0.5")
    assert to_decimal(0.1) == Decimal("0.1")
    with pytest.raises(TypeError):
        to_decimal(True)
    with pytest.raises(TypeError):
        to_decimal(None)
    with pytest.raises(ValueError, match="not a number"):
        to_decimal("ten")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-02-11T10:30:12.456Z", datetime(2026, 2, 11, 10, 30, 12, 456000, tzinfo=timezone.utc)),
        ("2026-02-11T10:30:12z", datetime(2026, 2, 11, 10, 30, 12, tzinfo=timezone.utc)),
        ("2026-02-11T10:30:12.456789123Z", datetime(2026, 2, 11, 10, 30, 12, 456789, tzinfo=timezone.utc)),
        ("2026-02-11T10:30:12.4Z", datetime(2026, 2, 11, 10, 30, 12, 400000, tzinfo=timezone.utc)),
        ("2026-02-11T12:30:12+02:00", datetime(2026, 2, 11, 10, 30, 12, tzinfo=timezone.utc)),
        ("2026-02-11T05:30:12.5-05:00", datetime(2026, 2, 11, 10, 30, 12, 500000, tzinfo=timezone.utc)),
        ("2026-02-11T10:30:12", datetime(2026, 2, 11, 10, 30, 12, tzinfo=timezone.utc)),
        (" 2026-02-11T10:30:12Z ", datetime(2026, 2, 11, 10, 30, 12, tzinfo=timezone.utc)),
        (0, datetime(1970, 1, 1, tzinfo=timezone.utc)),
        (1_770_805_812, datetime(2026, 2, 11, 10, 30, 12, tzinfo=timezone.utc)),
        (1_770_805_812.5, datetime(2026, 2, 11, 10, 30, 12, 500000, tzinfo=timezone.utc)),
        (Decimal("1770805812.25"), datetime(2026, 2, 11, 10, 30, 12, 250000, tzinfo=timezone.utc)),
        (datetime(2026, 2, 11, 10, 30, 12), datetime(2026, 2, 11, 10, 30, 12, tzinfo=timezone.utc)),
    ],
)
def test_parse_datetime(value: object, expected: datetime) -> None:
    parsed = parse_datetime(value)
    assert parsed == expected
    assert parsed.utcoffset() is not None


def test_parse_datetime_keeps_the_offset() -> None:
    parsed = parse_datetime("2026-02-11T12:30:12+02:00")
    assert parsed.utcoffset() == timedelta(hours=2)
    assert parse_datetime("2026-02-11T10:30:12").utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", [True, None, [2026], "yesterday", "2026-13-01T00:00:00Z"])
def test_parse_datetime_refuses_garbage(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        parse_datetime(value)


def test_models_pickle_whether_built_in_code_or_read_from_an_answer() -> None:
    import copy
    import pickle

    built = DeltaRecord(record_id="rec_1", status="QUEUED")
    read = structure({"recordId": "rec_1", "status": "QUEUED", "extra": 1}, DeltaRecord)
    for record in (built, read):
        again = pickle.loads(pickle.dumps(record))
        assert again == record
        assert dict(again.raw) == dict(record.raw)
        assert copy.deepcopy(record) == record
    assert dict(built.raw) == {}
    assert repr(built.raw) == "{}"
    assert built.raw | {"a": 1} == {"a": 1}  # merges and copies like a raw read from an answer
    assert built.raw.copy() == {}  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        built.raw["x"] = 1  # type: ignore[index]
