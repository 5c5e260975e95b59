"""Every endpoint against aioresponses: method, path, query and body names, and the parsed model.

aioresponses normalises the URLs it records (sorted, decoded query), so the exact bytes the SDK
put on the wire are captured by a spy on the transport (`Wire`), and aioresponses only answers.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs
import pytest
from aioresponses import CallbackResult, aioresponses
from conftest import SANDBOX_KEY, FakeClock, delta_record

from pacspace_async import AsyncPacSpace, BadRequestError, BatchError, DeltaInput, InvalidArgumentError, PacSpaceError

SANDBOX = "https://sandbox.test"
BALANCE = "/api/v1/balance"
EMIT = {"customer_id": "cust_1", "delta": Decimal("-1.25"), "reason": "usage"}
LINKS = ("verify_url", "verification_api_url", "access_hint", "customer_link_url", "customer_link_host")


def epoch(*parts: int) -> float:
    return datetime(*parts, tzinfo=timezone.utc).timestamp()  # type: ignore[misc]


@attrs.frozen
class Sent:
    """One request exactly as the SDK handed it to aiohttp."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def raw_query(self) -> str:
        return urlsplit(self.url).query

    @property
    def query(self) -> dict[str, str]:
        pairs = parse_qsl(self.raw_query, keep_blank_values=True)
        assert len({name for name, _ in pairs}) == len(pairs), f"repeated query names in {self.raw_query}"
        return dict(pairs)

    @property
    def json(self) -> Any:
        assert self.body is not None
        return json.loads(self.body, parse_float=Decimal)


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as m:
        yield m


@pytest.fixture
async def client() -> AsyncIterator[AsyncPacSpace]:
    made = AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": SANDBOX})
    yield made
    await made.aclose()


@pytest.fixture
def wire(client: AsyncPacSpace, monkeypatch: pytest.MonkeyPatch) -> list[Sent]:
    """Every request the client sends (all `_with_clock` copies share the transport)."""
    transport = client._requester.transport
    original = transport.send
    seen: list[Sent] = []

    async def spy(environment: Any, method: str, url: str, *, headers: Any, body: Any, timeout: float) -> Any:
        seen.append(Sent(method, url, dict(headers), body))
        return await original(environment, method, url, headers=headers, body=body, timeout=timeout)

    monkeypatch.setattr(transport, "send", spy)
    return seen


@pytest.fixture
def pac(client: AsyncPacSpace, wire: list[Sent], fake_clock: FakeClock) -> AsyncPacSpace:
    return client._with_clock(fake_clock.clock())


def calls(m: aioresponses) -> list[tuple[str, str, dict[str, Any]]]:
    """Every request aioresponses saw, in order: (method, url, kwargs)."""
    seen = []
    for (method, url), requests in m.requests.items():
        for request in requests:
            seen.append((method, str(url), request.kwargs))
    return seen


def at(path: str) -> re.Pattern[str]:
    """Any URL on the sandbox base whose path is exactly `path` (already percent-encoded)."""
    return re.compile(rf"^{re.escape(SANDBOX + path)}(\?.*)?$")


def envelope(data: Any) -> dict[str, Any]:
    return {"success": True, "data": data}


# --- balance.emit -----------------------------------------------------------------------------


async def test_emit_sends_every_body_field_under_its_wire_name(
    mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]
) -> None:
    mocked.post(at(f"{BALANCE}/delta"), status=201, payload=envelope(delta_record("rec_7", customerId="cust_1")))
    record = await pac.balance.emit(
        customer_id="cust_1",
        delta=Decimal("-42.50"),
        reason="usage",
        reference_id="inv_1",
        metadata={"plan": "growth", "seats": 3},
        adjusts={"referenceId": "inv_0"},
    )
    (sent,) = wire
    assert sent.method == "POST"
    assert sent.url == SANDBOX + "/api/v1/balance/delta"
    assert sent.json == {
        "customerId": "cust_1",
        "delta": Decimal("-42.50"),
        "reason": "usage",
        "referenceId": "inv_1",
        "metadata": {"plan": "growth", "seats": 3},
        "adjusts": {"referenceId": "inv_0"},
    }
    assert b'"delta":-42.50' in sent.body  # type: ignore[operator]
    assert sent.headers["Idempotency-Key"] == "sandbox:balance.delta:cust_1:inv_1"
    assert record.record_id == "rec_7"
    assert record.status == "QUEUED"
    assert record.receipt_id == "0x" + "ab" * 32
    assert record.customer_id == "cust_1"
    assert record.idempotency_key == "sandbox:balance.delta:cust_1:inv_1"
    assert len(calls(mocked)) == 1


async def test_emit_without_optional_fields_sends_only_the_required_three(
    mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]
) -> None:
    mocked.post(at(f"{BALANCE}/delta"), status=201, payload=envelope(delta_record()))
    await pac.balance.emit(customer_id="cust_1", delta=7, reason="top-up")
    assert wire[0].json == {"customerId": "cust_1", "delta": 7, "reason": "top-up"}
    assert wire[0].headers["Idempotency-Key"].startswith("sandbox:balance.delta:")


async def test_decimal_sum_arrives_as_the_json_number_0_3(
    mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]
) -> None:
    mocked.post(at(f"{BALANCE}/delta"), status=201, payload=envelope(delta_record()))
    await pac.balance.emit(customer_id="cust_1", delta=Decimal("0.1") + Decimal("0.2"), reason="usage")
    ((_, _, kwargs),) = calls(mocked)
    assert b'"delta":0.3,' in kwargs["data"]
    assert b"0.30000000000000004" not in kwargs["data"]
    assert json.loads(kwargs["data"])["delta"] == 0.3  # a JSON number, not a string
    assert wire[0].body == kwargs["data"]


# --- balance.emit_batch -----------------------------------------------------------------------


