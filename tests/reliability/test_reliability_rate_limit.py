"""A 429 storm: waited out within the deadline, honouring the server's wait; or raised at once.

These tests sleep for real (no scaled clock): what is measured is that the waits the SDK takes
are the server's, and that the calls finish within their deadline.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import defaultdict

from pacspace_async import AsyncPacSpace, ErrorAction, RateLimitError
from pacspace_async._requester import Clock
from pacspace_async.testing import Emulator

from .reliability_helpers import Call, check_ledger, delta_requests, plan_calls, run_calls

RATE = 40.0  # requests per second per key; the bucket holds as many
EMITS = 120
IN_FLIGHT = 32
DEADLINE = 20.0

_waits: contextvars.ContextVar[list[float]] = contextvars.ContextVar("waits")


async def _recorded_sleep(seconds: float) -> None:
    waits = _waits.get(None)
    if waits is not None:
        waits.append(seconds)
    await asyncio.sleep(seconds)


async def _emit_recording_waits(pac: AsyncPacSpace, calls: list[Call], waits: dict[int, list[float]]) -> None:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(call: Call) -> None:
        async with gate:
            _waits.set(waits[call.index])  # each call runs in its own task, with its own context
            try:
                call.record = await pac.balance.emit(**call.kwargs())  # type: ignore[arg-type]
            except RateLimitError as error:
                call.error = error

    await asyncio.gather(*(one(call) for call in calls))


async def test_a_429_storm_is_waited_out_within_the_deadline_honouring_retry_after() -> None:
    calls = plan_calls(EMITS, tag="storm", references=lambda index: index % 2 == 0)
    waits: dict[int, list[float]] = defaultdict(list)
    async with Emulator(rate_limit=RATE, verify_delay=None) as emu:
        key = emu.create_key()
        async with AsyncPacSpace(
            key, base_urls=emu.base_urls, deadline=DEADLINE, timeout=5.0, max_retries=1000, max_retry_after=5.0
        ) as client:
            pac = client._with_clock(Clock(sleep=_recorded_sleep))
            started = time.monotonic()
            await _emit_recording_waits(pac, calls, waits)
            elapsed = time.monotonic() - started
        deltas = emu.deltas()
        requests = delta_requests(emu.requests)

    check_ledger(calls, deltas)
    assert all(call.record is not None for call in calls), [str(c.error) for c in calls if c.error][:3]
    # It was a storm: the bucket let RATE through at once and the rest had to wait their turn.
    refused = [r for r in requests if r.status == 429]
    assert len(refused) >= EMITS - RATE
    assert elapsed >= (EMITS - RATE) / RATE * 0.9
    assert elapsed < DEADLINE
    # Every wait was the server's hint (at most 1/RATE here), never the SDK's own backoff
    # (which starts at 0.25 s), and there was exactly one wait per 429 of the call.
    by_key: dict[str | None, list[tuple[int | None, float]]] = defaultdict(list)
    for request in requests:
        by_key[request.idempotency_key].append((request.status, request.at.timestamp()))
    for call in calls:
        assert call.record is not None
        history = by_key[call.record.idempotency_key]
        statuses = [status for status, _ in history]
        assert statuses[-1] == 201, statuses
        assert set(statuses[:-1]) <= {429}, statuses
        assert len(waits[call.index]) == statuses.count(429), (waits[call.index], statuses)
        assert all(0 <= wait <= 1 / RATE + 0.001 for wait in waits[call.index]), waits[call.index]
        # Honoured: the next attempt reached the server no sooner than the wait after the 429.
        for (_, refused_at), (_, next_at), wait in zip(history, history[1:], waits[call.index], strict=False):
            assert next_at - refused_at >= wait - 0.002, (next_at - refused_at, wait)


async def test_a_wait_above_max_retry_after_is_raised_at_once() -> None:
    # One token every 2 s: every call but the first is told to wait ~2 s, more than it may.
    calls = plan_calls(48, tag="over", references=lambda index: index % 2 == 0)
    waits: dict[int, list[float]] = defaultdict(list)
    async with Emulator(rate_limit=0.5, verify_delay=None) as emu:
        key = emu.create_key()
        async with AsyncPacSpace(key, base_urls=emu.base_urls, max_retries=20, max_retry_after=0.5) as client:
            pac = client._with_clock(Clock(sleep=_recorded_sleep))
            started = time.monotonic()
            await _emit_recording_waits(pac, calls, waits)
            elapsed = time.monotonic() - started
        deltas = emu.deltas()
        requests = delta_requests(emu.requests)

    check_ledger(calls, deltas)
    assert len(deltas) == 1
    assert elapsed < 1.5  # nobody slept (the hint was ~2 s)
    assert not any(waits.values())
    assert len(requests) == len(calls)  # one request per call: no retry
    for call in calls:
        if call.record is not None:
            continue
        error = call.error
        assert type(error) is RateLimitError
        assert error.status == 429
        assert error.retry_after is not None
        assert error.retry_after > 0.5
        assert error.retries_taken == 0
        assert error.action is ErrorAction.WAIT_AND_RETRY
        assert error.retryable
        assert "retry_after=" in str(error)
        assert "\n" not in str(error)


async def test_a_wait_that_would_pass_the_deadline_is_raised_at_once() -> None:
    calls = plan_calls(16, tag="late", references=lambda index: True)
    async with Emulator(rate_limit=0.5, verify_delay=None) as emu:
        key = emu.create_key()
        async with AsyncPacSpace(key, base_urls=emu.base_urls, deadline=0.5, max_retries=20) as client:
            started = time.monotonic()
            await run_calls(client, calls, in_flight=16)
            elapsed = time.monotonic() - started
        deltas = emu.deltas()
    check_ledger(calls, deltas)
    assert len(deltas) == 1
    assert elapsed < 1.5  # raised at once: the ~2 s hint was not slept
    for call in calls:
        if call.record is None:
            assert isinstance(call.error, RateLimitError)
            assert call.error.retries_taken == 0
