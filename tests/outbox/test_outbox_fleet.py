"""Four worker processes draining one Postgres outbox of 2,000 entries against the emulator."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from decimal import Decimal

from pacspace_async import AsyncPacSpace
from pacspace_async.outbox import Outbox, OutboxEntry
from pacspace_async.outbox._postgres import PostgresStore
from pacspace_async.testing import Emulator

from .outbox_worker import finish, spawn

DELTA_PATH = "/api/v1/balance/delta"
COUNT, CUSTOMERS, WORKERS = 2000, 40, 4


async def enqueue(emu: Emulator, key: str, url: str) -> list[OutboxEntry]:
    async with AsyncPacSpace(key, base_urls=emu.base_urls) as pac:
        outbox = Outbox(pac, url)  # not started: the workers send
        entries = [
            await outbox.emit(
                customer_id=f"cust_{n % CUSTOMERS}", delta=Decimal(-n - 1), reason="usage", reference_id=f"inv_{n}"
            )
            for n in range(COUNT)
        ]
        await outbox.aclose()
    return entries


async def pending(url: str) -> int:
    store = PostgresStore(url)
    try:
        stats = await store.stats(now=time.time())
    finally:
        await store.aclose()
    return stats.pending + stats.dead


def test_four_worker_processes_drain_one_postgres_outbox_each_entry_once_in_order(postgres_url: str) -> None:
    with Emulator(verify_delay=None) as emu:
        producer_key = emu.create_key()
        entries = asyncio.run(enqueue(emu, producer_key, postgres_url))
        # One key per worker, so the emulator's request log says who sent what.
        keys = [emu.create_key() for _ in range(WORKERS)]
        workers = [spawn(postgres_url, emu.sandbox_url, key, "--concurrency", "8", "--short-waits") for key in keys]
        try:
            finals = [finish(worker) for worker in workers]
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.communicate()
        deltas = emu.deltas()
        posts = [r for r in emu.requests if r.method == "POST" and r.path == DELTA_PATH]

    assert all(final == {"pending": 0, "dead": 0, "in_flight": 0} for final in finals)
    assert asyncio.run(pending(postgres_url)) == 0
    # 2,000 deltas, one per entry, each customer's in the order stored.
    assert len(deltas) == COUNT
    assert Counter(d.reference_id for d in deltas) == Counter(e.reference_id for e in entries)
    by_customer: dict[str, list[str | None]] = {}
    for delta in deltas:
        by_customer.setdefault(delta.customer_id, []).append(delta.reference_id)
    for customer, recorded in by_customer.items():
        assert recorded == [e.reference_id for e in entries if e.customer_id == customer]
    # The emulator's idempotency memory would hide a second send: none was made at all.
    assert Counter(r.idempotency_key for r in posts) == Counter(e.idempotency_key for e in entries)
    assert all(r.status == 201 and not r.replayed for r in posts)
    # Every worker did part of the work.
    shares = Counter(r.key_id for r in posts)
    assert set(shares) == {key.split(".", 1)[0] for key in keys}
    assert sum(shares.values()) == COUNT
