"""Signed webhook deliveries to a loopback receiver, retries, listing and manual re-sends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pacspace_async import (
    CheckpointVerifiedData,
    DeltaFailedData,
    DeltaVerifiedData,
    NotFoundError,
    WebhookVerificationError,
    WebhookVerifier,
)
from pacspace_async.testing import Emulator

from .emulator_helpers import Receiver, eventually

pytestmark = pytest.mark.pacspace_emulator(verify_delay=0.01, webhook_retry_delays=(0.01, 0.02))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


async def test_a_delivery_verifies_and_a_tampered_one_does_not(pacspace_emulator: Emulator, receiver: Receiver) -> None:
    secret = pacspace_emulator.register_webhook(receiver.url)
    assert secret.startswith("whsec_")
    async with pacspace_emulator.client() as pac:
        record = await pac.balance.emit_and_wait(
            customer_id="cust_1", delta=-5, reason="usage", reference_id="inv_1", poll_interval=0.01
        )
    await pacspace_emulator.wait_for_deliveries()
    ((headers, body),) = receiver.deliveries
    assert headers["X-Webhook-Event"] == "delta.verified"
    assert headers["X-Event-ID"].startswith("evt_")
    assert headers["X-PacSpace-Signature"].startswith("v1=")

    event = WebhookVerifier(secret).verify(headers, body)
    assert event.type == "delta.verified"
    assert event.id == headers["X-Event-ID"]
    assert isinstance(event.data, DeltaVerifiedData)
    assert (event.data.record_id, event.data.customer_id, event.data.delta) == (record.record_id, "cust_1", -5)
    assert event.data.receipt_id == record.receipt_id
    assert event.data.reference_id == "inv_1"
    assert event.data.verification_reference == record.raw["verificationReference"]

    tampered = body.replace(b'"delta":-5', b'"delta":-500')
    assert tampered != body
    with pytest.raises(WebhookVerificationError):
        WebhookVerifier(secret).verify(headers, tampered)
    with pytest.raises(WebhookVerificationError):
        WebhookVerifier("whsec_someone_else").verify(headers, body)
    forged = {**headers, "X-PacSpace-Timestamp": str(int(headers["X-PacSpace-Timestamp"]) + 1)}
    with pytest.raises(WebhookVerificationError):
        WebhookVerifier(secret).verify(forged, body)

    (delivery,) = pacspace_emulator.deliveries
    assert delivery.status == "delivered"
    assert delivery.body == body
    assert [a.status_code for a in delivery.attempts] == [200]


async def test_failed_deltas_and_checkpoints_are_delivered_too(pacspace_emulator: Emulator, receiver: Receiver) -> None:
    secret = pacspace_emulator.register_webhook(receiver.url, "whsec_fixed_for_test", environment="sandbox")
    assert secret == "whsec_fixed_for_test"
    pacspace_emulator.fail_rule = lambda delta: delta["delta"] < -100
    async with pacspace_emulator.client() as pac, pacspace_emulator.client("production") as live:
        failed = await pac.balance.emit(customer_id="cust_1", delta=-500, reason="usage")
        await pac.balance.emit(customer_id="cust_1", delta=5, reason="top_up")
        await live.balance.emit(customer_id="cust_1", delta=5, reason="top_up")  # not subscribed
        pacspace_emulator.settle()
        checkpoint = await pac.checkpoints.create(customer_id="cust_1")
        pacspace_emulator.settle()
    await pacspace_emulator.wait_for_deliveries()
    verifier = WebhookVerifier(secret)
    events = {event.type: event for event in (verifier.verify(h, b) for h, b in receiver.deliveries)}
    assert sorted(events) == ["checkpoint.verified", "delta.failed", "delta.verified"]
    failed_data = events["delta.failed"].data
    assert isinstance(failed_data, DeltaFailedData)
    assert failed_data.record_id == failed.record_id
    assert failed_data.error
    checkpoint_data = events["checkpoint.verified"].data
    assert isinstance(checkpoint_data, CheckpointVerifiedData)
    assert checkpoint_data.proof_root == checkpoint.proof_root
    assert len(receiver.deliveries) == 3


async def test_deliveries_are_retried_until_acknowledged(pacspace_emulator: Emulator, receiver: Receiver) -> None:
    secret = pacspace_emulator.register_webhook(receiver.url)
    receiver.statuses = [500, 503]
    async with pacspace_emulator.client() as pac:
        await pac.balance.emit(customer_id="cust_1", delta=1, reason="x")
        await eventually(lambda: len(receiver.deliveries) == 3)
        await pacspace_emulator.wait_for_deliveries()
        (delivery,) = pacspace_emulator.deliveries
        assert [a.status_code for a in delivery.attempts] == [500, 503, 200]
        assert delivery.status == "delivered"
        # Every attempt is signed afresh, and all carry the same event id.
        verifier = WebhookVerifier(secret)
        assert len({verifier.verify(h, b).id for h, b in receiver.deliveries}) == 1
        listed = await pac.webhook_deliveries.list()
        assert [(d.event_id, d.status, d.attempts) for d in listed] == [(delivery.event_id, "delivered", 3)]


async def test_exhausted_deliveries_are_listed_as_failed_and_can_be_retried(
    pacspace_emulator: Emulator, receiver: Receiver
) -> None:
    pacspace_emulator.register_webhook(receiver.url)
    receiver.statuses = [500, 500, 500]
    async with pacspace_emulator.client() as pac:
        await pac.balance.emit(customer_id="cust_1", delta=1, reason="x")
        await eventually(lambda: len(receiver.deliveries) == 3)
        await pacspace_emulator.wait_for_deliveries()
        failed = [d async for d in pac.webhook_deliveries.list(status="failed")]
        assert len(failed) == 1
        assert failed[0].attempts == 3
        assert failed[0].url == receiver.url
        assert failed[0].event == "delta.verified"
        assert failed[0].last_attempt_at is not None
        retried = await pac.webhook_deliveries.retry(failed[0].event_id or "")
        assert retried.status == "pending"
        await pacspace_emulator.wait_for_deliveries()
        assert len(receiver.deliveries) == 4
        assert (await pac.webhook_deliveries.list(status="delivered")).total == 1
        with pytest.raises(NotFoundError, match="EVENT_NOT_FOUND"):
            await pac.webhook_deliveries.retry("evt_missing")
