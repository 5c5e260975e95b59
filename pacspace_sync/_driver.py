# hand-written: the hand-over of a sync client's loop between threads (tools/generate_sync.py leaves this file alone)
"""Who runs a sync client's event loop: the calling thread for the length of its call, or the loop thread.

Hand-written. An asyncio loop runs in one thread at a time, but not always the same one: any
thread may run it with ``loop.run_forever()`` while no other does. A call hands its coroutine to
the loop, and then:

- when nobody is running the loop, the calling thread runs it itself (it *leads*) until its own
  call is done, then stops it. No other thread is woken: a call costs what an async call costs.
- when another thread runs it, the call is handed over with ``call_soon_threadsafe`` (it
  *follows*) and the caller waits. A caller that stops leading while calls still wait hands the
  loop to the loop thread, which keeps running it while calls overlap (handing it from caller to
  caller after every call would leave it idle during each hand-over), so calls in flight never
  stall. A caller that cannot lead (its thread already runs another loop, or a custom SIGINT
  handler could raise inside the loop) is always left to the loop thread.
- the loop thread also runs the loop when no caller has for `IDLE_AFTER` seconds (timers, the
  summaries queue, the outbox drain, calls given up by Ctrl-C). A caller that arrives alone while
  it runs the loop asks it to step aside, and leads.

Every hand-over happens between two runs of the loop, under one mutex, so the loop is never run
by two threads at once. Only public asyncio calls are used: ``run_forever``, ``stop``,
``call_soon`` (only by the thread that is about to run the loop, while nobody runs it) and
``call_soon_threadsafe``.

The caller's contextvars context crosses into the call: its coroutine runs in a task created
in a copy of the caller's context (what a ContextVar holds, an OpenTelemetry span), and what it
sets stays in that copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import inspect
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import CancelledError
from types import FrameType
from typing import Any

__all__ = ["CLOSED", "IDLE_AFTER", "THREAD_NAME", "Engine"]

THREAD_NAME = "pacspace-sync-loop"
IDLE_AFTER = 0.02
"""Seconds without a leading caller after which the loop thread runs the loop again (until a caller
comes). Back-to-back calls keep leading; a timer or I/O waits this long at most between calls."""

CLOSED = (
    "this PacSpace client is closed; create a new PacSpace(...) for more calls "
    "(or keep the work inside `with PacSpace(...) as pac:`)"
)


# The C functions behind `signal`: its wrappers convert handlers to enums by raising and catching
# a ValueError, some microseconds per call, and a leading call in the main thread swaps the
# SIGINT handler twice.
try:
    _signals: Any = importlib.import_module("_signal")
except ImportError:  # another Python: the public module
    _signals = signal
_SIGINT = int(signal.SIGINT)


class _LoopThread:
    """Marks the loop thread as the one running the loop."""


_LOOP_THREAD = _LoopThread()


class Call:
    """One call in flight. Its outcome is written once, by whichever thread runs the loop then.

    A follower blocks on `done`, which is released once: for its outcome, or to make it lead
    (`leading`). A leading call stops the loop when it is done instead of releasing the lock.
    """

    __slots__ = (
        "cancelled",
        "context",
        "done",
        "error",
        "finished",
        "func",
        "internal",
        "interrupted",
        "leading",
        "loop",
        "promotable",
        "task",
        "value",
    )

    def __init__(
        self, func: Callable[[], Any], loop: asyncio.AbstractEventLoop, *, promotable: bool, internal: bool
    ) -> None:
        self.func = func
        self.loop = loop
        self.context = contextvars.copy_context()
        self.promotable = promotable  # this caller may run the loop
        self.internal = internal  # a step of close(): let through while the client drains
        self.done = threading.Lock()
        self.done.acquire()
        self.value: Any = None
        self.error: BaseException | None = None
        self.finished = False
        self.leading = False
        self.cancelled = False  # the caller gave up (Ctrl-C, the at-exit deadline)
        self.interrupted = False  # Ctrl-C while this call led
        self.task: asyncio.Future[Any] | None = None

    def succeed(self, value: Any) -> None:
        if not self.finished:
            self.finished = True
            self.value = value
            self._release()

    def fail(self, error: BaseException) -> None:
        if not self.finished:
            self.finished = True
            self.error = error
            self._release()

    def _release(self) -> None:
        if self.leading:
            self.loop.stop()  # the caller runs the loop: it returns after this iteration
        else:
            self.done.release()

    def outcome(self) -> Any:
        error = self.error
        if error is not None:
            self.error = None  # no cycle through the traceback
            raise error
        return self.value


class Engine:
    """One client's loop, its loop thread, and the hand-over of the loop between threads."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        # Where a signal's arrival is written while the main thread runs the loop (see
        # `_trap_sigint`): a signal that lands just before the selector's wait would otherwise
        # not interrupt it, and Ctrl-C would wait for the next timer or I/O.
        self._signal_in, self._signal_out = socket.socketpair()
        self._signal_in.setblocking(False)
        self._signal_out.setblocking(False)
        self.loop.add_reader(self._signal_in.fileno(), _drain_socket, self._signal_in)
        self._mutex = threading.Lock()
        self._wake = threading.Condition(self._mutex)  # the loop thread waits on it
        self._driver: Call | _LoopThread | None = None  # who runs the loop now (under the mutex)
        self._followers: dict[Call, None] = {}  # waiting callers, oldest first (under the mutex)
        self._last_left = time.monotonic()
        self._wanted = False  # the loop thread should run the loop now
        self._stopping = False
        # Tasks of calls in flight (touched only by whoever runs the loop), and whether close()
        # has begun to drain them (from then on only its own steps are let through).
        self.tasks: dict[asyncio.Future[Any], Call] = {}
        self._draining = False
        self.thread = threading.Thread(target=self._serve, name=THREAD_NAME, daemon=True)
        self.thread.start()

    # --- a call -------------------------------------------------------------------------------

    def run(self, func: Callable[[], Any], *, promotable: bool, internal: bool = False) -> Any:
        """Run `func` in the loop (awaiting what it returns); lead when nobody runs the loop."""
        call = self.submit(func, promotable=promotable, internal=internal)
        if not call.leading:
            try:
                call.done.acquire()
            except BaseException:  # Ctrl-C while waiting: give the call up, as the caller did
                self.abandon(call)
                raise
            if not call.leading:
                with self._mutex:
                    self._followers.pop(call, None)
                return call.outcome()
        return self._lead(call)

    def submit(self, func: Callable[[], Any], *, promotable: bool, internal: bool = False) -> Call:
        """Register a call: it leads (the caller runs the loop next) or is handed to the loop."""
        loop = self.loop
        call = Call(func, loop, promotable=promotable, internal=internal)
        with self._mutex:
            if self._stopping:
                raise RuntimeError(CLOSED)
            driver = self._driver
            if promotable and driver is None:
                self._driver = call
                call.leading = True
            else:
                followers = self._followers
                followers[call] = None
                # The loop thread steps aside for a caller only when that caller would be alone in
                # the loop: under concurrent calls it keeps running them (handing the loop from
                # caller to caller after every call would leave it idle during each hand-over).
                step_aside = (
                    promotable
                    and driver is _LOOP_THREAD
                    and len(followers) == 1
                    and all(other.finished for other in list(self.tasks.values()))  # list(): one atomic copy
                )
                if driver is None:  # a call that cannot lead, and nobody runs the loop
                    self._wanted = True
                    self._wake.notify()
        if call.leading:
            loop.call_soon(self._begin, call, context=call.context)  # nobody runs the loop now
            return call
        begin = self._begin_and_step_aside if step_aside else self._begin
        try:
            loop.call_soon_threadsafe(begin, call, context=call.context)
        except RuntimeError:  # the loop has closed since
            self.abandon(call)
            raise RuntimeError(CLOSED) from None
        return call

    def abandon(self, call: Call) -> None:
        """The caller gives `call` up: it is never made to lead, and its task is cancelled."""
        call.cancelled = True
        with self._mutex:
            self._followers.pop(call, None)
            if self._driver is call:  # made to lead just now: hand the loop on
                self._leave_as_caller(wake=True)
        with contextlib.suppress(RuntimeError):  # the loop has closed: no task is left
            self.loop.call_soon_threadsafe(_cancel, call)

    def _lead(self, call: Call) -> Any:
        """Run the loop in this thread until `call` is done (or Ctrl-C), then hand it on."""
        loop = self.loop
        previous = _trap_sigint(call, loop, self._signal_out)
        try:
            while not call.finished and not call.interrupted:
                loop.run_forever()
        finally:
            if previous is not None:
                _signals.signal(_SIGINT, previous[0])
                signal.set_wakeup_fd(previous[1])
            gave_up = not call.finished
            if gave_up:  # Ctrl-C, or an error out of the loop: its task is cancelled, as today
                call.cancelled = True
                loop.call_soon_threadsafe(_cancel, call)  # threadsafe: it also wakes the next runner
            with self._mutex:
                self._leave_as_caller(wake=gave_up)
        if call.interrupted:
            raise KeyboardInterrupt
        return call.outcome()

    def _leave_as_caller(self, *, wake: bool) -> None:
        """A caller stops running the loop (the mutex is held): calls still waiting go to the loop thread."""
        self._driver = None
        followers = self._followers
        for waiting in [waiting for waiting in followers if waiting.finished or waiting.cancelled]:
            del followers[waiting]  # released already (or going)
        if wake or followers or self._stopping:
            self._wanted = True
            self._wake.notify()
        else:
            self._last_left = time.monotonic()

    def _leave_as_loop_thread(self) -> None:
        """The loop thread stops running the loop (the mutex is held): the first caller that
        waits and may lead takes it (it asked the loop thread to step aside)."""
        self._driver = None
        for waiting in self._followers:
            if waiting.promotable and not waiting.finished and not waiting.cancelled:
                del self._followers[waiting]
                self._driver = waiting
                waiting.leading = True
                waiting.done.release()
                return
        if self._followers:
            self._wanted = True  # stopped for nobody (a stale stop()): go on running them
        self._last_left = time.monotonic()

    # --- in the loop: start a call, finish it ------------------------------------------------

    def _begin_and_step_aside(self, call: Call) -> None:
        self._begin(call)
        if threading.current_thread() is self.thread:  # a caller waits to run the loop itself
            self.loop.stop()

    def _begin(self, call: Call) -> None:
        if call.cancelled:
            return
        if self._draining and not call.internal:
            call.fail(RuntimeError(CLOSED))
            return
        try:
            result = call.func()
        except BaseException as exc:
            call.fail(exc)
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt, SystemExit go on up, out of the loop
            return
        if not inspect.isawaitable(result):
            call.succeed(result)
            return
        # Created here, in the caller's context (this callback runs in it): the task copies it.
        task = asyncio.ensure_future(_await(result, call))
        call.task = task
        self.tasks[task] = call
        task.add_done_callback(self._finish)

    def _finish(self, task: asyncio.Future[Any]) -> None:
        # An error or a cancellation releases the caller here, last, so that once it runs again
        # the loop has nothing left to do with the exception. (A result was handed over by
        # `_await` already; `succeed` again is a no-op.)
        call = self.tasks.pop(task)
        if task.cancelled():
            call.fail(CancelledError())  # the loop is ending (or the caller gave up)
            return
        error = task.exception()
        if error is not None:
            call.fail(error)
        else:
            call.succeed(task.result())

    async def drain(self) -> None:
        """Refuse new calls and wait for those in flight (close: they finish before the loop ends)."""
        self._draining = True
        me = asyncio.current_task()  # this drain runs as a call too
        while others := [task for task in self.tasks if task is not me]:
            await asyncio.wait(others)

    # --- the loop thread ----------------------------------------------------------------------

    def stop(self) -> None:
        """No more calls: the loop thread shuts the loop down once nobody runs it, and ends."""
        with self._mutex:
            self._stopping = True
            self._wake.notify()
        with contextlib.suppress(RuntimeError):  # closed already
            self.loop.call_soon_threadsafe(self.loop.stop)

    def _serve(self) -> None:
        loop = self.loop
        while True:
            with self._mutex:
                while True:
                    if self._driver is None:
                        if self._stopping:
                            self._driver = _LOOP_THREAD
                            break
                        idle = time.monotonic() - self._last_left
                        if self._wanted or idle >= IDLE_AFTER:
                            self._driver = _LOOP_THREAD
                            self._wanted = False
                            break
                        self._wake.wait(IDLE_AFTER - idle)
                    else:  # a caller runs the loop: look again a little later (it does not wake us)
                        self._wake.wait(IDLE_AFTER)
                stopping = self._stopping
            if stopping:
                self._shut_down()
                return
            try:
                loop.run_forever()  # until a caller asks for the loop, or close()
            finally:
                with self._mutex:
                    self._leave_as_loop_thread()

    def _shut_down(self) -> None:
        """What `asyncio.run` does at its end: cancel what is left, close async generators, close."""
        loop = self.loop
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                _run_to_end(loop, asyncio.gather(*tasks, return_exceptions=True))
            _run_to_end(loop, loop.shutdown_asyncgens())
            _run_to_end(loop, loop.shutdown_default_executor())
        finally:
            loop.remove_reader(self._signal_in.fileno())
            loop.close()
            self._signal_in.close()
            self._signal_out.close()
            with self._mutex:  # a call that slipped in before the close: it is told, not left waiting
                for waiting in self._followers:
                    waiting.fail(RuntimeError(CLOSED))
                self._followers.clear()


async def _await(awaitable: Any, call: Call) -> Any:
    """Await a call's awaitable in its task; a base exception reaches the caller before it leaves the loop."""
    try:
        value = await awaitable
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: they go on up
            call.fail(exc)
        raise
    # A result releases the caller now, a loop iteration before the task's done callback would.
    # An error still waits for `_finish`: it is the same object the task is still raising, and
    # its traceback must not be raised in two threads.
    call.succeed(value)
    return value


def _cancel(call: Call) -> None:
    """In the loop: the caller gave up, so its task is cancelled."""
    task = call.task
    if task is not None and not task.done():
        task.cancel()


def _run_to_end(loop: asyncio.AbstractEventLoop, awaitable: Awaitable[Any]) -> None:
    """``run_until_complete``, but a stale ``stop()`` left in the loop (a caller's, close()'s)
    only ends one run, not the wait."""
    future = asyncio.ensure_future(awaitable, loop=loop)
    future.add_done_callback(lambda _: loop.stop())
    while not future.done():
        loop.run_forever()
    future.result()


def _drain_socket(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # BlockingIOError: drained
        while sock.recv(4096):
            pass


def _trap_sigint(call: Call, loop: asyncio.AbstractEventLoop, wakeup: socket.socket) -> tuple[Any, int] | None:
    """In the main thread, while it runs the loop: Ctrl-C stops the loop between two callbacks.

    Python runs a signal handler between any two bytecodes; the default one raises
    KeyboardInterrupt there, which inside the loop could cut a callback of aiohttp's in half.
    This one only marks the call and wakes the loop; the caller raises KeyboardInterrupt once
    the loop has stopped. A second Ctrl-C raises at once (the loop may be stuck). The signal's
    arrival is also written to `wakeup`, which the loop watches: a signal that lands between the
    loop's last look and its wait in the selector would otherwise not end that wait. Returns the
    handler and wakeup fd to put back, or None when nothing was changed.
    """
    if threading.current_thread() is not threading.main_thread():
        return None  # signal handlers run in the main thread only
    previous = _signals.getsignal(_SIGINT)
    if previous is not signal.default_int_handler:
        return None  # SIG_IGN or SIG_DFL never raise; a custom handler makes the call not lead

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if call.interrupted:
            raise KeyboardInterrupt
        call.interrupted = True
        loop.stop()

    _signals.signal(_SIGINT, on_sigint)
    return previous, signal.set_wakeup_fd(wakeup.fileno(), warn_on_full_buffer=False)


def can_lead() -> bool:
    """Whether this thread may run the client's loop: no loop of its own runs, and no custom
    SIGINT handler could raise inside ours."""
    if asyncio._get_running_loop() is not None:
        return False
    if threading.current_thread() is not threading.main_thread():
        return True
    handler = _signals.getsignal(_SIGINT)
    return handler is signal.default_int_handler or not callable(handler)