def batch_echo(order: str = "reversed") -> Callable[..., CallbackResult]:
    """Answers a batch with one QUEUED result per item, listed in reverse, each with its index."""

    def answer(url: Any, **kwargs: Any) -> CallbackResult:
        items = json.loads(kwargs["data"])["deltas"]
        results = [
            {"index": index, "status": "QUEUED", "recordId": f"rec_{item['customerId']}", "delta": item["delta"]}
            for index, item in enumerate(items)
        ]
        if order == "reversed":
            results.reverse()
        return CallbackResult(
            status=201, payload=envelope({"totalQueued": len(items), "totalFailed": 0, "results": results})
        )

    return answer


def batch_items(count: int, *, references: bool = True) -> list[DeltaInput]:
    return [
        DeltaInput(
            customer_id=f"c{index}",
            delta=Decimal(-index - 1),
            reason="usage",
            reference_id=f"ref_{index}" if references else None,
        )
        for index in range(count)
    ]


async def test_emit_batch_of_250_sends_100_100_50_with_own_keys_and_keeps_global_order(
    mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]
) -> None:
    mocked.post(at(f"{BALANCE}/delta/batch"), callback=batch_echo(), repeat=True)
    result = await pac.balance.emit_batch(batch_items(250))
    assert [sent.path for sent in wire] == ["/api/v1/balance/delta/batch"] * 3
    assert all(sent.method == "POST" and sent.raw_query == "" for sent in wire)
    assert [set(sent.json) for sent in wire] == [{"deltas"}] * 3
    assert [len(sent.json["deltas"]) for sent in wire] == [100, 100, 50]
    assert wire[1].json["deltas"][0] == {
        "customerId": "c100",
        "delta": -101,
        "reason": "usage",
        "referenceId": "ref_100",
    }
    keys = [sent.headers["Idempotency-Key"] for sent in wire]
    assert len(set(keys)) == 3
    assert all(key.startswith("sandbox:balance.delta.batch:") for key in keys)
    assert result.idempotency_keys == tuple(keys)
    assert [item.index for item in result.results] == list(range(250))
    assert [item.record_id for item in result.results] == [f"rec_c{index}" for index in range(250)]
    assert [item.delta for item in result.results] == [Decimal(-index - 1) for index in range(250)]
    assert result.total_queued == 250
    assert result.total_failed == 0
    assert result.replayed == 0
    assert result.failures == ()
    assert len(result.raw) == 3


async def test_a_failed_batch_request_keeps_what_earlier_requests_recorded(
    mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]
) -> None:
    url = at(f"{BALANCE}/delta/batch")
    mocked.post(url, callback=batch_echo())
    mocked.post(url, status=400, payload={"error": {"code": "VALIDATION", "message": "bad item"}})
    with pytest.raises(BadRequestError) as info:
        await pac.balance.emit_batch(batch_items(250))
    assert len(wire) == 2  # the third request was never sent
    assert isinstance(info.value, BatchError)
    progress = info.value.batch_progress
    assert [item.index for item in progress.results] == list(range(100))
    assert [item.record_id for item in progress.results] == [f"rec_c{index}" for index in range(100)]
    assert (progress.total_queued, progress.total_failed) == (100, 0)
    assert progress.idempotency_keys == (wire[0].headers["Idempotency-Key"],)
    assert info.value.idempotency_key == wire[1].headers["Idempotency-Key"]


async def test_a_batch_failing_at_its_first_request_reports_nothing_recorded(
    mocked: aioresponses, pac: AsyncPacSpace
) -> None:
    mocked.post(at(f"{BALANCE}/delta/batch"), status=400, payload={"error": {"code": "VALIDATION"}})
    with pytest.raises(BadRequestError) as info:
        await pac.balance.emit_batch(batch_items(3))
    assert isinstance(info.value, BatchError)
    assert info.value.batch_progress.results == ()
    assert info.value.batch_progress.total_queued == 0


async def test_emit_batch_counts_replays_and_lists_failures(
    mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]
) -> None:
    mocked.post(
        at(f"{BALANCE}/delta/batch"),
        status=201,
        payload=envelope(
            {
                "totalQueued": 2,
                "totalFailed": 1,
                "_efficiency": {"saved": 1},
                "results": [
                    {
                        "index": 0,
                        "customerId": "c1",
                        "delta": -1,
                        "status": "QUEUED",
                        "recordId": "r1",
                        "idempotent": True,
                    },
                    {"index": 1, "customerId": "c2", "delta": -2, "status": "FAILED", "error": "CADENCE_LIMIT"},
                    {"index": 2, "customerId": "c3", "delta": -3, "status": "QUEUED", "recordId": "r3"},
                ],
            }
        ),
    )
    result = await pac.balance.emit_batch(
        [
            {"customer_id": "c1", "delta": -1, "reason": "usage"},
            DeltaInput(customer_id="c2", delta=-2, reason="usage", metadata={"k": "v"}),
            {"customer_id": "c3", "delta": "-3", "reason": "usage"},
        ]
    )
    assert wire[0].json == {
        "deltas": [
            {"customerId": "c1", "delta": -1, "reason": "usage"},
            {"customerId": "c2", "delta": -2, "reason": "usage", "metadata": {"k": "v"}},
            {"customerId": "c3", "delta": -3, "reason": "usage"},
        ]
    }
    assert result.replayed == 1
    assert result.results[0].replayed is True
    assert result.results[2].replayed is None  # neither the item nor a header says
    assert [item.index for item in result.failures] == [1]
    assert result.failures[0].error == "CADENCE_LIMIT"
    assert result.failures[0].failed is True
    assert result.total_queued == 2
    assert result.total_failed == 1
    assert result.raw[0]["_efficiency"] == {"saved": 1}


async def test_emit_batch_with_all_references_sends_the_same_key_twice(
    mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]
) -> None:
    mocked.post(at(f"{BALANCE}/delta/batch"), callback=batch_echo(), repeat=True)
    first = await pac.balance.emit_batch(batch_items(3))
    second = await pac.balance.emit_batch(batch_items(3))
    assert len(wire) == 2
    assert wire[0].headers["Idempotency-Key"] == wire[1].headers["Idempotency-Key"]
    assert first.idempotency_keys == second.idempotency_keys


