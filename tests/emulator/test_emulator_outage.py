"""Outages (ports refusing connections, or every answer a 5xx) and answers held back after the write."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import time
import urllib.error
import urllib.request
from decimal import Decimal
from urllib.parse import urlsplit

import pytest

from pacspace_async import APIConnectionError, ServerError, ServiceUnavailableError
from pacspace_async.testing import Emulator

from .emulator_helpers import eventually

DELTA_PATH = "/api/v1/balance/delta"


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


async def refused(url: str) -> bool:
    try:
        _, writer = await asyncio.open_connection(*address(url))
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


async def test_a_refusing_outage_cuts_open_connections_refuses_new_ones_and_comes_back_on_the_same_port() -> None:
    async with Emulator(verify_delay=None) as emu, emu.client(max_retries=0) as pac:
        await pac.balance.emit(customer_id="cust_1", delta=-1, reason="usage")  # a kept-alive connection
        urls = dict(emu.base_urls)

        outage = emu.outage()
        assert outage.active
        assert await refused(emu.sandbox_url)
        assert await refused(emu.production_url)
        with pytest.raises(APIConnectionError):  # the pooled connection was cut, a new one refused
            await pac.balance.emit(customer_id="cust_1", delta=-2, reason="usage")
        assert len(emu.requests) == 1  # nothing reached the emulator while it was down

        await outage.aend()
        assert not outage.active
        assert emu.base_urls == urls
        assert not await refused(emu.sandbox_url)
        await pac.balance.emit(customer_id="cust_1", delta=-3, reason="usage")

    assert [d.delta for d in emu.deltas()] == [Decimal(-1), Decimal(-3)]


async def test_a_request_in_flight_when_the_outage_begins_loses_its_answer_but_not_its_write() -> None:
    async with Emulator(verify_delay=None) as emu, emu.client(max_retries=0) as pac:
        held = emu.hold_answers(method="POST", path=DELTA_PATH)
        sending = asyncio.ensure_future(
            pac.balance.emit(customer_id="cust_1", delta=-5, reason="usage", idempotency_key="k1")
        )
        await eventually(lambda: held.waiting == 1, timeout=30)

        async with emu.outage():
            with pytest.raises(APIConnectionError):
                await sending
            held.release()

        record = await pac.balance.emit(customer_id="cust_1", delta=-5, reason="usage", idempotency_key="k1")

    assert [d.record_id for d in emu.deltas()] == [record.record_id]
    assert [r.replayed for r in emu.requests] == [False, True]


def test_a_threaded_emulator_refuses_blocking_callers_during_an_outage() -> None:
    def status(url: str) -> int:
        try:
            with urllib.request.urlopen(url + "/nowhere", timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code

    with Emulator() as emu:
        assert status(emu.sandbox_url) == 404  # an answer: the server is up
        with emu.outage() as outage:
            with pytest.raises(urllib.error.URLError) as caught:
                status(emu.sandbox_url)
            assert isinstance(caught.value.reason, ConnectionRefusedError)
        assert not outage.active
        assert status(emu.sandbox_url) == 404


async def test_a_5xx_outage_answers_every_request_and_leaves_injected_faults_for_later() -> None:
    async with Emulator(verify_delay=None) as emu, emu.client(max_retries=0) as pac:
        emu.inject("500", method="POST", path=DELTA_PATH)
        async with emu.outage("503"):
            for _ in range(3):
                with pytest.raises(ServiceUnavailableError):
                    await pac.balance.emit(customer_id="cust_1", delta=-1, reason="usage")
            with pytest.raises(ServiceUnavailableError):
                await pac.balance.limits()
        with pytest.raises(ServerError) as caught:  # the injected fault waited for the outage to end
            await pac.balance.emit(customer_id="cust_1", delta=-1, reason="usage")
        assert caught.value.status == 500
        await pac.balance.emit(customer_id="cust_1", delta=-1, reason="usage")

    assert [(r.status, r.fault) for r in emu.requests] == [(503, "503")] * 4 + [(500, "500"), (201, None)]
    assert len(emu.deltas()) == 1


async def test_a_timed_outage_ends_on_its_own() -> None:
    async with Emulator(verify_delay=None) as emu, emu.client(max_retries=0) as pac:
        outage = emu.outage(seconds=0.05)
        assert await refused(emu.sandbox_url)
        await eventually(lambda: not outage.active, timeout=30)
        assert not await refused(emu.sandbox_url)
        await pac.balance.limits()


async def test_outages_are_checked_and_an_old_outage_never_ends_a_new_one() -> None:
    emu = Emulator()
    with pytest.raises(RuntimeError, match="not running"):
        emu.outage()
    async with emu:
        with pytest.raises(ValueError, match="refuse"):
            emu.outage("404")
        with pytest.raises(ValueError, match="seconds"):
            emu.outage(seconds=0)
        first = emu.outage()
        with pytest.raises(RuntimeError, match="already on"):
            emu.outage("503")
        await first.aend()
        await first.aend()  # ending twice is harmless
        second = emu.outage()
        await first.aend()
        assert second.active
        assert await refused(emu.sandbox_url)
        await second.aend()
        assert not await refused(emu.sandbox_url)


async def test_closing_during_an_outage_frees_the_ports() -> None:
    emu = await Emulator().start()
    ports = [address(url)[1] for url in emu.base_urls.values()]
    emu.outage()
    await emu.aclose()
    for port in ports:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))  # nothing of the emulator still holds it


async def test_held_answers_wait_after_the_write_until_released() -> None:
    async with Emulator(verify_delay=None) as emu, emu.client(max_retries=0) as pac:
        held = emu.hold_answers(method="POST", path=DELTA_PATH, count=2)
        sends = [
            asyncio.ensure_future(pac.balance.emit(customer_id=f"cust_{n}", delta=-1, reason="usage")) for n in range(3)
        ]
        await eventually(lambda: held.waiting == 2 and sum(send.done() for send in sends) == 1, timeout=30)
        assert len(emu.deltas()) == 3  # all three were written; two answers wait
        assert (held.caught, held.waiting) == (2, 2)

        held.release()
        records = await asyncio.gather(*sends)
        await pac.balance.emit(customer_id="cust_9", delta=-1, reason="usage")  # nothing held after release

    assert held.waiting == 0
    assert sorted(d.record_id for d in emu.deltas()[:3]) == sorted(r.record_id for r in records)
    with pytest.raises(ValueError, match="count"):
        emu.hold_answers(count=0)


def test_held_answers_are_released_by_the_with_block_of_sync_code() -> None:
    with Emulator(verify_delay=None) as emu:
        key = emu.create_key()
        request = urllib.request.Request(
            emu.sandbox_url + DELTA_PATH,
            data=b'{"customerId": "c", "delta": 1, "reason": "x"}',
            headers={"X-Api-Key": key, "Content-Type": "application/json"},
        )

        def send() -> int:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status)

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            with emu.hold_answers(path=DELTA_PATH) as held:
                answer = pool.submit(send)
                deadline = time.monotonic() + 30
                while held.waiting < 1 and time.monotonic() < deadline:
                    time.sleep(0.005)
                assert len(emu.deltas()) == 1  # written, its answer kept back
                assert not answer.done()
            assert answer.result(timeout=30) == 201
        assert held.waiting == 0
        assert send() == 201
        assert len(emu.deltas()) == 2
