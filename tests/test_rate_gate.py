"""The 429 gate: its rules without I/O, then the request loop through it on a loopback server."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from aiohttp import web
from conftest import FakeClock, LoopbackServer, ok

from pacspace_async import AsyncPacSpace, RateLimitError
from pacspace_async._gate import FIRST_PACE_CAP, QUIET_SECONDS, SLOWEST_PACE, SPREAD, RateGate

FAR = math.inf
SANDBOX_KEY = "pk_test_gatePUB.gateSECRET"


def top(lo: float, hi: float) -> float:
    return hi


def bottom(lo: float, hi: float) -> float:
    return lo


# --- the rules --------------------------------------------------------------------------------


def test_an_open_gate_holds_nothing_and_costs_no_turn() -> None:
    gate = RateGate()
    assert not gate.holds(0.0)
    assert gate.turn(0.0, top, latest=FAR) == 0.0
    assert gate == RateGate()  # nothing changed


def test_a_429_closes_the_gate_until_its_hint_then_paces_at_the_hint() -> None:
    gate = RateGate()
    gate.refused(now=10.0, hint=0.2, sent_at=9.99)
    assert gate.holds(10.0)
    assert gate.pace == pytest.approx(0.2)
    turns = [gate.turn(10.0, bottom, latest=FAR) for _ in range(5)]
    # Never before the hint; then one every pace.
    assert turns == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])


def test_jitter_goes_on_top_of_the_hint_and_spaces_the_next_turn_too() -> None:
    gate = RateGate()
    gate.refused(now=0.0, hint=0.5, sent_at=0.0)
    first = gate.turn(0.0, top, latest=FAR)
    second = gate.turn(0.0, top, latest=FAR)
    assert first == pytest.approx(0.5 + 0.5 * SPREAD)
    assert second is not None
    assert first is not None
    assert second - first == pytest.approx(0.5 + 0.5 * SPREAD)  # never closer than the pace


def test_the_first_pace_is_capped_but_the_hint_is_still_honoured() -> None:
    gate = RateGate()
    gate.refused(now=0.0, hint=30.0, sent_at=0.0)  # a fixed window: come back in 30 s
    assert gate.pace == FIRST_PACE_CAP
    assert gate.turn(0.0, bottom, latest=FAR) == pytest.approx(30.0)
    assert gate.turn(0.0, bottom, latest=FAR) == pytest.approx(31.0)


def test_the_burst_that_caused_a_429_does_not_slow_the_pace_again() -> None:
    gate = RateGate()
    gate.refused(now=1.0, hint=0.2, sent_at=0.0)
    for n in range(14):  # the rest of the burst, all sent before the first refusal
        gate.refused(now=1.0 + n / 1000, hint=0.2, sent_at=0.0)
    assert gate.pace == pytest.approx(0.2)


def test_a_429_to_a_request_sent_at_the_pace_halves_the_rate_and_rehands_the_turns() -> None:
    gate = RateGate()
    gate.refused(now=0.0, hint=0.2, sent_at=0.0)
    handed = [gate.turn(0.0, bottom, latest=FAR) for _ in range(3)]
    assert handed == pytest.approx([0.2, 0.4, 0.6])
    epoch = gate.epoch
    gate.refused(now=0.25, hint=0.1, sent_at=0.2)  # sent at its turn, refused anyway
    assert gate.pace == pytest.approx(0.4)
    assert gate.epoch == epoch + 1  # turns handed out at the old pace must be asked for again
    assert gate.turn(0.25, bottom, latest=FAR) == pytest.approx(0.1)  # reopens after the new hint
    assert gate.turn(0.25, bottom, latest=FAR) == pytest.approx(0.5)


def test_the_pace_never_slows_past_the_slowest() -> None:
    gate = RateGate()
    gate.refused(now=0.0, hint=1.0, sent_at=0.0)
    for n in range(1, 20):
        gate.refused(now=float(n), hint=0.0, sent_at=float(n))
    assert gate.pace == SLOWEST_PACE


def test_successes_raise_the_rate_additively() -> None:
    gate = RateGate()
    gate.refused(now=0.0, hint=0.2, sent_at=0.0)  # 5 requests a second
    for _ in range(20):
        gate.succeeded()
    assert 1 / gate.pace == pytest.approx(5 + 20 * 5 / 20)  # +1/20 of the first rate each


def test_after_a_quiet_spell_the_gate_stops_pacing() -> None:
    gate = RateGate()
    gate.refused(now=0.0, hint=0.2, sent_at=0.0)
    assert gate.turn(5.0, bottom, latest=FAR) == 0.0  # past the hint: paced, but this turn is now
    assert gate.pace > 0
    assert gate.turn(QUIET_SECONDS + 1, bottom, latest=FAR) == 0.0
    assert gate.pace == 0.0
    assert not gate.holds(QUIET_SECONDS + 1)


def test_a_turn_past_the_latest_start_is_refused_and_takes_nothing() -> None:
    gate = RateGate()
    gate.refused(now=0.0, hint=2.0, sent_at=0.0)
    before = (gate.next_turn, gate.epoch)
    assert gate.turn(0.0, bottom, latest=1.0) is None
    assert (gate.next_turn, gate.epoch) == before
    assert gate.turn(0.0, bottom, latest=FAR) == pytest.approx(2.0)


# --- the request loop through the gate (real HTTP on loopback, fake time) ----------------------


def _scripted(statuses: list[int], hint: str = "1") -> Callable[[web.Request], web.Response]:
    answers = iter(statuses)

    async def handler(request: web.Request) -> web.Response:
        status = next(answers, 200)
        if status == 429:
            return web.json_response({"error": {"code": "RATE_LIMITED"}}, status=429, headers={"Retry-After": hint})
        return ok({"remaining": 10, "allowed": 100})

    return handler  # type: ignore[return-value]


async def test_429s_do_not_use_up_max_retries_only_the_deadline(
    loopback: Callable[[], LoopbackServer], fake_clock: FakeClock
) -> None:
    server = loopback()
    server.route("GET", "/api/v1/balance/usage", _scripted([429, 429, 429, 429, 429]))
    await server.start()
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url}, max_retries=1) as client:
        pac = client._with_clock(fake_clock.clock())
        await pac.balance.usage()
    assert len(server.requests) == 6
    assert all(wait >= 1.0 for wait in fake_clock.sleeps)  # each the server's hint, jitter on top


async def test_max_retries_0_sends_once_even_on_a_429(
    loopback: Callable[[], LoopbackServer], fake_clock: FakeClock
) -> None:
    server = loopback()
    server.route("GET", "/api/v1/balance/usage", _scripted([429]))
    await server.start()
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url}, max_retries=0) as client:
        with pytest.raises(RateLimitError):
            await client._with_clock(fake_clock.clock()).balance.usage()
    assert len(server.requests) == 1


async def test_a_429_through_one_copy_holds_back_the_others(
    loopback: Callable[[], LoopbackServer], fake_clock: FakeClock
) -> None:
    server = loopback()
    server.route("GET", "/api/v1/balance/usage", _scripted([429], hint="7"))
    await server.start()
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url}) as client:
        pac = client._with_clock(fake_clock.clock())
        with pytest.raises(RateLimitError):
            await pac.with_options(max_retries=0).balance.usage()
        assert fake_clock.sleeps == []
        await pac.with_options(timeout=5).balance.usage()  # another copy: waits out the 429
    assert len(fake_clock.sleeps) == 1
    assert fake_clock.sleeps[0] >= 7.0
    assert client._requester.gates is pac.with_options(timeout=1)._requester.gates


async def test_a_cadence_limit_leaves_the_gate_open(
    loopback: Callable[[], LoopbackServer], fake_clock: FakeClock
) -> None:
    server = loopback()

    async def cadence(request: web.Request) -> web.Response:
        body = {"error": {"code": "CADENCE_LIMIT", "retryAfterSeconds": 30, "customerId": "cust_1"}}
        return web.json_response(body, status=429)

    server.route("GET", "/api/v1/balance/usage", cadence)
    await server.start()
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url}) as client:
        pac = client._with_clock(fake_clock.clock())
        with pytest.raises(RateLimitError):
            await pac.balance.usage()
        assert not any(gate.holds(fake_clock.now) for gate in client._requester.gates.values())