async def test_emit_batch_without_every_reference_gets_fresh_keys(
    mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]
) -> None:
    mocked.post(at(f"{BALANCE}/delta/batch"), callback=batch_echo(), repeat=True)
    items = [*batch_items(2), DeltaInput(customer_id="c9", delta=-1, reason="usage")]
    await pac.balance.emit_batch(items)
    await pac.balance.emit_batch(items)
    assert wire[0].headers["Idempotency-Key"] != wire[1].headers["Idempotency-Key"]


async def test_emit_batch_caller_key_is_suffixed_per_chunk(
    mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]
) -> None:
    mocked.post(at(f"{BALANCE}/delta/batch"), callback=batch_echo(), repeat=True)
    await pac.balance.emit_batch(batch_items(150), idempotency_key="job-7")
    assert [sent.headers["Idempotency-Key"] for sent in wire] == ["sandbox:job-7:0", "sandbox:job-7:1"]


async def test_emit_batch_totals_default_when_missing(mocked: aioresponses, pac: AsyncPacSpace) -> None:
    mocked.post(
        at(f"{BALANCE}/delta/batch"),
        status=201,
        payload=envelope(
            {
                "results": [
                    {"index": 0, "status": "QUEUED", "recordId": "r0"},
                    {"index": 1, "status": "FAILED", "error": "CADENCE_LIMIT"},
                    {"index": 2, "status": "QUEUED", "recordId": "r2"},
                ]
            }
        ),
    )
    result = await pac.balance.emit_batch(batch_items(3))
    assert result.total_queued == 2
    assert result.total_failed == 1
    assert len(result.results) == 3


async def test_emit_batch_default_totals_agree_with_failures_for_lowercase_status(
    mocked: aioresponses, pac: AsyncPacSpace
) -> None:
    mocked.post(
        at(f"{BALANCE}/delta/batch"),
        status=201,
        payload=envelope(
            {"results": [{"index": 0, "status": "queued", "recordId": "r0"}, {"index": 1, "status": "failed"}]}
        ),
    )
    result = await pac.balance.emit_batch(batch_items(2))
    assert len(result.failures) == 1
    assert result.total_failed == len(result.failures)
    assert result.total_queued == 1


# --- balance.status -----------------------------------------------------------------------------


async def test_status_percent_encodes_the_record_id(mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]) -> None:
    mocked.get(f"{SANDBOX}/api/v1/balance/delta/rec%2F1", payload=envelope(delta_record("rec/1", status="PROCESSING")))
    record = await pac.balance.status("rec/1")
    (sent,) = wire
    assert sent.method == "GET"
    assert sent.url == SANDBOX + "/api/v1/balance/delta/rec%2F1"
    assert sent.body is None
    assert "Idempotency-Key" not in sent.headers
    assert record.record_id == "rec/1"
    assert record.status == "PROCESSING"
    assert record.is_final is False
    assert record.idempotency_key is None


async def test_status_encodes_spaces_and_other_reserved_characters(
    mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]
) -> None:
    mocked.get(re.compile(r".*"), payload=envelope(delta_record("a b?c#d")))
    await pac.balance.status("a b?c#d")
    assert wire[0].url == SANDBOX + "/api/v1/balance/delta/a%20b%3Fc%23d"


@pytest.mark.parametrize(
    "answer",
    [
        {"success": True, "data": delta_record("rec_9", status="VERIFIED")},
        {"statusCode": 200, "data": delta_record("rec_9", status="VERIFIED")},
    ],
    ids=["success-data", "statusCode-data"],
)
async def test_both_envelopes_parse(mocked: aioresponses, pac: AsyncPacSpace, answer: dict[str, Any]) -> None:
    mocked.get(f"{SANDBOX}/api/v1/balance/delta/rec_9", payload=answer)
    record = await pac.balance.status("rec_9")
    assert record.record_id == "rec_9"
    assert record.status == "VERIFIED"
    assert record.is_final is True
    assert record.raw == answer["data"]


async def test_unknown_fields_and_unknown_status_survive_in_model_and_raw(
    mocked: aioresponses, pac: AsyncPacSpace
) -> None:
    data = delta_record("rec_1", status="SETTLING", futureField={"nested": [1, 2]}, anotherOne="x")
    mocked.get(f"{SANDBOX}/api/v1/balance/delta/rec_1", payload=envelope(data))
    record = await pac.balance.status("rec_1")
    assert record.status == "SETTLING"
    assert record.is_final is False
    assert record.raw["status"] == "SETTLING"
    assert record.raw["futureField"] == {"nested": [1, 2]}
    assert record.raw["anotherOne"] == "x"
    assert "futureField" not in repr(record)


async def test_unknown_status_on_emit_and_checkpoint_is_kept(mocked: aioresponses, pac: AsyncPacSpace) -> None:
    mocked.post(at(f"{BALANCE}/delta"), status=201, payload=envelope(delta_record(status="SETTLING", extra=1)))
    mocked.post(
        at(f"{BALANCE}/checkpoint"),
        status=201,
        payload=envelope({"checkpointId": "chk_1", "status": "SETTLING", "unknown": True}),
    )
    record = await pac.balance.emit(**EMIT)
    checkpoint = await pac.checkpoints.create()
    assert (record.status, record.raw["status"], record.raw["extra"]) == ("SETTLING", "SETTLING", 1)
    assert (checkpoint.status, checkpoint.raw["status"], checkpoint.raw["unknown"]) == ("SETTLING", "SETTLING", True)


async def test_unreadable_answer_is_a_pacspace_error(mocked: aioresponses, pac: AsyncPacSpace) -> None:
    mocked.get(f"{SANDBOX}/api/v1/balance/delta/rec_1", payload=envelope({"status": "QUEUED"}))
    with pytest.raises(PacSpaceError, match="DeltaRecord"):
        await pac.balance.status("rec_1")


