"""The same behaviour from both clients: each case runs against AsyncPacSpace and PacSpace.

The loopback server runs on the test's event loop, so the sync client is called from a worker
thread (``asyncio.to_thread``): a sync call made on the test's own loop thread would block it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from sync_test_support import SANDBOX_KEY, SECRETS, LoopbackServer, delta_record, ok

from pacspace_async import (
    APIStatusError,
    AsyncPacSpace,
    AuthenticationError,
    DeltaRecord,
    ErrorAction,
    PermissionDeniedError,
    ProofVerification,
)
from pacspace_sync import PacSpace

DELTA = "/api/v1/balance/delta"
EMIT = {"customer_id": "cust_1", "delta": Decimal("-5"), "reason": "usage"}
Make = Callable[[], LoopbackServer]


class Driver:
    """Builds either client and runs one call on it the way its users would."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.clients: list[Any] = []

    def client(self, *args: Any, **kwargs: Any) -> Any:
        client = AsyncPacSpace(*args, **kwargs) if self.kind == "async" else PacSpace(*args, **kwargs)
        self.clients.append(client)
        return client

    async def run(self, pac: Any, call: Callable[[Any], Any]) -> Any:
        if self.kind == "async":
            result = call(pac)
            return await result if inspect.isawaitable(result) else result
        return await asyncio.to_thread(call, pac)

    async def close(self) -> None:
        for pac in self.clients:
            if self.kind == "async":
                await pac.aclose()
            else:
                await asyncio.to_thread(pac.close)


@pytest.fixture(params=["async", "sync"])
async def driver(request: pytest.FixtureRequest, loopback: Make) -> AsyncIterator[Driver]:
    made = Driver(request.param)
    yield made
    await made.close()


async def test_emit_returns_a_typed_record(driver: Driver, loopback: Make) -> None:
    server = loopback()

    async def emit(request: web.Request) -> web.Response:
        return ok(delta_record("rec_42"), status=201)

    server.route("POST", DELTA, emit)
    url = await server.start()
    pac = driver.client(SANDBOX_KEY, base_urls={"sandbox": url})
    record = await driver.run(pac, lambda pac: pac.balance.emit(**EMIT, reference_id="inv_1"))
    assert isinstance(record, DeltaRecord)
    assert record.record_id == "rec_42"
    assert record.status == "QUEUED"
    assert record.idempotency_key == server.requests[0].headers["Idempotency-Key"]
    assert record.idempotency_key.startswith("sandbox:")
    assert server.requests[0].headers["X-Api-Key"] == SANDBOX_KEY


@pytest.mark.parametrize(("status", "error_class"), [(401, AuthenticationError), (403, PermissionDeniedError)])
async def test_auth_failures_are_sent_once_and_call_the_hook_once(
    driver: Driver, loopback: Make, status: int, error_class: type[APIStatusError]
) -> None:
    server = loopback()

    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"success": False, "error": {"code": "NOPE", "message": "refused"}}, status=status)

    server.route("POST", DELTA, refuse)
    url = await server.start()
    seen: list[APIStatusError] = []
    pac = driver.client(SANDBOX_KEY, base_urls={"sandbox": url}, on_auth_error=seen.append, max_retries=2)
    with pytest.raises(error_class) as info:
        await driver.run(pac, lambda pac: pac.balance.emit(**EMIT))
    assert info.value.status == status
    assert info.value.action is ErrorAction.ALERT_OPERATOR
    assert len(server.requests) == 1
    assert seen == [info.value]
    assert not any(secret in str(info.value) for secret in SECRETS)


async def test_retries_after_a_dropped_connection_and_a_503_reuse_one_idempotency_key(
    driver: Driver, loopback: Make
) -> None:
    server = loopback()
    answers = iter(["drop", "503", "ok"])

    async def flaky(request: web.Request) -> web.StreamResponse:
        answer = next(answers)
        if answer == "drop":
            assert request.transport is not None
            request.transport.abort()  # no answer at all: a connection error
            return web.Response()
        if answer == "503":
            return web.json_response(
                {"success": False, "error": {"code": "UNAVAILABLE", "message": "busy"}},
                status=503,
                headers={"Retry-After": "0"},
            )
        return ok(delta_record("rec_7"), status=201)

    server.route("POST", DELTA, flaky)
    url = await server.start()
    pac = driver.client(SANDBOX_KEY, base_urls={"sandbox": url}, max_retries=2)
    record = await driver.run(pac, lambda pac: pac.balance.emit(**EMIT))
    keys = [request.headers["Idempotency-Key"] for request in server.requests]
    assert len(keys) == 3
    assert len(set(keys)) == 1
    assert record.record_id == "rec_7"
    assert record.idempotency_key == keys[0]


async def test_verify_sends_no_key_and_works_without_one(driver: Driver, loopback: Make) -> None:
    server = loopback()

    async def verify(request: web.Request) -> web.Response:
        return ok({"verified": True, "proofRoot": request.match_info["root"]})

    server.route("GET", "/api/v1/verify/{root}", verify)
    url = await server.start()
    keyless = driver.client(None, base_urls={"production": url})
    keyed = driver.client(SANDBOX_KEY, base_urls={"sandbox": url})
    for pac in (keyless, keyed):
        result = await driver.run(pac, lambda pac: pac.verify("0xabc", source="both"))
        assert isinstance(result, ProofVerification)
        assert result.verified is True
        assert result.proof_root == "0xabc"
    assert len(server.requests) == 2
    for request in server.requests:
        assert "X-Api-Key" not in request.headers
        assert request.query["source"] == "both"
