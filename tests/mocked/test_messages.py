"""Messages a person acts on: a reused reference id says so, waits are rounded, long keys are refused."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from aioresponses import aioresponses
from conftest import SANDBOX_KEY

from pacspace_async import (
    ApiKey,
    AsyncPacSpace,
    ConfigurationError,
    DeltaInput,
    ErrorAction,
    IdempotencyConflictError,
    InvalidApiKeyError,
    KeyProvider,
)
from pacspace_async._errors import error_from_response
from pacspace_async.testing import Emulator

EMIT = {"customer_id": "cust_1", "delta": Decimal("-1"), "reason": "usage", "reference_id": "inv_1"}


# --- a reference id used again with other content -------------------------------------------------


async def test_a_reused_reference_id_is_named_as_such(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    await pacspace_client.balance.emit(**EMIT)
    with pytest.raises(IdempotencyConflictError) as caught:
        await pacspace_client.balance.emit(**{**EMIT, "delta": Decimal("-2")})
    error = caught.value
    text = str(error)
    assert "reference_id 'inv_1' of customer cust_1 was already used with other content" in text
    assert "send exactly the original content" in text
    assert "use a new reference_id" in text
    assert "Idempotency-Key" not in text
    assert "new key" not in text
    # Everything else is the server's answer, unchanged.
    assert (error.status, error.code, error.action) == (409, "IDEMPOTENCY_KEY_REUSED", ErrorAction.FIX_INPUT)
    assert error.idempotency_key == "sandbox:balance.delta:cust_1:inv_1"
    assert error.request_id is not None
    assert error.request_id in text
    assert error.body["error"]["message"].startswith("this Idempotency-Key was already used")
    assert len(pacspace_emulator.deltas()) == 1


async def test_the_callers_own_key_keeps_the_servers_words(pacspace_client: AsyncPacSpace) -> None:
    await pacspace_client.balance.emit(**EMIT, idempotency_key="job-1")
    with pytest.raises(IdempotencyConflictError) as caught:
        await pacspace_client.balance.emit(**{**EMIT, "delta": Decimal("-2")}, idempotency_key="job-1")
    assert "this Idempotency-Key was already used" in str(caught.value)
    assert "reference_id" not in str(caught.value)


async def test_a_batch_resent_with_other_content_names_its_reference_ids(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    items = [DeltaInput(customer_id="c1", delta=Decimal(-1), reason="usage", reference_id=f"u{i}") for i in range(3)]
    await pacspace_client.balance.emit_batch(items)
    changed = [*items[:2], DeltaInput(customer_id="c1", delta=Decimal(-9), reason="usage", reference_id="u2")]
    with pytest.raises(IdempotencyConflictError) as caught:
        await pacspace_client.balance.emit_batch(changed)
    text = str(caught.value)
    assert "reference_ids of batch items 0-2 were already sent together with other content" in text
    assert "Idempotency-Key" not in text
    assert caught.value.batch_progress is not None
    assert caught.value.batch_progress.results == ()
    assert len(pacspace_emulator.deltas()) == 3


async def test_the_message_comes_from_the_sdk_whatever_the_server_says() -> None:
    url = re.compile(r"^https://sandbox\.test/api/v1/balance/delta$")
    body = {"error": {"code": "IDEMPOTENCY_MISMATCH", "message": "key reuse detected"}}
    with aioresponses() as mocked:
        mocked.post(url, status=409, payload=body)
        async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": "https://sandbox.test"}) as pac:
            with pytest.raises(IdempotencyConflictError) as caught:
                await pac.balance.emit(**EMIT)
    assert "reference_id 'inv_1' of customer cust_1 was already used with other content" in str(caught.value)
    assert caught.value.code == "IDEMPOTENCY_MISMATCH"


# --- waits for people ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "shown"), [(2.995314121246338, "3.0s"), (1.5, "1.5s"), (0.004, "0.1s"), (0.0, "0.0s"), (30, "30.0s")]
)
def test_retry_after_is_rounded_in_the_message_and_exact_on_the_attribute(seconds: float, shown: str) -> None:
    error = error_from_response(
        status=429,
        body={"error": {"code": "RATE_LIMITED", "message": "slow down"}},
        method="GET",
        path="/api/v1/balance/usage",
        request_id="req_1",
        idempotency_key=None,
        retries_taken=0,
        key_id="pk_test_pub",
        retry_after=seconds,
    )
    assert f"retry_after={shown}," in str(error)
    assert "2.99531" not in str(error)
    assert error.retry_after == seconds


# --- keys too long for a header -----------------------------------------------------------------

LONG_SECRET = "S3cr3t" * 1700  # about 10 KB


@pytest.mark.parametrize(
    "build",
    [
        lambda key: ApiKey.parse(key),
        lambda key: AsyncPacSpace(key),
        lambda key: KeyProvider.from_env(environ={"PACSPACE_API_KEY": key}).load_now(),
    ],
    ids=["parse", "client", "provider"],
)
def test_a_key_longer_than_any_header_allows_is_refused_naming_the_limit(build: object) -> None:
    key = f"pk_test_pub.{LONG_SECRET}"
    with pytest.raises(InvalidApiKeyError) as caught:
        build(key)  # type: ignore[operator]
    assert isinstance(caught.value, ConfigurationError)
    assert "longer than 512 characters" in str(caught.value)
    assert LONG_SECRET[:12] not in str(caught.value)
    assert LONG_SECRET[:12] not in repr(caught.value)
    assert caught.value.action is ErrorAction.ALERT_OPERATOR  # not FIX_INPUT: nothing was sent


def test_a_key_at_the_limit_is_accepted() -> None:
    key = "pk_test_pub." + "s" * (512 - len("pk_test_pub."))
    assert ApiKey.parse(key).key_id == "pk_test_pub"