# --- balance.derive and its helpers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, {}),
        (
            {"period": "2026-04", "granularity": "week", "limit": 5, "offset": 0},
            {"period": "2026-04", "granularity": "week", "limit": "5", "offset": "0"},
        ),
        (
            {"time_preset": "custom", "start_date": "2026-01-01T00:00:00Z", "end_date": "2026-02-01T00:00:00Z"},
            {"timePreset": "custom", "startDate": "2026-01-01T00:00:00Z", "endDate": "2026-02-01T00:00:00Z"},
        ),
        (
            {"start_date": date(2026, 1, 1), "end_date": datetime(2026, 2, 1, tzinfo=timezone.utc)},
            {"startDate": "2026-01-01T00:00:00Z", "endDate": "2026-02-01T00:00:00Z"},
        ),
        ({"time_preset": "current_month", "limit": 1000}, {"timePreset": "current_month", "limit": "1000"}),
        (
            {
                "starting_balance": Decimal("10.50"),
                "starting_checkpoint": "0xabc",
                "starting_checkpoint_type": "proofRoot",
                "limit": 10,
                "offset": 20,
            },
            {
                "startingBalance": "10.50",
                "startingCheckpoint": "0xabc",
                "startingCheckpointType": "proofRoot",
                "limit": "10",
                "offset": "20",
            },
        ),
    ],
    ids=["no-scope", "period", "custom", "date-pair", "current-month", "checkpoint"],
)
async def test_derive_query_names(
    mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent], kwargs: dict[str, Any], expected: dict[str, str]
) -> None:
    mocked.get(at(f"{BALANCE}/derive/cust_1"), payload=envelope({"customerId": "cust_1", "computedBalance": 0}))
    await pac.balance.derive("cust_1", **kwargs)
    (sent,) = wire
    assert sent.method == "GET"
    assert sent.path == "/api/v1/balance/derive/cust_1"
    assert sent.query == expected
    if not expected:
        assert "?" not in sent.url


async def test_derive_parses_the_model_with_delta_count_fallback(mocked: aioresponses, pac: AsyncPacSpace) -> None:
    mocked.get(
        at(f"{BALANCE}/derive/cust%3A1"),
        payload=envelope(
            {
                "customerId": "cust:1",
                "computedBalance": -575.25,
                "deltaCount": 5,
                "latestReceiptId": "0xfeed",
                "deltas": [{"delta": -100.5, "reason": "usage"}],
                "period": "2026-04",
                "brandNew": "kept",
            }
        ),
    )
    derived = await pac.balance.derive("cust:1", period="2026-04")
    assert derived.customer_id == "cust:1"
    assert derived.computed_balance == Decimal("-575.25")
    assert isinstance(derived.computed_balance, Decimal)
    assert derived.deltas_count == 5
    assert derived.latest_receipt_id == "0xfeed"
    assert derived.deltas[0]["delta"] == Decimal("-100.5")
    assert derived.period == "2026-04"
    assert derived.raw["brandNew"] == "kept"


async def test_derive_prefers_deltas_count_when_both_are_sent(mocked: aioresponses, pac: AsyncPacSpace) -> None:
    mocked.get(at(f"{BALANCE}/derive/cust_1"), payload=envelope({"deltasCount": 7, "deltaCount": 3}))
    assert (await pac.balance.derive("cust_1")).deltas_count == 7


async def test_derive_current_month(mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]) -> None:
    mocked.get(at(f"{BALANCE}/derive/cust_1"), payload=envelope({"computedBalance": 1}))
    await pac.balance.derive_current_month("cust_1", limit=3)
    assert wire[0].raw_query == "timePreset=current_month&limit=3"


@pytest.mark.parametrize("period", [date(2026, 4, 17), datetime(2026, 4, 30, 23, 59), "2026-04"])
async def test_derive_for_period(mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent], period: Any) -> None:
    mocked.get(at(f"{BALANCE}/derive/cust_1"), payload=envelope({"computedBalance": 1}))
    await pac.balance.derive_for_period("cust_1", period)
    assert wire[0].raw_query == "period=2026-04"


@pytest.mark.parametrize(
    ("now", "months", "start", "end"),
    [
        (epoch(2026, 12, 15, 12, 30), 3, "2026-10-01T00%3A00%3A00Z", "2027-01-01T00%3A00%3A00Z"),
        (epoch(2026, 12, 15, 12, 30), 1, "2026-12-01T00%3A00%3A00Z", "2027-01-01T00%3A00%3A00Z"),
        (epoch(2026, 12, 15, 12, 30), 12, "2026-01-01T00%3A00%3A00Z", "2027-01-01T00%3A00%3A00Z"),
        (epoch(2027, 1, 10), 2, "2026-12-01T00%3A00%3A00Z", "2027-02-01T00%3A00%3A00Z"),
        (epoch(2026, 3, 1, 0, 0, 1), 14, "2025-02-01T00%3A00%3A00Z", "2026-04-01T00%3A00%3A00Z"),
    ],
)
async def test_derive_months_back_exact_query(
    mocked: aioresponses, client: AsyncPacSpace, wire: list[Sent], now: float, months: int, start: str, end: str
) -> None:
    pac = client._with_clock(FakeClock(now=now).clock())
    mocked.get(at(f"{BALANCE}/derive/cust_1"), payload=envelope({"computedBalance": 1}))
    await pac.balance.derive_months_back("cust_1", months)
    assert wire[0].raw_query == f"timePreset=custom&startDate={start}&endDate={end}"


@pytest.mark.parametrize(
    ("now", "days", "start", "end"),
    [
        (epoch(2026, 12, 15, 12, 30), 7, "2026-12-09T00%3A00%3A00Z", "2026-12-16T00%3A00%3A00Z"),
        (epoch(2026, 12, 15, 23, 59, 59), 1, "2026-12-15T00%3A00%3A00Z", "2026-12-16T00%3A00%3A00Z"),
        (epoch(2027, 1, 1, 0, 30), 3, "2026-12-30T00%3A00%3A00Z", "2027-01-02T00%3A00%3A00Z"),
    ],
)
async def test_derive_days_back_exact_query(
    mocked: aioresponses, client: AsyncPacSpace, wire: list[Sent], now: float, days: int, start: str, end: str
) -> None:
    pac = client._with_clock(FakeClock(now=now).clock())
    mocked.get(at(f"{BALANCE}/derive/cust_1"), payload=envelope({"computedBalance": 1}))
    await pac.balance.derive_days_back("cust_1", days, limit=50)
    assert wire[0].raw_query == f"timePreset=custom&startDate={start}&endDate={end}&limit=50"


