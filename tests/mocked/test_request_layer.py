"""The request layer against aioresponses: headers, routing, auth errors, retries, waits."""

from __future__ import annotations

import asyncio
import email.utils
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from conftest import PRODUCTION_KEY, SANDBOX_KEY, SECRETS, FakeClock, delta_record

from pacspace_async import (
    APIConnectionError,
    APITimeoutError,
    AsyncPacSpace,
    AuthenticationError,
    BadRequestError,
    CadenceLimitError,
    ConflictError,
    EnvironmentMismatchError,
    ErrorAction,
    MissingApiKeyError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnprocessableEntityError,
)

SANDBOX = "https://sandbox.test"
PRODUCTION = "https://production.test"
DELTA = "/api/v1/balance/delta"
EMIT = {"customer_id": "cust_1", "delta": Decimal("-1.25"), "reason": "usage"}


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as m:
        yield m


@pytest.fixture
async def pac(fake_clock: FakeClock) -> AsyncIterator[AsyncPacSpace]:
    client = AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": SANDBOX, "production": PRODUCTION})
    yield client._with_clock(fake_clock.clock())
    await client.aclose()


def calls(m: aioresponses) -> list[tuple[str, str, dict[str, Any]]]:
    """Every request aioresponses saw, in order: (method, url, kwargs)."""
    seen = []
    for (method, url), requests in m.requests.items():
        for request in requests:
            seen.append((method, str(url), request.kwargs))
    return seen


def headers_of(m: aioresponses) -> list[dict[str, str]]:
    return [dict(kwargs["headers"]) for _, _, kwargs in calls(m)]


def body(status: int, code: str | None = None, **extra: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"message": f"status {status}", **extra}
    if code:
        error["code"] = code
    return {"error": error}


# --- headers and routing --------------------------------------------------------------------


async def test_emit_sends_key_chain_user_agent_and_idempotency_key(mocked: aioresponses, pac: AsyncPacSpace) -> None:
    mocked.post(SANDBOX + DELTA, status=201, payload={"success": True, "data": delta_record()})
    record = await pac.balance.emit(**EMIT, reference_id="inv_1")
    (headers,) = headers_of(mocked)
    assert headers["X-Api-Key"] == SANDBOX_KEY
    assert headers["X-Chain-Id"] == "296"
    assert headers["User-Agent"].startswith("pacspace-python/")
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == "sandbox:balance.delta:cust_1:inv_1"
    assert record.idempotency_key == headers["Idempotency-Key"]
    assert record.record_id == "rec_1"
    assert record.raw["recordId"] == "rec_1"


async def test_every_post_carries_a_key_even_without_reference(mocked: aioresponses, pac: AsyncPacSpace) -> None:
    mocked.post(SANDBOX + DELTA, status=201, payload={"success": True, "data": delta_record()}, repeat=True)
    first = await pac.balance.emit(**EMIT)
    second = await pac.balance.emit(**EMIT)
    keys = [h["Idempotency-Key"] for h in headers_of(mocked)]
    assert all(key.startswith("sandbox:balance.delta:") for key in keys)
    assert first.idempotency_key != second.idempotency_key


async def test_decimal_delta_arrives_as_exact_json_number(mocked: aioresponses, pac: AsyncPacSpace) -> None:
    mocked.post(SANDBOX + DELTA, status=201, payload={"success": True, "data": delta_record()})
    await pac.balance.emit(customer_id="cust_1", delta=Decimal("0.1") + Decimal("0.2"), reason="usage")
    ((_, _, kwargs),) = calls(mocked)
    assert b'"delta":0.3' in kwargs["data"]


async def test_verify_sends_no_key_and_works_without_one(mocked: aioresponses) -> None:
    async with AsyncPacSpace(base_urls={"production": PRODUCTION}) as keyless:
        mocked.get(
            PRODUCTION + "/api/v1/verify/0xabc?source=both",
            payload={"success": True, "data": {"verified": True, "proofRoot": "0xabc"}},
        )
        result = await keyless.verify("0xabc", source="both")
    assert result.verified is True
    (headers,) = headers_of(mocked)
    assert "X-Api-Key" not in headers
    assert headers["X-Chain-Id"] == "295"


