"""The outbox: what a durable emit costs, and how fast the drain empties it, per store.

For each store (SQLite in a temporary directory; Postgres started from the ``pgserver`` wheel,
or the server in ``PACSPACE_TEST_POSTGRES_URL``), each round, on one `AsyncPacSpace` talking to
the loopback benchmark server:

1. *enqueue*: ``entries`` sequential ``await outbox.emit(...)`` with no drain running (each
   returns once its entry is committed: SQLite ``synchronous=FULL``, Postgres' default commit);
2. *direct, one caller*: as many sequential ``await pac.balance.emit(...)``;
3. *drain*: the drain started (``drain_concurrency`` sends at once) until ``flush()`` returns;
   the server must have answered exactly ``entries`` requests;
4. *direct, N at once*: as many ``balance.emit`` calls with the same concurrency.

The entries cycle over ``CUSTOMERS`` customers, since the drain keeps each customer's order
(one send at a time per customer). Ratios are paired by round, as elsewhere in the run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from pacspace_async import AsyncPacSpace
from pacspace_async.outbox import Outbox

from .clients import API_KEY
from .fixtures import ServerProcess

__all__ = ["OUTBOX_STORES", "NoPostgres", "run_outbox", "postgres_database"]

CUSTOMERS = 64
DELTA = Decimal("-42.50")
REASON = "bench"
POSTGRES_URL_VARIABLE = "PACSPACE_TEST_POSTGRES_URL"
OUTBOX_STORES = {"sqlite": "SQLite, a file in a temporary directory", "postgres": "Postgres, one connection"}


class NoPostgres(Exception):
    """No Postgres server could be had; the message says why."""


def _customer(index: int) -> str:
    return f"cust_{index % CUSTOMERS}"


@contextmanager
def _postgres_server() -> Iterator[str]:
    """A server URL whose user may create databases; raises `NoPostgres` saying why there is none."""
    given = os.environ.get(POSTGRES_URL_VARIABLE)
    if given:
        yield given
        return
    try:
        with warnings.catch_warnings():  # platformdirs, on a machine without XDG_RUNTIME_DIR
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError as error:
        raise NoPostgres(f"the pgserver package is not installed ({error})") from None
    # A short path outside any private directory: the server may run as another user, and its
    # Unix socket's name must stay within the length limit.
    directory = tempfile.mkdtemp(prefix="pacspace-pg-")
    server: Any = None
    try:
        try:
            server = pgserver.get_server(directory, cleanup_mode="stop")  # type: ignore[attr-defined]
        except Exception as error:
            raise NoPostgres(f"pgserver could not start a server ({type(error).__name__}: {error})") from None
        yield str(server.get_uri())
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database on a Postgres server, dropped afterwards (and the server stopped)."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    with _postgres_server() as url:
        name = f"pacspace_bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        try:
            yield urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
        finally:
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def _sqlite_file() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="pacspace-bench-outbox-") as directory:
        yield f"sqlite:///{Path(directory) / 'outbox.sqlite3'}"


async def _timed(work: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await work()
    return time.perf_counter() - started


async def _gather(calls: int, concurrency: int, call: Callable[[int], Awaitable[Any]]) -> None:
    remaining = iter(range(calls))

    async def worker() -> None:
        for index in remaining:
            await call(index)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _round(
    pac: AsyncPacSpace, store: str, entries: int, concurrency: int, server: ServerProcess
) -> dict[str, float]:
    outbox = Outbox(pac, store=store, drain_concurrency=concurrency)

    async def enqueue() -> None:
        for index in range(entries):
            await outbox.emit(customer_id=_customer(index), delta=DELTA, reason=REASON)

    async def direct_sequential() -> None:
        for index in range(entries):
            await pac.balance.emit(customer_id=_customer(index), delta=DELTA, reason=REASON)

    async def drain() -> None:
        outbox.start()
        if not await outbox.flush(timeout=300):
            raise RuntimeError("the outbox drain did not empty the outbox within 300 s")

    async def direct_concurrent() -> None:
        async def one(index: int) -> None:
            await pac.balance.emit(customer_id=_customer(index), delta=DELTA, reason=REASON)

        await _gather(entries, concurrency, one)

    try:
        enqueue_s = await _timed(enqueue)
        direct_s = await _timed(direct_sequential)
        before = server.stats()["requests"]
        drain_s = await _timed(drain)
        sent = server.stats()["requests"] - before
        stats = await outbox.stats()
    finally:
        await outbox.aclose()
    if sent != entries or stats.pending or stats.dead:
        raise RuntimeError(
            f"outbox drain: {entries} entries but {sent} sent, {stats.pending} pending, {stats.dead} dead"
        )
    concurrent_s = await _timed(direct_concurrent)
    return {
        "enqueue_us": enqueue_s / entries * 1e6,
        "direct_us": direct_s / entries * 1e6,
        "drain_per_s": entries / drain_s,
        "direct_concurrent_per_s": entries / concurrent_s,
    }


def _summary(rounds: list[dict[str, float]]) -> dict[str, Any]:
    def median(what: str) -> float:
        return statistics.median(r[what] for r in rounds)

    return {
        "enqueue_us": median("enqueue_us"),
        "enqueue_per_s": 1e6 / median("enqueue_us"),
        "direct_us": median("direct_us"),
        "enqueue_cost_ratio": statistics.median(r["enqueue_us"] / r["direct_us"] for r in rounds),
        "drain_per_s": median("drain_per_s"),
        "direct_concurrent_per_s": median("direct_concurrent_per_s"),
        "drain_vs_direct": statistics.median(r["drain_per_s"] / r["direct_concurrent_per_s"] for r in rounds),
        "rounds": rounds,
    }


@asynccontextmanager
async def _client(url: str) -> AsyncIterator[AsyncPacSpace]:
    pac = AsyncPacSpace(API_KEY, base_urls={"sandbox": url})
    try:
        yield pac
    finally:
        await pac.aclose()


async def _bench(store: str, url: str, entries: int, rounds: int, concurrency: int, server: ServerProcess) -> Any:
    async with _client(url) as pac:
        await _round(pac, store, max(entries // 10, concurrency), concurrency, server)  # warm-up
        return _summary([await _round(pac, store, entries, concurrency, server) for _ in range(rounds)])


def run_outbox(
    loop: asyncio.AbstractEventLoop,
    server: ServerProcess,
    stores: list[str],
    *,
    entries: int,
    rounds: int,
    concurrency: int = 8,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every selected store measured; a store that cannot be had is recorded with the reason."""
    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name in stores:
        place = _sqlite_file() if name == "sqlite" else postgres_database()
        try:
            with place as store:
                entry = loop.run_until_complete(_bench(store, server.http_url, entries, rounds, concurrency, server))
        except NoPostgres as error:
            skipped[name] = str(error)
            log(f"outbox: Postgres row skipped: {error}")
            continue
        entry["title"] = OUTBOX_STORES[name]
        results[name] = entry
        log(
            f"outbox/{name}: {entry['enqueue_per_s']:,.0f} durable emits/s "
            f"({entry['enqueue_cost_ratio']:.1f}x a direct emit), drain {entry['drain_per_s']:,.0f}/s "
            f"({entry['drain_vs_direct']:.2f}x direct at {concurrency})"
        )
    return {
        "entries": entries,
        "rounds": rounds,
        "concurrency": concurrency,
        "customers": CUSTOMERS,
        "stores": results,
        "skipped": skipped,
    }
