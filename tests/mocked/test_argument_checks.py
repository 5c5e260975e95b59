"""Every public method refuses a bad argument before anything is sent: one row per argument and limit.

The client points at aioresponses with no URL registered: a request that got out would be seen
there (and fail as a connection error, not as the `InvalidArgumentError` each row expects).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from aioresponses import aioresponses
from conftest import SANDBOX_KEY

from pacspace_async import AsyncPacSpace, DeltaInput, InvalidArgumentError, summary_reference_id

OK = {"customer_id": "cust_1", "delta": Decimal("-1"), "reason": "usage"}
LONG_ID = "c" * 129  # customer ids: at most 128
LONG_REF = "r" * 256  # reference ids: at most 255
DAY = "2026-03-17T00:00:00Z"
NEXT_DAY = "2026-03-18T00:00:00Z"

Call = Callable[[AsyncPacSpace], Any]

ROWS: list[tuple[str, Call, str]] = [
    # balance.emit
    (
        "emit reference_id 10,000",
        lambda p: p.balance.emit(**OK, reference_id="r" * 10_000),
        "reference_id must be at most 255 characters, got 10000",
    ),
    (
        "emit reference_id 256",
        lambda p: p.balance.emit(**OK, reference_id=LONG_REF),
        "reference_id must be at most 255",
    ),
    (
        "emit reference_id blank",
        lambda p: p.balance.emit(**OK, reference_id="  "),
        "reference_id must be a non-empty string",
    ),
    (
        "emit reference_id int",
        lambda p: p.balance.emit(**OK, reference_id=7),
        "reference_id must be a non-empty string",
    ),
    (
        "emit customer_id 129",
        lambda p: p.balance.emit(**{**OK, "customer_id": LONG_ID}),
        "customer_id must be 1-128 characters",
    ),
    ("emit customer_id None", lambda p: p.balance.emit(**{**OK, "customer_id": None}), "customer_id must be 1-128"),
    ("emit customer_id charset", lambda p: p.balance.emit(**{**OK, "customer_id": "a/b"}), "customer_id must be 1-128"),
    (
        "emit reason 501",
        lambda p: p.balance.emit(**{**OK, "reason": "x" * 501}),
        "reason must be at most 500 characters",
    ),
    ("emit reason None", lambda p: p.balance.emit(**{**OK, "reason": None}), "reason must be a non-empty string"),
    ("emit delta float", lambda p: p.balance.emit(**{**OK, "delta": 0.1}), 'pass Decimal("0.1") or the string "0.1"'),
    (
        "emit delta float int-valued",
        lambda p: p.balance.emit(**{**OK, "delta": -42.0}),
        'not the float -42.0: pass Decimal("-42.0")',
    ),
    (
        "emit delta float nan",
        lambda p: p.balance.emit(**{**OK, "delta": float("nan")}),
        "delta must be a finite number",
    ),
    ("emit delta zero", lambda p: p.balance.emit(**{**OK, "delta": "0.00"}), "delta must not be zero"),
    (
        "emit delta too big",
        lambda p: p.balance.emit(**{**OK, "delta": 10**9 + 1}),
        "within -1,000,000,000 and 1,000,000,000",
    ),
    (
        "emit delta bool",
        lambda p: p.balance.emit(**{**OK, "delta": True}),
        "delta must be a Decimal, int or numeric string",
    ),
    (
        "emit delta text",
        lambda p: p.balance.emit(**{**OK, "delta": "ten"}),
        "delta must be a Decimal, int or numeric string",
    ),
    (
        "emit delta None",
        lambda p: p.balance.emit(**{**OK, "delta": None}),
        "delta must be a Decimal, int or numeric string",
    ),
    ("emit metadata list", lambda p: p.balance.emit(**OK, metadata=["a"]), "metadata must be a mapping"),
    ("emit adjusts text", lambda p: p.balance.emit(**OK, adjusts="inv_0"), "adjusts must be a mapping"),
    (
        "emit idempotency_key empty",
        lambda p: p.balance.emit(**OK, idempotency_key=""),
        "idempotency_key must be a non-empty",
    ),
    # balance.emit_batch
    ("batch empty", lambda p: p.balance.emit_batch([]), "non-empty list"),
    ("batch generator", lambda p: p.balance.emit_batch(DeltaInput(**OK) for _ in range(2)), "non-empty list"),
    (
        "batch item float",
        lambda p: p.balance.emit_batch([DeltaInput(**{**OK, "delta": 0.5})]),
        "batch item 0: delta must be exact, not the float 0.5",
    ),
    (
        "batch item reference 256",
        lambda p: p.balance.emit_batch([OK, {**OK, "reference_id": LONG_REF}]),
        "batch item 1: reference_id must be at most 255",
    ),
    (
        "batch item unknown field",
        lambda p: p.balance.emit_batch([{**OK, "customerId": "x"}]),
        "unknown fields ['customerId']",
    ),
    # balance.status / wait_for_verified / emit_and_wait
    ("status record_id empty", lambda p: p.balance.status(""), "record_id must be a non-empty string"),
    ("status record_id None", lambda p: p.balance.status(None), "record_id must be a non-empty string"),
    ("status record_id dot-dot", lambda p: p.balance.status(".."), "record_id cannot be '..'"),
    ("wait timeout 0", lambda p: p.balance.wait_for_verified("rec_1", timeout=0), "timeout must be a positive number"),
    (
        "wait poll_interval -1",
        lambda p: p.balance.wait_for_verified("rec_1", poll_interval=-1),
        "poll_interval must be a positive",
    ),
    ("wait record_id empty", lambda p: p.balance.wait_for_verified(""), "record_id must be a non-empty string"),
    ("emit_and_wait delta float", lambda p: p.balance.emit_and_wait(**{**OK, "delta": 1.5}), 'Decimal("1.5")'),
    ("emit_and_wait timeout 0", lambda p: p.balance.emit_and_wait(**OK, timeout=0), "timeout must be a positive"),
    (
        "emit_and_wait reference 256",
        lambda p: p.balance.emit_and_wait(**OK, reference_id=LONG_REF),
        "reference_id must be at most 255",
    ),
    # balance.derive and its helpers
    ("derive customer_id empty", lambda p: p.balance.derive(""), "customer_id must be a non-empty string"),
    ("derive customer_id 129", lambda p: p.balance.derive(LONG_ID), "customer_id must be at most 128 characters"),
    ("derive limit 0", lambda p: p.balance.derive("c1", limit=0), "limit must be a whole number >= 1"),
    ("derive limit 1001", lambda p: p.balance.derive("c1", limit=1001), "limit must be at most 1000"),
    ("derive offset -1", lambda p: p.balance.derive("c1", offset=-1), "offset must be a whole number >= 0"),
    (
        "derive starting_balance float",
        lambda p: p.balance.derive("c1", starting_balance=0.1),
        "starting_balance must be exact",
    ),
    ("derive period", lambda p: p.balance.derive("c1", period="2026-13"), "period must be 'YYYY-MM'"),
    ("derive time_preset", lambda p: p.balance.derive("c1", time_preset="last_week"), "time_preset must be one of"),
    (
        "derive dates reversed",
        lambda p: p.balance.derive("c1", start_date=NEXT_DAY, end_date=DAY),
        "start_date must be before end_date",
    ),
    (
        "derive start without end",
        lambda p: p.balance.derive("c1", start_date=DAY),
        "start_date and end_date must be given together",
    ),
    (
        "derive checkpoint type alone",
        lambda p: p.balance.derive("c1", starting_checkpoint_type="proofRoot"),
        "needs starting_checkpoint",
    ),
    ("derive granularity", lambda p: p.balance.derive("c1", granularity="hour"), "granularity must be one of"),
    ("derive_for_period None", lambda p: p.balance.derive_for_period("c1", None), "derive_for_period needs a period"),
    ("derive_for_period bad", lambda p: p.balance.derive_for_period("c1", "11/2026"), "period must be 'YYYY-MM'"),
    ("derive_current_month 129", lambda p: p.balance.derive_current_month(LONG_ID), "customer_id must be at most 128"),
    ("derive_months_back 0", lambda p: p.balance.derive_months_back("c1", 0), "months must be a whole number >= 1"),
    ("derive_days_back 0", lambda p: p.balance.derive_days_back("c1", 0), "days must be a whole number >= 1"),
    # balance.compare
    (
        "compare your_balance float",
        lambda p: p.balance.compare("c1", your_balance=9.99, their_balance=1),
        "your_balance must be exact, not the float 9.99",
    ),
    (
        "compare their_balance None",
        lambda p: p.balance.compare("c1", your_balance=1, their_balance=None),
        "their_balance must be a Decimal",
    ),
    (
        "compare starting_balance float",
        lambda p: p.balance.compare("c1", your_balance=1, their_balance=1, starting_balance=2.5),
        "starting_balance must be exact",
    ),
    (
        "compare customer_id 129",
        lambda p: p.balance.compare(LONG_ID, your_balance=1, their_balance=1),
        "customer_id must be 1-128",
    ),
    # proofs and account
    ("receipt customer_id 129", lambda p: p.balance.receipt(LONG_ID), "customer_id must be at most 128"),
    ("receipt period", lambda p: p.balance.receipt("c1", period="2026-1"), "period must be 'YYYY-MM'"),
    (
        "invoice_proof customer_id None",
        lambda p: p.balance.invoice_proof(None),
        "customer_id must be a non-empty string",
    ),
    (
        "gaps from after to",
        lambda p: p.balance.gaps("c1", from_sequence=10, to_sequence=1),
        "from_sequence (10) must not be greater than to_sequence (1)",
    ),
    (
        "gaps from_sequence -1",
        lambda p: p.balance.gaps("c1", from_sequence=-1),
        "from_sequence must be a whole number >= 0",
    ),
    ("gaps limit 0", lambda p: p.balance.gaps("c1", limit=0), "limit must be a whole number >= 1"),
    ("gaps customer_id 129", lambda p: p.balance.gaps(LONG_ID), "customer_id must be at most 128"),
    # checkpoints
    ("checkpoint customer_id", lambda p: p.checkpoints.create(customer_id="a b"), "customer_id must be 1-128"),
    (
        "checkpoint fingerprints str",
        lambda p: p.checkpoints.create(fingerprints="abc"),
        "fingerprints must be a list of non-empty strings",
    ),
    (
        "checkpoint fingerprints int",
        lambda p: p.checkpoints.create(fingerprints=5),
        "fingerprints must be a list of non-empty strings",
    ),
    (
        "checkpoint fingerprints blank",
        lambda p: p.checkpoints.create(fingerprints=["a", " "]),
        "fingerprints must be a list",
    ),
    ("checkpoint mode empty", lambda p: p.checkpoints.create(mode=""), "mode must be a non-empty string"),
    ("checkpoint period", lambda p: p.checkpoints.create(period="2026-00"), "period must be 'YYYY-MM'"),
    ("checkpoints limit 0", lambda p: p.checkpoints.list(limit=0), "limit must be a whole number >= 1"),
    ("checkpoints offset -1", lambda p: p.checkpoints.list(offset=-1), "offset must be a whole number >= 0"),
    ("checkpoints customer_id", lambda p: p.checkpoints.list(customer_id=LONG_ID), "customer_id must be 1-128"),
    # customers
    ("customers limit 101", lambda p: p.customers.list(limit=101), "limit must be at most 100"),
    ("customers page 0", lambda p: p.customers.list(page=0), "page must be a whole number >= 1"),
    ("customers search empty", lambda p: p.customers.list(search=""), "search must be a non-empty string"),
    ("customer customer_id 129", lambda p: p.customers.get(LONG_ID), "customer_id must be at most 128"),
    ("customer delta_page 0", lambda p: p.customers.get("c1", delta_page=0), "delta_page must be a whole number >= 1"),
    (
        "customer delta_limit 0",
        lambda p: p.customers.get("c1", delta_limit=0),
        "delta_limit must be a whole number >= 1",
    ),
    ("customer period", lambda p: p.customers.get("c1", period="May"), "period must be 'YYYY-MM'"),
    # webhook deliveries
    ("deliveries limit 0", lambda p: p.webhook_deliveries.list(limit=0), "limit must be a whole number >= 1"),
    ("deliveries status empty", lambda p: p.webhook_deliveries.list(status=""), "status must be a non-empty string"),
    ("delivery retry event_id empty", lambda p: p.webhook_deliveries.retry(""), "event_id must be a non-empty string"),
    # public verification
    ("verify source", lambda p: p.verify("0xabc", source="web"), "source must be one of db, chain, both"),
    ("verify proof_root empty", lambda p: p.verify(""), "proof_root must be a non-empty string"),
    # summaries (queued locally, sent later: refused when queued)
    (
        "summary delta float",
        lambda p: p.summaries.queue(customer_id="c1", delta=0.1, window_start=DAY, window_end=NEXT_DAY),
        'Decimal("0.1")',
    ),
    (
        "summary reference 256",
        lambda p: p.summaries.queue(
            customer_id="c1", delta=1, window_start=DAY, window_end=NEXT_DAY, reference_id=LONG_REF
        ),
        "reference_id must be at most 255",
    ),
    (
        "summary reason 501",
        lambda p: p.summaries.queue(customer_id="c1", delta=1, window_start=DAY, window_end=NEXT_DAY, reason="x" * 501),
        "reason must be at most 500",
    ),
    (
        "summary window reversed",
        lambda p: p.summaries.queue(customer_id="c1", delta=1, window_start=NEXT_DAY, window_end=DAY),
        "window_end",
    ),
    ("summary_reference_id float", lambda p: summary_reference_id("c1", 0.1, DAY, NEXT_DAY), "delta must be exact"),  # type: ignore[arg-type]
]


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as m:
        yield m


@pytest.fixture
async def pac() -> AsyncIterator[AsyncPacSpace]:
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": "https://sandbox.test"}, max_retries=0) as client:
        yield client


async def run(call: Call, pac: AsyncPacSpace) -> None:
    """Make the call; list() returns a paginator (its checks run on the call), a coroutine is awaited."""
    result = call(pac)
    if inspect.isawaitable(result):
        await result


@pytest.mark.parametrize(("call", "message"), [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
async def test_a_bad_argument_is_refused_before_anything_is_sent(
    mocked: aioresponses, pac: AsyncPacSpace, call: Call, message: str
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await run(call, pac)
    assert message in str(caught.value)
    assert mocked.requests == {}  # nothing was sent


def test_every_row_has_its_own_name() -> None:
    names = [row[0] for row in ROWS]
    assert len(names) == len(set(names))


async def test_the_limits_themselves_are_accepted(mocked: aioresponses, pac: AsyncPacSpace) -> None:
    """The bounds are inclusive: at the limit, the request is made."""
    mocked.post(re.compile(r".*"), status=201, payload={"success": True, "data": {"recordId": "r", "status": "QUEUED"}})
    mocked.get(re.compile(r".*"), payload={"success": True, "data": {"gaps": []}}, repeat=True)
    await pac.balance.emit(**{**OK, "customer_id": "c" * 128, "reason": "x" * 500}, reference_id="r" * 255)
    await pac.balance.gaps("c" * 128, from_sequence=3, to_sequence=3)
    assert sum(len(requests) for requests in mocked.requests.values()) == 2