async def test_verify_on_a_keyed_client_still_sends_no_key(mocked: aioresponses, pac: AsyncPacSpace) -> None:
    mocked.get(SANDBOX + "/api/v1/verify/0xabc", payload={"verified": False, "message": "unknown root"})
    result = await pac.verify("0xabc")
    assert result.verified is False
    assert result.message == "unknown root"
    assert "X-Api-Key" not in headers_of(mocked)[0]


async def test_keyless_client_refuses_authenticated_call_without_sending(mocked: aioresponses) -> None:
    async with AsyncPacSpace(base_urls={"production": PRODUCTION}) as keyless:
        with pytest.raises(MissingApiKeyError, match="needs an API key"):
            await keyless.balance.emit(**EMIT)
    assert calls(mocked) == []


@pytest.mark.parametrize(
    ("key", "expected_base", "chain"),
    [(SANDBOX_KEY, SANDBOX, "296"), (PRODUCTION_KEY, PRODUCTION, "295")],
)
async def test_key_prefix_routes_to_its_own_environment(
    mocked: aioresponses, key: str, expected_base: str, chain: str
) -> None:
    mocked.post(expected_base + DELTA, status=201, payload={"success": True, "data": delta_record()})
    async with AsyncPacSpace(key, base_urls={"sandbox": SANDBOX, "production": PRODUCTION}) as client:
        await client.balance.emit(**EMIT)
    ((_, url, kwargs),) = calls(mocked)
    assert url.startswith(expected_base)
    assert kwargs["headers"]["X-Chain-Id"] == chain


