"""An outbox file shared by clients of both environments: each drains only its own entries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from pacspace_async import AsyncPacSpace, Environment
from pacspace_async.outbox import Outbox
from pacspace_async.testing import Emulator


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(verify_delay=None) as emulator:
        yield emulator


def client(emu: Emulator, environment: Environment) -> AsyncPacSpace:
    return AsyncPacSpace(emu.create_key(environment), base_urls=emu.base_urls, max_retries=0, deadline=1.0)


async def test_a_drain_leaves_the_other_environments_entries_pending(
    emu: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = f"sqlite:///{tmp_path / 'outbox.sqlite3'}"
    async with client(emu, Environment.SANDBOX) as sandbox:
        stored = Outbox(sandbox, store)  # no drain: entries only stored
        for n in range(3):
            await stored.emit(customer_id="cust_1", delta=Decimal(-1), reason="usage", reference_id=f"r{n}")
        await stored.aclose()

    caplog.set_level(logging.WARNING, logger="pacspace")
    async with client(emu, Environment.PRODUCTION) as production, Outbox(production, store) as outbox:
        assert await outbox.flush(timeout=5) is True  # nothing of its own to send
        stats = await outbox.stats()
        assert (stats.pending, stats.dead, stats.other_environment) == (0, 0, 3)
        assert await outbox.dead_letters() == []
    assert emu.requests == []  # not one send refused for its key's environment
    assert "belong to the other environment" in caplog.text

    async with client(emu, Environment.SANDBOX) as sandbox, Outbox(sandbox, store) as outbox:
        assert await outbox.flush(timeout=10) is True
        assert (await outbox.stats()).other_environment == 0
    assert [d.reference_id for d in emu.deltas()] == ["r0", "r1", "r2"]


def test_a_claim_outlasts_the_clients_deadline() -> None:
    from pacspace_async.outbox._outbox import LEASE_SECONDS, lease_for

    assert lease_for(120.0) == LEASE_SECONDS
    assert lease_for(600.0) == 1200.0  # a long deadline: no second process sends while the first still may


async def test_sent_entries_are_forgotten_after_keep_sent(emu: Emulator) -> None:
    from datetime import timedelta

    from pacspace_async.errors import ConfigurationError
    from pacspace_async.outbox import MemoryStore

    store = MemoryStore()
    async with client(emu, Environment.SANDBOX) as pac:
        with pytest.raises(ConfigurationError, match="keep_sent"):
            Outbox(pac, store, keep_sent=-timedelta(seconds=1))
        async with Outbox(pac, store) as outbox:
            entry = await outbox.emit(customer_id="cust_1", delta=Decimal(-1), reason="usage")
            assert await outbox.flush(timeout=5) is True
        assert (await store.get(entry.id)) is not None  # kept a week by default: its record id stays readable

        async with Outbox(pac, store, keep_sent=timedelta(0)):
            for _ in range(500):  # the drain prunes when it starts, then hourly
                if await store.get(entry.id) is None:
                    break
                await asyncio.sleep(0.01)
        assert await store.get(entry.id) is None
    assert len(emu.deltas()) == 1
