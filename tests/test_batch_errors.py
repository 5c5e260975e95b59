"""An error that stops `emit_batch` is its own class and a `BatchError`, with `batch_progress`.

Only such an error carries `batch_progress`; ``except RateLimitError`` (or any class) still
catches a batch's failure, and the error pickles and copies like every other.
"""

from __future__ import annotations

import copy
import pickle
import traceback
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from conftest import SANDBOX_KEY, FakeClock, LoopbackServer, ok

from pacspace_async import (
    APIConnectionError,
    AsyncPacSpace,
    BatchError,
    BatchItemResult,
    BatchResult,
    IdempotencyConflictError,
    InvalidArgumentError,
    PacSpaceError,
    RateLimitError,
    VerificationTimeoutError,
    errors,
)
from pacspace_async._batch_error import batch_error_class, with_batch_progress

PROGRESS = BatchResult((BatchItemResult(index=0, status="QUEUED", record_id="rec_1"),), 1, 0, ("sandbox:k",))
PLAIN_ERRORS = [
    RateLimitError("slow down", status=429, code=None, method="POST", path="/b", retry_after=2.0, request_id="r1"),
    IdempotencyConflictError("reused", status=409, code="IDEMPOTENCY_CONFLICT", method="POST", path="/b"),
    APIConnectionError("down", method="POST", path="/b", idempotency_key="sandbox:k", retries_taken=2),
    VerificationTimeoutError("slow", record_id="rec_1", last_status="QUEUED"),  # an OSError underneath
    InvalidArgumentError("bad"),
]


def test_an_error_outside_a_batch_has_no_batch_progress() -> None:
    for error in PLAIN_ERRORS:
        assert not isinstance(error, BatchError)
        assert not hasattr(error, "batch_progress")


@pytest.mark.parametrize("error", PLAIN_ERRORS, ids=lambda e: type(e).__name__)
def test_a_batch_error_is_still_its_own_class(error: PacSpaceError) -> None:
    before = dict(vars(error))
    batched = with_batch_progress(error, PROGRESS)
    assert isinstance(batched, type(error))
    assert isinstance(batched, BatchError)
    assert isinstance(batched, PacSpaceError)
    assert batched.batch_progress is PROGRESS
    # Everything else is the error's own: message, fields, action; it prints as its class.
    assert type(batched).__name__ == type(error).__name__
    assert type(batched).__qualname__ == type(error).__qualname__
    assert type(batched).__module__ == type(error).__module__
    assert str(batched) == str(error)
    assert batched.args == error.args
    assert repr(batched) == repr(error)
    assert {**vars(error), "batch_progress": PROGRESS} == vars(batched)
    assert batched.action is error.action
    assert vars(error) == before  # the original is left as it was
    assert not hasattr(error, "batch_progress")


@pytest.mark.parametrize("error", PLAIN_ERRORS, ids=lambda e: type(e).__name__)
def test_a_batch_error_pickles_copies_and_hashes(error: PacSpaceError) -> None:
    batched = with_batch_progress(error, PROGRESS)
    for twin in (pickle.loads(pickle.dumps(batched)), copy.deepcopy(batched), copy.copy(batched)):
        assert type(twin) is type(batched)
        assert isinstance(twin, type(error))
        assert isinstance(twin, BatchError)
        assert vars(twin) == vars(batched)
        assert twin.batch_progress == PROGRESS
        assert str(twin) == str(batched)
    assert {batched: 1}[batched] == 1


def test_one_mixed_class_per_error_class() -> None:
    assert batch_error_class(RateLimitError) is batch_error_class(RateLimitError)
    assert batch_error_class(RateLimitError) is not batch_error_class(errors.CadenceLimitError)
    mixed = batch_error_class(RateLimitError)
    assert batch_error_class(mixed) is mixed
    assert issubclass(batch_error_class(errors.CadenceLimitError), RateLimitError)


def test_batch_error_is_public() -> None:
    import pacspace_async

    assert pacspace_async.BatchError is errors.BatchError is BatchError
    assert "BatchError" in pacspace_async.__all__
    assert "BatchError" in errors.__all__


# --- raised by emit_batch ---------------------------------------------------------------------


def items(count: int) -> list[dict[str, Any]]:
    return [{"customer_id": "c", "delta": -1, "reason": "usage", "reference_id": f"u{n}"} for n in range(count)]


@pytest.fixture
async def batch_server(loopback: Callable[[], LoopbackServer]) -> AsyncIterator[tuple[AsyncPacSpace, LoopbackServer]]:
    """The first batch request is recorded; every later one is refused with a 429."""
    server = loopback()

    async def batch(request: web.Request) -> web.StreamResponse:
        if len(server.requests) > 1:
            error = {"error": {"code": "RATE_LIMITED", "message": "slow down"}}
            return web.json_response(error, status=429, headers={"Retry-After": "120"})
        deltas = (await request.json())["deltas"]
        results = [{"index": n, "status": "QUEUED", "recordId": f"rec_{n}"} for n in range(len(deltas))]
        return ok({"results": results, "totalQueued": len(deltas), "totalFailed": 0}, status=201)

    server.route("POST", "/api/v1/balance/delta/batch", batch)
    url = await server.start()
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": url}, max_retries=0) as client:
        yield client._with_clock(FakeClock().clock()), server


async def test_except_rate_limit_error_catches_a_batch_429_with_its_progress(
    batch_server: tuple[AsyncPacSpace, LoopbackServer],
) -> None:
    pac, server = batch_server
    try:
        await pac.balance.emit_batch(items(150))
    except RateLimitError as error:
        caught: RateLimitError = error
    else:  # pragma: no cover - the assertion below says what went wrong
        pytest.fail("emit_batch did not raise")
    assert len(server.requests) == 2
    assert caught.status == 429
    assert caught.retry_after == 120
    assert isinstance(caught, BatchError)
    assert [item.record_id for item in caught.batch_progress.results] == [f"rec_{n}" for n in range(100)]
    assert caught.batch_progress.total_queued == 100
    assert caught.idempotency_key == server.requests[1].headers["Idempotency-Key"]
    # One error in the traceback, down to the request that failed; nothing chained to it.
    printed = "".join(traceback.format_exception(caught))
    assert printed.count("RateLimitError: 429") == 1
    assert "During handling" not in printed
    assert "direct cause" not in printed
    assert "_requester.py" in printed
    again = pickle.loads(pickle.dumps(caught))
    assert isinstance(again, RateLimitError)
    assert isinstance(again, BatchError)
    assert again.batch_progress == caught.batch_progress


async def test_a_batch_failing_at_once_is_a_batch_error_with_nothing_recorded(
    batch_server: tuple[AsyncPacSpace, LoopbackServer],
) -> None:
    pac, _server = batch_server
    await pac.balance.emit_batch(items(1))  # the server's one success
    with pytest.raises(RateLimitError) as info:
        await pac.balance.emit_batch(items(3))
    assert isinstance(info.value, BatchError)
    assert info.value.batch_progress.results == ()
    assert info.value.batch_progress.total_queued == 0


async def test_a_refusal_before_sending_is_no_batch_error(batch_server: tuple[AsyncPacSpace, LoopbackServer]) -> None:
    pac, server = batch_server
    with pytest.raises(InvalidArgumentError) as info:
        await pac.balance.emit_batch([{"customer_id": "c", "delta": 0, "reason": "usage"}])
    assert not isinstance(info.value, BatchError)
    assert server.requests == []
