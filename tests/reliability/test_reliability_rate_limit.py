"""A 429 storm against the emulator's token bucket: waited out by the client-wide gate.

These tests sleep for real (no scaled clock): what is measured is how many requests the storm
cost, that every call finishes within its deadline, and that a wait the caller may not take is
raised at once. The gate's rules themselves are tested without I/O in tests/test_rate_gate.py.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from pacspace_async import AsyncPacSpace, ErrorAction, PacSpaceError, RateLimitError
from pacspace_async.testing import Emulator

from .reliability_helpers import check_ledger, delta_requests, plan_calls, run_calls


async def test_20_concurrent_calls_at_5_per_second_all_succeed_with_at_most_2_requests_each() -> None:
    # The first target, with the client's default options (max_retries=2).
    async with Emulator(rate_limit=5, verify_delay=None) as emu:
        async with AsyncPacSpace(emu.create_key(), base_urls=emu.base_urls) as pac:
            results = await asyncio.gather(*(pac.balance.usage() for _ in range(20)), return_exceptions=True)
        sent = [r for r in emu.requests if r.path.endswith("/usage")]
    failures = [str(r) for r in results if isinstance(r, BaseException)]
    assert failures == []
    assert len(sent) <= 2 * 20, len(sent)
    # It was a storm: the bucket let 5 through and everything else was refused once at least.
    assert sum(1 for r in sent if r.status == 429) >= 15


async def test_200_emits_at_32_in_flight_against_50_per_second_all_succeed_once() -> None:
    calls = plan_calls(200, tag="storm", references=lambda index: index % 2 == 0)
    async with Emulator(rate_limit=50, verify_delay=None) as emu:
        async with AsyncPacSpace(emu.create_key(), base_urls=emu.base_urls) as pac:
            started = time.monotonic()
            await run_calls(pac, calls, in_flight=32)
            elapsed = time.monotonic() - started
        deltas = emu.deltas()
        requests = delta_requests(emu.requests)
    check_ledger(calls, deltas)
    assert [str(call.error) for call in calls if call.error is not None] == []
    assert len(requests) <= 2 * len(calls), len(requests)
    # The server's rate was respected: the bucket's 50, then 50 a second.
    assert elapsed >= (200 - 50) / 50 * 0.9


async def test_no_call_waits_past_its_deadline() -> None:
    # One request a second for 40 callers with a 2 s deadline: most must give up, each in time.
    deadline = 2.0

    async def timed(pac: AsyncPacSpace) -> tuple[float, BaseException | None]:
        started = time.monotonic()
        try:
            await pac.balance.usage()
        except PacSpaceError as error:
            return time.monotonic() - started, error
        return time.monotonic() - started, None

    async with (
        Emulator(rate_limit=1, verify_delay=None) as emu,
        AsyncPacSpace(emu.create_key(), base_urls=emu.base_urls, deadline=deadline) as pac,
    ):
        outcomes = await asyncio.gather(*(timed(pac) for _ in range(40)))
    assert max(elapsed for elapsed, _ in outcomes) < deadline + 0.25
    errors = [error for _, error in outcomes if error is not None]
    succeeded = len(outcomes) - len(errors)
    assert 1 <= succeeded <= 4  # the bucket's one token, then about one a second
    for error in errors:
        assert isinstance(error, RateLimitError), repr(error)
        assert error.action is ErrorAction.WAIT_AND_RETRY
        assert error.retry_after is not None


async def test_a_wait_above_max_retry_after_is_raised_at_once() -> None:
    # One token every 2 s: every call but the first is told to wait ~2 s, more than it may.
    calls = plan_calls(48, tag="over", references=lambda index: index % 2 == 0)
    async with Emulator(rate_limit=0.5, verify_delay=None) as emu:
        key = emu.create_key()
        async with AsyncPacSpace(key, base_urls=emu.base_urls, max_retries=20, max_retry_after=0.5) as pac:
            started = time.monotonic()
            await run_calls(pac, calls, in_flight=32)
            elapsed = time.monotonic() - started
        deltas = emu.deltas()
        requests = delta_requests(emu.requests)

    check_ledger(calls, deltas)
    assert len(deltas) == 1
    assert elapsed < 1.9  # nobody slept (the hint was ~2 s)
    # The first wave was refused by the server; the calls after it by the closed gate, unsent.
    assert len(requests) <= 32
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


@pytest.mark.parametrize("max_retries", [2, 20])
async def test_a_wait_that_would_pass_the_deadline_is_raised_at_once(max_retries: int) -> None:
    calls = plan_calls(16, tag="late", references=lambda index: True)
    async with Emulator(rate_limit=0.5, verify_delay=None) as emu:
        key = emu.create_key()
        async with AsyncPacSpace(key, base_urls=emu.base_urls, deadline=0.5, max_retries=max_retries) as client:
            started = time.monotonic()
            await run_calls(client, calls, in_flight=16)
            elapsed = time.monotonic() - started
        deltas = emu.deltas()
    check_ledger(calls, deltas)
    assert len(deltas) == 1
    assert elapsed < 1.9  # raised at once: the ~2 s hint was not slept
    for call in calls:
        if call.record is None:
            assert isinstance(call.error, RateLimitError)
            assert call.error.retries_taken == 0


async def test_a_copy_from_with_options_shares_the_gate() -> None:
    async with Emulator(rate_limit=0.5, verify_delay=None) as emu:
        async with AsyncPacSpace(emu.create_key(), base_urls=emu.base_urls, max_retry_after=0.5) as pac:
            await pac.balance.usage()  # the bucket's one token
            with pytest.raises(RateLimitError):
                await pac.with_options(max_retries=0).balance.usage()  # refused: closes the gate
            sent = len(emu.requests)
            with pytest.raises(RateLimitError) as info:
                await pac.balance.usage()  # held back by the gate the copy closed: too long a wait
        assert len(emu.requests) == sent  # nothing was sent
    assert "not sent" in str(info.value)
    assert info.value.request_id is None
