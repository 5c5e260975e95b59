"""`Emulator`: the facade of the PacSpace emulator (lifecycle, keys, faults, inspection).

The parts it puts together, each in its own module: `_app` (one aiohttp application per
environment) whose `_pipeline` of middlewares checks every request before a `_handlers`
function applies the write rules or asks `_queries`; the `_ledger` they keep; the
`_settlement` that moves deltas to their final status; `_deliveries` for webhooks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from .._environments import Environment
from ._app import Backend, build_app
from ._clocks import now_utc
from ._deliveries import Dispatcher, WebhookDeliveryRecord
from ._faults import FaultPlan, Faults, HeldAnswers
from ._ids import Ids
from ._keys import KeyRecord, new_key
from ._ledger import Ledger
from ._merkle import require_keccak
from ._outage import OUTAGE_KINDS, Listener, Outage, OutageSwitch
from ._pipeline import IdempotencyStore, RateLimiter
from ._records import EmulatedCheckpoint, EmulatedDelta, RequestRecord, snapshot_checkpoint, snapshot_delta
from ._serverlog import server_logger
from ._settings import FailRule
from ._settlement import Settlement

if TYPE_CHECKING:
    from .._client import AsyncPacSpace

__all__ = ["Emulator"]

T = TypeVar("T")


def _positive_or_none(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number or None, got {value!r}")
    return float(value)


class Emulator:
    """The PacSpace Balance API, served for real on 127.0.0.1: one port per environment.

    >>> async with Emulator(verify_delay=0.05) as emu:
    ...     async with emu.client() as pac:                     # a sandbox key, pointed here
    ...         rec = await pac.balance.emit(customer_id="cust_1", delta=Decimal("-1"), reason="usage")
    ...     assert len(emu.deltas()) == 1

    For code that is not async: ``emu = Emulator().start_in_thread()`` ... ``emu.stop()`` (or
    ``with Emulator() as emu:``), which runs the server on its own loop in a daemon thread.

    Options: `seed` makes ids and random faults reproducible; `faults` (a `Faults`) injects
    5xx answers, dropped connections and slow answers; `verify_delay` is the time from QUEUED
    to VERIFIED (PROCESSING half-way; None: only `settle()` moves deltas on); `fail_rule`
    marks deltas FAILED; `rate_limit` (requests per second per key, 429 + Retry-After beyond);
    `cadence_seconds` (minimum spacing of emits per customer, 429 CADENCE_LIMIT);
    `idempotency_pending_seconds` (the wait a 202 IDEMPOTENCY_PENDING answer asks for);
    `allowance` (deltas per environment before writes get 402; None: unlimited);
    `webhook_retry_delays` (waits between delivery attempts); `ports` (default: free ports).
    `outage()` takes it down for a while; `hold_answers()` keeps answers back after the write.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        faults: Faults | None = None,
        verify_delay: float | None = 0.05,
        fail_rule: FailRule | None = None,
        rate_limit: float | None = None,
        cadence_seconds: float | None = None,
        idempotency_pending_seconds: float = 0.05,
        allowance: int | None = None,
        webhook_retry_delays: Sequence[float] = (0.05, 0.1, 0.2, 0.4, 0.8),
        webhook_timeout: float = 5.0,
        host: str = "127.0.0.1",
        ports: Mapping[Environment | str, int] | None = None,
        clock: Callable[[], float] = time.time,
        max_logged_requests: int = 100_000,
    ) -> None:
        require_keccak()  # fail here, with the install line, rather than on the first emit
        if faults is not None and not isinstance(faults, Faults):
            raise TypeError("faults must be a pacspace_async.testing.Faults or None")
        if verify_delay is not None and (isinstance(verify_delay, bool) or not verify_delay >= 0):
            raise ValueError(f"verify_delay must be >= 0 seconds or None, got {verify_delay!r}")
        if not idempotency_pending_seconds >= 0:
            raise ValueError("idempotency_pending_seconds must be >= 0")
        if allowance is not None and (isinstance(allowance, bool) or allowance < 0):
            raise ValueError("allowance must be a whole number >= 0 or None")
        self.seed = seed
        self.verify_delay = verify_delay
        self.fail_rule = fail_rule
        self.rate_limit = _positive_or_none("rate_limit", rate_limit)
        self.cadence_seconds = _positive_or_none("cadence_seconds", cadence_seconds)
        self.idempotency_pending_seconds = float(idempotency_pending_seconds)
        self.allowance = allowance
        self.host = host
        self._ports = {Environment.coerce(name): port for name, port in (ports or {}).items()}
        self._clock = clock
        self._ids = Ids(seed)
        self._plan = FaultPlan(faults, seed)
        self._keys: dict[str, KeyRecord] = {}
        # Changed in place (reset() puts new ledgers in): the servers hold these very mappings.
        self._ledgers = {environment: Ledger(environment, self._ids) for environment in Environment}
        self._idempotency = {environment: IdempotencyStore() for environment in Environment}
        self._requests: deque[RequestRecord] = deque(maxlen=max_logged_requests)
        self._limiter = RateLimiter()
        self._dispatcher = Dispatcher(
            ids=self._ids, clock=clock, retry_delays=webhook_retry_delays, timeout=webhook_timeout
        )
        self._settlement = Settlement(ledgers=self._ledgers, dispatcher=self._dispatcher, settings=self, now=self._now)
        self._runners: list[web.AppRunner] = []
        self._listeners: list[Listener] = []
        self._switch = OutageSwitch(lambda: self._listeners, self._plan)
        self._urls: dict[Environment, str] = {}
        self._backend = Backend(
            settings=self,
            keys=self._keys,
            ledgers=self._ledgers,
            idempotency=self._idempotency,
            limiter=self._limiter,
            plan=self._plan,
            log=self._requests,
            settlement=self._settlement,
            dispatcher=self._dispatcher,
            urls=self._urls,
            now=self._now,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = ", ".join(f"{env.value}={url}" for env, url in self._urls.items()) or "not started"
        return f"Emulator({where})"

    # --- lifetime ---------------------------------------------------------------------------

    async def start(self) -> Emulator:
        """Serve both environments on the running loop; returns self."""
        if self._runners:
            raise RuntimeError("this Emulator is already running")
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._settlement.closing = False
        try:
            for environment in Environment:
                app = build_app(environment, self._backend)
                # No access log, and a logger that never quotes request bytes (header values).
                runner = web.AppRunner(app, access_log=None, logger=server_logger(), shutdown_timeout=1.0)
                await runner.setup()
                self._runners.append(runner)
                assert runner.server is not None  # set up above
                # Our own listening socket (not an aiohttp site): an outage closes it and binds
                # the same port again.
                listener = await Listener.open(runner.server, self.host, self._ports.get(environment, 0))
                self._listeners.append(listener)
                host = f"[{self.host}]" if ":" in self.host else self.host
                self._urls[environment] = f"http://{host}:{listener.port}"
        except BaseException:
            await self.aclose()
            raise
        return self

    async def aclose(self) -> None:
        """Stop serving; pending verifications and webhook deliveries are dropped. Idempotent."""
        # Serving stops first: a request still finishing during the cleanup would otherwise
        # schedule a verification (and its webhook) after the timers were cancelled.
        self._settlement.closing = True
        await self._switch.aclose()
        self._plan.release_all()  # answers held back go out now rather than at the shutdown timeout
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener.close()
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()
        # What was still on its way to a final status stays pending: settle() finishes it later
        # (after close, without webhooks: there is nobody to deliver them).
        self._settlement.stop_timers()
        await self._dispatcher.aclose()
        self._urls.clear()

    async def __aenter__(self) -> Emulator:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def start_in_thread(self, *, timeout: float = 10.0) -> Emulator:
        """Serve from a daemon thread with its own event loop (for sync code); returns self."""
        if self._thread is not None or self._runners:
            raise RuntimeError("this Emulator is already running")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.aclose())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name="pacspace-emulator", daemon=True)
        self._thread = thread
        thread.start()
        if not ready.wait(timeout):
            raise RuntimeError(f"the emulator did not start within {timeout:g}s")
        if failure:
            self._thread = None
            raise failure[0]
        return self

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop an emulator started with `start_in_thread()` and join its thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            raise RuntimeError("stop() ends an emulator started with start_in_thread(); use `await emu.aclose()`")
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(self.aclose(), loop).result(timeout)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> Emulator:
        return self.start_in_thread()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return bool(self._runners)

    # --- where it is ------------------------------------------------------------------------

    @property
    def base_urls(self) -> dict[Environment | str, str]:
        """``{Environment.SANDBOX: url, Environment.PRODUCTION: url}`` for ``AsyncPacSpace(base_urls=...)``."""
        if not self._urls:
            raise RuntimeError("the emulator is not running: `async with Emulator() as emu:` or start_in_thread()")
        urls: dict[Environment | str, str] = dict(self._urls.items())
        return urls

    def url(self, environment: Environment | str) -> str:
        return str(self.base_urls[Environment.coerce(environment)])

    @property
    def sandbox_url(self) -> str:
        return self.url(Environment.SANDBOX)

    @property
    def production_url(self) -> str:
        return self.url(Environment.PRODUCTION)

    # --- configuration ----------------------------------------------------------------------

    def create_key(
        self,
        environment: Environment | str = Environment.SANDBOX,
        *,
        permissions: Iterable[str] | None = None,
    ) -> str:
        """A new key ``pk_test_emu....<secret>`` (or ``pk_live_``); `permissions` None = all.

        Permission names are in `PERMISSIONS` (``balance:write``, ``balance:read``, ...).
        """
        record = new_key(Environment.coerce(environment), permissions)

        def register() -> str:
            self._keys[record.key_id] = record
            return record.full_key

        return self._sync(register)

    def revoke_key(self, key: str) -> None:
        """Revoke a key (the full key or its ``pk_..._PUBLICID`` id): it gets 401 from now on."""
        key_id = key.split(".", 1)[0]

        def revoke() -> None:
            record = self._keys.get(key_id)
            if record is None:
                raise KeyError(f"no key {key_id} was created by this emulator")
            record.revoked = True

        self._sync(revoke)

    def register_webhook(
        self, url: str, secret: str | None = None, *, environment: Environment | str | None = None
    ) -> str:
        """Deliver events to `url` (both environments unless `environment`); returns the secret.

        Without `secret`, a ``whsec_...`` one is generated.
        """
        env = None if environment is None else Environment.coerce(environment)
        return self._sync(lambda: self._dispatcher.register(url, secret, env).secret)

    @property
    def faults(self) -> Faults | None:
        return self._plan.faults

    @faults.setter
    def faults(self, value: Faults | None) -> None:
        if value is not None and not isinstance(value, Faults):
            raise TypeError("faults must be a Faults or None")
        self._plan.faults = value

    def inject(
        self,
        kind: str,
        *,
        count: int = 1,
        method: str | None = None,
        path: str | None = None,
        seconds: float | None = None,
    ) -> None:
        """Give the next `count` matching requests the fault `kind` (see `FAULT_KINDS`).

        `path` matches the request path or its route template, e.g.
        ``"/api/v1/balance/delta"``; `seconds` is the delay of a ``"slow"`` fault.

        >>> emu.inject("drop_after_write", method="POST", path="/api/v1/balance/delta")
        """
        self._sync(lambda: self._plan.inject(kind, count=count, method=method, path=path, seconds=seconds))

    def outage(self, kind: str = "refuse", *, seconds: float | None = None) -> Outage:
        """Take the emulator down now, until the `Outage` returned ends (or `seconds` pass).

        ``"refuse"``: the listening sockets close and open connections are cut (clients get
        connection refused), then the same ports serve again. ``"500"``/``"502"``/``"503"``:
        every API request gets that status, before anything is done.

        >>> with emu.outage(): ...              # sync; async: ``async with emu.outage("503"):``
        """
        if kind not in OUTAGE_KINDS:
            raise ValueError(f"kind must be one of {OUTAGE_KINDS}, got {kind!r}")
        seconds = _positive_or_none("seconds", seconds)
        loop = self._loop
        if not self._runners or loop is None:
            raise RuntimeError("the emulator is not running: start it before an outage")
        number = self._sync(lambda: self._switch.begin(kind, seconds))
        return Outage(kind, self._switch, number, loop, self._loop_thread)

    def hold_answers(
        self, *, method: str | None = None, path: str | None = None, count: int | None = None
    ) -> HeldAnswers:
        """Carry out the next `count` matching requests (None: all) but keep their answers back
        until ``release()``: the moment between a write and its acknowledgement, held open.

        >>> with emu.hold_answers(method="POST", path="/api/v1/balance/delta", count=4) as held:
        ...     ...                             # held.waiting: answers kept back now
        """
        hold = self._sync(lambda: self._plan.hold(count=count, method=method, path=path))
        return HeldAnswers(hold, self._plan, self._sync)

    # --- inspection -------------------------------------------------------------------------

    def deltas(
        self,
        customer_id: str | None = None,
        environment: Environment | str | None = None,
        *,
        status: str | None = None,
    ) -> list[EmulatedDelta]:
        """The deltas stored, in recording order (snapshots)."""
        ledgers = self._ledgers_for(environment)
        return self._sync(
            lambda: [
                snapshot_delta(d)
                for ledger in ledgers
                for d in ledger.deltas.values()
                if (customer_id is None or d.customer_id == customer_id) and (status is None or d.status == status)
            ]
        )

    def checkpoints(
        self, customer_id: str | None = None, environment: Environment | str | None = None
    ) -> list[EmulatedCheckpoint]:
        ledgers = self._ledgers_for(environment)
        return self._sync(
            lambda: [
                snapshot_checkpoint(c)
                for ledger in ledgers
                for c in ledger.checkpoints.values()
                if customer_id is None or c.customer_id == customer_id
            ]
        )

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request received, oldest first (method, path, status, key_id, ...)."""
        return self._sync(lambda: list(self._requests))

    @property
    def deliveries(self) -> list[WebhookDeliveryRecord]:
        """Every webhook delivery with its attempts, oldest first."""
        return self._sync(lambda: [d.snapshot() for d in self._dispatcher.deliveries.values()])

    def reset(self) -> None:
        """Forget all data (deltas, checkpoints, idempotency keys, requests, deliveries, faults
        drawn and injected); keys and webhook registrations stay."""
        self._sync(self._reset_now)

    def settle(self) -> None:
        """Move every pending delta and checkpoint to its final status now."""
        self._sync(self._settlement.settle)

    async def wait_for_deliveries(self, timeout: float = 5.0) -> None:
        """Wait until no webhook delivery is underway or waiting for a retry (any event loop)."""
        loop = self._loop
        if loop is None:
            return
        if asyncio.get_running_loop() is loop:
            await self._dispatcher.drain(timeout)
        else:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._dispatcher.drain(timeout), loop))

    def wait_for_deliveries_sync(self, timeout: float = 5.0) -> None:
        """`wait_for_deliveries` for an emulator started with `start_in_thread()`."""
        loop = self._loop
        if loop is None or self._thread is None:
            raise RuntimeError("wait_for_deliveries_sync() needs start_in_thread(); await wait_for_deliveries()")
        asyncio.run_coroutine_threadsafe(self._dispatcher.drain(timeout), loop).result(timeout + 1)

    def client(
        self,
        environment: Environment | str = Environment.SANDBOX,
        *,
        permissions: Iterable[str] | None = None,
        **options: Any,
    ) -> AsyncPacSpace:
        """An `AsyncPacSpace` with a new key of `environment`, pointed at this emulator."""
        from .._client import AsyncPacSpace

        key = self.create_key(environment, permissions=permissions)
        options.setdefault("base_urls", self.base_urls)
        return AsyncPacSpace(key, **options)

    # --- internals: threads -----------------------------------------------------------------

    def _sync(self, work: Callable[[], T]) -> T:
        """Run `work` on the emulator's loop when called from another thread while it runs."""
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running() or threading.get_ident() == self._loop_thread:
            return work()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(work())
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(timeout=30)

    def _ledgers_for(self, environment: Environment | str | None) -> list[Ledger]:
        if environment is None:
            return list(self._ledgers.values())
        return [self._ledgers[Environment.coerce(environment)]]

    def _reset_now(self) -> None:
        self._settlement.clear()
        for environment in Environment:
            self._ledgers[environment] = Ledger(environment, self._ids)
            self._idempotency[environment].clear()
        self._requests.clear()
        self._limiter.clear()
        self._dispatcher.clear()
        self._plan.reset()

    def _now(self) -> datetime:
        return now_utc(self._clock)
