"""The Postgres store on a real server: URLs, concurrent claims, and four workers draining one outbox."""

from __future__ import annotations

import asyncio
import sys
import traceback
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal

import pytest

from pacspace_async import AsyncPacSpace
from pacspace_async.errors import ConfigurationError
from pacspace_async.outbox import Outbox, OutboxClock, OutboxEntry, OutboxFullError, StoredEntry, open_store
from pacspace_async.outbox._postgres import PostgresStore, url_without_password
from pacspace_async.testing import Emulator

NOW = 1_700_000_000.0
ROOMY = {"max_entries": 100_000, "max_bytes": 100_000_000}


def test_postgres_urls_open_a_postgres_store_that_never_shows_the_password() -> None:
    store = open_store("postgresql://agent:hunter2@db.internal:5432/outbox")
    assert isinstance(store, PostgresStore)
    assert "hunter2" not in repr(store)
    assert store.url == "postgresql://agent:****@db.internal:5432/outbox"
    assert isinstance(open_store("postgres://agent@db/outbox"), PostgresStore)
    assert url_without_password("postgresql://agent@db/outbox") == "postgresql://agent@db/outbox"
    with pytest.raises(ConfigurationError, match="postgresql://"):
        PostgresStore("mysql://agent:hunter2@db/outbox")


async def test_a_server_that_cannot_be_reached_is_named_without_the_password() -> None:
    store = PostgresStore("postgresql://agent:hunter2@127.0.0.1:1/outbox?connect_timeout=2")
    with pytest.raises(ConfigurationError, match="cannot open the Postgres outbox") as caught:
        await store.stats(now=NOW)
    shown = "".join(traceback.format_exception(caught.type, caught.value, caught.tb))
    assert "postgresql://agent:****@127.0.0.1:1/outbox" in shown
    assert "hunter2" not in shown


async def test_without_the_driver_the_store_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now raises ImportError
    with pytest.raises(ConfigurationError, match=r"pacspace\[postgres\]"):
        await PostgresStore("postgresql://agent@db/outbox").stats(now=NOW)


async def test_concurrent_claimers_never_share_an_entry_and_keep_each_customers_order(postgres_url: str) -> None:
    stores = [PostgresStore(postgres_url) for _ in range(4)]
    customers, per_customer = 25, 6
    try:
        for n in range(customers * per_customer):
            await stores[0].add(
                StoredEntry(
                    id=f"e{n:04d}",
                    customer_id=f"cust_{n % customers}",
                    idempotency_key=f"k{n}",
                    body="{}",
                    created_at=NOW,
                ),
                **ROOMY,
            )
        sent: list[StoredEntry] = []

        async def work(store: PostgresStore) -> None:
            while len(sent) < customers * per_customer:
                for claimed in await store.claim(now=NOW, limit=5, lease_seconds=300):
                    sent.append(claimed)
                    await store.mark_sent(claimed.id, record_id=f"rec_{claimed.id}")
                await asyncio.sleep(0)

        await asyncio.wait_for(asyncio.gather(*(work(store) for store in stores)), 60)
    finally:
        for store in stores:
            await store.aclose()

    assert Counter(entry.id for entry in sent) == Counter(f"e{n:04d}" for n in range(customers * per_customer))
    for customer in range(customers):
        line = [entry.id for entry in sent if entry.customer_id == f"cust_{customer}"]
        assert line == sorted(line)


class ClaimLog(PostgresStore):
    """A Postgres store that remembers what it handed out."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.claimed: list[str] = []

    async def claim(
        self, *, now: float, limit: int, lease_seconds: float, environment: str | None = None
    ) -> Sequence[StoredEntry]:
        claimed = await super().claim(now=now, limit=limit, lease_seconds=lease_seconds, environment=environment)
        self.claimed += [entry.id for entry in claimed]
        return claimed


async def test_four_workers_drain_one_postgres_outbox_once_in_order(postgres_url: str) -> None:
    count, customers = 400, 20
    # Real wall time (leases must not run out under the workers), short idle waits.
    clock = OutboxClock(sleep=lambda seconds: asyncio.sleep(min(seconds, 0.02)))
    async with Emulator(verify_delay=None) as emu:
        key = emu.create_key()
        async with AsyncPacSpace(key, base_urls=emu.base_urls, max_retries=0) as pac:
            producer = Outbox(pac, postgres_url, clock=clock)
            entries: list[OutboxEntry] = [
                await producer.emit(
                    customer_id=f"cust_{n % customers}", delta=Decimal(-n - 1), reason="usage", reference_id=f"inv_{n}"
                )
                for n in range(count)
            ]
            await producer.aclose()

        pacs = [AsyncPacSpace(key, base_urls=emu.base_urls, max_retries=0) for _ in range(4)]
        stores = [ClaimLog(postgres_url) for _ in pacs]
        workers = [
            Outbox(pac, store, drain_concurrency=4, clock=clock) for pac, store in zip(pacs, stores, strict=True)
        ]
        try:
            for worker in workers:
                worker.start()
            flushed = await asyncio.gather(*(worker.flush(timeout=120) for worker in workers))
            assert all(flushed)
        finally:
            for worker in workers:
                await worker.aclose(timeout=0)
            for pac in pacs:
                await pac.aclose()

        deltas = emu.deltas()
        assert Counter(d.reference_id for d in deltas) == Counter(e.reference_id for e in entries)
        for customer in {e.customer_id for e in entries}:
            expected = [e.reference_id for e in entries if e.customer_id == customer]
            assert [d.reference_id for d in emu.deltas(customer)] == expected
        # The emulator's idempotency memory would hide a double send: each entry was claimed
        # once, by one worker, and every worker took a share.
        claims = Counter(entry_id for store in stores for entry_id in store.claimed)
        assert claims == Counter(e.id for e in entries)
        assert all(store.claimed for store in stores)


async def test_a_table_of_an_earlier_version_is_brought_up_to_date(postgres_url: str) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as db:
        # The first release's table: no trace_parent column.
        await db.execute(
            "CREATE TABLE pacspace_outbox_entries (seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
            "customer_id TEXT NOT NULL, idempotency_key TEXT NOT NULL, body TEXT NOT NULL, size BIGINT NOT NULL, "
            "created_at DOUBLE PRECISION NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
            "next_attempt_at DOUBLE PRECISION NOT NULL DEFAULT 0, lease_until DOUBLE PRECISION NOT NULL DEFAULT 0, "
            "record_id TEXT, error TEXT, error_code TEXT, needs_reconciliation BOOLEAN NOT NULL DEFAULT FALSE)"
        )
        await db.execute(
            "INSERT INTO pacspace_outbox_entries (id, customer_id, idempotency_key, body, size, created_at, state) "
            "VALUES ('old', 'cust_a', 'sandbox:balance.delta:old', '{}', 30, %s, 'pending')",
            (NOW,),
        )
    store = PostgresStore(postgres_url)
    try:
        with pytest.raises(OutboxFullError):  # the entries already there count against the limits
            await store.add(
                StoredEntry(id="z", customer_id="c", idempotency_key="sandbox:z", body="{}", created_at=NOW),
                max_entries=1,
                max_bytes=10**6,
            )
        [old] = await store.claim(now=NOW, limit=10, lease_seconds=300)
        assert (old.id, old.trace_parent) == ("old", None)
        entry = StoredEntry(
            id="new", customer_id="cust_b", idempotency_key="sandbox:k", body="{}", created_at=NOW, trace_parent="00-x"
        )
        await store.add(entry, **ROOMY)
        stored = await store.get("new")
        assert stored is not None
        assert stored.trace_parent == "00-x"
    finally:
        await store.aclose()
