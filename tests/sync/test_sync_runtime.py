"""The sync client's runtime: its loop thread, threads, running loops, fork, closing, pagination.

The loopback server runs on the test's event loop; every sync call is made from a worker thread.
"""

from __future__ import annotations

import asyncio
import gc
import os
import select
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from sync_test_support import SANDBOX_KEY, LoopbackServer, delta_record, ok

from pacspace_sync import CustomerListItem, InvalidArgumentError, PacSpace, Page, Paginator
from pacspace_sync._portal import THREAD_NAME

DELTA = "/api/v1/balance/delta"
CUSTOMERS = "/api/v1/balance/customers"
EMIT = {"customer_id": "cust_1", "delta": Decimal("-5"), "reason": "usage"}
Make = Callable[[], LoopbackServer]


def loop_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == THREAD_NAME]


async def emit_server(loopback: Make) -> LoopbackServer:
    server = loopback()
    count = 0

    async def emit(request: web.Request) -> web.Response:
        nonlocal count
        count += 1
        return ok(delta_record(f"rec_{count}"), status=201)

    server.route("POST", DELTA, emit)
    await server.start()
    return server


def test_construction_does_no_io_and_starts_no_thread() -> None:
    before = set(threading.enumerate())  # threads of earlier tests may still be ending: compare sets
    pac = PacSpace(SANDBOX_KEY, base_urls={"sandbox": "http://127.0.0.1:9"})
    copy = pac.with_options(timeout=5)
    _ = (pac.balance, pac.customers.list(limit=2), pac.environment, pac.key_id, repr(pac))
    assert set(threading.enumerate()) <= before
    assert copy._portal is pac._portal
    assert repr(pac).startswith("PacSpace(")
    pac.close()
    assert set(threading.enumerate()) <= before  # close() started the loop thread and joined it
    assert pac.is_closed


def test_configuration_errors_are_raised_at_construction_in_the_callers_thread() -> None:
    with pytest.raises(InvalidArgumentError):
        PacSpace(SANDBOX_KEY, timeout=-1)
    with pytest.raises(InvalidArgumentError):
        PacSpace(SANDBOX_KEY).customers.list(limit=0)


async def test_sixteen_threads_share_one_loop_thread_and_one_pool(loopback: Make) -> None:
    server = await emit_server(loopback)
    pac = PacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url})
    before = len(loop_threads())

    def hammer() -> list[str]:
        def fifty(_: int) -> list[str]:
            return [pac.balance.emit(**EMIT).record_id for _ in range(50)]

        with ThreadPoolExecutor(16) as pool:
            results = [record for batch in pool.map(fifty, range(16)) for record in batch]
        assert len(loop_threads()) == before + 1  # one loop thread for all sixteen callers
        return results

    records = await asyncio.to_thread(hammer)
    assert len(records) == len(set(records)) == 800
    assert len(server.requests) == 800
    assert 1 <= server.connections <= 16  # bounded by the callers, and kept alive across calls
    await asyncio.to_thread(pac.close)
    assert len(loop_threads()) == before


async def test_a_call_from_inside_a_running_loop_works_and_warns_once(loopback: Make) -> None:
    server = await emit_server(loopback)
    pac = PacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url})

    async def notebook_cell() -> list[str]:
        return [pac.balance.emit(**EMIT).record_id for _ in range(3)]

    def run() -> tuple[list[str], list[warnings.WarningMessage]]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            records = asyncio.run(notebook_cell())
            records += asyncio.run(notebook_cell())
        return records, [w for w in caught if issubclass(w.category, RuntimeWarning)]

    records, caught = await asyncio.to_thread(run)
    assert records == [f"rec_{n}" for n in range(1, 7)]
    assert len(caught) == 1
    assert "blocks the running loop; prefer AsyncPacSpace there" in str(caught[0].message)
    assert caught[0].filename == __file__  # points at the caller's line
    await asyncio.to_thread(pac.close)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
