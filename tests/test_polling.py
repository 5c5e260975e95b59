"""wait_for_verified and emit_and_wait over a loopback server, on a fake clock (no real waiting)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal
from typing import Any

import attrs
import pytest
from aiohttp import web
from conftest import SANDBOX_KEY, FakeClock, LoopbackServer, delta_record, ok

from pacspace_async import APITimeoutError, AsyncPacSpace, InvalidArgumentError, PacSpaceError, VerificationTimeoutError

Make = Callable[[], LoopbackServer]
DELTA = "/api/v1/balance/delta"
STATUS = "/api/v1/balance/delta/{record_id}"
EMIT = {"customer_id": "cust_1", "delta": Decimal("-2.5"), "reason": "usage"}


@attrs.define
class FakeApi:
    """Status answers in order (the last repeats), and emit answers in order (the last repeats)."""

    statuses: list[str] = attrs.Factory(lambda: ["QUEUED"])
    emits: list[tuple[int, dict[str, Any]]] = attrs.Factory(
        lambda: [(201, {"success": True, "data": delta_record("rec_1")})]
    )
    polled: list[str] = attrs.Factory(list)
    emitted: list[dict[str, str]] = attrs.Factory(list)

    async def status(self, request: web.Request) -> web.StreamResponse:
        record_id = request.match_info["record_id"]
        index = min(len(self.polled), len(self.statuses) - 1)
        self.polled.append(record_id)
        return ok(delta_record(record_id, status=self.statuses[index], customerId="cust_1"))

    async def emit(self, request: web.Request) -> web.StreamResponse:
        index = min(len(self.emitted), len(self.emits) - 1)
        self.emitted.append(dict(request.headers))
        status, payload = self.emits[index]
        return web.json_response(payload, status=status)


@attrs.define
class Setup:
    pac: AsyncPacSpace
    api: FakeApi
    clock: FakeClock
    server: LoopbackServer


@pytest.fixture
async def setup(loopback: Make) -> AsyncIterator[Setup]:
    api = FakeApi()
    server = loopback()
    server.route("GET", STATUS, api.status)
    server.route("POST", DELTA, api.emit)
    url = await server.start()
    clock = FakeClock()
    client = AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": url})
    yield Setup(client._with_clock(clock.clock()), api, clock, server)
    await client.aclose()


def growing(poll_interval: float, cap: float, count: int) -> list[float]:
    intervals, interval = [], poll_interval
    for _ in range(count):
        intervals.append(interval)
        interval = min(interval * 1.5, max(cap, poll_interval))
    return intervals


# --- wait_for_verified ------------------------------------------------------------------------


@pytest.mark.parametrize("final", ["VERIFIED", "FAILED", "verified"])
async def test_polls_until_final(setup: Setup, final: str) -> None:
    setup.api.statuses = ["QUEUED", "PROCESSING", final]
    record = await setup.pac.balance.wait_for_verified("rec_1")
    assert record.status == final
    assert record.is_final is True
    assert record.record_id == "rec_1"
    assert record.raw["customerId"] == "cust_1"
    assert setup.api.polled == ["rec_1"] * 3
    assert setup.clock.sleeps == [2.0, 3.0]


async def test_already_final_returns_after_one_poll(setup: Setup) -> None:
    setup.api.statuses = ["VERIFIED"]
    record = await setup.pac.balance.wait_for_verified("rec_1")
    assert record.status == "VERIFIED"
    assert len(setup.api.polled) == 1
    assert setup.clock.sleeps == []


async def test_unknown_status_keeps_polling(setup: Setup) -> None:
    setup.api.statuses = ["SETTLING", "SETTLING", "VERIFIED"]
    record = await setup.pac.balance.wait_for_verified("rec_1")
    assert record.status == "VERIFIED"
    assert len(setup.api.polled) == 3


async def test_record_id_is_percent_encoded_on_every_poll(setup: Setup) -> None:
    setup.api.statuses = ["QUEUED", "VERIFIED"]
    await setup.pac.balance.wait_for_verified("rec 1")
    assert [request.raw_path for request in setup.server.requests] == ["/api/v1/balance/delta/rec%201"] * 2


async def test_never_final_times_out_with_record_and_last_status(setup: Setup) -> None:
    setup.api.statuses = ["QUEUED", "PROCESSING"]
    with pytest.raises(VerificationTimeoutError) as info:
        await setup.pac.balance.wait_for_verified("rec_1", timeout=60, poll_interval=2, max_poll_interval=15)
    error = info.value
    assert isinstance(error, TimeoutError)
    assert isinstance(error, PacSpaceError)
    assert error.record_id == "rec_1"
    assert error.last_status == "PROCESSING"
    assert "rec_1" in str(error)
    sleeps = setup.clock.sleeps
    assert sum(sleeps) <= 60 + 1e-9
    assert sum(sleeps) == pytest.approx(60)  # it uses the whole budget, not less
    assert sleeps[:6] == pytest.approx([2, 3, 4.5, 6.75, 10.125, 15])
    assert max(sleeps) == 15
    assert sleeps[-1] == pytest.approx(60 - sum(sleeps[:-1]))  # the last wait is cut to the deadline
    assert len(setup.api.polled) == len(sleeps) + 1  # one last poll at the deadline


@pytest.mark.parametrize(
    ("timeout", "poll_interval", "cap"),
    [(30, 1, 4), (10, 2, 15), (5, 10, 15), (100, 3, 3), (7.5, 0.5, 2)],
)
async def test_intervals_grow_by_half_up_to_the_cap_and_stay_within_timeout(
    setup: Setup, timeout: float, poll_interval: float, cap: float
) -> None:
    setup.api.statuses = ["PROCESSING"]
    with pytest.raises(VerificationTimeoutError):
        await setup.pac.balance.wait_for_verified(
            "rec_1", timeout=timeout, poll_interval=poll_interval, max_poll_interval=cap
        )
    sleeps = setup.clock.sleeps
    assert sum(sleeps) == pytest.approx(timeout)
    assert sum(sleeps) <= timeout + 1e-9
    expected = growing(poll_interval, cap, len(sleeps))
    assert sleeps[:-1] == pytest.approx(expected[:-1])
    assert sleeps[-1] <= expected[-1] + 1e-9


async def test_poll_interval_above_the_cap_is_kept(setup: Setup) -> None:
    setup.api.statuses = ["PROCESSING", "PROCESSING", "PROCESSING", "VERIFIED"]
    await setup.pac.balance.wait_for_verified("rec_1", timeout=100, poll_interval=20, max_poll_interval=5)
    assert setup.clock.sleeps == [20, 20, 20]


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": 0}, {"timeout": -1}, {"poll_interval": 0}, {"max_poll_interval": float("inf")}, {"timeout": True}],
)
async def test_bad_wait_arguments_are_refused_before_polling(setup: Setup, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        await setup.pac.balance.wait_for_verified("rec_1", **kwargs)
    assert setup.api.polled == []


# --- emit_and_wait ----------------------------------------------------------------------------


async def test_emit_and_wait_returns_a_final_replay_without_polling(setup: Setup) -> None:
    setup.api.emits = [(200, {"success": True, "data": delta_record("rec_1", status="VERIFIED")})]
    record = await setup.pac.balance.emit_and_wait(**EMIT, reference_id="inv_1")
    assert record.status == "VERIFIED"
    assert record.idempotency_key == "sandbox:balance.delta:cust_1:inv_1"
    assert len(setup.api.emitted) == 1
    assert setup.api.polled == []
    assert setup.clock.sleeps == []


async def test_emit_and_wait_polls_and_keeps_the_emit_key(setup: Setup) -> None:
    setup.api.emits = [(201, {"success": True, "data": delta_record("rec_7")})]
    setup.api.statuses = ["PROCESSING", "VERIFIED"]
    record = await setup.pac.balance.emit_and_wait(**EMIT, reference_id="inv_7")
    assert record.record_id == "rec_7"
    assert record.status == "VERIFIED"
    assert record.idempotency_key == "sandbox:balance.delta:cust_1:inv_7"
    assert record.idempotency_key == setup.api.emitted[0]["Idempotency-Key"]
    assert setup.api.polled == ["rec_7", "rec_7"]
    assert setup.clock.sleeps == [2.0]


async def test_emit_and_wait_ending_in_failed(setup: Setup) -> None:
    setup.api.statuses = ["QUEUED", "FAILED"]
    record = await setup.pac.balance.emit_and_wait(**EMIT)
    assert record.status == "FAILED"
    assert record.idempotency_key == setup.api.emitted[0]["Idempotency-Key"]


async def test_emit_and_wait_times_out_with_the_record(setup: Setup) -> None:
    setup.api.statuses = ["QUEUED"]
    with pytest.raises(VerificationTimeoutError) as info:
        await setup.pac.balance.emit_and_wait(**EMIT, timeout=10, poll_interval=2)
    assert info.value.record_id == "rec_1"
    assert info.value.last_status == "QUEUED"
    assert sum(setup.clock.sleeps) == pytest.approx(10)
    assert len(setup.api.emitted) == 1


PENDING: Sequence[tuple[int, dict[str, Any]]] = [
    (202, {"code": "IDEMPOTENCY_PENDING", "retryAfterSeconds": 3, "message": "still processing"}),
    (201, {"success": True, "data": delta_record("rec_3")}),
]


async def test_emit_and_wait_waits_out_a_pending_emit_then_polls(setup: Setup) -> None:
    setup.api.emits = list(PENDING)
    setup.api.statuses = ["QUEUED", "VERIFIED"]
    record = await setup.pac.balance.emit_and_wait(**EMIT, reference_id="inv_3")
    assert record.record_id == "rec_3"
    assert record.status == "VERIFIED"
    keys = [headers["Idempotency-Key"] for headers in setup.api.emitted]
    assert keys == ["sandbox:balance.delta:cust_1:inv_3"] * 2
    assert record.idempotency_key == keys[0]
    assert setup.api.polled == ["rec_3", "rec_3"]
    assert setup.clock.sleeps == [3.0, 2.0]


async def test_emit_and_wait_counts_the_pending_wait_against_its_timeout(setup: Setup) -> None:
    setup.api.emits = list(PENDING)
    setup.api.statuses = ["QUEUED"]
    with pytest.raises(VerificationTimeoutError):
        await setup.pac.balance.emit_and_wait(**EMIT, timeout=10, poll_interval=2)
    assert setup.clock.sleeps[0] == 3.0
    assert sum(setup.clock.sleeps) == pytest.approx(10)


async def test_emit_and_wait_bounds_the_emit_itself_by_its_timeout(setup: Setup) -> None:
    # The first request with this key never finishes server-side: the emit alone would wait up
    # to the client's deadline (120 s); emit_and_wait(timeout=10) must give up at 10 s.
    setup.api.emits = [PENDING[0]]
    with pytest.raises(APITimeoutError) as info:
        await setup.pac.balance.emit_and_wait(**EMIT, reference_id="inv_9", timeout=10, poll_interval=2)
    assert info.value.idempotency_key == "sandbox:balance.delta:cust_1:inv_9"
    assert 0 < sum(setup.clock.sleeps) <= 10
    assert setup.api.polled == []


async def test_emit_and_wait_error_status_propagates(setup: Setup) -> None:
    setup.api.emits = [(400, {"error": {"code": "VALIDATION", "message": "bad"}})]
    with pytest.raises(PacSpaceError, match="bad"):
        await setup.pac.balance.emit_and_wait(**EMIT)
    assert setup.api.polled == []


@pytest.mark.parametrize("kwargs", [{"poll_interval": 0}, {"timeout": 0}, {"timeout": -5}])
async def test_emit_and_wait_refuses_bad_wait_arguments_before_emitting(setup: Setup, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        await setup.pac.balance.emit_and_wait(**EMIT, **kwargs)
    assert setup.api.emitted == []