# --- balance.compare --------------------------------------------------------------------------


async def test_compare_body_defaults_starting_balance_to_the_number_zero(
    mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]
) -> None:
    mocked.post(
        at(f"{BALANCE}/compare"),
        status=201,
        payload=envelope(
            {"customerId": "cust_1", "neutralBalance": 950.10, "matchesYours": True, "matchesTheirs": False}
        ),
    )
    result = await pac.balance.compare("cust_1", your_balance=Decimal("950.10"), their_balance=900)
    (sent,) = wire
    assert sent.method == "POST"
    assert sent.url == SANDBOX + "/api/v1/balance/compare"
    assert sent.json == {
        "customerId": "cust_1",
        "yourBalance": Decimal("950.10"),
        "theirBalance": 900,
        "startingBalance": 0,
    }
    assert b'"startingBalance":0' in sent.body  # type: ignore[operator]
    assert sent.headers["Idempotency-Key"].startswith("sandbox:balance.compare:")
    assert result.customer_id == "cust_1"
    assert result.neutral_balance == Decimal("950.10")
    assert result.matches_yours is True
    assert result.matches_theirs is False


async def test_compare_sends_scope_fields(mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]) -> None:
    mocked.post(at(f"{BALANCE}/compare"), status=201, payload=envelope({"neutralBalance": 1}), repeat=True)
    await pac.balance.compare(
        "cust_1",
        your_balance=1,
        their_balance=2,
        starting_balance="5.5",
        time_preset="custom",
        start_date=date(2026, 1, 1),
        end_date=date(2026, 3, 1),
        granularity="month",
        idempotency_key="cmp-1",
    )
    await pac.balance.compare(
        "cust_1", your_balance=1, their_balance=2, starting_checkpoint="0xroot", starting_checkpoint_type="proofRoot"
    )
    assert wire[0].json == {
        "customerId": "cust_1",
        "yourBalance": 1,
        "theirBalance": 2,
        "startingBalance": Decimal("5.5"),
        "timePreset": "custom",
        "startDate": "2026-01-01T00:00:00Z",
        "endDate": "2026-03-01T00:00:00Z",
        "granularity": "month",
    }
    assert wire[0].headers["Idempotency-Key"] == "sandbox:cmp-1"
    assert wire[1].json == {
        "customerId": "cust_1",
        "yourBalance": 1,
        "theirBalance": 2,
        "startingBalance": 0,
        "startingCheckpoint": "0xroot",
        "startingCheckpointType": "proofRoot",
    }


# --- receipts and invoice proofs -------------------------------------------------------------


@pytest.mark.parametrize(("method", "segment"), [("receipt", "receipt"), ("invoice_proof", "invoice-proof")])
async def test_receipt_paths_and_absent_links_are_none(
    mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent], method: str, segment: str
) -> None:
    mocked.get(
        at(f"{BALANCE}/{segment}/cust%2F1"),
        payload=envelope({"customerId": "cust/1", "period": "2026-04", "proofRoot": "0xroot", "deltaCount": 3}),
    )
    receipt = await getattr(pac.balance, method)("cust/1", period="2026-04")
    (sent,) = wire
    assert sent.method == "GET"
    assert sent.url == f"{SANDBOX}/api/v1/balance/{segment}/cust%2F1?period=2026-04"
    assert receipt.customer_id == "cust/1"
    assert receipt.proof_root == "0xroot"
    assert receipt.delta_count == 3
    assert {name: getattr(receipt, name) for name in LINKS} == dict.fromkeys(LINKS)


LINK_VALUES = {
    "verifyUrl": "https://customer-links.pacspace.io/c/cus_x1",
    "verificationApiUrl": "https://app.pacspace.io/api/v1/verify/0xroot",
    "accessHint": "Q7K2PX",
    "customerLinkUrl": "https://customer-links.pacspace.io/c/cus_x1",
    "customerLinkHost": "customer-links.pacspace.io",
}
LINK_ATTRS = dict(zip(LINKS, LINK_VALUES.values(), strict=True))


@pytest.mark.parametrize(("method", "segment"), [("receipt", "receipt"), ("invoice_proof", "invoice-proof")])
@pytest.mark.parametrize("nested", [False, True], ids=["top-level", "under-verification"])
async def test_receipt_links_are_filled(
    mocked: aioresponses, pac: AsyncPacSpace, method: str, segment: str, nested: bool
) -> None:
    data: dict[str, Any] = {"customerId": "cust_1", "startingBalance": 10, "finalBalance": -2.5}
    if nested:
        data["verification"] = {**LINK_VALUES, "verificationExplorerUrl": "https://explorer.example/x"}
    else:
        data.update(LINK_VALUES)
    mocked.get(at(f"{BALANCE}/{segment}/cust_1"), payload=envelope(data))
    receipt = await getattr(pac.balance, method)("cust_1")
    assert {name: getattr(receipt, name) for name in LINKS} == LINK_ATTRS
    assert receipt.starting_balance == Decimal(10)
    assert receipt.final_balance == Decimal("-2.5")
    if nested:
        assert receipt.verification is not None
        assert receipt.verification["verificationExplorerUrl"] == "https://explorer.example/x"


async def test_receipt_scope_as_query(mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]) -> None:
    mocked.get(at(f"{BALANCE}/receipt/cust_1"), payload=envelope({}))
    await pac.balance.receipt("cust_1", time_preset="custom", start_date="2026-01-01", end_date="2026-02-01")
    assert wire[0].query == {"timePreset": "custom", "startDate": "2026-01-01", "endDate": "2026-02-01"}