async def test_a_forked_child_uses_fresh_connections_and_the_parent_keeps_its_own(loopback: Make) -> None:
    server = await emit_server(loopback)
    pac = PacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url})
    await asyncio.to_thread(pac.balance.emit, **EMIT)  # the parent now has a pooled connection

    def fork_and_wait() -> bytes:
        read_end, write_end = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() with threads
            pid = os.fork()
        if pid == 0:  # the child: use the inherited client, report, leave without cleanup
            try:
                os.close(read_end)
                record = pac.balance.emit(**EMIT)
                os.write(write_end, f"ok {record.record_id}".encode())
            except BaseException as error:
                os.write(write_end, f"error {error!r}".encode()[:500])
            finally:
                os._exit(0)
        os.close(write_end)
        try:
            ready, _, _ = select.select([read_end], [], [], 10)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                return b"timeout"
            return os.read(read_end, 1000)
        finally:
            os.close(read_end)
            os.waitpid(pid, 0)

    report = await asyncio.to_thread(fork_and_wait)
    assert report == b"ok rec_2", report
    await asyncio.to_thread(pac.balance.emit, **EMIT)  # the parent, after the fork
    parent_first, child, parent_after = server.request_transports
    assert child is not parent_first  # the child never touched the parent's socket
    assert parent_after is parent_first  # the parent's pool is intact and reused
    await asyncio.to_thread(pac.close)


async def test_close_is_idempotent_and_a_closed_client_says_what_to_do(loopback: Make) -> None:
    server = await emit_server(loopback)
    pac = PacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url})
    before = len(loop_threads())
    await asyncio.to_thread(pac.balance.emit, **EMIT)
    thread = pac._portal.thread
    assert thread is not None
    assert thread.daemon
    await asyncio.to_thread(pac.close)
    await asyncio.to_thread(pac.close)
    assert not thread.is_alive()
    assert len(loop_threads()) == before
    assert pac.is_closed
    with pytest.raises(RuntimeError, match=r"closed; create a new PacSpace"):
        await asyncio.to_thread(pac.balance.emit, **EMIT)
    with pytest.raises(RuntimeError, match=r"closed"):
        pac.with_options(timeout=1).verify("0xabc")
    assert len(server.requests) == 1


async def test_with_closes_the_client(loopback: Make) -> None:
    server = await emit_server(loopback)

    def use() -> tuple[PacSpace, threading.Thread | None]:
        with PacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url}) as pac:
            pac.balance.emit(**EMIT)
            fast = pac.with_options(timeout=5, max_retries=0)
            fast.balance.emit(**EMIT)  # a copy shares the loop thread and the pool
            return pac, pac._portal.thread

    pac, thread = await asyncio.to_thread(use)
    assert pac.is_closed
    assert thread is not None
    assert not thread.is_alive()
    assert server.connections == 1


async def test_an_unclosed_client_only_warns_when_collected(loopback: Make) -> None:
    server = await emit_server(loopback)
    pac = PacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url})
    # A thread of our own, joined (it drops its target when done): an executor's work item
    # could still hold the client when the test drops its last reference.
    worker = threading.Thread(target=pac.balance.emit, kwargs=EMIT)
    worker.start()
    await asyncio.to_thread(worker.join)

    # A result reaches the caller before the loop has finished the call's task, whose done
    # callback still holds the portal for a moment: wait for it, or nothing is collected yet.
    def bookkeeping_done(tasks: dict[Any, Any]) -> None:  # the dict only: the portal must be collectable
        while tasks:
            threading.Event().wait(0.001)

    engine = pac._portal._engine
    assert engine is not None
    await asyncio.to_thread(bookkeeping_done, engine.tasks)
    wrapped, thread = pac._wrapped, pac._portal.thread
    assert thread is not None
    holder = [pac]
    del pac
    with pytest.warns(ResourceWarning, match="not closed"):
        holder.clear()  # the last reference: collected at once
    gc.collect()
    assert thread.is_alive()  # nothing was stopped or scheduled from __del__
    await asyncio.to_thread(engine.run, wrapped.aclose, promotable=True, internal=True)  # tidy up by hand
    engine.stop()
    await asyncio.to_thread(thread.join)


