"""Who runs a sync client's loop: the caller alone, a follower handed over, the loop thread.

These drive a `Portal` directly with small coroutines (no network): what is tested is where a
call runs, what context it sees, and that no call, timer or Ctrl-C is ever left without a
thread to run the loop. Plain (not async) tests: pytest runs them in the main thread, which
has no running loop, as a script would.
"""

from __future__ import annotations

import asyncio
import contextvars
import signal
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from sync_test_support import SANDBOX_KEY, LoopbackServer, delta_record, ok

from pacspace_sync import PacSpace, RateLimitError
from pacspace_sync._portal import Portal

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")
WAIT = 10.0  # bounds for waits that end far sooner; they only keep a broken run from hanging


@pytest.fixture
def portal() -> Iterator[Portal]:
    made = Portal(lambda: None)
    yield made

    async def nothing() -> None:
        pass

    made.close(nothing)


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as error:  # whatever comes out is the outcome
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def here() -> str:
    """Where a call made now from this thread runs when nobody else runs the loop: here, unless
    a custom SIGINT handler is installed in the main thread (an earlier test may leave one)."""
    if threading.current_thread() is threading.main_thread() and not callable_default_sigint():
        return "pacspace-sync-loop"
    return threading.current_thread().name


def callable_default_sigint() -> bool:
    handler = signal.getsignal(signal.SIGINT)
    return handler is signal.default_int_handler or not callable(handler)


async def where() -> str:
    await asyncio.sleep(0)
    return threading.current_thread().name


def test_a_call_alone_runs_in_the_calling_thread_and_the_loop_thread_keeps_the_rest(portal: Portal) -> None:
    # No hop: the caller runs the loop itself for the length of its call.
    assert portal.call(where) == here()
    thread, outcome = in_thread(lambda: portal.call(where))
    thread.join(WAIT)
    assert outcome == [thread.name]


def test_the_callers_context_crosses_into_the_call_and_nothing_leaks_back(portal: Portal) -> None:
    async def read_and_set() -> str:
        seen = REQUEST_ID.get()
        REQUEST_ID.set("set inside")
        await asyncio.sleep(0)
        return seen

    def plain() -> str:  # a plain function runs in the caller's context too
        seen = REQUEST_ID.get()
        REQUEST_ID.set("set inside")
        return seen

    token = REQUEST_ID.set("caller")
    try:
        assert portal.call(read_and_set) == "caller"  # leading
        assert portal.call(plain) == "caller"
        assert REQUEST_ID.get() == "caller"

        # Following: another thread runs the loop (a call of its own is waiting on `release`).
        release = threading.Event()

        async def hold() -> None:
            await asyncio.to_thread(release.wait, WAIT)

        holder, _ = in_thread(lambda: portal.call(hold))
        try:
            assert portal.call(read_and_set) == "caller"
        finally:
            release.set()
            holder.join(WAIT)
        assert REQUEST_ID.get() == "caller"

        # From a thread that runs a loop of its own: the loop thread runs the call.
        async def cell() -> tuple[str, str]:
            REQUEST_ID.set("in the cell")
            with pytest.warns(RuntimeWarning, match="blocks the running loop"):
                seen = portal.call(read_and_set)
            return seen, REQUEST_ID.get()

        assert asyncio.run(cell()) == ("in the cell", "in the cell")
    finally:
        REQUEST_ID.reset(token)


def test_a_follower_is_served_while_another_caller_leads_and_after_it_leaves(portal: Portal) -> None:
    leader_in = threading.Event()
    release_leader = threading.Event()
    release_follower = threading.Event()

    async def lead() -> str:
        leader_in.set()
        await asyncio.to_thread(release_leader.wait, WAIT)
        return threading.current_thread().name

    async def follow(gate: threading.Event) -> str:
        await asyncio.to_thread(gate.wait, WAIT)
        return "followed"

    leader, led = in_thread(lambda: portal.call(lead))
    assert leader_in.wait(WAIT)
    quick_gate = threading.Event()
    quick_gate.set()
    # Served by the leader's thread while it runs the loop for its own call.
    assert portal.call(lambda: follow(quick_gate)) == "followed"
    # Still in flight when the leader's call ends: the loop must not stall.
    follower, followed = in_thread(lambda: portal.call(lambda: follow(release_follower)))
    release_leader.set()
    leader.join(WAIT)
    assert led == [leader.name]
    release_follower.set()
    follower.join(WAIT)
    assert followed == ["followed"]


def test_a_timer_fires_while_nobody_calls(portal: Portal) -> None:
    fired = threading.Event()

    def start_timer() -> None:  # like the summaries queue: a task that outlives the call
        asyncio.get_running_loop().create_task(set_later(fired))

    portal.call(start_timer)
    assert fired.wait(WAIT)  # no call since: the loop thread ran it