# --- account endpoints ------------------------------------------------------------------------


async def test_usage(mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]) -> None:
    mocked.get(f"{SANDBOX}/api/v1/balance/usage", payload=envelope({"remaining": 42, "allowed": True, "plan": "free"}))
    usage = await pac.balance.usage()
    assert (wire[0].method, wire[0].url) == ("GET", SANDBOX + "/api/v1/balance/usage")
    assert (usage.remaining, usage.allowed, usage.plan) == (42, True, "free")


async def test_gaps_query_and_object_answer(mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]) -> None:
    gaps = [{"fromSequence": 4, "toSequence": 6}]
    mocked.get(at(f"{BALANCE}/gaps/cust%2F1"), payload=envelope({"customerId": "cust/1", "gaps": gaps}))
    result = await pac.balance.gaps("cust/1", from_sequence=0, to_sequence=99, limit=50)
    assert wire[0].path == "/api/v1/balance/gaps/cust%2F1"
    assert wire[0].raw_query == "fromSequence=0&toSequence=99&limit=50"
    assert result.customer_id == "cust/1"
    assert result.gaps == tuple(gaps)


async def test_gaps_bare_list_answer(mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]) -> None:
    mocked.get(at(f"{BALANCE}/gaps/cust_1"), payload=envelope([{"sequence": 3}, {"sequence": 5}]))
    result = await pac.balance.gaps("cust_1")
    assert wire[0].raw_query == ""
    assert result.gaps == ({"sequence": 3}, {"sequence": 5})
    assert result.customer_id is None


async def test_limits(mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]) -> None:
    mocked.get(
        f"{SANDBOX}/api/v1/balance/limits",
        payload={"statusCode": 200, "data": {"maxScopeMonths": 12, "maxLastNDays": 90, "maxRetentionDays": 400}},
    )
    limits = await pac.balance.limits()
    assert wire[0].url == SANDBOX + "/api/v1/balance/limits"
    assert (limits.max_scope_months, limits.max_last_n_days, limits.max_retention_days) == (12, 90, 400)


# --- checkpoints ------------------------------------------------------------------------------


async def test_checkpoint_create_body_and_model(mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]) -> None:
    mocked.post(
        at(f"{BALANCE}/checkpoint"),
        status=201,
        payload=envelope(
            {
                "checkpointId": "chk_5",
                "status": "QUEUED",
                "customerId": "cust_1",
                "period": "2026-04",
                "proofRoot": "0x" + "11" * 32,
                "createdAt": "2026-04-30T10:30:12.456Z",
            }
        ),
    )
    checkpoint = await pac.checkpoints.create(
        customer_id="cust_1", period=date(2026, 4, 2), mode="selection", fingerprints=("fp1", "fp2")
    )
    (sent,) = wire
    assert (sent.method, sent.url) == ("POST", SANDBOX + "/api/v1/balance/checkpoint")
    assert sent.json == {
        "period": "2026-04",
        "customerId": "cust_1",
        "mode": "selection",
        "fingerprints": ["fp1", "fp2"],
    }
    assert sent.headers["Idempotency-Key"].startswith("sandbox:balance.checkpoint:")
    assert checkpoint.checkpoint_id == "chk_5"
    assert checkpoint.proof_root == "0x" + "11" * 32
    assert checkpoint.created_at == datetime(2026, 4, 30, 10, 30, 12, 456000, tzinfo=timezone.utc)
    assert checkpoint.idempotency_key == sent.headers["Idempotency-Key"]


async def test_checkpoint_create_with_nothing_sends_an_empty_object(
    mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]
) -> None:
    mocked.post(
        at(f"{BALANCE}/checkpoint"), status=201, payload=envelope({"checkpointId": "chk_1", "merkleRoot": "0xm"})
    )
    checkpoint = await pac.checkpoints.create()
    assert wire[0].body == b"{}"
    assert checkpoint.proof_root == "0xm"


async def test_checkpoint_create_with_a_date_range(mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]) -> None:
    mocked.post(
        at(f"{BALANCE}/checkpoint"), status=201, payload=envelope({"checkpointId": "chk_1", "itemsRoot": "0xi"})
    )
    checkpoint = await pac.checkpoints.create(
        time_preset="custom", start_date=date(2026, 1, 1), end_date=date(2026, 2, 1)
    )
    assert wire[0].json == {
        "timePreset": "custom",
        "startDate": "2026-01-01T00:00:00Z",
        "endDate": "2026-02-01T00:00:00Z",
    }
    assert checkpoint.proof_root == "0xi"


async def test_checkpoints_list_query_and_items(mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]) -> None:
    mocked.get(
        at(f"{BALANCE}/checkpoints"),
        payload=envelope({"checkpoints": [{"checkpointId": "chk_1", "merkleRoot": "0x1"}, {"checkpointId": "chk_2"}]}),
    )
    page = await pac.checkpoints.list(customer_id="cust_1", period="2026-04", limit=10, offset=20)
    (sent,) = wire
    assert sent.path == "/api/v1/balance/checkpoints"
    assert sent.query == {"period": "2026-04", "customerId": "cust_1", "offset": "20", "limit": "10"}
    assert [c.checkpoint_id for c in page.items] == ["chk_1", "chk_2"]
    assert page.items[0].proof_root == "0x1"
    assert page.has_next_page() is False


async def test_checkpoints_list_defaults(mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]) -> None:
    mocked.get(at(f"{BALANCE}/checkpoints"), payload=envelope({"checkpoints": []}))
    assert [c async for c in pac.checkpoints.list()] == []
    assert wire[0].query == {"offset": "0", "limit": "50"}


# --- customers --------------------------------------------------------------------------------


