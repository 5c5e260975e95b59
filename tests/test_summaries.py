"""pac.summaries: reference ids, last write wins, flush outcomes, pacing, the timer task, aclose."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from conftest import FakeClock, LoopbackServer, ok

from pacspace_async import AsyncPacSpace
from pacspace_async._errors import (
    APIConnectionError,
    ConfigurationError,
    InvalidArgumentError,
    error_from_response,
)
from pacspace_async.models.balance import BatchItemResult, BatchResult
from pacspace_async.models.summaries import FlushReport, SummaryProfile
from pacspace_async.resources.summaries import AsyncSummaries, summary_reference_id

START = "2026-03-17T00:00:00Z"
END = "2026-03-18T00:00:00Z"
VECTOR_1 = "sum_9a91e85a95e6821e0416faffd4e8c5e2de65dfe8e9388456"
VECTOR_2 = "sum_2afc5107f4888fb1e3115e587237b7fbe22a0577c5e2d8a8"

Respond = Callable[[list[Mapping[str, Any]]], BatchResult]


def batch_result(
    items: Sequence[Mapping[str, Any]],
    *,
    failed: Mapping[str, str] | None = None,
    replayed: Sequence[str] = (),
) -> BatchResult:
    """The answer to a batch: `failed` maps reference id -> error code, `replayed` lists replays."""
    failed = failed or {}
    results = tuple(
        BatchItemResult(
            index=index,
            status="FAILED" if item["reference_id"] in failed else "QUEUED",
            customer_id=item["customer_id"],
            reference_id=item["reference_id"],
            idempotent=True if item["reference_id"] in replayed else None,
            error=failed.get(item["reference_id"]),
        )
        for index, item in enumerate(items)
    )
    bad = sum(result.failed for result in results)
    return BatchResult(results, len(results) - bad, bad)


class StubBalance:
    """Stands in for AsyncBalance: records every emit_batch call and answers as told."""

    def __init__(self, respond: Respond | None = None) -> None:
        self.calls: list[list[Mapping[str, Any]]] = []
        self.options: list[dict[str, Any]] = []
        self.respond: Respond = respond or batch_result

    async def emit_batch(self, items: Sequence[Mapping[str, Any]], **options: Any) -> BatchResult:
        self.calls.append(list(items))
        self.options.append(options)
        return self.respond(list(items))

    @property
    def sent(self) -> list[Mapping[str, Any]]:
        return [item for call in self.calls for item in call]


Make = Callable[..., tuple[AsyncSummaries, StubBalance, FakeClock]]


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    """Build schedulers over a stub balance and a fake clock; every one is closed after the test."""
    made: list[AsyncSummaries] = []

    def build(respond: Respond | None = None, **config: Any) -> tuple[AsyncSummaries, StubBalance, FakeClock]:
        stub = StubBalance(respond)
        clock = FakeClock()
        summaries = AsyncSummaries(stub, clock.clock())  # type: ignore[arg-type]
        if config:
            summaries.configure(**config)
        made.append(summaries)
        return summaries, stub, clock

    yield build
    for summaries in made:
        await summaries.aclose(flush=False)


async def ticks(count: int = 20) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


def queue_day(summaries: AsyncSummaries, customer_id: str, delta: Any = "-1", day: int = 17) -> str:
    start = datetime(2026, 3, day, tzinfo=timezone.utc)
    return summaries.queue(
        customer_id=customer_id, delta=delta, window_start=start, window_end=start + timedelta(days=1)
    )


# --- reference ids and timestamps ----------------------------------------------------------


def test_reference_ids_equal_the_spec_vectors() -> None:
    assert summary_reference_id("cust_1", -1, START, END) == VECTOR_1
    assert summary_reference_id("cust_1", Decimal("-1"), START, END) == VECTOR_1
    assert summary_reference_id("cust_2", Decimal("12.5"), "2026-03-17T00:00:00+02:00", "2026-03-18") == VECTOR_2


def test_queue_returns_the_spec_reference_ids_for_datetimes_and_strings() -> None:
    summaries = AsyncSummaries(StubBalance(), FakeClock().clock())  # type: ignore[arg-type]
    plus_two = timezone(timedelta(hours=2))
    assert summaries.queue(customer_id="cust_1", delta=-1, window_start=START, window_end=END) == VECTOR_1
    ref = summaries.queue(
        customer_id="cust_2",
        delta="12.5",
        window_start=datetime(2026, 3, 17, tzinfo=plus_two),
        window_end=datetime(2026, 3, 18),  # naive means UTC
    )
    assert ref == VECTOR_2


def test_a_callers_reference_id_is_kept() -> None:
    summaries = AsyncSummaries(StubBalance(), FakeClock().clock())  # type: ignore[arg-type]
    ref = summaries.queue(customer_id="cust_1", delta=-1, window_start=START, window_end=END, reference_id="mine_1")
    assert ref == "mine_1"


async def test_timestamps_are_sent_as_utc_z_with_microseconds_kept(make: Make) -> None:
    summaries, stub, _ = make(auto_flush=False)
    summaries.queue(
        customer_id="cust_1",
        delta=-1,
        window_start=datetime(2026, 3, 17, 0, 0, 0, 500000),
        window_end="2026-03-18T02:00:00+02:00",
    )
    await summaries.flush()
    metadata = stub.sent[0]["metadata"]
    assert metadata["summaryWindowStart"] == "2026-03-17T00:00:00.500000Z"
    assert metadata["summaryWindowEnd"] == "2026-03-18T00:00:00Z"


# --- queueing --------------------------------------------------------------------------------


async def test_requeuing_a_window_replaces_it(make: Make) -> None:
    summaries, stub, _ = make(auto_flush=False)
    first = summaries.queue(customer_id="cust_1", delta="-1", window_start=START, window_end=END)
    # The same instants written another way are the same window.
    newest = summaries.queue(customer_id="cust_1", delta="-3", window_start="2026-03-17T02:00:00+02:00", window_end=END)
    assert first != newest
    assert summaries.state().queued_count == 1
    report = await summaries.flush()
    assert report.attempted == report.submitted == 1
    assert len(stub.sent) == 1
    assert stub.sent[0]["delta"] == Decimal("-3")
    assert stub.sent[0]["reference_id"] == newest


async def test_other_customers_and_windows_are_separate_entries(make: Make) -> None:
    summaries, _, _ = make(auto_flush=False)
    queue_day(summaries, "cust_1", day=17)
    queue_day(summaries, "cust_1", day=18)
    queue_day(summaries, "cust_2", day=17)
    assert summaries.state().queued_count == 3


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"delta": 0}, "delta must not be zero"),
        ({"delta": Decimal("-0.00")}, "delta must not be zero"),
        ({"delta": Decimal("NaN")}, "finite"),
        ({"delta": "abc"}, "delta must be"),
        ({"window_end": START}, "must be after window_start"),
        ({"window_end": "2026-03-16T00:00:00Z"}, "must be after window_start"),
        ({"customer_id": ""}, "customer_id"),
        ({"customer_id": "cust 1"}, "customer_id"),
        ({"window_start": "yesterday"}, "window_start must be an ISO 8601 timestamp"),
        ({"window_start": 1_773_705_600}, "window_start must be a datetime or an ISO 8601 string"),
        ({"reason": ""}, "reason"),
        ({"reference_id": " "}, "reference_id"),
        ({"metadata": {"x": object()}}, "metadata"),
    ],
)
async def test_invalid_summaries_are_refused_and_nothing_is_sent(
    make: Make, fields: dict[str, Any], message: str
) -> None:
    summaries, stub, _ = make()
    arguments: dict[str, Any] = {"customer_id": "cust_1", "delta": -1, "window_start": START, "window_end": END}
    with pytest.raises(InvalidArgumentError, match=message):
        summaries.queue(**{**arguments, **fields})
    assert summaries.state().queued_count == 0
    assert summaries.state().is_running is False
    await summaries.flush()
    await ticks()
    assert stub.calls == []


def test_queue_without_a_running_loop_starts_no_task() -> None:
    summaries = AsyncSummaries(StubBalance(), FakeClock().clock())  # type: ignore[arg-type]
    queue_day(summaries, "cust_1")
    assert summaries.state().is_running is False
    assert summaries.state().queued_count == 1


# --- flushing ----------------------------------------------------------------------------------


async def test_flush_sends_the_spec_payload_and_dequeues(make: Make) -> None:
    summaries, stub, clock = make(auto_flush=False)
    ref = summaries.queue(
        customer_id="cust_1",
        delta=Decimal("-42.10"),
        window_start=START,
        window_end=END,
        metadata={"plan": "growth"},
    )
    queue_day(summaries, "cust_2", delta=7, day=17)
    summaries.queue(customer_id="cust_3", delta=1, window_start=START, window_end=END, reason="api_calls")
    report = await summaries.flush()

    assert len(stub.calls) == 1
    first = stub.sent[0]
    assert first == {
        "customer_id": "cust_1",
        "delta": Decimal("-42.10"),
        "reason": "usage_summary",
        "reference_id": ref,
        "metadata": {
            "summaryWindowStart": START,
            "summaryWindowEnd": END,
            "summaryProfile": "daily",
            "submissionType": "tenant_summary",
            "plan": "growth",
        },
    }
    assert isinstance(first["delta"], Decimal)  # exact on the wire; only the id uses the float
    assert stub.sent[2]["reason"] == "api_calls"
    assert stub.options[0]["idempotency_key"].startswith("summaries:")
    assert report == FlushReport(
        profile=SummaryProfile.DAILY,
        started_at=report.started_at,
        finished_at=report.finished_at,
        attempted=3,
        submitted=3,
        failed=0,
        replayed=0,
        request_count=1,
        queued_after_flush=0,
    )
    assert report.started_at == datetime.fromtimestamp(clock.now, tz=timezone.utc)
    assert summaries.state().queued_count == 0


async def test_flush_with_nothing_queued_sends_nothing(make: Make) -> None:
    summaries, stub, _ = make()
    report = await summaries.flush()
    assert (report.attempted, report.request_count, report.queued_after_flush) == (0, 0, 0)
    assert stub.calls == []


async def test_a_failed_item_stays_queued_and_a_replayed_one_counts_as_replayed(make: Make) -> None:
    refs: dict[str, str] = {}

    def respond(items: list[Mapping[str, Any]]) -> BatchResult:
        return batch_result(items, failed={refs["fail"]: "CADENCE_LIMIT"}, replayed=[refs["replay"]])

    summaries, stub, _ = make(respond, auto_flush=False)
    refs["ok"] = queue_day(summaries, "cust_ok")
    refs["fail"] = queue_day(summaries, "cust_fail")
    refs["replay"] = queue_day(summaries, "cust_replay")
    report = await summaries.flush()

    assert (report.attempted, report.submitted, report.failed, report.replayed) == (3, 2, 1, 1)
    assert report.queued_after_flush == 1
    assert [(f.customer_id, f.reference_id, f.error) for f in report.failures] == [
        ("cust_fail", refs["fail"], "CADENCE_LIMIT")
    ]
    # The next flush sends only the one still queued.
    stub.respond = batch_result
    again = await summaries.flush()
    assert [item["reference_id"] for item in stub.calls[1]] == [refs["fail"]]
    assert (again.submitted, again.queued_after_flush) == (1, 0)


async def test_a_fresh_idempotency_key_per_flush_so_failures_are_not_replayed(make: Make) -> None:
    summaries, stub, _ = make(lambda items: batch_result(items, failed={items[0]["reference_id"]: "X"}))
    summaries.configure(auto_flush=False)
    queue_day(summaries, "cust_1")
    await summaries.flush()
    await summaries.flush()
    keys = [options["idempotency_key"] for options in stub.options]
    assert len(keys) == 2
    assert keys[0] != keys[1]


async def test_flush_passes_its_per_call_options_to_every_request(make: Make) -> None:
    summaries, stub, _ = make(auto_flush=False, max_deltas_per_request=1)
    queue_day(summaries, "cust_1")
    queue_day(summaries, "cust_2")
    await summaries.flush(timeout=5, max_retries=0, extra_headers={"X-Trace": "t1"})
    assert len(stub.options) == 2
    for options in stub.options:
        assert (options["timeout"], options["max_retries"]) == (5, 0)
        assert options["extra_headers"] == {"X-Trace": "t1"}
    queue_day(summaries, "cust_3")
    await summaries.flush()  # the next flush goes back to the client's settings
    assert len(stub.options) == 3
    assert all(stub.options[-1].get(key) is None for key in ("timeout", "max_retries", "extra_headers"))


@pytest.mark.parametrize(
    "options",
    [{"timeout": 0}, {"timeout": -1}, {"max_retries": -1}, {"extra_headers": {"X-Api-Key": "pk_test_x.y"}}],
)
async def test_bad_flush_options_are_raised_and_nothing_is_sent(make: Make, options: dict[str, Any]) -> None:
    summaries, stub, _ = make(auto_flush=False)
    queue_day(summaries, "cust_1")
    with pytest.raises(InvalidArgumentError):
        await summaries.flush(**options)
    assert stub.calls == []
    assert summaries.state().queued_count == 1


async def test_an_item_without_a_result_stays_queued(make: Make) -> None:
    summaries, _, _ = make(lambda items: BatchResult((), 0, 0), auto_flush=False)
    ref = queue_day(summaries, "cust_1")
    report = await summaries.flush()
    assert [(f.reference_id, f.error) for f in report.failures] == [(ref, "NO_RESULT")]
    assert report.queued_after_flush == 1


async def test_a_request_that_raises_leaves_its_items_queued_and_stops_the_flush(make: Make) -> None:
    error = APIConnectionError("connection refused", method="POST", path="/api/v1/balance/delta/batch")

    def respond(items: list[Mapping[str, Any]]) -> BatchResult:
        raise error

    summaries, stub, _ = make(respond, max_deltas_per_request=2, auto_flush=False)
    for day in range(1, 6):
        queue_day(summaries, "cust_1", day=day)
    report = await summaries.flush()
    assert len(stub.calls) == 1  # the network is down: the other chunks would fail the same way
    assert (report.attempted, report.submitted, report.failed, report.request_count) == (2, 0, 2, 1)
    assert report.queued_after_flush == 5
    assert all(failure.exception is error for failure in report.failures)
    assert report.failures[0].error.startswith("APIConnectionError: connection refused")


async def test_a_rejected_chunk_does_not_stop_the_next_ones(make: Make) -> None:
    rejected = error_from_response(
        status=400,
        body={"error": {"code": "VALIDATION_ERROR", "message": "bad delta"}},
        method="POST",
        path="/api/v1/balance/delta/batch",
        request_id=None,
        idempotency_key=None,
        retries_taken=0,
        key_id=None,
        retry_after=None,
    )
    calls = 0

    def respond(items: list[Mapping[str, Any]]) -> BatchResult:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise rejected
        return batch_result(items)

    summaries, stub, _ = make(respond, max_deltas_per_request=2, auto_flush=False)
    for day in range(1, 6):
        queue_day(summaries, "cust_1", day=day)
    report = await summaries.flush()
    assert len(stub.calls) == 3
    assert (report.submitted, report.failed, report.queued_after_flush) == (3, 2, 2)
    assert {item["reference_id"] for item in stub.calls[0]} == {f.reference_id for f in report.failures}


async def test_a_window_requeued_during_a_flush_keeps_its_newest_total(make: Make) -> None:
    gate = asyncio.Event()

    class SlowBalance(StubBalance):
        async def emit_batch(self, items: Sequence[Mapping[str, Any]], **options: Any) -> BatchResult:
            await gate.wait()
            return await super().emit_batch(items, **options)

    stub = SlowBalance()
    summaries = AsyncSummaries(stub, FakeClock().clock())  # type: ignore[arg-type]
    summaries.configure(auto_flush=False)
    queue_day(summaries, "cust_1", delta="-1")
    flushing = asyncio.ensure_future(summaries.flush())
    await ticks()
    newest = queue_day(summaries, "cust_1", delta="-5")
    gate.set()
    report = await flushing
    assert report.submitted == 1
    assert report.queued_after_flush == 1  # the newer total was not dropped with the old one
    await summaries.flush()
    assert stub.calls[1][0]["reference_id"] == newest
    assert stub.calls[1][0]["delta"] == Decimal("-5")


async def test_concurrent_flushes_do_not_send_an_item_twice(make: Make) -> None:
    summaries, stub, _ = make(auto_flush=False)
    for day in range(1, 4):
        queue_day(summaries, "cust_1", day=day)
    first, second = await asyncio.gather(summaries.flush(), summaries.flush())
    assert len(stub.sent) == 3
    assert first.submitted + second.submitted == 3


# --- chunking and pacing ---------------------------------------------------------------------


async def test_chunks_follow_max_deltas_per_request(make: Make) -> None:
    summaries, stub, _ = make(max_deltas_per_request=2, auto_flush=False)
    for day in range(1, 6):
        queue_day(summaries, "cust_1", day=day)
    report = await summaries.flush()
    assert [len(call) for call in stub.calls] == [2, 2, 1]
    assert report.request_count == 3


@pytest.mark.parametrize(("asked", "used"), [(0, 1), (-5, 1), (100, 100), (1000, 100)])
async def test_max_deltas_per_request_is_clamped_to_1_100(make: Make, asked: int, used: int) -> None:
    summaries, stub, _ = make(max_deltas_per_request=asked, auto_flush=False)
    for index in range(used + 1):
        queue_day(summaries, f"cust_{index}")
    await summaries.flush()
    assert [len(call) for call in stub.calls] == [used, 1]


async def test_requests_are_paced_by_requests_per_minute(make: Make) -> None:
    summaries, stub, clock = make(max_deltas_per_request=1, max_requests_per_minute=2, auto_flush=False)
    for day in range(1, 4):
        queue_day(summaries, "cust_1", day=day)
    await summaries.flush()
    assert len(stub.calls) == 3
    assert clock.sleeps == [30.0, 30.0]


async def test_pacing_spans_flushes(make: Make) -> None:
    summaries, _, clock = make(max_requests_per_minute=6, auto_flush=False)
    queue_day(summaries, "cust_1", day=1)
    await summaries.flush()
    clock.now += 4
    queue_day(summaries, "cust_1", day=2)
    await summaries.flush()
    assert clock.sleeps == [6.0]


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"profile": "sub_daily"}, "enterprise"),
        ({"profile": "immediate"}, "enterprise"),
        ({"profile": "hourly"}, "profile must be one of"),
        ({"cadence": 0}, "needs a cadence > 0"),
        ({"cadence": -1}, "cadence must be"),
        ({"cadence": float("inf")}, "cadence must be"),
        ({"profile": "immediate", "enterprise": True, "cadence": 60}, "takes no cadence"),
        ({"max_requests_per_minute": 0}, "max_requests_per_minute"),
        ({"max_deltas_per_request": 2.5}, "max_deltas_per_request"),
        ({"default_reason": ""}, "default_reason"),
        ({"enterprise": "yes"}, "enterprise must be"),
    ],
)
def test_invalid_configurations_are_refused(config: dict[str, Any], message: str) -> None:
    summaries = AsyncSummaries(StubBalance(), FakeClock().clock())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=message):
        summaries.configure(**config)
    assert summaries.state().profile is SummaryProfile.DAILY  # nothing half-applied


def test_profile_defaults_and_state() -> None:
    summaries = AsyncSummaries(StubBalance(), FakeClock().clock())  # type: ignore[arg-type]
    assert summaries.state().cadence_seconds == 86_400
    summaries.configure(profile=SummaryProfile.SUB_DAILY, enterprise=True)
    state = summaries.state()
    assert (state.profile, state.cadence_seconds, state.enterprise) == ("sub_daily", 21_600, True)
    summaries.configure(profile="immediate", enterprise=True)
    assert summaries.state().cadence_seconds == 0
    summaries.configure(cadence=3600)
    assert summaries.state().cadence_seconds == 3600


async def test_the_flush_reports_the_configured_profile(make: Make) -> None:
    summaries, stub, _ = make(profile="sub_daily", enterprise=True, auto_flush=False)
    queue_day(summaries, "cust_1")
    report = await summaries.flush()
    assert report.profile is SummaryProfile.SUB_DAILY
    assert stub.sent[0]["metadata"]["summaryProfile"] == "sub_daily"


# --- the timer task --------------------------------------------------------------------------------


async def test_the_timer_flushes_after_the_cadence_without_threads(make: Make) -> None:
    threads = threading.active_count()
    summaries, stub, clock = make()
    started = clock.now
    queue_day(summaries, "cust_1")
    await asyncio.sleep(0)  # the task starts and goes to sleep on the fake clock
    state = summaries.state()
    assert state.is_running is True
    assert state.next_flush_at == datetime.fromtimestamp(started + 86_400, tz=timezone.utc)
    await ticks()
    assert clock.sleeps == [86_400.0]
    assert len(stub.calls) == 1
    # Nothing left to send: the task ends, and the next queue() starts a new one.
    assert summaries.state().is_running is False
    assert summaries.state().queued_count == 0
    assert threading.active_count() == threads


async def test_the_timer_keeps_retrying_failed_items_each_cadence(make: Make) -> None:
    answers = iter([{"fail": True}, {"fail": False}])

    def respond(items: list[Mapping[str, Any]]) -> BatchResult:
        if next(answers)["fail"]:
            return batch_result(items, failed={items[0]["reference_id"]: "CADENCE_LIMIT"})
        return batch_result(items)

    summaries, stub, clock = make(respond, profile="sub_daily", enterprise=True, cadence=60)
    queue_day(summaries, "cust_1")
    await ticks(40)
    assert clock.sleeps == [60.0, 60.0]
    assert len(stub.calls) == 2
    assert summaries.state().queued_count == 0


async def test_an_error_in_a_timed_flush_is_logged_and_the_timer_goes_on(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    answers = iter([RuntimeError("boom"), None])

    def respond(items: list[Mapping[str, Any]]) -> BatchResult:
        error = next(answers)
        if error is not None:
            raise error
        return batch_result(items)

    summaries, stub, _ = make(respond, profile="sub_daily", enterprise=True, cadence=60)
    with caplog.at_level(logging.WARNING, logger="pacspace"):
        queue_day(summaries, "cust_1")
        await ticks(40)
    assert len(stub.calls) == 2
    assert summaries.state().queued_count == 0
    assert any("not recorded" in record.getMessage() for record in caplog.records)


async def test_an_unexpected_error_in_a_timed_flush_is_logged_and_the_timer_goes_on(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    answers = iter([None, batch_result])

    def respond(items: list[Mapping[str, Any]]) -> BatchResult:
        answer = next(answers)
        return answer(items) if answer is not None else None  # type: ignore[return-value]

    summaries, stub, clock = make(respond, profile="sub_daily", enterprise=True, cadence=60)
    with caplog.at_level(logging.ERROR, logger="pacspace"):
        queue_day(summaries, "cust_1")
        await ticks(40)
    assert len(stub.calls) == 2
    assert clock.sleeps == [60.0, 60.0]
    assert summaries.state().queued_count == 0
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "scheduled flush failed" in record.getMessage()
    assert record.exc_info is not None


async def test_the_immediate_profile_flushes_at_once(make: Make) -> None:
    summaries, stub, clock = make(profile="immediate", enterprise=True)
    queue_day(summaries, "cust_1", day=1)
    queue_day(summaries, "cust_1", day=2)  # same tick: sent in the same request
    await ticks()
    assert [len(call) for call in stub.calls] == [2]
    assert clock.sleeps == []
    assert summaries.state().is_running is False


async def test_the_immediate_profile_does_not_spin_on_failures(make: Make) -> None:
    summaries, stub, _ = make(
        lambda items: batch_result(items, failed={i["reference_id"]: "X" for i in items}),
        profile="immediate",
        enterprise=True,
    )
    queue_day(summaries, "cust_1")
    await ticks(50)
    assert len(stub.calls) == 1
    assert summaries.state().queued_count == 1
    assert summaries.state().is_running is False


async def test_configure_applies_a_new_cadence_to_a_sleeping_timer(make: Make) -> None:
    summaries, stub, clock = make()
    queue_day(summaries, "cust_1")
    await asyncio.sleep(0)
    assert summaries.state().is_running is True
    summaries.configure(profile="sub_daily", enterprise=True, cadence=120)
    await ticks()
    assert clock.sleeps[-1] == 120.0
    assert len(stub.calls) == 1


async def test_turning_auto_flush_off_stops_the_timer(make: Make) -> None:
    summaries, stub, _ = make()
    queue_day(summaries, "cust_1")
    await asyncio.sleep(0)
    summaries.configure(auto_flush=False)
    await ticks()
    assert summaries.state().is_running is False
    assert stub.calls == []


# --- closing ---------------------------------------------------------------------------------------


async def test_aclose_cancels_the_timer_and_flushes(make: Make) -> None:
    summaries, stub, _ = make()
    queue_day(summaries, "cust_1")
    await asyncio.sleep(0)
    assert summaries.state().is_running is True
    report = await summaries.aclose()
    assert report is not None
    assert report.submitted == 1
    assert len(stub.calls) == 1
    assert summaries.state().is_running is False
    await ticks()
    assert len(stub.calls) == 1
    assert await summaries.aclose() is None  # idempotent


async def test_aclose_without_flush_sends_nothing(make: Make) -> None:
    summaries, stub, _ = make()
    queue_day(summaries, "cust_1")
    await asyncio.sleep(0)
    assert await summaries.aclose(flush=False) is None
    await ticks()
    assert stub.calls == []
    assert summaries.state().is_running is False
    assert summaries.state().queued_count == 1


async def test_aclose_lets_a_timed_flush_underway_finish(make: Make) -> None:
    gate = asyncio.Event()

    class SlowBalance(StubBalance):
        async def emit_batch(self, items: Sequence[Mapping[str, Any]], **options: Any) -> BatchResult:
            await gate.wait()
            return await super().emit_batch(items, **options)

    stub = SlowBalance()
    summaries = AsyncSummaries(stub, FakeClock().clock())  # type: ignore[arg-type]
    summaries.configure(profile="immediate", enterprise=True)
    queue_day(summaries, "cust_1")
    await ticks()
    closing = asyncio.ensure_future(summaries.aclose())
    await ticks()
    assert not closing.done()
    gate.set()
    report = await closing
    assert report is not None
    assert report.attempted == 0  # the timer's flush sent it; nothing was left for the last one
    assert len(stub.calls) == 1


async def test_queue_and_flush_after_aclose_raise(make: Make) -> None:
    summaries, _, _ = make()
    await summaries.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        queue_day(summaries, "cust_1")
    with pytest.raises(RuntimeError, match="closed"):
        await summaries.flush()


# --- end to end over a real socket --------------------------------------------------------------


async def test_end_to_end_through_a_real_client(loopback: Callable[[], LoopbackServer]) -> None:
    server = loopback()
    seen: set[str] = set()

    async def batch(request: web.Request) -> web.Response:
        body = json.loads(await request.text(), parse_float=Decimal)
        results = []
        for index, item in enumerate(body["deltas"]):
            ref = item["referenceId"]
            if item["customerId"] == "cust_limited":
                results.append({"index": index, "status": "FAILED", "error": "CADENCE_LIMIT", "referenceId": ref})
                continue
            results.append(
                {"index": index, "status": "QUEUED", "recordId": f"rec_{ref}", "referenceId": ref}
                | ({"idempotent": True} if ref in seen else {})
            )
            seen.add(ref)
        failed = sum(r["status"] == "FAILED" for r in results)
        return ok({"totalQueued": len(results) - failed, "totalFailed": failed, "results": results})

    server.route("POST", "/api/v1/balance/delta/batch", batch)
    await server.start()
    async with AsyncPacSpace("pk_test_pub.secret", base_urls={"sandbox": server.url}) as pac:
        summaries = AsyncSummaries(pac.balance, FakeClock().clock())
        summaries.configure(auto_flush=False)
        ref = summaries.queue(customer_id="cust_1", delta=Decimal("-1.25"), window_start=START, window_end=END)
        summaries.queue(customer_id="cust_limited", delta=3, window_start=START, window_end=END)
        report = await summaries.flush()
        assert (report.submitted, report.failed, report.replayed, report.request_count) == (1, 1, 0, 1)
        assert report.failures[0].error == "CADENCE_LIMIT"

        # The answer to the first send was "lost": the same summary again comes back as a replay.
        summaries.queue(customer_id="cust_1", delta=Decimal("-1.25"), window_start=START, window_end=END)
        again = await summaries.flush()
        assert (again.submitted, again.replayed, again.failed) == (1, 1, 1)
        assert (await summaries.aclose(flush=False)) is None

    sent = json.loads(server.bodies[0], parse_float=Decimal)["deltas"]
    assert sent[0] == {
        "customerId": "cust_1",
        "delta": Decimal("-1.25"),
        "reason": "usage_summary",
        "referenceId": ref,
        "metadata": {
            "summaryWindowStart": START,
            "summaryWindowEnd": END,
            "summaryProfile": "daily",
            "submissionType": "tenant_summary",
        },
    }
    keys = [request.headers["Idempotency-Key"] for request in server.requests]
    assert all(key.startswith("sandbox:") for key in keys)
    assert len(set(keys)) == 2