async def test_environment_variable_overrides_base_url(mocked: aioresponses, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACSPACE_SANDBOX_URL", "https://from-env.test/")
    mocked.post("https://from-env.test" + DELTA, status=201, payload={"success": True, "data": delta_record()})
    async with AsyncPacSpace(SANDBOX_KEY) as client:
        assert client.base_url == "https://from-env.test"
        await client.balance.emit(**EMIT)
    assert calls(mocked)[0][1].startswith("https://from-env.test/")


@pytest.mark.parametrize(
    "build",
    [
        lambda: AsyncPacSpace(SANDBOX_KEY, environment="production"),
        lambda: AsyncPacSpace(PRODUCTION_KEY, environment="sandbox"),
        lambda: AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": "https://api.pacspace.io"}),
    ],
)
async def test_mismatches_raise_before_any_request(mocked: aioresponses, build: Any) -> None:
    with pytest.raises(EnvironmentMismatchError) as info:
        build()
    assert calls(mocked) == []
    assert not any(secret in str(info.value) for secret in SECRETS)


async def test_default_key_comes_from_environment_variable(
    mocked: aioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PACSPACE_API_KEY", PRODUCTION_KEY)
    async with AsyncPacSpace(base_urls={"production": PRODUCTION}) as client:
        assert client.environment.value == "production"
        assert client.key_id == "pk_live_pubLive"


# --- 401 and 403 ----------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "error_type"), [(401, AuthenticationError), (403, PermissionDeniedError)])
async def test_auth_errors_are_sent_once_and_call_the_hook_once(
    mocked: aioresponses, fake_clock: FakeClock, status: int, error_type: type[Exception]
) -> None:
    hooked: list[Exception] = []
    client = AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": SANDBOX}, on_auth_error=hooked.append, max_retries=5)
    pac = client._with_clock(fake_clock.clock())
    mocked.post(SANDBOX + DELTA, status=status, payload=body(status), repeat=True)
    with pytest.raises(error_type) as info:
        await pac.balance.emit(**EMIT)
    await client.aclose()
    error = info.value
    assert len(calls(mocked)) == 1
    assert hooked == [error]
    assert error.action is ErrorAction.ALERT_OPERATOR  # type: ignore[attr-defined]
    assert error.retryable is False  # type: ignore[attr-defined]
    assert fake_clock.sleeps == []
    assert not any(secret in str(error) for secret in SECRETS)


async def test_forbidden_names_the_resource_and_key_identity(mocked: aioresponses, pac: AsyncPacSpace) -> None:
    mocked.post(SANDBOX + DELTA, status=403, payload={"statusCode": 403, "error": "Forbidden", "message": "nope"})
    with pytest.raises(PermissionDeniedError) as info:
        await pac.balance.emit(**EMIT)
    text = str(info.value)
    assert "POST /api/v1/balance/delta" in text
    assert "key_id=pk_test_pubSbx" in text
    assert info.value.key_id == "pk_test_pubSbx"
    assert info.value.idempotency_key is not None


async def test_async_auth_hook_is_awaited_and_its_failure_does_not_hide_the_error(
    mocked: aioresponses, fake_clock: FakeClock
) -> None:
    seen: list[int] = []

    async def hook(error: Any) -> None:
        seen.append(error.status)
        raise RuntimeError("pager is down")

    client = AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": SANDBOX}, on_auth_error=hook)
    mocked.post(SANDBOX + DELTA, status=401, payload=body(401))
    with pytest.raises(AuthenticationError):
        await client.balance.emit(**EMIT)
    await client.aclose()
    assert seen == [401]


# --- 429 and Retry-After ---------------------------------------------------------------------


def http_date(seconds_from_now: float, now: float) -> str:
    return email.utils.format_datetime(datetime.fromtimestamp(now + seconds_from_now, tz=timezone.utc), usegmt=True)


@pytest.mark.parametrize(
    ("headers", "payload", "expected"),
    [
        ({"Retry-After": "7"}, body(429), 7.0),
        ({"Retry-After": "2.5"}, body(429), 2.5),
        ({"retry-after-ms": "1500"}, body(429), 1.5),
        ({}, body(429, retryAfterSeconds=4), 4.0),
        ({"Retry-After": "30"}, body(429, retryAfterSeconds=3), 3.0),
        ({"retry-after-ms": "250", "Retry-After": "9"}, body(429), 0.25),
    ],
)
async def test_429_waits_the_hinted_time_then_succeeds(
    mocked: aioresponses,
    pac: AsyncPacSpace,
    fake_clock: FakeClock,
    headers: dict[str, str],
    payload: dict[str, Any],
    expected: float,
) -> None:
    mocked.post(SANDBOX + DELTA, status=429, payload=payload, headers=headers)
    mocked.post(SANDBOX + DELTA, status=201, payload={"success": True, "data": delta_record()})
    record = await pac.balance.emit(**EMIT)
    assert record.record_id == "rec_1"
    # The hint, with the gate's jitter on top (never below it): a fifth of the pace, which is
    # the hint itself capped at one second.
    (slept,) = fake_clock.sleeps
    assert slept == pytest.approx(expected + 0.2 * min(expected, 1.0))
    keys = {h["Idempotency-Key"] for h in headers_of(mocked)}
    assert len(keys) == 1


async def test_429_http_date_is_honoured(mocked: aioresponses, pac: AsyncPacSpace, fake_clock: FakeClock) -> None:
    mocked.post(SANDBOX + DELTA, status=429, payload=body(429), headers={"Retry-After": http_date(12, fake_clock.now)})
    mocked.post(SANDBOX + DELTA, status=201, payload={"success": True, "data": delta_record()})
    await pac.balance.emit(**EMIT)
    assert fake_clock.sleeps == [pytest.approx(12.2, abs=1)]


async def test_hint_above_max_retry_after_raises_at_once(
    mocked: aioresponses, pac: AsyncPacSpace, fake_clock: FakeClock
) -> None:
    mocked.post(SANDBOX + DELTA, status=429, payload=body(429), headers={"Retry-After": "3600"}, repeat=True)
    with pytest.raises(RateLimitError) as info:
        await pac.balance.emit(**EMIT)
    assert info.value.retry_after == 3600
    assert info.value.action is ErrorAction.WAIT_AND_RETRY
    assert fake_clock.sleeps == []
    assert len(calls(mocked)) == 1


async def test_cadence_limit_is_not_retried(mocked: aioresponses, pac: AsyncPacSpace, fake_clock: FakeClock) -> None:
    mocked.post(
        SANDBOX + DELTA,
        status=429,
        payload=body(429, "CADENCE_LIMIT", retryAfterSeconds=30, customerId="cust_1"),
        repeat=True,
    )
    with pytest.raises(CadenceLimitError) as info:
        await pac.balance.emit(**EMIT)
    assert info.value.customer_id == "cust_1"
    assert info.value.retry_after == 30
    assert info.value.action is ErrorAction.WAIT_AND_RETRY
    assert len(calls(mocked)) == 1
    assert fake_clock.sleeps == []


# --- retried failures -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
async def test_transient_statuses_are_retried_with_the_same_key(
    mocked: aioresponses, pac: AsyncPacSpace, fake_clock: FakeClock, status: int
) -> None:
    mocked.post(SANDBOX + DELTA, status=status, payload=body(status))
    mocked.post(SANDBOX + DELTA, status=status, payload=body(status))
    mocked.post(SANDBOX + DELTA, status=201, payload={"success": True, "data": delta_record()})
    record = await pac.balance.emit(**EMIT, reference_id="inv_7")
    keys = [h["Idempotency-Key"] for h in headers_of(mocked)]
    assert keys == ["sandbox:balance.delta:cust_1:inv_7"] * 3
    assert record.idempotency_key == keys[0]
    assert fake_clock.sleeps == [0.5, 1.0]  # min(8, 0.5 * 2**k) at the top of the jitter


@pytest.mark.parametrize(
    "exception",
    [aiohttp.ServerDisconnectedError(), aiohttp.ClientOSError(104, "reset"), asyncio.TimeoutError()],
)
async def test_connection_failures_are_retried_with_the_same_key(
    mocked: aioresponses, pac: AsyncPacSpace, exception: Exception
) -> None:
    mocked.post(SANDBOX + DELTA, exception=exception)
    mocked.post(SANDBOX + DELTA, status=201, payload={"success": True, "data": delta_record()})
    record = await pac.balance.emit(**EMIT)
    keys = [h["Idempotency-Key"] for h in headers_of(mocked)]
    assert len(keys) == 2
    assert keys[0] == keys[1] == record.idempotency_key


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(400, BadRequestError), (404, NotFoundError), (409, ConflictError), (422, UnprocessableEntityError)],
)
async def test_client_errors_are_not_retried(
    mocked: aioresponses, pac: AsyncPacSpace, fake_clock: FakeClock, status: int, error_type: type[Exception]
) -> None:
    mocked.post(SANDBOX + DELTA, status=status, payload=body(status, "SOME_CODE"), repeat=True)
    with pytest.raises(error_type) as info:
        await pac.balance.emit(**EMIT)
    assert len(calls(mocked)) == 1
    assert fake_clock.sleeps == []
    assert info.value.action is ErrorAction.FIX_INPUT  # type: ignore[attr-defined]
    assert info.value.code == "SOME_CODE"  # type: ignore[attr-defined]


