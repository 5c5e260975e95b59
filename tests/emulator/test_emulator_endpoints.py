"""Every endpoint the SDK calls, round-tripped through the SDK against the running emulator."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from pacspace_async import (
    AsyncPacSpace,
    DeltaInput,
    DeltaStatus,
    Environment,
    InvalidScopeCombinationError,
    NotFoundError,
    ScopeTooWideError,
)
from pacspace_async._errors import error_class_for
from pacspace_async.testing import Emulator

from .emulator_helpers import eventually

pytestmark = pytest.mark.pacspace_emulator(verify_delay=0.02)


def this_month() -> str:
    now = datetime.now(timezone.utc)
    return f"{now.year:04d}-{now.month:02d}"


async def raw_get(emu: Emulator, path: str, key: str | None = None) -> tuple[int, Any]:
    headers = {"X-Api-Key": key} if key else {}
    async with aiohttp.ClientSession() as session, session.get(emu.sandbox_url + path, headers=headers) as response:
        return response.status, await response.json()


async def test_emit_status_and_the_lifecycle_to_verified(pacspace_emulator: Emulator) -> None:
    pacspace_emulator.verify_delay = 0.4
    async with pacspace_emulator.client() as pac:
        record = await pac.balance.emit(
            customer_id="cust_1", delta=Decimal("-42.50"), reason="usage", reference_id="inv_1", metadata={"a": 1}
        )
        assert record.status == DeltaStatus.QUEUED
        assert (record.customer_id, record.delta, record.reason, record.reference_id) == (
            "cust_1",
            Decimal("-42.5"),
            "usage",
            "inv_1",
        )
        assert record.receipt_id is not None
        assert record.receipt_id.startswith("0x")
        assert len(record.receipt_id) == 66
        assert record.idempotency_key == "sandbox:balance.delta:cust_1:inv_1"
        seen = {record.status}
        final = None
        while final is None or not final.is_final:
            final = await pac.balance.status(record.record_id)
            seen.add(final.status)
            await asyncio.sleep(0.02)
        assert final.status == DeltaStatus.VERIFIED
        assert seen == {"QUEUED", "PROCESSING", "VERIFIED"}
        assert final.raw["verificationReference"].startswith("0x")
        (stored,) = pacspace_emulator.deltas("cust_1")
        assert stored.record_id == record.record_id
        assert stored.status == "VERIFIED"
        assert stored.delta == Decimal("-42.5")
        assert stored.idempotency_key == record.idempotency_key
        with pytest.raises(NotFoundError):
            await pac.balance.status("rec_missing")


@pytest.mark.pacspace_emulator(
    verify_delay=0.01, fail_rule=lambda delta: "over the limit" if delta["delta"] > 1000 else False
)
async def test_wait_for_verified_sees_verified_and_failed(pacspace_client: AsyncPacSpace) -> None:
    good = await pacspace_client.balance.emit_and_wait(
        customer_id="cust_1", delta=5, reason="top_up", poll_interval=0.01, timeout=5
    )
    bad = await pacspace_client.balance.emit(customer_id="cust_1", delta=5000, reason="top_up")
    failed = await pacspace_client.balance.wait_for_verified(bad.record_id, poll_interval=0.01, timeout=5)
    assert good.status == DeltaStatus.VERIFIED
    assert failed.status == DeltaStatus.FAILED
    assert failed.raw["error"] == "over the limit"


async def test_emit_batch_keeps_order_and_replays_known_references(
    pacspace_emulator: Emulator, pacspace_client: AsyncPacSpace
) -> None:
    first = await pacspace_client.balance.emit_batch(
        [
            DeltaInput(customer_id="cust_a", delta=-1, reason="usage", reference_id="u1"),
            DeltaInput(customer_id="cust_b", delta=Decimal("2.5"), reason="usage", reference_id="u2"),
            {"customer_id": "cust_a", "delta": -3, "reason": "usage"},
        ]
    )
    assert [r.index for r in first.results] == [0, 1, 2]
    assert [r.customer_id for r in first.results] == ["cust_a", "cust_b", "cust_a"]
    assert (first.total_queued, first.total_failed, first.replayed) == (3, 0, 0)
    again = await pacspace_client.balance.emit_batch(
        [
            DeltaInput(customer_id="cust_a", delta=-1, reason="usage", reference_id="u1"),
            DeltaInput(customer_id="cust_c", delta=7, reason="usage", reference_id="u3"),
        ],
        idempotency_key="second-batch",
    )
    assert again.results[0].replayed
    assert again.results[0].record_id == first.results[0].record_id
    assert not again.results[1].replayed
    assert len(pacspace_emulator.deltas()) == 4


async def test_derive_and_compare(pacspace_emulator: Emulator, pacspace_client: AsyncPacSpace) -> None:
    for delta in (100, -30, Decimal("-0.25")):
        await pacspace_client.balance.emit(customer_id="cust_1", delta=delta, reason="usage")
    derived = await pacspace_client.balance.derive("cust_1")
    assert derived.computed_balance == Decimal("69.75")
    assert derived.deltas_count == 3
    assert derived.period == this_month()
    assert len(derived.deltas) == 3
    assert (await pacspace_client.balance.derive_current_month("cust_1")).computed_balance == Decimal("69.75")
    assert (await pacspace_client.balance.derive_for_period("cust_1", this_month())).deltas_count == 3
    assert (await pacspace_client.balance.derive_months_back("cust_1", 2)).deltas_count == 3
    assert (await pacspace_client.balance.derive("cust_1", period="2020-01")).deltas_count == 0
    page = await pacspace_client.balance.derive("cust_1", starting_balance=10, limit=1, offset=1, granularity="day")
    assert page.computed_balance == Decimal("79.75")
    assert len(page.deltas) == 1
    assert page.raw["breakdown"][0]["deltasCount"] == 3

    comparison = await pacspace_client.balance.compare(
        "cust_1", your_balance=Decimal("69.75"), their_balance=Decimal("70")
    )
    assert comparison.neutral_balance == Decimal("69.75")
    assert (comparison.matches_yours, comparison.matches_theirs) == (True, False)

    with pytest.raises(NotFoundError) as missing:
        await pacspace_client.balance.derive("cust_nobody")
    assert missing.value.code == "CUSTOMER_NOT_FOUND"
    with pytest.raises(ScopeTooWideError):
        await pacspace_client.balance.derive("cust_1", start_date="2020-01-01", end_date="2026-01-01")


async def test_the_server_refuses_scope_combinations_the_sdk_would_not_send(pacspace_emulator: Emulator) -> None:
    key = pacspace_emulator.create_key()
    status, body = await raw_get(pacspace_emulator, "/api/v1/balance/limits", key)
    assert status == 200
    assert body["data"]["maxScopeMonths"] == 12
    async with AsyncPacSpace(key, base_urls=pacspace_emulator.base_urls) as pac:
        await pac.balance.emit(customer_id="cust_1", delta=1, reason="x")
    status, body = await raw_get(
        pacspace_emulator, f"/api/v1/balance/derive/cust_1?period={this_month()}&startingCheckpoint=0xabc", key
    )
    assert status == 400
    assert body["error"]["code"] == "INVALID_SCOPE_COMBINATION"
    # The SDK refuses this locally, so it is sent raw; its answer maps to the SDK's class.
    assert error_class_for(400, body["error"]["code"]) is InvalidScopeCombinationError


async def test_checkpoints_create_list_and_derive_from_one(
    pacspace_emulator: Emulator, pacspace_client: AsyncPacSpace
) -> None:
    await pacspace_client.balance.emit(customer_id="cust_1", delta=10, reason="top_up")
    await pacspace_client.balance.emit(customer_id="cust_2", delta=-4, reason="usage")
    pacspace_emulator.settle()
    checkpoint = await pacspace_client.checkpoints.create(customer_id="cust_1", period=this_month())
    assert checkpoint.checkpoint_id.startswith("chk_")
    assert checkpoint.status == "QUEUED"
    assert checkpoint.raw["deltaCount"] == 1
    same = await pacspace_client.checkpoints.create(customer_id="cust_1", period=this_month())
    assert same.checkpoint_id == checkpoint.checkpoint_id
    everyone = await pacspace_client.checkpoints.create()
    assert everyone.raw["deltaCount"] == 2
    pacspace_emulator.settle()
    listed = [c async for c in pacspace_client.checkpoints.list(limit=1)]
    assert [c.checkpoint_id for c in listed] == [everyone.checkpoint_id, checkpoint.checkpoint_id]
    assert all(c.status == "VERIFIED" for c in listed)
    mine = await pacspace_client.checkpoints.list(customer_id="cust_2")
    assert [c.checkpoint_id for c in mine] == [everyone.checkpoint_id]
    assert [c.checkpoint_id for c in pacspace_emulator.checkpoints("cust_1")] == [checkpoint.checkpoint_id]

    record = await pacspace_client.balance.emit(customer_id="cust_1", delta=5, reason="top_up")
    from_checkpoint = await pacspace_client.balance.derive(
        "cust_1", starting_checkpoint=record.record_id, starting_checkpoint_type="recordId"
    )
    assert from_checkpoint.deltas_count == 0
    assert from_checkpoint.computed_balance == Decimal(15)


async def test_receipt_and_invoice_proof(pacspace_emulator: Emulator, pacspace_client: AsyncPacSpace) -> None:
    await pacspace_client.balance.emit(customer_id="cust_1", delta=Decimal("12.5"), reason="top_up")
    await pacspace_client.balance.emit(customer_id="cust_1", delta=-2, reason="usage")
    pacspace_emulator.settle()
    receipt = await pacspace_client.balance.receipt("cust_1", period=this_month())
    proof = await pacspace_client.balance.invoice_proof("cust_1", period=this_month())
    assert receipt.receipt_id is not None
    assert receipt.receipt_id.startswith("rcpt_")
    assert receipt.proof_root == proof.proof_root
    assert (receipt.delta_count, receipt.starting_balance, receipt.final_balance) == (2, 0, Decimal("10.5"))
    for model in (receipt, proof):
        assert model.verify_url
        assert model.verification_api_url
        assert model.customer_link_url
        assert model.access_hint is not None
        assert len(model.access_hint) == 6
        assert model.customer_link_host == pacspace_emulator.sandbox_url.split("://")[1]
    # The machine link is a real URL on the emulator, and needs no key.
    async with aiohttp.ClientSession() as session, session.get(proof.verification_api_url or "") as response:
        body = await response.json()
    assert body["data"]["verified"] is True
    assert body["data"]["summary"]["recordCount"] == 2


async def test_usage_gaps_and_limits(pacspace_emulator: Emulator, pacspace_client: AsyncPacSpace) -> None:
    pacspace_emulator.fail_rule = lambda delta: delta["reason"] == "broken"
    for reason in ("ok", "broken", "broken", "ok"):
        await pacspace_client.balance.emit(customer_id="cust_1", delta=1, reason=reason)
    pacspace_emulator.settle()
    usage = await pacspace_client.balance.usage()
    assert usage.allowed is True
    assert usage.raw["consumedDeltas"] == 2
    assert usage.raw["failedDeltas"] == 2
    gaps = await pacspace_client.balance.gaps("cust_1")
    assert [(g["fromSequence"], g["toSequence"], g["reason"]) for g in gaps.gaps] == [(2, 3, "FAILED")]
    assert (await pacspace_client.balance.gaps("cust_1", from_sequence=4)).gaps == ()
    limits = await pacspace_client.balance.limits()
    assert (limits.max_scope_months, limits.max_last_n_days, limits.max_retention_days) == (12, 366, 730)


async def test_customers_list_get_and_summary(pacspace_emulator: Emulator, pacspace_client: AsyncPacSpace) -> None:
    for index in range(5):
        await pacspace_client.balance.emit(customer_id=f"acme_{index}", delta=index + 1, reason="top_up")
    await pacspace_client.balance.emit(customer_id="other", delta=-1, reason="usage")
    walked = [c.customer_id async for c in pacspace_client.customers.list(limit=2)]
    assert walked == ["acme_0", "acme_1", "acme_2", "acme_3", "acme_4", "other"]
    first = await pacspace_client.customers.list(search="ACME", limit=2)
    assert first.total == 5
    assert [c.customer_id for c in first] == ["acme_0", "acme_1"]
    assert first.items[0].total_deltas == 1
    assert first.items[0].first_delta_at is not None
    customer = await pacspace_client.customers.get("acme_4", delta_limit=10)
    assert customer.computed_balance == 5
    assert customer.total_deltas == 1
    assert customer.customer_partition == "sandbox"
    assert customer.recent_activity is not None
    assert customer.recent_activity["items"][0]["delta"] == 5
    summary = await pacspace_client.customers.summary()
    assert (summary.total_customers, summary.total_deltas) == (6, 6)
    with pytest.raises(NotFoundError):
        await pacspace_client.customers.get("nobody")


async def test_public_verify_needs_no_key(pacspace_emulator: Emulator, pacspace_client: AsyncPacSpace) -> None:
    record = await pacspace_client.balance.emit(customer_id="cust_1", delta=-5, reason="usage")
    async with AsyncPacSpace(base_urls=pacspace_emulator.base_urls, environment=Environment.SANDBOX) as public:
        pending = await public.verify(record.receipt_id or "")
        assert pending.verified is False
        pacspace_emulator.settle()
        done = await public.verify(record.receipt_id or "", source="both")
        assert done.verified is True
        assert done.proof_root == record.receipt_id
        assert done.summary is not None
        assert done.summary.net_change == -5
        assert done.verification is not None
        assert done.verification["verificationReference"].startswith("0x")
        checkpoint = await pacspace_client.checkpoints.create(customer_id="cust_1")
        pacspace_emulator.settle()
        assert (await public.verify(checkpoint.proof_root or "")).verified is True
        unknown = await public.verify("0x" + "ab" * 32)
        assert unknown.verified is False
        assert unknown.message
        # Roots are per environment: production never issued this one.
        assert (await public.verify(record.receipt_id or "", environment="production")).verified is False
    verify_requests = [r for r in pacspace_emulator.requests if r.path.startswith("/api/v1/verify/")]
    assert len(verify_requests) == 5
    assert all(r.key_id is None and r.status == 200 for r in verify_requests)


async def test_environments_are_separate(pacspace_emulator: Emulator) -> None:
    async with pacspace_emulator.client(Environment.PRODUCTION) as live, pacspace_emulator.client() as test:
        await live.balance.emit(customer_id="cust_1", delta=1, reason="x")
        await test.balance.emit(customer_id="cust_1", delta=2, reason="x")
        assert (await live.balance.derive("cust_1")).computed_balance == 1
        assert (await test.balance.derive("cust_1")).computed_balance == 2
    assert [d.delta for d in pacspace_emulator.deltas(environment="production")] == [1]
    assert pacspace_emulator.sandbox_url != pacspace_emulator.production_url
    await eventually(lambda: all(d.status == "VERIFIED" for d in pacspace_emulator.deltas()))


@pytest.mark.pacspace_emulator(cadence_seconds=60)
async def test_summaries_flush_as_batches_and_meet_the_cadence_limit(
    pacspace_emulator: Emulator, pacspace_client: AsyncPacSpace
) -> None:
    summaries = pacspace_client.summaries
    summaries.configure(auto_flush=False, max_requests_per_minute=60_000)
    for day in (1, 2):
        summaries.queue(
            customer_id="cust_1", delta=-day, window_start=f"2026-03-0{day}", window_end=f"2026-03-0{day + 1}"
        )
    summaries.queue(customer_id="cust_2", delta=-9, window_start="2026-03-01", window_end="2026-03-02")
    report = await summaries.flush()
    assert (report.submitted, report.failed, report.request_count) == (3, 0, 1)
    assert sorted(d.delta for d in pacspace_emulator.deltas()) == [-9, -2, -1]
    # cust_1 was written a moment ago: the next window waits for its cadence, and stays queued.
    summaries.queue(customer_id="cust_1", delta=-3, window_start="2026-03-03", window_end="2026-03-04")
    report = await summaries.flush()
    assert report.submitted == 0
    assert [f.error for f in report.failures] == ["CADENCE_LIMIT"]
    assert summaries.state().queued_count == 1
    assert len(pacspace_emulator.deltas()) == 3


async def test_derive_days_back(pacspace_client: AsyncPacSpace) -> None:
    await pacspace_client.balance.emit(customer_id="cust_1", delta=3, reason="x")
    derived = await pacspace_client.balance.derive_days_back("cust_1", 1)
    assert derived.computed_balance == 3
    assert derived.raw["startDate"].endswith("T00:00:00.000Z")
