"""Metrics against the emulator: request durations, retries, gate waits."""

from __future__ import annotations

from decimal import Decimal

import pytest
from conftest import FakeClock

from pacspace_async.testing import Emulator

from .telemetry_helpers import Otel

DELTA = "/api/v1/balance/delta"


async def test_every_attempt_is_timed_and_every_retry_counted(emu: Emulator, otel: Otel, fake_clock: FakeClock) -> None:
    emu.inject("503", method="POST", path=DELTA)
    emu.inject("drop_before_write", method="POST", path=DELTA)
    async with emu.client(max_retries=3) as client:
        pac = otel.traced(client, clock=fake_clock.clock())
        await pac.balance.emit(customer_id="cust_1", delta=Decimal(1), reason="x")
        await pac.balance.usage()

    durations = otel.points("http.client.request.duration")
    by_outcome = {
        (p.attributes["url.template"], p.attributes.get("http.response.status_code"), p.attributes.get("error.type")): p
        for p in durations
    }
    assert set(by_outcome) == {
        (DELTA, 503, "SERVICE_UNAVAILABLE"),
        (DELTA, None, "APIConnectionError"),
        (DELTA, 201, None),
        ("/api/v1/balance/usage", 200, None),
    }
    port = int(emu.sandbox_url.rsplit(":", 1)[1])
    for point in durations:
        assert point.count == 1
        assert point.sum >= 0
        assert point.attributes["server.address"] == "127.0.0.1"
        assert point.attributes["server.port"] == port
        assert point.attributes["http.request.method"] in ("GET", "POST")
        assert point.attributes["pacspace.environment"] == "sandbox"
        # The semantic conventions' advised buckets, in seconds (not the SDK's millisecond ones).
        assert tuple(point.explicit_bounds)[:3] == (0.005, 0.01, 0.025)

    retries = otel.points("pacspace.client.retries")
    assert {p.attributes["pacspace.retry.reason"]: p.value for p in retries} == {"503": 1, "connection": 1}
    assert not otel.points("pacspace.client.gate.wait")


@pytest.mark.pacspace_emulator(rate_limit=20)
async def test_gate_waits_are_measured(pacspace_emulator: Emulator, otel: Otel) -> None:
    async with pacspace_emulator.client() as client:
        pac = otel.traced(client)
        for _ in range(25):
            await pac.balance.limits()
    (waits,) = otel.points("pacspace.client.gate.wait")
    assert waits.count >= 1
    assert waits.sum > 0
    assert waits.attributes == {"pacspace.environment": "sandbox"}
    assert {p.attributes["pacspace.retry.reason"] for p in otel.points("pacspace.client.retries")} == {"429"}