async def test_max_retries_bounds_the_attempts(mocked: aioresponses, pac: AsyncPacSpace) -> None:
    mocked.post(SANDBOX + DELTA, status=503, payload=body(503), repeat=True)
    with pytest.raises(ServerError) as info:
        await pac.balance.emit(**EMIT, max_retries=3)
    assert len(calls(mocked)) == 4
    assert info.value.retries_taken == 3
    assert info.value.action is ErrorAction.RETRY


async def test_max_retries_zero_per_client_copy(mocked: aioresponses, pac: AsyncPacSpace) -> None:
    mocked.post(SANDBOX + DELTA, exception=aiohttp.ServerDisconnectedError(), repeat=True)
    with pytest.raises(APIConnectionError) as info:
        await pac.with_options(max_retries=0).balance.emit(**EMIT)
    assert len(calls(mocked)) == 1
    assert info.value.idempotency_key is not None
    assert info.value.retryable is True


async def test_deadline_bounds_the_whole_call(mocked: aioresponses, fake_clock: FakeClock) -> None:
    client = AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": SANDBOX}, deadline=5, max_retries=10)
    pac = client._with_clock(fake_clock.clock())
    mocked.post(SANDBOX + DELTA, status=503, payload=body(503), headers={"Retry-After": "2"}, repeat=True)
    with pytest.raises(ServerError):
        await pac.balance.emit(**EMIT)
    await client.aclose()
    assert sum(fake_clock.sleeps) <= 5
    assert len(calls(mocked)) == 3  # t=0, t=2, t=4; the next wait would pass the deadline