async def test_customers_list_query_and_items(mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]) -> None:
    mocked.get(
        at(f"{BALANCE}/customers"),
        payload=envelope(
            {
                "customers": [
                    {
                        "customerId": "acme_1",
                        "ledgerIdentifier": "0xl",
                        "totalDeltas": 12,
                        "firstDeltaAt": "2026-01-01T00:00:00Z",
                        "lastDeltaAt": "2026-04-01T10:00:00.123Z",
                    }
                ],
                "pagination": {"total": 11, "page": 2, "limit": 10, "totalPages": 2},
            }
        ),
    )
    page = await pac.customers.list(search="acme", limit=10, page=2)
    (sent,) = wire
    assert (sent.method, sent.path) == ("GET", "/api/v1/balance/customers")
    assert sent.query == {"search": "acme", "page": "2", "limit": "10"}
    (customer,) = page.items
    assert customer.customer_id == "acme_1"
    assert customer.total_deltas == 12
    assert customer.last_delta_at == datetime(2026, 4, 1, 10, 0, 0, 123000, tzinfo=timezone.utc)
    assert page.total == 11
    assert page.has_next_page() is False


async def test_customers_list_defaults(mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]) -> None:
    mocked.get(at(f"{BALANCE}/customers"), payload=envelope({"customers": []}))
    await pac.customers.list()
    assert wire[0].query == {"page": "1", "limit": "25"}


async def test_customers_get(mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]) -> None:
    mocked.get(
        at(f"{BALANCE}/customers/cust%2F1"),
        payload=envelope(
            {
                "customerId": "cust/1",
                "customerReference": "0xref",
                "customerPartition": "p1",
                "totalDeltas": 3,
                "computedBalance": -12.75,
                "latestCheckpoint": {"checkpointId": "chk_1"},
                "recentActivity": {"items": [{"delta": -1, "recordId": "rec_1"}], "pagination": {"page": 2}},
            }
        ),
    )
    customer = await pac.customers.get("cust/1", delta_page=2, delta_limit=5, period=date(2026, 4, 1))
    (sent,) = wire
    assert sent.path == "/api/v1/balance/customers/cust%2F1"
    assert sent.raw_query == "deltaPage=2&deltaLimit=5&period=2026-04"
    assert customer.customer_id == "cust/1"
    assert customer.computed_balance == Decimal("-12.75")
    assert customer.latest_checkpoint == {"checkpointId": "chk_1"}
    assert customer.recent_activity is not None
    assert customer.recent_activity["items"][0]["recordId"] == "rec_1"


async def test_customers_get_without_options_has_no_query(
    mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]
) -> None:
    mocked.get(f"{SANDBOX}/api/v1/balance/customers/cust_1", payload=envelope({"customerId": "cust_1"}))
    await pac.customers.get("cust_1")
    assert wire[0].url == SANDBOX + "/api/v1/balance/customers/cust_1"


async def test_customers_summary(mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]) -> None:
    mocked.get(
        f"{SANDBOX}/api/v1/balance/customers/summary",
        payload=envelope({"totalCustomers": 4, "totalDeltas": 99, "verificationHealth": "ok"}),
    )
    summary = await pac.customers.summary()
    assert wire[0].url == SANDBOX + "/api/v1/balance/customers/summary"
    assert (summary.total_customers, summary.total_deltas) == (4, 99)
    assert summary.raw["verificationHealth"] == "ok"


# --- webhook deliveries -----------------------------------------------------------------------


async def test_webhook_deliveries_list(mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]) -> None:
    mocked.get(
        at(f"{BALANCE}/webhooks"),
        payload=envelope(
            {
                "deliveries": [
                    {"id": "evt_1", "event": "delta.verified", "status": "failed", "attempts": 3},
                    {"eventId": "evt_2", "status": "delivered", "url": "https://hooks.example/x"},
                ],
                "total": 2,
            }
        ),
    )
    page = await pac.webhook_deliveries.list(status="failed", limit=10, offset=5)
    (sent,) = wire
    assert sent.path == "/api/v1/balance/webhooks"
    assert sent.query == {"status": "failed", "offset": "5", "limit": "10"}
    assert [d.event_id for d in page.items] == ["evt_1", "evt_2"]
    assert page.items[0].status == "failed"  # not coerced to a delta status
    assert page.items[1].status == "delivered"
    assert page.items[0].attempts == 3


async def test_webhook_delivery_retry(mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]) -> None:
    mocked.post(f"{SANDBOX}/api/v1/balance/webhooks/evt%2F1/retry", payload=envelope({"status": "queued"}))
    delivery = await pac.webhook_deliveries.retry("evt/1")
    (sent,) = wire
    assert (sent.method, sent.url) == ("POST", SANDBOX + "/api/v1/balance/webhooks/evt%2F1/retry")
    assert sent.body == b"{}"
    assert sent.headers["Idempotency-Key"].startswith("sandbox:balance.webhooks.retry:")
    assert delivery.event_id == "evt/1"
    assert delivery.status == "queued"


# --- public verify ----------------------------------------------------------------------------


async def test_verify(mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent]) -> None:
    mocked.get(
        at("/api/v1/verify/0xab%2Fcd"),
        payload=envelope(
            {
                "verified": True,
                "proofRoot": "0xab/cd",
                "recordedAt": "2026-04-18T14:32:00.000Z",
                "summary": {"recordCount": 3, "netChange": -450.5},
                "records": [{"amount": -150}],
                "verification": {"verificationReference": "0xref"},
            }
        ),
    )
    result = await pac.verify("0xab/cd", source="chain")
    (sent,) = wire
    assert sent.url == SANDBOX + "/api/v1/verify/0xab%2Fcd?source=chain"
    assert "X-Api-Key" not in sent.headers
    assert result.verified is True
    assert result.recorded_at == datetime(2026, 4, 18, 14, 32, tzinfo=timezone.utc)
    assert result.summary is not None
    assert result.summary.record_count == 3
    assert result.summary.net_change == Decimal("-450.5")
    assert result.records == ({"amount": -150},)


# --- local refusals: InvalidArgumentError, nothing sent -------------------------------------

