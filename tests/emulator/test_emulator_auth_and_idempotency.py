"""Keys (401/403), idempotency (replay, 202 pending, 409), rate and cadence limits, allowance."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import aiohttp
import pytest

from pacspace_async import (
    AsyncPacSpace,
    AuthenticationError,
    CadenceLimitError,
    DeltaInput,
    Environment,
    IdempotencyConflictError,
    InsufficientCreditsError,
    PermissionDeniedError,
    RateLimitError,
)
from pacspace_async.testing import PERMISSIONS, Emulator

DELTA = "/api/v1/balance/delta"
EMIT = {"customer_id": "cust_1", "delta": Decimal("-5"), "reason": "usage"}
pytestmark = pytest.mark.pacspace_emulator(verify_delay=0.02)


async def test_unknown_revoked_and_other_environment_keys_get_401(pacspace_emulator: Emulator) -> None:
    urls = pacspace_emulator.base_urls
    good = pacspace_emulator.create_key()
    unknown = good.split(".")[0] + ".notTheSecret"
    cases = {"INVALID_API_KEY": unknown, "WRONG_ENVIRONMENT": pacspace_emulator.create_key(Environment.PRODUCTION)}
    for code, key in cases.items():
        # A production key aimed at the sandbox port: the SDK never does it on its own.
        target = {"sandbox": urls[Environment.SANDBOX], "production": urls[Environment.SANDBOX]}
        async with AsyncPacSpace(key, base_urls=target) as pac:
            with pytest.raises(AuthenticationError) as refused:
                await pac.balance.emit(**EMIT)
        assert refused.value.code == code
        assert refused.value.status == 401
    async with AsyncPacSpace(good, base_urls=urls) as pac:
        await pac.balance.emit(**EMIT)
        pacspace_emulator.revoke_key(good)
        with pytest.raises(AuthenticationError) as revoked:
            await pac.balance.emit(**EMIT)
    assert revoked.value.code == "API_KEY_REVOKED"
    refusals = [r for r in pacspace_emulator.requests if r.status == 401]
    assert len(refusals) == 3  # never retried
    assert all(r.key_id and "." not in r.key_id for r in refusals)  # the log never holds a secret
    async with (
        aiohttp.ClientSession() as session,
        session.get(urls[Environment.SANDBOX] + "/api/v1/balance/usage") as r,
    ):
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "MISSING_API_KEY"


async def test_a_key_without_the_permission_gets_403_naming_the_resource(pacspace_emulator: Emulator) -> None:
    assert {"balance:read", "balance:write", "checkpoints:write"} <= PERMISSIONS
    async with pacspace_emulator.client(permissions={"balance:read"}) as pac:
        with pytest.raises(PermissionDeniedError) as denied:
            await pac.balance.emit(**EMIT)
        with pytest.raises(PermissionDeniedError):
            await pac.checkpoints.create()
        with pytest.raises(PermissionDeniedError) as usage_denied:
            await pac.balance.usage()
    error = denied.value
    assert error.status == 403
    assert error.key_id == pac.key_id
    assert "POST /api/v1/balance/delta" in error.message
    assert pac.key_id is not None
    assert pac.key_id in error.message
    assert error.body["error"]["resource"] == "POST /api/v1/balance/delta"
    assert usage_denied.value.body["error"]["permission"] == "usage:read"
    with pytest.raises(ValueError, match="unknown permissions"):
        pacspace_emulator.create_key(permissions={"balance:everything"})


async def test_x_chain_id_of_the_other_environment_is_refused(pacspace_emulator: Emulator) -> None:
    headers = {"X-Api-Key": pacspace_emulator.create_key(), "X-Chain-Id": "295"}
    url = pacspace_emulator.sandbox_url + "/api/v1/balance/usage"
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "CHAIN_ID_MISMATCH"


async def test_same_key_and_body_replays_the_first_answer(
    pacspace_emulator: Emulator, pacspace_client: AsyncPacSpace
) -> None:
    first = await pacspace_client.balance.emit(**EMIT, idempotency_key="order-7")
    again = await pacspace_client.balance.emit(**EMIT, idempotency_key="order-7")
    assert again.record_id == first.record_id
    assert again.raw == first.raw  # the stored answer, byte for byte
    assert len(pacspace_emulator.deltas()) == 1
    assert [r.replayed for r in pacspace_emulator.requests] == [False, True]


async def test_same_key_with_another_body_is_409(pacspace_emulator: Emulator, pacspace_client: AsyncPacSpace) -> None:
    await pacspace_client.balance.emit(**EMIT, idempotency_key="order-8")
    with pytest.raises(IdempotencyConflictError) as conflict:
        await pacspace_client.balance.emit(**{**EMIT, "delta": Decimal("-6")}, idempotency_key="order-8")
    assert conflict.value.status == 409
    assert conflict.value.idempotency_key == "sandbox:order-8"
    assert len(pacspace_emulator.deltas()) == 1


@pytest.mark.pacspace_emulator(verify_delay=0.02, idempotency_pending_seconds=0.02)
async def test_a_request_in_flight_answers_202_and_the_sdk_waits_for_the_result(
    pacspace_emulator: Emulator, pacspace_client: AsyncPacSpace
) -> None:
    pacspace_emulator.inject("slow", method="POST", path=DELTA, seconds=0.3)
    first = asyncio.create_task(pacspace_client.balance.emit(**EMIT, reference_id="inv_9"))
    await asyncio.sleep(0.1)
    # Another worker sends the same business event while the first is still being written.
    second = await pacspace_client.balance.emit(**EMIT, reference_id="inv_9")
    assert (await first).record_id == second.record_id
    assert len(pacspace_emulator.deltas()) == 1
    log = pacspace_emulator.requests
    assert 202 in [r.status for r in log]
    assert [r.status for r in log if not r.replayed and r.status != 202] == [201]
    assert log[-1].replayed  # the waiting request got the first one's stored answer
    # On the wire: a 202 with the pending code and a Retry-After.
    pacspace_emulator.inject("slow", method="POST", path=DELTA, seconds=0.2)
    headers = {"X-Api-Key": pacspace_emulator.create_key(), "Idempotency-Key": "raw-1"}
    body = {"customerId": "cust_2", "delta": 1, "reason": "x"}
    async with aiohttp.ClientSession(base_url=pacspace_emulator.sandbox_url) as session:
        slow = asyncio.create_task(session.post(DELTA, json=body, headers=headers))
        await asyncio.sleep(0.05)
        async with session.post(DELTA, json=body, headers=headers) as pending:
            assert pending.status == 202
            assert pending.headers["Retry-After"] == "1"
            assert (await pending.json())["code"] == "IDEMPOTENCY_PENDING"
        response = await slow
        assert response.status == 201
        response.release()


@pytest.mark.pacspace_emulator(rate_limit=10)
async def test_rate_limit_answers_429_with_retry_after(pacspace_emulator: Emulator) -> None:
    async with pacspace_emulator.client(max_retries=0) as pac:

        async def hammer() -> None:
            for _ in range(20):
                await pac.balance.limits()

        with pytest.raises(RateLimitError) as limited:
            await hammer()
        assert limited.value.code == "RATE_LIMITED"
        assert limited.value.retry_after is not None
        assert 0 < limited.value.retry_after <= 0.1
        # With retries, the SDK honours the hint and gets through.
        assert (await pac.with_options(max_retries=3).balance.limits()).max_scope_months == 12
    key = pacspace_emulator.create_key()
    async with aiohttp.ClientSession(base_url=pacspace_emulator.sandbox_url) as session:
        statuses = []
        for _ in range(15):
            async with session.get("/api/v1/balance/limits", headers={"X-Api-Key": key}) as response:
                statuses.append(response.status)
                if response.status == 429:
                    assert int(response.headers["Retry-After"]) >= 1
                    assert (await response.json())["error"]["retryAfterSeconds"] > 0
    assert 429 in statuses


@pytest.mark.pacspace_emulator(cadence_seconds=30)
async def test_cadence_limit_per_customer(pacspace_emulator: Emulator, pacspace_client: AsyncPacSpace) -> None:
    await pacspace_client.balance.emit(**EMIT)
    with pytest.raises(CadenceLimitError) as limited:
        await pacspace_client.balance.emit(**{**EMIT, "delta": Decimal("-1")})
    assert limited.value.customer_id == "cust_1"
    assert limited.value.retry_after is not None
    assert 29 < limited.value.retry_after <= 30
    assert limited.value.code == "CADENCE_LIMIT"
    await pacspace_client.balance.emit(**{**EMIT, "customer_id": "cust_2"})
    batch = await pacspace_client.balance.emit_batch(
        [DeltaInput(customer_id="cust_1", delta=1, reason="x"), DeltaInput(customer_id="cust_3", delta=1, reason="x")]
    )
    assert [(r.status, r.error) for r in batch.results] == [("FAILED", "CADENCE_LIMIT"), ("QUEUED", None)]
    assert sum(1 for r in pacspace_emulator.requests if r.status == 429) == 1  # not retried
    assert len(pacspace_emulator.deltas()) == 3


@pytest.mark.pacspace_emulator(allowance=2)
async def test_writes_past_the_allowance_get_402(pacspace_client: AsyncPacSpace) -> None:
    await pacspace_client.balance.emit(**EMIT)
    await pacspace_client.balance.emit(**{**EMIT, "customer_id": "cust_2"})
    with pytest.raises(InsufficientCreditsError):
        await pacspace_client.balance.emit(**{**EMIT, "customer_id": "cust_3"})
    usage = await pacspace_client.balance.usage()
    assert (usage.remaining, usage.allowed) == (0, False)
