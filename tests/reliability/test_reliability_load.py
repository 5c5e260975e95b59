"""Under load, through seeded faults: no emit is ever counted twice or lost; 401/403 never retried.

Everything runs against the emulator over real sockets. Backoff waits are real but scaled down
(`reliability_helpers.TIME_SCALE`), so the 202 IDEMPOTENCY_PENDING path really waits.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from decimal import Decimal

import pytest

from pacspace_async import (
    AsyncPacSpace,
    AuthenticationError,
    ErrorAction,
    PacSpaceError,
    PermissionDeniedError,
)
from pacspace_async.testing import Emulator, Faults

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
    fast,
    plan_calls,
    run_calls,
)

EMITS = 2000
IN_FLIGHT = 64


async def test_2000_emits_at_64_in_flight_through_30_percent_faults_no_duplicate_no_loss() -> None:
    # Half the emits name a business reference (key derived from it), half get a fresh key.
    calls = plan_calls(EMITS, tag="load", references=lambda index: index % 2 == 0)
    async with Emulator(
        seed=11, faults=LOAD_FAULTS, verify_delay=None, idempotency_pending_seconds=PENDING_SECONDS
    ) as emu:
        key = emu.create_key()
        async with AsyncPacSpace(
            key,
            base_urls=emu.base_urls,
            timeout=ATTEMPT_TIMEOUT,
            deadline=LOAD_DEADLINE,
            max_retries=LOAD_RETRIES,
        ) as client:
            started = time.monotonic()
            await run_calls(fast(client), calls, in_flight=IN_FLIGHT)
            elapsed = time.monotonic() - started
        deltas = emu.deltas()
        requests = emu.requests

    check_ledger([c for c in calls if c.reference_id is not None], [d for d in deltas if d.reference_id is not None])
    check_ledger([c for c in calls if c.reference_id is None], [d for d in deltas if d.reference_id is None])
    check_ledger(calls, deltas)
    faults = check_faults_were_real(calls, requests)
    # The retry budget absorbs a 30 % fault rate: (essentially) every call succeeds.
    failed = [call for call in calls if call.record is None]
    assert len(failed) <= EMITS // 200, [repr(call.error) for call in failed[:3]]
    # Sanity about the load itself: far more requests than calls, well within the deadline.
    assert len(delta_requests(requests)) > EMITS * 1.3, faults
    assert elapsed < LOAD_DEADLINE / 2


async def test_a_process_that_re_emits_the_same_business_events_records_each_once() -> None:
    # A "crash and restart": the same 300 reference ids are emitted again by a brand-new client,
    # concurrently with the first one, through faults. Each business event is recorded once.
    calls = plan_calls(300, tag="restart", references=lambda index: True)
    again = [Call(c.index, c.customer_id, c.delta, c.reference_id) for c in calls]
    async with Emulator(
        seed=5, faults=LOAD_FAULTS, verify_delay=None, idempotency_pending_seconds=PENDING_SECONDS
    ) as emu:
        key = emu.create_key()
        options = {"timeout": ATTEMPT_TIMEOUT, "deadline": LOAD_DEADLINE, "max_retries": LOAD_RETRIES}
        async with (
            AsyncPacSpace(key, base_urls=emu.base_urls, **options) as first,  # type: ignore[arg-type]
            AsyncPacSpace(key, base_urls=emu.base_urls, **options) as second,  # type: ignore[arg-type]
        ):
            await asyncio.gather(
                run_calls(fast(first), calls, in_flight=32), run_calls(fast(second), again, in_flight=32)
            )
        deltas = emu.deltas()
    check_ledger(calls, deltas)
    for before, after in zip(calls, again, strict=True):
        assert before.record is not None
        assert after.record is not None
        assert before.record.record_id == after.record.record_id
        assert before.record.idempotency_key == after.record.idempotency_key


# --- 401 / 403 under load ----------------------------------------------------------------------

AUTH_FAULTS = Faults(rate=0.3, kinds=("500", "502", "503", "drop_before_write"))


@pytest.mark.parametrize("faults", [None, AUTH_FAULTS], ids=["no-faults", "with-5xx-and-drops"])
@pytest.mark.parametrize("refusal", ["revoked-401", "forbidden-403"])
async def test_401_and_403_are_never_retried_under_load(refusal: str, faults: Faults | None) -> None:
    calls = plan_calls(400, tag=refusal, references=lambda index: True)
    async with Emulator(seed=3, faults=faults, verify_delay=None) as emu:
        if refusal == "revoked-401":
            key = emu.create_key()
            emu.revoke_key(key)
            expected_type: type[PacSpaceError] = AuthenticationError
            expected_status = 401
        else:
            key = emu.create_key(permissions={"balance:read", "usage:read"})
            expected_type = PermissionDeniedError
            expected_status = 403
        hooked: list[PacSpaceError] = []

        async def on_auth_error(error: PacSpaceError) -> None:
            await asyncio.sleep(0)
            hooked.append(error)

        async with AsyncPacSpace(
            key,
            base_urls=emu.base_urls,
            timeout=2.0,
            deadline=LOAD_DEADLINE,
            max_retries=LOAD_RETRIES,
            on_auth_error=on_auth_error,
        ) as client:
            await run_calls(fast(client), calls, in_flight=IN_FLIGHT)
        requests = delta_requests(emu.requests)
        deltas = emu.deltas()

    assert deltas == []
    by_key: dict[str | None, list[int | None]] = {}
    for request in requests:
        by_key.setdefault(request.idempotency_key, []).append(request.status)
    assert len(by_key) == len(calls)
    for call in calls:
        error = call.error
        assert type(error) is expected_type, repr(error)
        assert isinstance(error, (AuthenticationError, PermissionDeniedError))
        assert error.status == expected_status
        assert error.action is ErrorAction.ALERT_OPERATOR
        assert not error.retryable
        statuses = by_key[error.idempotency_key]
        # Exactly one refusal per call, and it is the last request of that call.
        assert statuses.count(expected_status) == 1, statuses
        assert statuses[-1] == expected_status, statuses
        # Faults before it were retried; the refusal was not.
        assert error.retries_taken == len(statuses) - 1
        if faults is None:
            assert statuses == [expected_status]
    if faults is not None:
        assert sum(len(statuses) - 1 for statuses in by_key.values()) > len(calls) // 10  # faults were retried
    # The hook ran once per call, with that call's error.
    assert Counter(error.idempotency_key for error in hooked) == Counter(call.idempotency_key for call in calls)
    assert all(n == 1 for n in Counter(error.idempotency_key for error in hooked).values())


async def test_a_revoked_key_mid_load_stops_retries_at_once() -> None:
    # Emits already running when the key is revoked: each ends either recorded (before) or
    # refused (after); a refused call was never retried and left nothing behind.
    calls = plan_calls(600, tag="mid", references=lambda index: index % 3 != 0)
    async with Emulator(seed=9, faults=AUTH_FAULTS, verify_delay=None) as emu:
        key = emu.create_key()
        async with emu.client(max_retries=0) as probe:
            await probe.balance.limits()  # the server is warm
        async with AsyncPacSpace(
            key, base_urls=emu.base_urls, timeout=2.0, deadline=LOAD_DEADLINE, max_retries=LOAD_RETRIES
        ) as client:
            pac = fast(client)

            async def revoke_soon() -> None:
                while sum(1 for call in calls if call.record is not None) < 150:
                    if all(call.record is not None or call.error is not None for call in calls):
                        break
                    await asyncio.sleep(0.001)
                emu.revoke_key(key)

            await asyncio.gather(run_calls(pac, calls, in_flight=IN_FLIGHT), revoke_soon())
        deltas = emu.deltas()
        requests = delta_requests(emu.requests)
    check_ledger(calls, deltas)
    refused = [call for call in calls if isinstance(call.error, AuthenticationError)]
    assert refused, "the revocation came too late to refuse anything"
    assert all(call.record is not None or isinstance(call.error, AuthenticationError) for call in calls)
    for call in refused:
        statuses = [r.status for r in requests if r.idempotency_key == call.idempotency_key]
        assert statuses.count(401) == 1, statuses
        assert statuses[-1] == 401, statuses


def test_amounts_of_the_plan_are_unique() -> None:
    # check_ledger traces deltas back to calls by amount; the plan must keep them distinct.
    calls = plan_calls(EMITS, tag="x", references=lambda index: False)
    assert len({call.delta for call in calls}) == EMITS
    assert all(call.delta < Decimal(0) for call in calls)
