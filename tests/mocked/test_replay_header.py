"""`replayed` from what the server says: the ``Idempotent-Replayed`` header, ``idempotent`` fields, or nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest
from aioresponses import aioresponses
from conftest import SANDBOX_KEY

from pacspace_async import AsyncPacSpace, DeltaInput

SANDBOX = "https://sandbox.test"
EMIT = re.compile(rf"^{re.escape(SANDBOX)}/api/v1/balance/delta$")
BATCH = re.compile(rf"^{re.escape(SANDBOX)}/api/v1/balance/delta/batch$")


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as m:
        yield m


@pytest.fixture
async def pac() -> AsyncIterator[AsyncPacSpace]:
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": SANDBOX}) as client:
        yield client


def envelope(data: Any) -> dict[str, Any]:
    return {"success": True, "data": data}


def replay_header(value: str | None) -> dict[str, str]:
    return {} if value is None else {"Idempotent-Replayed": value}


@pytest.mark.parametrize(
    ("header", "expected"),
    [("true", True), ("True", True), (" true ", True), ("false", False), ("FALSE", False), (None, None), ("1", None)],
)
async def test_emit_reads_the_replay_header(
    mocked: aioresponses, pac: AsyncPacSpace, header: str | None, expected: bool | None
) -> None:
    mocked.post(
        EMIT,
        status=201,
        payload=envelope({"recordId": "rec_1", "status": "QUEUED"}),
        headers=replay_header(header),
    )
    record = await pac.balance.emit(customer_id="c1", delta=Decimal(-1), reason="usage", reference_id="r1")
    assert record.replayed is expected
    assert record.idempotency_key == "sandbox:balance.delta:c1:r1"  # still filled in beside it


@pytest.mark.parametrize(
    ("header", "idempotent", "expected"),
    [
        (None, True, True),  # the delta was recorded before, under another key
        ("false", True, True),  # a new answer, about an item already recorded
        (None, False, False),
        ("true", False, True),  # the stored answer of the first request, word for word
    ],
)
async def test_emit_reads_the_idempotent_field_too(
    mocked: aioresponses, pac: AsyncPacSpace, header: str | None, idempotent: bool, expected: bool
) -> None:
    mocked.post(
        EMIT,
        status=200,
        payload=envelope({"recordId": "rec_1", "status": "VERIFIED", "idempotent": idempotent}),
        headers=replay_header(header),
    )
    record = await pac.balance.emit(customer_id="c1", delta=Decimal(-1), reason="usage")
    assert record.replayed is expected


def batch_answer(*idempotent: bool | None) -> dict[str, Any]:
    results = []
    for index, flag in enumerate(idempotent):
        result: dict[str, Any] = {"index": index, "status": "QUEUED", "recordId": f"rec_{index}"}
        if flag is not None:
            result["idempotent"] = flag
        results.append(result)
    return envelope({"totalQueued": len(results), "totalFailed": 0, "results": results})


ITEMS = [DeltaInput(customer_id="c1", delta=Decimal(-1 - i), reason="usage", reference_id=f"u{i}") for i in range(3)]


@pytest.mark.parametrize(
    ("header", "idempotent", "expected", "count"),
    [
        # The whole answer replayed: every item with it, whatever the stored answer said of them.
        ("true", (False, False, False), [True, True, True], 3),
        ("true", (None, None, None), [True, True, True], 3),
        ("false", (None, True, False), [False, True, False], 1),
        (None, (None, True, False), [None, True, False], 1),
        (None, (None, None, None), [None, None, None], 0),
    ],
)
async def test_emit_batch_reads_the_header_and_each_items_idempotent(
    mocked: aioresponses,
    pac: AsyncPacSpace,
    header: str | None,
    idempotent: tuple[bool | None, ...],
    expected: list[bool | None],
    count: int,
) -> None:
    mocked.post(BATCH, status=200, payload=batch_answer(*idempotent), headers=replay_header(header))
    result = await pac.balance.emit_batch(ITEMS)
    assert [item.replayed for item in result.results] == expected
    assert result.replayed == count