async def test_pagination_walks_every_page_one_hop_per_page(loopback: Make) -> None:
    server = loopback()
    everyone = [{"customerId": f"cust_{n}", "totalDeltas": n} for n in range(1, 6)]

    async def customers(request: web.Request) -> web.Response:
        page, limit = int(request.query["page"]), int(request.query["limit"])
        items = everyone[(page - 1) * limit : page * limit]
        return ok({"customers": items, "pagination": {"page": page, "limit": limit, "total": 5, "totalPages": 3}})

    server.route("GET", CUSTOMERS, customers)
    url = await server.start()
    pac = PacSpace(SANDBOX_KEY, base_urls={"sandbox": url})

    def walk() -> dict[str, Any]:
        paginator = pac.customers.list(limit=2)
        assert isinstance(paginator, Paginator)
        ids = [customer.customer_id for customer in paginator]
        after_items = len(server.requests)
        for _ in pac.customers.list(limit=2):
            break  # leaving early fetches nothing more, and closes the walk quietly
        first = paginator.first_page()
        assert isinstance(first, Page)
        second = first.next_page()
        third = second.next_page()
        return {
            "ids": ids,
            "after_items": after_items,
            "first": ([c.customer_id for c in first], len(first), first.has_next_page(), first.total),
            "second": [c.customer_id for c in second.items],
            "third": ([c.customer_id for c in third], third.has_next_page()),
            "pages": [len(page) for page in pac.customers.list(limit=2).pages()],
            "types": {type(c) for c in first},
        }

    seen = await asyncio.to_thread(walk)
    assert seen["ids"] == [f"cust_{n}" for n in range(1, 6)]
    assert seen["after_items"] == 3  # three pages, three requests
    assert seen["first"] == (["cust_1", "cust_2"], 2, True, 5)
    assert seen["second"] == ["cust_3", "cust_4"]
    assert seen["third"] == (["cust_5"], False)
    assert seen["pages"] == [2, 2, 1]
    assert seen["types"] == {CustomerListItem}
    assert [request.query["page"] for request in server.requests] == ["1", "2", "3", "1", "1", "2", "3", "1", "2", "3"]
    await asyncio.to_thread(pac.close)


async def test_summaries_queue_runs_in_the_clients_loop(loopback: Make) -> None:
    pac = PacSpace(SANDBOX_KEY, base_urls={"sandbox": "http://127.0.0.1:9"})

    def queue() -> bool:
        pac.summaries.queue(
            customer_id="cust_1",
            delta=Decimal("-3"),
            window_start="2026-03-17T00:00:00Z",
            window_end="2026-03-18T00:00:00Z",
        )
        return pac.summaries.state().is_running  # its timer task lives on the client's loop

    assert await asyncio.to_thread(queue)
    await asyncio.to_thread(pac.close, flush_summaries=False)
    assert pac.is_closed


def test_the_loop_thread_never_holds_up_interpreter_exit() -> None:
    import subprocess

    code = (
        "from pacspace_sync import PacSpace\n"
        "pac = PacSpace(None, base_urls={'production': 'http://127.0.0.1:9'})\n"
        "try:\n"
        "    pac.verify('0xabc', max_retries=0, timeout=0.5)\n"
        "except Exception as error:\n"
        "    print(type(error).__name__)\n"
        "# no close(): the interpreter must still exit\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=15, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "APIConnectionError"


def test_a_call_in_flight_in_another_thread_finishes_before_close_closes_the_pools() -> None:
    from pacspace_async.testing import Emulator

    with Emulator(verify_delay=None) as emu:
        pac = PacSpace(emu.create_key(), base_urls=emu.base_urls, max_retries=0)
        pac.balance.emit(customer_id="warm", delta=Decimal(1), reason="usage")  # a pooled connection
        emu.inject("slow", path="/api/v1/balance/delta", seconds=0.3)
        outcome: list[object] = []
        started = threading.Event()

        def emit() -> None:
            started.set()
            try:
                outcome.append(pac.balance.emit(customer_id="c1", delta=Decimal(1), reason="usage").status)
            except BaseException as error:  # whatever comes out is the outcome
                outcome.append(error)

        worker = threading.Thread(target=emit)
        worker.start()
        started.wait()
        threading.Event().wait(0.1)  # the emit is now inside its 0.3 s slow answer
        pac.close()
        worker.join()
        assert outcome == ["QUEUED"]
        assert len(emu.deltas("c1")) == 1
