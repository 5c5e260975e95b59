"""The sync client's runtime: one event loop per client, run by the calling threads or its loop thread.

Hand-written (the rest of pacspace_sync is generated). Each `PacSpace` owns one `Portal`, shared
with its `with_options` copies and its resources. Nothing runs until the first call: then the
client gets an event loop and a daemon loop thread (`pacspace_sync._driver.Engine`), and the
async client and its connection pools live in that loop for the client's lifetime. A call runs
in that loop: the calling thread runs the loop itself while nobody else does (no hop to another
thread), or hands the call to whichever thread runs it, so any number of threads may share one
client. The caller's contextvars context crosses into the call, and nothing set there leaks back.

- A daemon thread, never a plain one: a forgotten ``close()`` must not hang interpreter exit.
- Called from a thread that already runs an event loop (a notebook cell, async code): it works
  (the loop thread runs the call), and warns once per client that it blocks that loop.
- Ctrl-C during a call raises KeyboardInterrupt in the caller and cancels the call's task, as an
  interrupted ``await`` would; while the main thread runs the loop, Ctrl-C stops the loop between
  two callbacks, never in the middle of one.
- After ``os.fork()`` the child has neither the loop nor its thread: the next call starts fresh
  ones and first tells the async client to drop (never close) the pools it inherited, so the
  child never touches the parent's sockets.
- ``close()`` lets calls in flight in other threads finish, closes the async client, shuts the
  loop down and joins the thread; it is idempotent. A call on a closed client raises a
  `RuntimeError` that names the fix.
- ``__del__`` only warns (``ResourceWarning``) when the loop thread still runs; it never blocks or
  schedules work.
- At interpreter exit, a client still open gets one ``ResourceWarning`` and is closed for its
  owner (pools closed, queued summaries dropped, loop shut down), all of them within
  ``EXIT_GRACE`` seconds. Left to the interpreter's final collection instead, aiohttp's pools
  are torn down from the main thread while the loop thread still runs: warnings issued too late
  to be shown, "Unclosed client session" noise, and under ``python -X dev`` (asyncio debug) a
  ``RuntimeError`` from an event loop touched by the wrong thread. Calls still in flight in
  other (daemon) threads are not cut short: the client is then left as it is.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import os
import threading
import time
import warnings
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar, overload

from pacspace_sync._driver import CLOSED, THREAD_NAME, Engine, can_lead

__all__ = ["EXIT_GRACE", "Portal", "THREAD_NAME"]

T = TypeVar("T")

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
    "a PacSpace call was made from the client's own event loop (for example from an "
    "on_auth_error hook or a key provider); such callbacks must not call the sync client back"
)

# Every live portal, so a forked child can reset them all (see `_reset_after_fork`).
_PORTALS: weakref.WeakSet[Portal] = weakref.WeakSet()
# What a forked child inherited from the parent: parked, never used or closed.
_INHERITED: list[object] = []


class Portal:
    """One client's event loop and loop thread, started on first use. Thread-safe."""

    def __init__(self, forget_pools_after_fork: Callable[[], None]) -> None:
        self._forget_pools_after_fork = forget_pools_after_fork
        self._lock = threading.Lock()
        self._engine: Engine | None = None
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
        thread = self.thread
        return thread is not None and thread.is_alive()

    @property
    def thread(self) -> threading.Thread | None:
        engine = self._engine
        return engine.thread if engine is not None and self._pid == os.getpid() else None

    def _running_engine(self) -> Engine:
        engine = self._engine
        if engine is not None and not self._closed and self._pid == os.getpid():
            return engine
        if self._pid != os.getpid():
            self._reset_after_fork()  # the at-fork hook did not run (fork outside os.fork)
        with self._lock:
            if self._closed:
                raise RuntimeError(CLOSED)
            if self._engine is None:
                self._start()
            assert self._engine is not None
            return self._engine

    def _start(self) -> None:
        """Make the loop and start its thread (the lock is held)."""
        if self._forked:
            # First use in a forked child: drop the parent's pools, untouched, before any request.
            self._forget_pools_after_fork()
            self._forked = False
        self._engine = Engine()

    def _reset_after_fork(self) -> None:
        """In a forked child: forget the parent's loop and thread; the next call starts new ones."""
        self._lock = threading.Lock()  # it may have been held by another thread at fork time
        if self._engine is not None:
            _INHERITED.append(self._engine)
        self._engine = None
        self._pid = os.getpid()
        self._forked = True

    # --- calls --------------------------------------------------------------------------------

    @overload
    def call(self, func: Callable[[], Awaitable[T]]) -> T: ...

    @overload
    def call(self, func: Callable[[], T]) -> T: ...

    def call(self, func: Callable[[], Any]) -> Any:
        """Run `func` in the loop (awaiting it if it returns an awaitable); block for the result."""
        engine = self._running_engine()
        running = asyncio._get_running_loop()
        if running is not None:
            if running is engine.loop:
                raise RuntimeError(_FROM_OWN_LOOP)
            if not self._warned:
                self._warn_in_a_running_loop()
        elif threading.current_thread() is engine.thread:
            raise RuntimeError(_FROM_OWN_LOOP)
        return engine.run(func, promotable=running is None and can_lead())

    def iterate(self, source: AsyncIterator[T]) -> Iterator[T]:
        """Items of an async iterator, one call per item (for a paginator: per page)."""
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

    def _warn_in_a_running_loop(self) -> None:
        with self._lock:
            if self._warned:
                return
            self._warned = True
        # stacklevel: _warn_in_a_running_loop <- call <- the generated method <- the caller
        warnings.warn(_IN_LOOP_WARNING, RuntimeWarning, stacklevel=4)

    # --- lifetime -----------------------------------------------------------------------------

    def close(self, final: Callable[[], Awaitable[object]]) -> None:
        """Let calls in flight finish, run `final` (the async client's close), shut the loop down. Idempotent."""
        if self._pid != os.getpid():
            self._reset_after_fork()
        engine = self._engine
        if engine is not None and (
            threading.current_thread() is engine.thread or asyncio._get_running_loop() is engine.loop
        ):
            raise RuntimeError(_FROM_OWN_LOOP)
        with self._lock:
            if self._closed:
                return
            if self._engine is None:
                # Never used (or used only by the parent of this forked child): the async
                # client still needs its close, which runs in a loop.
                self._start()
            engine = self._engine
            assert engine is not None
            self._closed = True  # from here on, new calls are refused
        promotable = asyncio._get_running_loop() is None and can_lead()
        try:
            # Calls already in the loop finish first, on open pools (closing the pools first
            # failed them with a dropped connection); then the client closes; then the loop.
            engine.run(engine.drain, promotable=promotable, internal=True)
            engine.run(final, promotable=promotable, internal=True)
        finally:
            engine.stop()
            engine.thread.join()

    def _close_at_exit(self, deadline: float) -> None:
        """At interpreter exit, for a client its owner did not close: warn, then close it by `deadline`."""
        if self._closed or not self.running or not self._lock.acquire(timeout=_left(deadline)):
            return
        try:
            engine = self._engine
            if self._closed or engine is None:
                return
            self._closed = True  # from here on, new calls are refused
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
            steps: list[Callable[[], Any]] = [engine.drain]
            if aclose is not None:  # no summary flush: it could mean network calls while exit waits
                steps.append(functools.partial(aclose, flush_summaries=False))
            try:
                for step in steps:
                    _run_by(deadline, engine, step)
                engine.stop()
                engine.thread.join(_left(deadline))
            except (TimeoutError, RuntimeError):
                pass  # a call still in flight, or a wedged loop: leave it, never hold up exit

    def __del__(self) -> None:
        try:
            engine = self._engine
            if engine is not None and not self._closed and self._pid == os.getpid() and engine.thread.is_alive():
                warnings.warn(_NOT_CLOSED, ResourceWarning, stacklevel=2)
        except Exception:  # interpreter shutdown, or __init__ never finished
            pass


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _run_by(deadline: float, engine: Engine, step: Callable[[], Any]) -> None:
    """Run `step` on the loop thread (exit runs in the main thread, which must not run the loop
    where a daemon thread's call may be stuck), waiting until `deadline` at most."""
    call = engine.submit(step, promotable=False, internal=True)
    if not call.done.acquire(timeout=_left(deadline)):
        engine.abandon(call)
        raise TimeoutError
    call.outcome()


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