REFUSALS: list[tuple[str, Callable[[AsyncPacSpace], Any]]] = [
    ("emit empty customer", lambda p: p.balance.emit(customer_id="", delta=1, reason="r")),
    ("emit bad customer chars", lambda p: p.balance.emit(customer_id="a b", delta=1, reason="r")),
    ("emit zero delta", lambda p: p.balance.emit(customer_id="c", delta=Decimal("0.00"), reason="r")),
    ("emit NaN float", lambda p: p.balance.emit(customer_id="c", delta=float("nan"), reason="r")),
    ("emit infinite", lambda p: p.balance.emit(customer_id="c", delta=Decimal("Infinity"), reason="r")),
    ("emit too large", lambda p: p.balance.emit(customer_id="c", delta=10**9 + 1, reason="r")),
    ("emit bool delta", lambda p: p.balance.emit(customer_id="c", delta=True, reason="r")),
    ("emit empty reason", lambda p: p.balance.emit(customer_id="c", delta=1, reason=" ")),
    ("emit list metadata", lambda p: p.balance.emit(customer_id="c", delta=1, reason="r", metadata=["a"])),
    ("emit int-keyed metadata", lambda p: p.balance.emit(customer_id="c", delta=1, reason="r", metadata={1: "a"})),
    (
        "emit unserialisable metadata",
        lambda p: p.balance.emit(customer_id="c", delta=1, reason="r", metadata={"a": {1}}),
    ),
    ("emit non-mapping adjusts", lambda p: p.balance.emit(customer_id="c", delta=1, reason="r", adjusts="inv_1")),
    ("emit empty reference", lambda p: p.balance.emit(customer_id="c", delta=1, reason="r", reference_id="")),
    ("batch empty", lambda p: p.balance.emit_batch([])),
    ("batch a mapping", lambda p: p.balance.emit_batch({"customer_id": "c"})),  # type: ignore[arg-type]
    (
        "batch bad last item",
        lambda p: p.balance.emit_batch([*batch_items(149), {"customer_id": "c", "delta": 0, "reason": "r"}]),
    ),
    ("batch unknown field", lambda p: p.balance.emit_batch([{"customer_id": "c", "delta": 1, "reason": "r", "x": 1}])),
    ("batch missing field", lambda p: p.balance.emit_batch([{"customer_id": "c", "delta": 1}])),
    ("status empty", lambda p: p.balance.status("")),
    ("derive empty customer", lambda p: p.balance.derive("")),
    ("derive bad period", lambda p: p.balance.derive("c", period="2026-13")),
    ("derive limit 0", lambda p: p.balance.derive("c", limit=0)),
    ("derive limit 1001", lambda p: p.balance.derive("c", limit=1001)),
    ("derive negative offset", lambda p: p.balance.derive("c", offset=-1)),
    ("derive NaN starting balance", lambda p: p.balance.derive("c", starting_balance=float("nan"))),
    ("for_period bad period", lambda p: p.balance.derive_for_period("c", "2026-13")),
    ("months_back 0", lambda p: p.balance.derive_months_back("c", 0)),
    ("days_back 0", lambda p: p.balance.derive_days_back("c", 0)),
    ("compare empty customer", lambda p: p.balance.compare("", your_balance=1, their_balance=1)),
    ("compare NaN", lambda p: p.balance.compare("c", your_balance=float("nan"), their_balance=1)),
    ("receipt bad period", lambda p: p.balance.receipt("c", period="2026-13")),
    ("invoice_proof empty customer", lambda p: p.balance.invoice_proof("")),
    ("gaps limit 0", lambda p: p.balance.gaps("c", limit=0)),
    ("gaps negative from", lambda p: p.balance.gaps("c", from_sequence=-1)),
    ("checkpoint bad customer", lambda p: p.checkpoints.create(customer_id="")),
    ("checkpoint fingerprints str", lambda p: p.checkpoints.create(fingerprints="abc")),
    ("checkpoints.list limit 0", lambda p: p.checkpoints.list(limit=0)),
    ("customers.list limit 0", lambda p: p.customers.list(limit=0)),
    ("customers.list limit 101", lambda p: p.customers.list(limit=101)),
    ("customers.list page 0", lambda p: p.customers.list(page=0)),
    ("customers.get empty", lambda p: p.customers.get("")),
    ("customers.get bad period", lambda p: p.customers.get("c", period="2026-13")),
    ("webhooks.list limit 0", lambda p: p.webhook_deliveries.list(limit=0)),
    ("webhooks.retry empty", lambda p: p.webhook_deliveries.retry("")),
    ("verify bad source", lambda p: p.verify("0xabc", source="ledger")),
    ("verify empty root", lambda p: p.verify("")),
    ("wait timeout 0", lambda p: p.balance.wait_for_verified("rec_1", timeout=0)),
]


async def invoke(call: Callable[[AsyncPacSpace], Any], pac: AsyncPacSpace) -> None:
    """Call; await the result when it is a coroutine (list calls refuse synchronously)."""
    result = call(pac)
    if inspect.isawaitable(result):
        await result


@pytest.mark.parametrize("call", [call for _, call in REFUSALS], ids=[name for name, _ in REFUSALS])
async def test_bad_arguments_raise_before_anything_is_sent(
    mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent], call: Callable[[AsyncPacSpace], Any]
) -> None:
    mocked.get(re.compile(r".*"), payload=envelope({}), repeat=True)
    mocked.post(re.compile(r".*"), payload=envelope({}), repeat=True)
    with pytest.raises(InvalidArgumentError) as info:
        await invoke(call, pac)
    assert isinstance(info.value, ValueError)
    assert calls(mocked) == []
    assert wire == []


@pytest.mark.parametrize(
    "call",
    [lambda p: p.balance.derive_months_back("c", 30_000), lambda p: p.balance.derive_days_back("c", 10**9)],
    ids=["months_back huge", "days_back huge"],
)
async def test_absurd_look_back_is_an_invalid_argument(
    mocked: aioresponses, pac: AsyncPacSpace, wire: list[Sent], call: Callable[[AsyncPacSpace], Any]
) -> None:
    mocked.get(re.compile(r".*"), payload=envelope({}), repeat=True)
    with pytest.raises(InvalidArgumentError):
        await invoke(call, pac)
    assert wire == []
