"""The sync client's private event loop: an anyio blocking portal in a daemon thread.

Hand-written (the rest of pacspace_sync is generated). Each `PacSpace` owns one `Portal`, shared
with its `with_options` copies and its resources. Nothing runs until the first call: then one
daemon thread starts an event loop (``anyio.run`` with a `BlockingPortal`), and the async client
and its connection pools live in that loop for the client's lifetime. Every call hops to that
loop and blocks the calling thread until the result (or the exception) comes back, so any number
of threads may share one client.

- A daemon thread, never a plain one: a forgotten ``close()`` must not hang interpreter exit.
- Called from a thread that already runs an event loop (a notebook cell, async code): it works,
  and warns once per client that it blocks that loop.
- After ``os.fork()`` the child has no loop thread: the next call starts a fresh one and first
  tells the async client to drop (never close) the pools it inherited, so the child never touches
  the parent's sockets.
- ``close()`` closes the async client in the loop, stops the loop and joins the thread; it is
  idempotent. A call on a closed client raises a `RuntimeError` that names the fix.
- ``__del__`` only warns (``ResourceWarning``) when the loop still runs; it never blocks or
  schedules work.
- At interpreter exit, a client still open gets one ``ResourceWarning`` and is closed for its
  owner (pools closed, queued summaries dropped, loop stopped), all of them within
  ``EXIT_GRACE`` seconds. Left to the interpreter's final collection instead, aiohttp's pools
  are torn down from the main thread while this loop still runs in its own: warnings issued too
  late to be shown, "Unclosed client session" noise, and under ``python -X dev`` (asyncio debug)
  a ``RuntimeError`` from an event loop touched by the wrong thread. Calls still in flight in
  other (daemon) threads are not cut short: the client is then left as it is.

A call is one hop each way: the calling thread hands ``func`` to the loop with
``call_soon_threadsafe`` and blocks on a future; the loop runs it as a task and resolves the
future. (``BlockingPortal.start_task_soon`` costs a second, blocking round trip to the loop
before the task even starts.) The portal's semantics are kept: ``func`` runs in the loop, an
awaitable it returns is awaited in a task, cancelling the future (Ctrl-C) cancels the task, and
``close()`` lets calls already in the loop finish before the loop ends. The anyio portal still
owns the loop and runs the close.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import inspect
import os
import threading
import time
import warnings
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any, TypeVar, overload

import anyio
from anyio.from_thread import BlockingPortal

__all__ = ["EXIT_GRACE", "Portal", "THREAD_NAME"]

T = TypeVar("T")

THREAD_NAME = "pacspace-sync-loop"

_CLOSED = (
    "this PacSpace client is closed; create a new PacSpace(...) for more calls "
    "(or keep the work inside `with PacSpace(...) as pac:`)"
)
_IN_LOOP_WARNING = (
    "PacSpace was called from a thread that is running an event loop (a notebook or async code): "
    "each call blocks the running loop; prefer AsyncPacSpace there"
)
_NOT_CLOSED = "a PacSpace client was not closed; use `with PacSpace(...) as pac:` or call pac.close()"
_NOT_CLOSED_AT_EXIT = (
    "a PacSpace client{key} was still open at exit; it was closed for you, dropping any queued "
    "summaries: use `with PacSpace(...) as pac:` or call pac.close()"
)
EXIT_GRACE = 1.0
"""Seconds the at-exit close of forgotten clients may take in all (calls in flight, pools, loop threads)."""
_FROM_OWN_LOOP = (
    "a PacSpace call was made from the client's own event-loop thread (for example from an "
    "on_auth_error hook or a key provider); such callbacks must not call the sync client back"
)

# Every live portal, so a forked child can reset them all (see `_reset_after_fork`).
_PORTALS: weakref.WeakSet[Portal] = weakref.WeakSet()
# What a forked child inherited from the parent's loop thread: parked, never used or closed.
_INHERITED: list[object] = []


def _serve(ready: Future[tuple[BlockingPortal, asyncio.AbstractEventLoop]]) -> None:
    """The loop thread: run a blocking portal until it is stopped."""

    async def main() -> None:
        async with BlockingPortal() as portal:
            ready.set_result((portal, asyncio.get_running_loop()))
            await portal.sleep_until_stopped()

    try:
        anyio.run(main, backend="asyncio")
    except BaseException as exc:
        if not ready.done():
            ready.set_exception(exc)
            return
        raise


class Portal:
    """One client's event loop thread, started on first use. Thread-safe."""

    def __init__(self, forget_pools_after_fork: Callable[[], None]) -> None:
        self._forget_pools_after_fork = forget_pools_after_fork
        self._lock = threading.Lock()
        self._portal: BlockingPortal | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._loop_thread_id: int | None = None
        # Tasks of calls in flight (touched only in the loop thread), and whether close() has
        # begun to drain them (from then on the loop refuses new calls).
        self._tasks: dict[asyncio.Future[Any], _Call] = {}
        self._draining = False
        self._pid = os.getpid()
        self._forked = False
        self._closed = False
        self._warned = False
        _PORTALS.add(self)

    # --- state --------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def running(self) -> bool:
        """Whether this process has a live loop thread for this portal."""
        thread = self._thread
        return thread is not None and self._pid == os.getpid() and thread.is_alive()

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread if self._pid == os.getpid() else None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None and not self._closed and self._pid == os.getpid():
            return loop
        if self._pid != os.getpid():
            self._reset_after_fork()  # the at-fork hook did not run (fork outside os.fork)
        with self._lock:
            if self._closed:
                raise RuntimeError(_CLOSED)
            if self._loop is None:
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        """Start the loop thread (the lock is held)."""
        if self._forked:
            # First use in a forked child: drop the parent's pools, untouched, before any request.
            self._forget_pools_after_fork()
            self._forked = False
        ready: Future[tuple[BlockingPortal, asyncio.AbstractEventLoop]] = Future()
        thread = threading.Thread(target=_serve, args=(ready,), name=THREAD_NAME, daemon=True)
        thread.start()
        portal, loop = ready.result()
        self._tasks = {}
        self._draining = False
        self._thread = thread
        self._loop_thread_id = thread.ident
        self._portal = portal
        self._loop = loop  # last: a loop here means the portal is ready for calls

    def _reset_after_fork(self) -> None:
        """In a forked child: forget the parent's loop thread; the next call starts a new one."""
        self._lock = threading.Lock()  # it may have been held by another thread at fork time
        if self._portal is not None or self._thread is not None:
            _INHERITED.append((self._portal, self._loop, self._thread, self._tasks))
        self._portal = None
        self._loop = None
        self._thread = None
        self._loop_thread_id = None
        self._tasks = {}
        self._pid = os.getpid()
        self._forked = True

    # --- calls --------------------------------------------------------------------------------

    @overload
    def call(self, func: Callable[[], Awaitable[T]]) -> T: ...

    @overload
    def call(self, func: Callable[[], T]) -> T: ...

    def call(self, func: Callable[[], Any]) -> Any:
        """Run `func` in the loop (awaiting it if it returns an awaitable); block for the result."""
        loop = self._running_loop()
        if not self._warned:
            self._warn_if_in_a_running_loop()
        if threading.get_ident() == self._loop_thread_id:
            raise RuntimeError(_FROM_OWN_LOOP)
        call = _Call(func)
        try:
            loop.call_soon_threadsafe(self._begin, call)
        except RuntimeError:  # the loop has closed since the check above
            if self._closed:
                raise RuntimeError(_CLOSED) from None
            raise
        try:
            call.done.acquire()
        except KeyboardInterrupt:
            call.cancelled = True
            with contextlib.suppress(RuntimeError):  # the loop has ended: no task is left
                loop.call_soon_threadsafe(_cancel, call)  # cancels the task in the loop too
            raise
        error = call.error
        if error is not None:
            call.error = None  # no cycle through the traceback
            raise error
        return call.value

    # In the loop thread: what BlockingPortal.start_task_soon's task does, minus the extra hop.

    def _begin(self, call: _Call) -> None:
        if call.cancelled:
            return
        if self._draining:
            call.fail(RuntimeError(_CLOSED))
            return
        try:
            result = call.func()
        except BaseException as exc:
            call.fail(exc)
            if not isinstance(exc, Exception):
                raise  # as the portal does: KeyboardInterrupt, SystemExit go on up
            return
        if not inspect.isawaitable(result):
            call.succeed(result)
            return
        task = asyncio.ensure_future(_await(result, call))
        call.task = task
        self._tasks[task] = call
        task.add_done_callback(self._finish)

    def _finish(self, task: asyncio.Future[Any]) -> None:
        # An error or a cancellation releases the caller here, last, so that once it runs again
        # this loop has nothing left to do with the exception. (A result was handed over by
        # `_await` already; `succeed` again is a no-op.)
        call = self._tasks.pop(task)
        if task.cancelled():
            call.fail(CancelledError())  # the loop is ending (or the caller gave up)
            return
        error = task.exception()
        if error is not None:
            call.fail(error)
        else:
            call.succeed(task.result())

    async def _drain(self) -> None:
        """Refuse new calls and wait for those in flight (close: they finish before the loop ends)."""
        self._draining = True
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    def iterate(self, source: AsyncIterator[T]) -> Iterator[T]:
        """Items of an async iterator, one loop hop per item (for a paginator: per page)."""
        finished = False
        try:
            while True:
                try:
                    item = self.call(source.__anext__)
                except StopAsyncIteration:
                    finished = True
                    return
                except BaseException:
                    finished = True  # an async generator that raised is finished
                    raise
                yield item
        finally:
            aclose = getattr(source, "aclose", None)
            if not finished and aclose is not None and self.running and not self._closed:
                with contextlib.suppress(Exception):
                    self.call(aclose)

    def _warn_if_in_a_running_loop(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        with self._lock:
            if self._warned:
                return
            self._warned = True
        # stacklevel: _warn_if_in_a_running_loop <- call <- the generated method <- the caller
        warnings.warn(_IN_LOOP_WARNING, RuntimeWarning, stacklevel=4)

    # --- lifetime -----------------------------------------------------------------------------

    def close(self, final: Callable[[], Awaitable[object]]) -> None:
        """Run `final` (the async client's close) in the loop, stop the loop, join. Idempotent."""
        if self._pid != os.getpid():
            self._reset_after_fork()
        if self._thread is not None and threading.get_ident() == self._thread.ident:
            raise RuntimeError(_FROM_OWN_LOOP)
        with self._lock:
            if self._closed:
                return
            if self._portal is None:
                # Never used (or used only by the parent of this forked child): the async
                # client still needs its close, which runs in a loop.
                self._start()
            portal, thread = self._portal, self._thread
            assert portal is not None
            assert thread is not None
            self._closed = True  # from here on, new calls are refused
            self._portal = None
            self._loop = None
            self._thread = None
        try:
            # Calls already in the loop finish first, on open pools (closing the pools first
            # failed them with a dropped connection); then the client closes; then the loop ends
            # and the thread with it.
            portal.start_task_soon(self._drain).result()
            portal.start_task_soon(final).result()
        finally:
            portal.start_task_soon(portal.stop).result()
            thread.join()

    def _close_at_exit(self, deadline: float) -> None:
        """At interpreter exit, for a client its owner did not close: warn, then close it by `deadline`."""
        if self._closed or not self.running or not self._lock.acquire(timeout=_left(deadline)):
            return
        try:
            portal, loop, thread = self._portal, self._loop, self._thread
            if self._closed or portal is None or loop is None or thread is None:
                return
            self._closed = True  # from here on, new calls are refused
            self._portal = None
            self._loop = None
            self._thread = None
        finally:
            self._lock.release()
        client = getattr(self._forget_pools_after_fork, "__self__", None)  # the async client (a bound method)
        key_id = getattr(client, "key_id", None)
        try:
            # No frame of the owner's is left to point at: a location that says when, on one line.
            warnings.warn_explicit(
                _NOT_CLOSED_AT_EXIT.format(key=f" (key {key_id})" if key_id else ""),
                ResourceWarning,
                filename="<interpreter exit>",
                lineno=0,
                module="pacspace_sync",
            )
        finally:
            aclose = getattr(client, "aclose", None)
            steps: list[Callable[[], Coroutine[Any, Any, object]]] = [self._drain]
            if aclose is not None:  # no summary flush: it could mean network calls while exit waits
                steps.append(functools.partial(aclose, flush_summaries=False))
            steps.append(portal.stop)
            try:
                for step in steps:
                    _run_by(deadline, step, loop)
                thread.join(_left(deadline))
            except (FutureTimeoutError, asyncio.TimeoutError, RuntimeError):
                pass  # a call still in flight, or a wedged loop: leave it, never hold up exit

    def __del__(self) -> None:
        try:
            thread = self._thread
            if thread is not None and not self._closed and self._pid == os.getpid() and thread.is_alive():
                warnings.warn(_NOT_CLOSED, ResourceWarning, stacklevel=2)
        except Exception:  # interpreter shutdown, or __init__ never finished
            pass


class _Call:
    """One call in flight. The loop thread fills it in and releases `done`; the caller waits on it.

    A plain lock, not a `concurrent.futures.Future`: the caller blocks on it at once, and the
    loop releases it in one step. Only the loop thread resolves a call, exactly once.
    """

    __slots__ = ("cancelled", "done", "error", "finished", "func", "task", "value")

    def __init__(self, func: Callable[[], Any]) -> None:
        self.func = func
        self.done = threading.Lock()
        self.done.acquire()
        self.value: Any = None
        self.error: BaseException | None = None
        self.cancelled = False  # set by the caller when it gives up (Ctrl-C)
        self.finished = False
        self.task: asyncio.Future[Any] | None = None

    def succeed(self, value: Any) -> None:
        if not self.finished:
            self.finished = True
            self.value = value
            self.done.release()

    def fail(self, error: BaseException) -> None:
        if not self.finished:
            self.finished = True
            self.error = error
            self.done.release()


async def _await(awaitable: Awaitable[Any], call: _Call) -> Any:
    """Await a call's awaitable in its task; a base exception reaches the caller before it ends the loop."""
    try:
        value = await awaitable
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: they go on up
            call.fail(exc)
        raise
    # A result releases the caller now, a loop iteration before the task's done callback would
    # (12-30 µs per call on a 2-vCPU VM). An error still waits for `_finish`: it is the same
    # object the task is still raising, and its traceback must not be raised in two threads.
    call.succeed(value)
    return value


def _cancel(call: _Call) -> None:
    """In the loop: the caller gave up, so its task is cancelled (as the portal's future does)."""
    task = call.task
    if task is not None and not task.done():
        task.cancel()


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _run_by(deadline: float, step: Callable[[], Coroutine[Any, Any, object]], loop: asyncio.AbstractEventLoop) -> None:
    """Run `step` in `loop`, waiting for it until `deadline` at most (the portal's own hand-over
    to the loop has no bound, and a wedged loop must not hold the interpreter)."""
    coroutine = step()
    try:
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
    except RuntimeError:  # the loop has closed meanwhile
        coroutine.close()
        raise
    future.result(_left(deadline))


def _reset_after_fork() -> None:
    for portal in list(_PORTALS):
        portal._reset_after_fork()


@atexit.register
def _close_forgotten_portals() -> None:
    failure: BaseException | None = None
    deadline = time.monotonic() + EXIT_GRACE
    for portal in list(_PORTALS):
        try:
            portal._close_at_exit(deadline)
        except Exception as error:  # `-W error` makes the warning raise: close the others first
            failure = failure or error
    if failure is not None:
        raise failure


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