async def set_later(event: threading.Event) -> None:
    await asyncio.sleep(0.05)
    event.set()


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs signal.pthread_kill")
def test_ctrl_c_while_the_main_thread_runs_the_loop_cancels_the_call_and_the_client_still_works(
    portal: Portal,
) -> None:
    assert threading.current_thread() is threading.main_thread()
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("a custom SIGINT handler is installed: the main thread would not run the loop")
    started = threading.Event()
    cancelled = threading.Event()
    ran_in: list[str] = []

    async def slow() -> None:
        ran_in.append(threading.current_thread().name)
        started.set()
        try:
            await asyncio.sleep(WAIT)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def press_ctrl_c() -> None:
        if started.wait(WAIT):
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    with pytest.raises(KeyboardInterrupt):
        portal.call(slow)
    presser.join(WAIT)
    assert ran_in == [threading.main_thread().name]  # it led: Ctrl-C landed while it ran the loop
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    assert cancelled.wait(WAIT)  # its task was cancelled (by the loop thread, after the caller left)
    assert portal.call(where) == here()  # the loop is intact


def test_ctrl_c_while_following_gives_the_call_up(portal: Portal) -> None:
    release = threading.Event()
    cancelled = threading.Event()

    async def hold() -> None:
        await asyncio.to_thread(release.wait, WAIT)

    async def slow() -> None:
        try:
            await asyncio.sleep(WAIT)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    holder, _ = in_thread(lambda: portal.call(hold))
    try:
        # Ctrl-C reaches a waiting caller as KeyboardInterrupt out of its wait.
        def interrupt_soon() -> None:
            threading.Event().wait(0.05)
            if hasattr(signal, "pthread_kill"):
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

        presser = threading.Thread(target=interrupt_soon)
        presser.start()
        with pytest.raises(KeyboardInterrupt):
            portal.call(slow)
        presser.join(WAIT)
        assert cancelled.wait(WAIT)
    finally:
        release.set()
        holder.join(WAIT)
    assert portal.call(where) == here()


def test_with_a_custom_sigint_handler_the_main_thread_does_not_run_the_loop(portal: Portal) -> None:
    # Its handler could raise anywhere inside the loop: the call goes to the loop thread instead.
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        assert portal.call(where) == "pacspace-sync-loop"
    finally:
        signal.signal(signal.SIGINT, previous)
    assert portal.call(where) == here()


def test_a_call_from_a_callback_in_the_loop_is_refused(portal: Portal) -> None:
    async def calls_back() -> None:
        portal.call(where)

    with pytest.raises(RuntimeError, match="own event loop"):
        portal.call(calls_back)


def test_a_closed_portal_refuses_calls_and_its_loop_is_closed() -> None:
    portal = Portal(lambda: None)
    portal.call(where)
    engine = portal._engine
    assert engine is not None

    async def nothing() -> None:
        pass

    portal.close(nothing)
    assert engine.loop.is_closed()
    assert not engine.thread.is_alive()
    with pytest.raises(RuntimeError, match="closed; create a new PacSpace"):
        portal.call(where)


async def test_a_429_seen_by_a_sync_call_holds_back_async_use_of_the_same_client(
    loopback: Callable[[], LoopbackServer],
) -> None:
    server = loopback()
    arrivals: list[float] = []
    limited_until: list[float] = []
    hint = 0.3

    async def emit(request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        arrivals.append(loop.time())
        if not limited_until:
            limited_until.append(loop.time() + hint)
            return web.json_response(
                {"success": False, "error": {"code": "RATE_LIMITED", "message": "slow down"}},
                status=429,
                headers={"Retry-After": str(hint)},
            )
        return ok(delta_record(f"rec_{len(arrivals)}"), status=201)

    server.route("POST", "/api/v1/balance/delta", emit)
    url = await server.start()
    pac = PacSpace(SANDBOX_KEY, base_urls={"sandbox": url}, max_retries=0)
    fields: dict[str, Any] = {"customer_id": "cust_1", "delta": Decimal("-1"), "reason": "usage"}

    def sync_then_async() -> tuple[str, str]:
        with pytest.raises(RateLimitError):
            pac.balance.emit(**fields)  # max_retries=0: raised, and the gate is closed
        # Async use of the same client, in its loop (as the outbox and the agent tools do):
        record = pac._portal.call(lambda: pac._wrapped.balance.emit(**fields))
        again = pac.balance.emit(**fields)
        return record.record_id, again.record_id

    assert await asyncio.to_thread(sync_then_async) == ("rec_2", "rec_3")
    assert arrivals[1] >= limited_until[0]  # the async call waited at the gate the sync call closed
    await asyncio.to_thread(pac.close)