async def test_timeout_error_is_typed(mocked: aioresponses, pac: AsyncPacSpace) -> None:
    mocked.post(SANDBOX + DELTA, exception=asyncio.TimeoutError(), repeat=True)
    with pytest.raises(APITimeoutError) as info:
        await pac.balance.emit(**EMIT, max_retries=1)
    assert info.value.retries_taken == 1
    assert len(calls(mocked)) == 2


async def test_idempotency_pending_is_waited_out_and_resent(
    mocked: aioresponses, pac: AsyncPacSpace, fake_clock: FakeClock
) -> None:
    mocked.post(SANDBOX + DELTA, status=202, payload={"code": "IDEMPOTENCY_PENDING", "retryAfterSeconds": 1})
    mocked.post(
        SANDBOX + DELTA, status=200, payload={"error": {"code": "IDEMPOTENCY_PENDING"}}, headers={"Retry-After": "2"}
    )
    mocked.post(SANDBOX + DELTA, status=201, payload={"success": True, "data": delta_record()})
    record = await pac.balance.emit(**EMIT, max_retries=0)
    assert record.record_id == "rec_1"
    assert fake_clock.sleeps == [1.0, 2.0]
    assert len({h["Idempotency-Key"] for h in headers_of(mocked)}) == 1


async def test_pending_until_deadline_raises_a_timeout_with_the_key(
    mocked: aioresponses, fake_clock: FakeClock
) -> None:
    client = AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": SANDBOX}, deadline=10)
    pac = client._with_clock(fake_clock.clock())
    mocked.post(
        SANDBOX + DELTA, status=202, payload={"code": "IDEMPOTENCY_PENDING", "retryAfterSeconds": 3}, repeat=True
    )
    with pytest.raises(APITimeoutError, match="still in progress") as info:
        await pac.balance.emit(**EMIT, reference_id="inv_9")
    await client.aclose()
    assert info.value.idempotency_key == "sandbox:balance.delta:cust_1:inv_9"


async def test_caller_can_retry_above_the_sdk_with_the_same_key(mocked: aioresponses, pac: AsyncPacSpace) -> None:
    mocked.post(SANDBOX + DELTA, exception=aiohttp.ServerDisconnectedError(), repeat=3)
    mocked.post(SANDBOX + DELTA, status=201, payload={"success": True, "data": delta_record()})
    with pytest.raises(APIConnectionError) as info:
        await pac.balance.emit(**EMIT)
    record = await pac.balance.emit(**EMIT, idempotency_key=info.value.idempotency_key)
    keys = {h["Idempotency-Key"] for h in headers_of(mocked)}
    assert keys == {record.idempotency_key}


async def test_each_kind_of_retry_logs_one_line_saying_what_it_waits_for(
    mocked: aioresponses, pac: AsyncPacSpace, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pacspace")
    mocked.post(SANDBOX + DELTA, exception=aiohttp.ServerDisconnectedError())
    mocked.post(SANDBOX + DELTA, status=503, payload=body(503), headers={"X-Request-Id": "req_503"})
    mocked.post(SANDBOX + DELTA, status=429, payload=body(429), headers={"Retry-After": "2"})
    mocked.post(SANDBOX + DELTA, status=202, payload={"code": "IDEMPOTENCY_PENDING", "retryAfterSeconds": 1})
    mocked.post(SANDBOX + DELTA, status=201, payload={"success": True, "data": delta_record()})
    await pac.balance.emit(**EMIT)
    retries = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    prefix = "POST /api/v1/balance/delta: "
    assert retries == [
        prefix + "connection failed: ServerDisconnectedError: Server disconnected; retry 1 of 2 in 0.50s "
        "(request_id=None, key_id=pk_test_pubSbx)",
        prefix + "503; retry 2 of 2 in 1.00s (request_id=req_503, key_id=pk_test_pubSbx)",
        prefix + "429 rate limited; retry 1 after the rate gate reopens in 2.00s "
        "(request_id=None, key_id=pk_test_pubSbx)",
        prefix + "202 IDEMPOTENCY_PENDING; waiting in 1.00s (request_id=None, key_id=pk_test_pubSbx)",
    ]
    answers = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert [line.split(" (attempt ")[1].split(",")[0] for line in answers] == ["2", "3", "4", "5"]
    assert answers[0].startswith("POST /api/v1/balance/delta -> 503 (attempt 2, ")
