"""The sync facade under 16 threads sharing one `PacSpace`: the same guarantees as the async client."""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from pacspace_async import AuthenticationError, PacSpaceError, PermissionDeniedError, RateLimitError
from pacspace_async._requester import Clock
from pacspace_async.testing import Emulator, Faults
from pacspace_sync import PacSpace

from .reliability_helpers import (
    ATTEMPT_TIMEOUT,
    LOAD_DEADLINE,
    LOAD_FAULTS,
    LOAD_RETRIES,
    PENDING_SECONDS,
    Call,
    check_faults_were_real,
    check_ledger,
    delta_requests,
    emit_sync,
    plan_calls,
    scaled_clock,
)

THREADS = 16


def with_clock(pac: PacSpace, clock: Clock) -> PacSpace:
    """Rebind the sync client to a copy of its async client whose waits go through `clock`."""
    pac._bind(pac._wrapped._with_clock(clock), pac._portal)
    return pac


@pytest.fixture
def thread_emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    options = getattr(request, "param", {})
    emu = Emulator(verify_delay=None, **options).start_in_thread()
    try:
        yield emu
    finally:
        emu.stop()


def run_threads(pac: PacSpace, calls: list[Call]) -> set[int]:
    used: set[int] = set()

    def one(call: Call) -> None:
        used.add(threading.get_ident())
        emit_sync(pac, call)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, calls))
    return used


@pytest.mark.parametrize(
    "thread_emulator",
    [{"seed": 21, "faults": LOAD_FAULTS, "idempotency_pending_seconds": PENDING_SECONDS}],
    indirect=True,
)
def test_16_threads_800_emits_through_faults_no_duplicate_no_loss(thread_emulator: Emulator) -> None:
    emu = thread_emulator
    calls = plan_calls(800, tag="sync", references=lambda index: index % 2 == 1)
    pac = PacSpace(
        emu.create_key(),
        base_urls=emu.base_urls,
        timeout=ATTEMPT_TIMEOUT,
        deadline=LOAD_DEADLINE,
        max_retries=LOAD_RETRIES,
    )
    with with_clock(pac, scaled_clock()):
        used = run_threads(pac, calls)
    deltas = emu.deltas()
    requests = emu.requests
    assert len(used) > 1
    check_ledger(calls, deltas)
    faults = check_faults_were_real(calls, requests)
    assert sum(1 for call in calls if call.record is None) <= 4, faults


AUTH_FAULTS = Faults(rate=0.3, kinds=("500", "503", "drop_before_write"))


@pytest.mark.parametrize("thread_emulator", [{"seed": 4, "faults": AUTH_FAULTS}], indirect=True)
@pytest.mark.parametrize("refusal", ["revoked-401", "forbidden-403"])
def test_16_threads_401_and_403_are_never_retried(thread_emulator: Emulator, refusal: str) -> None:
    emu = thread_emulator
    if refusal == "revoked-401":
        key = emu.create_key()
        emu.revoke_key(key)
        expected: type[PacSpaceError] = AuthenticationError
    else:
        key = emu.create_key(permissions={"balance:read"})
        expected = PermissionDeniedError
    hooked: list[PacSpaceError] = []
    lock = threading.Lock()

    def on_auth_error(error: PacSpaceError) -> None:  # a sync hook, inside the client's event loop
        with lock:
            hooked.append(error)

    calls = plan_calls(240, tag=refusal, references=lambda index: index % 2 == 0)
    pac = PacSpace(key, base_urls=emu.base_urls, timeout=2.0, max_retries=LOAD_RETRIES, on_auth_error=on_auth_error)
    with with_clock(pac, scaled_clock()):
        run_threads(pac, calls)
    requests = delta_requests(emu.requests)
    assert emu.deltas() == []
    status = 401 if expected is AuthenticationError else 403
    statuses: dict[str | None, list[int | None]] = {}
    for request in requests:
        statuses.setdefault(request.idempotency_key, []).append(request.status)
    for call in calls:
        assert type(call.error) is expected
        history = statuses[call.idempotency_key]
        assert history.count(status) == 1, history
        assert history[-1] == status, history
    assert Counter(e.idempotency_key for e in hooked) == Counter(c.idempotency_key for c in calls)


@pytest.mark.parametrize("thread_emulator", [{"rate_limit": 40.0}], indirect=True)
def test_16_threads_wait_out_a_429_storm_within_the_deadline(thread_emulator: Emulator) -> None:
    emu = thread_emulator
    waits: list[float] = []
    deadline = 20.0
    calls = plan_calls(90, tag="storm", references=lambda index: index % 2 == 0)
    pac = PacSpace(emu.create_key(), base_urls=emu.base_urls, deadline=deadline, max_retries=1000)
    with with_clock(pac, scaled_clock(scale=1.0, record=waits.append)):  # real waits, recorded
        started = time.monotonic()
        run_threads(pac, calls)
        elapsed = time.monotonic() - started
    requests = delta_requests(emu.requests)
    check_ledger(calls, emu.deltas())
    assert all(call.record is not None for call in calls)
    refused = sum(1 for r in requests if r.status == 429)
    assert refused >= 1  # it was a storm
    # The client-wide gate paced the threads at the server's rate: at most 2 requests a call.
    assert len(requests) <= 2 * len(calls), len(requests)
    assert all(0 <= wait <= 1.0 for wait in waits)  # turns of the gate, never the backoff's seconds
    assert (90 - 40) / 40 * 0.9 <= elapsed < deadline


@pytest.mark.parametrize("thread_emulator", [{"rate_limit": 0.5}], indirect=True)
def test_16_threads_raise_a_wait_above_max_retry_after_at_once(thread_emulator: Emulator) -> None:
    emu = thread_emulator
    waits: list[float] = []
    calls = plan_calls(64, tag="over", references=lambda index: True)
    pac = PacSpace(emu.create_key(), base_urls=emu.base_urls, max_retries=20, max_retry_after=0.5)
    with with_clock(pac, scaled_clock(scale=1.0, record=waits.append)):
        started = time.monotonic()
        run_threads(pac, calls)
        elapsed = time.monotonic() - started
    assert waits == []  # nobody slept: the wait (~2 s) was raised at once
    assert elapsed < 1.9  # loosely: a shared 2-core machine may be slow to run 64 calls
    # The first wave (one call per thread) reached the server, plus at most the next call of the
    # one thread whose first call succeeded (it may go out before any 429 has closed the gate);
    # the gate refused the rest unsent.
    assert len(delta_requests(emu.requests)) <= 16 + 1
    check_ledger(calls, emu.deltas())
    failed = [call.error for call in calls if call.record is None]
    assert len(failed) == len(calls) - 1
    for error in failed:
        assert isinstance(error, RateLimitError)
        assert error.retry_after is not None
        assert error.retry_after > 0.5
        assert error.retries_taken == 0


def test_sync_with_clock_really_rebinds() -> None:
    # The helper above relies on a private hook of the generated facade; fail loudly if it moves.
    pac = PacSpace("pk_test_pubX.someSECRET", base_urls={"sandbox": "http://127.0.0.1:9"})
    clock = Clock(sleep=functools.partial(scaled_clock().sleep))
    portal = pac._portal
    with_clock(pac, clock)
    assert pac._portal is portal
    assert pac._wrapped._requester.settings.clock is clock
    assert pac.balance._wrapped._requester.settings.clock is clock  # type: ignore[attr-defined]
    pac.close()
