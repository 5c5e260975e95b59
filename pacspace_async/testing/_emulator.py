"""`Emulator`: the PacSpace Balance API as a real HTTP server on 127.0.0.1, one port per environment."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import hmac
import logging
import math
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from aiohttp import web

from .._environments import Environment
from ._deliveries import Dispatcher, WebhookDeliveryRecord
from ._faults import Decision, FaultPlan, Faults
from ._merkle import canonical_json, require_keccak
from ._serverlog import server_logger
from ._state import (
    PERMISSIONS,
    SCOPE_LIMITS,
    CheckpointState,
    DeltaItem,
    DeltaState,
    EmulatedCheckpoint,
    EmulatedDelta,
    Idempotent,
    Ids,
    KeyRecord,
    Ledger,
    RequestRecord,
    now_utc,
    snapshot_deltas,
)
from ._wire import ApiError, Reply, dumps, loads

if TYPE_CHECKING:
    from .._client import AsyncPacSpace

__all__ = ["Emulator", "FailRule"]

T = TypeVar("T")
FailRule = Callable[[Mapping[str, Any]], object]
"""Called with a delta (``recordId``, ``customerId``, ``delta`` as Decimal, ``reason``,
``referenceId``, ``metadata``, ``environment``, ``sequenceNumber``) when it is due to verify.
Truthy: the delta becomes FAILED (a str return value is used as its error text)."""

logger = logging.getLogger("pacspace.emulator")

_KEY = re.compile(r"(pk_test_|pk_live_)([^.\s]+)\.(\S+)")
_FAULT_CODES = {"500": "INTERNAL_ERROR", "502": "BAD_GATEWAY", "503": "SERVICE_UNAVAILABLE"}


@attrs.frozen
class _Route:
    method: str
    template: str
    permission: str | None
    handler: str

    @property
    def resource(self) -> str:
        return f"{self.method} {self.template}"


_ROUTES: tuple[_Route, ...] = (
    _Route("POST", "/api/v1/balance/delta", "balance:write", "_emit"),
    _Route("POST", "/api/v1/balance/delta/batch", "balance:write", "_emit_batch"),
    _Route("GET", "/api/v1/balance/delta/{recordId}", "balance:read", "_status"),
    _Route("GET", "/api/v1/balance/derive/{customerId}", "balance:read", "_derive"),
    _Route("POST", "/api/v1/balance/compare", "balance:read", "_compare"),
    _Route("GET", "/api/v1/balance/gaps/{customerId}", "balance:read", "_gaps"),
    _Route("POST", "/api/v1/balance/checkpoint", "checkpoints:write", "_checkpoint"),
    _Route("GET", "/api/v1/balance/checkpoints", "checkpoints:read", "_checkpoints"),
    _Route("GET", "/api/v1/balance/receipt/{customerId}", "receipts:read", "_receipt"),
    _Route("GET", "/api/v1/balance/invoice-proof/{customerId}", "receipts:read", "_receipt"),
    _Route("GET", "/api/v1/balance/usage", "usage:read", "_usage"),
    _Route("GET", "/api/v1/balance/limits", "usage:read", "_limits"),
    _Route("GET", "/api/v1/balance/customers", "customers:read", "_customers"),
    _Route("GET", "/api/v1/balance/customers/summary", "customers:read", "_customers_summary"),
    _Route("GET", "/api/v1/balance/customers/{customerId}", "customers:read", "_customer"),
    _Route("GET", "/api/v1/balance/webhooks", "webhooks:read", "_deliveries"),
    _Route("POST", "/api/v1/balance/webhooks/{eventId}/retry", "webhooks:write", "_retry_delivery"),
    _Route("GET", "/api/v1/verify/{proofRoot}", None, "_verify"),
)


@attrs.define
class _Call:
    """One request as a handler sees it."""

    environment: Environment
    ledger: Ledger
    key: KeyRecord | None
    query: Mapping[str, str]
    match: Mapping[str, str]
    body: Any
    idempotency_key: str | None
    now: datetime
    base_url: str

    def body_object(self) -> Mapping[str, Any]:
        if self.body is None:
            return {}
        if not isinstance(self.body, Mapping):
            raise ApiError(400, "VALIDATION_ERROR", "the request body must be a JSON object")
        return self.body


@attrs.define
class _Trace:
    """What the request log needs to know about a request as it goes."""

    key_id: str | None = None
    replayed: bool = False
    slowed: bool = False  # a "slow" fault already waited (where a write would happen)
    keyed: bool = False  # a POST carrying an Idempotency-Key: its answer says whether it is a replay


def _loop_time() -> float:
    """The clock of rate and cadence windows: the event loop's, as the README says."""
    return asyncio.get_running_loop().time()


def _wait_headers(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds))), "retry-after-ms": str(max(1, math.ceil(seconds * 1000)))}


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
        self._ledgers = {environment: Ledger(environment, self._ids) for environment in Environment}
        self._requests: deque[RequestRecord] = deque(maxlen=max_logged_requests)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._timers: dict[DeltaState | CheckpointState, list[asyncio.TimerHandle]] = {}
        self._unsettled: dict[DeltaState | CheckpointState, None] = {}
        self._closing = False  # set by aclose(): requests still finishing schedule nothing more
        self._dispatcher = Dispatcher(
            ids=self._ids, clock=clock, retry_delays=webhook_retry_delays, timeout=webhook_timeout
        )
        self._runners: list[web.AppRunner] = []
        self._urls: dict[Environment, str] = {}
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
        self._closing = False
        try:
            for environment in Environment:
                app = web.Application()
                self._add_routes(app, environment)
                # No access log, and a logger that never quotes request bytes (header values).
                runner = web.AppRunner(app, access_log=None, logger=server_logger(), shutdown_timeout=1.0)
                await runner.setup()
                self._runners.append(runner)
                site = web.TCPSite(runner, self.host, self._ports.get(environment, 0))
                await site.start()
                port = runner.addresses[0][1]
                host = f"[{self.host}]" if ":" in self.host else self.host
                self._urls[environment] = f"http://{host}:{port}"
        except BaseException:
            await self.aclose()
            raise
        return self

    async def aclose(self) -> None:
        """Stop serving; pending verifications and webhook deliveries are dropped. Idempotent."""
        # Serving stops first: a request still finishing during the cleanup would otherwise
        # schedule a verification (and its webhook) after the timers were cancelled.
        self._closing = True
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()
        # What was still on its way to a final status stays pending: settle() finishes it later
        # (after close, without webhooks: there is nobody to deliver them).
        for item, handles in self._timers.items():
            for handle in handles:
                handle.cancel()
            self._unsettled[item] = None
        self._timers.clear()
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
        env = Environment.coerce(environment)
        allowed = None if permissions is None else frozenset(permissions)
        if allowed is not None and isinstance(permissions, str):
            raise TypeError("permissions must be a collection of names, e.g. {'balance:read'}")
        unknown = sorted((allowed or frozenset()) - PERMISSIONS)
        if unknown:
            raise ValueError(f"unknown permissions {unknown}; known: {sorted(PERMISSIONS)}")

        def make() -> str:
            record = KeyRecord(env, "emu" + secrets.token_hex(6), secrets.token_urlsafe(24), allowed)
            self._keys[record.key_id] = record
            return record.full_key

        return self._sync(make)

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
        return self._sync(lambda: snapshot_deltas(ledgers, customer_id=customer_id, status=status))

    def checkpoints(
        self, customer_id: str | None = None, environment: Environment | str | None = None
    ) -> list[EmulatedCheckpoint]:
        ledgers = self._ledgers_for(environment)
        return self._sync(
            lambda: [
                c.snapshot()
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
        self._sync(self._settle_now)

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
        for handles in self._timers.values():
            for handle in handles:
                handle.cancel()
        self._timers.clear()
        self._unsettled.clear()
        self._ledgers = {environment: Ledger(environment, self._ids) for environment in Environment}
        self._requests.clear()
        self._buckets.clear()
        self._dispatcher.clear()
        self._plan.reset()

    # --- internals: the lifecycle -----------------------------------------------------------

    def _now(self) -> datetime:
        return now_utc(self._clock)

    def _schedule(self, item: DeltaState | CheckpointState) -> None:
        if self._closing:  # no timers any more: pending until settle()
            self._unsettled[item] = None
            return
        delay = self.verify_delay
        if delay is None:
            self._unsettled[item] = None
            return
        loop = asyncio.get_running_loop()
        handles = [loop.call_later(delay, self._finish, item)]
        if isinstance(item, DeltaState):
            handles.insert(0, loop.call_later(delay / 2, self._processing, item))
        self._timers[item] = handles

    def _processing(self, delta: DeltaState) -> None:
        self._ledgers[delta.environment].mark_processing(delta, self._now())

    def _finish(self, item: DeltaState | CheckpointState) -> None:
        for handle in self._timers.pop(item, ()):
            handle.cancel()
        self._unsettled.pop(item, None)
        ledger = self._ledgers[item.environment]
        now = self._now()
        publish = self._dispatcher.publish if not self._closing else (lambda *_: None)
        if isinstance(item, CheckpointState):
            if item.status != "VERIFIED":
                ledger.mark_checkpoint_verified(item, now)
                publish(item.environment, "checkpoint.verified", item.verified_event())
            return
        if item.final:
            return
        ledger.mark_processing(item, now)
        error = self._failure(item)
        if error is None:
            ledger.mark_verified(item, now)
            publish(item.environment, "delta.verified", item.verified_event())
        else:
            ledger.mark_failed(item, now, error)
            publish(item.environment, "delta.failed", item.failed_event())

    def _failure(self, delta: DeltaState) -> str | None:
        rule = self.fail_rule
        if rule is None:
            return None
        try:
            verdict = rule(delta.rule_input())
        except Exception as exc:
            return f"fail_rule raised {type(exc).__name__}: {exc}"
        if not verdict:
            return None
        return verdict if isinstance(verdict, str) else "rejected by the emulator's fail_rule"

    def _settle_now(self) -> None:
        pending = list(self._timers) + [item for item in self._unsettled if item not in self._timers]
        for item in pending:
            self._finish(item)

    # --- internals: HTTP --------------------------------------------------------------------

    def _add_routes(self, app: web.Application, environment: Environment) -> None:
        for route in _ROUTES:
            app.router.add_route(route.method, route.template, self._endpoint(environment, route))

        async def not_found(request: web.Request) -> web.StreamResponse:
            reply = ApiError(404, "NOT_FOUND", f"no route {request.method} {request.path}").reply()
            self._log(request, environment, reply.status, _Trace(), None)
            return self._response(reply, _Trace())

        app.router.add_route("*", "/{tail:.*}", not_found)

    def _endpoint(self, environment: Environment, route: _Route) -> Callable[[web.Request], Any]:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            return await self._serve(request, environment, route)

        return endpoint

    async def _serve(self, request: web.Request, environment: Environment, route: _Route) -> web.StreamResponse:
        raw = await request.read()
        idempotency_key = request.headers.get("Idempotency-Key") or None
        decision = self._plan.decide(request.method, request.path, route.template, idempotency_key)
        trace = _Trace(
            key_id=_key_id(request.headers.get("X-Api-Key")),
            keyed=request.method == "POST" and idempotency_key is not None,
        )
        fault = None if decision is None else decision.kind
        if fault in _FAULT_CODES:
            assert fault is not None
            reply = ApiError(int(fault), _FAULT_CODES[fault], f"emulator fault: HTTP {fault}").reply()
            self._log(request, environment, reply.status, trace, fault)
            return self._response(reply, trace)
        if fault == "drop_before_write":
            return self._drop(request, environment, trace, fault)
        try:
            reply = await self._process(request, environment, route, raw, idempotency_key, decision, trace)
        except ApiError as error:
            reply = error.reply()
        except Exception as exc:  # an emulator bug: answer 500 and say so
            logger.exception("emulator error on %s %s", request.method, request.path)
            reply = ApiError(500, "EMULATOR_ERROR", f"emulator error: {type(exc).__name__}: {exc}").reply()
        if fault == "slow" and not trace.slowed:  # a replay, a 202/409 or an early error: late too
            assert decision is not None
            await asyncio.sleep(decision.seconds)
        if fault == "drop_after_write":
            return self._drop(request, environment, trace, fault)
        self._log(request, environment, reply.status, trace, fault)
        return self._response(reply, trace)

    def _drop(self, request: web.Request, environment: Environment, trace: _Trace, fault: str) -> web.StreamResponse:
        self._log(request, environment, None, trace, fault)
        transport = request.transport
        if transport is not None:
            transport.abort()
        return web.Response()

    def _response(self, reply: Reply, trace: _Trace) -> web.Response:
        headers = {**reply.headers, "X-Request-Id": "req_" + secrets.token_hex(8)}
        # As Stripe does: every successful keyed POST says whether it came from idempotency memory.
        if trace.replayed:
            headers["Idempotent-Replayed"] = "true"
        elif trace.keyed and 200 <= reply.status < 300:
            headers["Idempotent-Replayed"] = "false"
        return web.Response(
            body=dumps(reply.body), status=reply.status, headers=headers, content_type="application/json"
        )

    def _log(
        self,
        request: web.Request,
        environment: Environment,
        status: int | None,
        trace: _Trace,
        fault: str | None,
    ) -> None:
        self._requests.append(
            RequestRecord(
                method=request.method,
                path=request.path,
                environment=environment,
                status=status,
                key_id=trace.key_id,
                idempotency_key=request.headers.get("Idempotency-Key"),
                fault=fault,
                replayed=trace.replayed,
                at=self._now(),
            )
        )

    async def _process(
        self,
        request: web.Request,
        environment: Environment,
        route: _Route,
        raw: bytes,
        idempotency_key: str | None,
        decision: Decision | None,
        trace: _Trace,
    ) -> Reply:
        key = None
        if route.permission is not None:
            key = self._authenticate(request, environment, route, trace)
            self._check_rate(key)
        chain = request.headers.get("X-Chain-Id")
        if chain is not None and chain.strip() != str(environment.chain_id):
            raise ApiError(
                400,
                "CHAIN_ID_MISMATCH",
                f"X-Chain-Id {chain} does not belong to {environment.value} (expected {environment.chain_id})",
            )
        body: Any = None
        if raw.strip():
            try:
                body = loads(raw)
            except ValueError:
                raise ApiError(400, "INVALID_JSON", "the request body is not valid JSON") from None
        ledger = self._ledgers[environment]
        entry: Idempotent | None = None
        if request.method == "POST" and idempotency_key is not None:
            fingerprint = hashlib.sha256(f"{request.method} {request.path} {canonical_json(body)}".encode()).hexdigest()
            existing = ledger.idempotency.get(idempotency_key)
            if existing is not None:
                if existing.fingerprint != fingerprint:
                    raise ApiError(
                        409,
                        "IDEMPOTENCY_KEY_REUSED",
                        "this Idempotency-Key was already used with a different request; use a new key",
                    )
                if existing.reply is None:
                    wait = self.idempotency_pending_seconds
                    return Reply(
                        202,
                        {
                            "code": "IDEMPOTENCY_PENDING",
                            "retryAfterSeconds": wait,
                            "message": "a request with this Idempotency-Key is still being processed",
                        },
                        _wait_headers(wait),
                    )
                trace.replayed = True
                stored: Reply = existing.reply
                return stored
            entry = Idempotent(fingerprint)
            ledger.idempotency[idempotency_key] = entry
        try:
            if decision is not None and decision.kind == "slow":
                # Here, after the key is taken and before the write: a retry meanwhile sees 202.
                trace.slowed = True
                await asyncio.sleep(decision.seconds)
            call = _Call(
                environment=environment,
                ledger=ledger,
                key=key,
                query=request.query,
                match=request.match_info,
                body=body,
                idempotency_key=idempotency_key,
                now=self._now(),
                base_url=self._urls.get(environment, ""),
            )
            handler: Callable[[_Call], Reply] = getattr(self, route.handler)
            reply = handler(call)
        except BaseException:
            if entry is not None and idempotency_key is not None and ledger.idempotency.get(idempotency_key) is entry:
                del ledger.idempotency[idempotency_key]
            raise
        if entry is not None and idempotency_key is not None:
            if reply.success:
                entry.reply = reply
            elif ledger.idempotency.get(idempotency_key) is entry:
                del ledger.idempotency[idempotency_key]
        return reply

    def _authenticate(self, request: web.Request, environment: Environment, route: _Route, trace: _Trace) -> KeyRecord:
        header = request.headers.get("X-Api-Key")
        if not header:
            raise ApiError(401, "MISSING_API_KEY", "this endpoint needs an X-Api-Key header")
        match = _KEY.fullmatch(header.strip())
        if match is None:
            raise ApiError(
                401, "INVALID_API_KEY", "the X-Api-Key is not of the form pk_{test|live}_{publicId}.{secret}"
            )
        prefix, public_id, secret = match.groups()
        key_id = prefix + public_id
        trace.key_id = key_id
        key_environment = Environment.SANDBOX if prefix == "pk_test_" else Environment.PRODUCTION
        if key_environment is not environment:
            raise ApiError(
                401,
                "WRONG_ENVIRONMENT",
                f"key {key_id} is a {key_environment.value} key; this is the {environment.value} API",
                keyId=key_id,
            )
        record = self._keys.get(key_id)
        if record is None or not hmac.compare_digest(record.secret.encode(), secret.encode()):
            raise ApiError(401, "INVALID_API_KEY", f"key {key_id} is not valid", keyId=key_id)
        if record.revoked:
            raise ApiError(401, "API_KEY_REVOKED", f"key {key_id} was revoked", keyId=key_id)
        assert route.permission is not None
        if not record.allows(route.permission):
            raise ApiError(
                403,
                "PERMISSION_DENIED",
                f"key {key_id} may not use {route.resource}: it lacks the {route.permission} permission",
                keyId=key_id,
                resource=route.resource,
                permission=route.permission,
            )
        return record

    def _check_rate(self, key: KeyRecord) -> None:
        rate = self.rate_limit
        if rate is None:
            return
        now = _loop_time()
        capacity = max(1.0, rate)
        tokens, last = self._buckets.get(key.key_id, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens < 1.0:
            wait = (1.0 - tokens) / rate
            self._buckets[key.key_id] = (tokens, now)
            raise ApiError(
                429,
                "RATE_LIMITED",
                f"key {key.key_id} exceeded {rate:g} requests per second",
                headers=_wait_headers(wait),
                retryAfterSeconds=round(wait, 3),
            )
        self._buckets[key.key_id] = (tokens - 1.0, now)

    def _cadence_waits(self, ledger: Ledger, customers: Iterable[str]) -> dict[str, float]:
        """Seconds each customer must still wait before its next write (absent: may write)."""
        now = _loop_time()
        waits = {}
        for customer in customers:
            wait = ledger.cadence_wait(customer, now, self.cadence_seconds)
            if wait is not None:
                waits[customer] = wait
        return waits

    def _check_allowance(self, ledger: Ledger, count: int) -> None:
        if self.allowance is not None and ledger.reserved() + count > self.allowance:
            raise ApiError(
                402,
                "INSUFFICIENT_CREDITS",
                f"the plan's allowance of {self.allowance} deltas in {ledger.environment.value} is used up",
            )

    # --- handlers (sync: they run between awaits, so state changes are atomic) --------------

    def _emit(self, call: _Call) -> Reply:
        item = DeltaItem.parse(call.body)
        found = call.ledger.existing(item)
        if found is not None:
            return Reply.ok({**found.wire(), "idempotent": True}, 200)
        waits = self._cadence_waits(call.ledger, [item.customer_id])
        if waits:
            wait = waits[item.customer_id]
            raise ApiError(
                429,
                "CADENCE_LIMIT",
                f"customer {item.customer_id} was written less than {self.cadence_seconds:g}s ago",
                headers=_wait_headers(wait),
                retryAfterSeconds=round(wait, 3),
                customerId=item.customer_id,
            )
        self._check_allowance(call.ledger, 1)
        (delta,) = call.ledger.record([item], call.now, call.idempotency_key)
        call.ledger.last_emit[item.customer_id] = _loop_time()
        self._schedule(delta)
        return Reply.ok(delta.wire(), 201)

    def _emit_batch(self, call: _Call) -> Reply:
        items = call.body_object().get("deltas")
        if not isinstance(items, list) or not items:
            raise ApiError(400, "VALIDATION_ERROR", "deltas must be a non-empty list")
        if len(items) > 100:
            raise ApiError(400, "BATCH_TOO_LARGE", f"at most 100 deltas per batch, got {len(items)}")
        results: list[dict[str, Any] | None] = [None] * len(items)
        accepted: list[tuple[int, DeltaItem]] = []
        seen: dict[tuple[str, str], tuple[int, str]] = {}  # (customer, reference) -> first index, content
        for index, raw in enumerate(items):
            try:
                item = DeltaItem.parse(raw)
                found = call.ledger.existing(item)
            except ApiError as error:
                results[index] = {"index": index, "status": "FAILED", "error": error.code, "message": error.message}
                continue
            reference = None if item.reference_id is None else (item.customer_id, item.reference_id)
            if found is not None:
                results[index] = {**_batch_row(index, found), "idempotent": True}
            elif reference is not None and reference in seen:
                first, content = seen[reference]
                if content == canonical_json(item.content()):
                    results[index] = {"duplicateOf": first}  # filled in below
                else:  # as a second emit with this reference would be: 409, here a failed row
                    results[index] = {
                        "index": index,
                        "customerId": item.customer_id,
                        "status": "FAILED",
                        "error": "DUPLICATE_REFERENCE_ID",
                        "message": f"referenceId {item.reference_id!r} appears earlier in this batch "
                        "with different content",
                    }
            else:
                if reference is not None:
                    seen[reference] = (index, canonical_json(item.content()))
                accepted.append((index, item))
        waits = self._cadence_waits(call.ledger, {item.customer_id for _, item in accepted})
        blocked = [(i, item) for i, item in accepted if item.customer_id in waits]
        accepted = [(i, item) for i, item in accepted if item.customer_id not in waits]
        for index, item in blocked:
            results[index] = {
                "index": index,
                "customerId": item.customer_id,
                "delta": item.delta,
                "status": "FAILED",
                "error": "CADENCE_LIMIT",
                "retryAfterSeconds": round(waits[item.customer_id], 3),
            }
        if accepted:
            self._check_allowance(call.ledger, len(accepted))
            recorded = call.ledger.record([item for _, item in accepted], call.now, call.idempotency_key)
            moment = _loop_time()
            for (index, _), delta in zip(accepted, recorded, strict=True):
                results[index] = _batch_row(index, delta)
                call.ledger.last_emit[delta.customer_id] = moment
                self._schedule(delta)
        final: list[dict[str, Any]] = []
        for index, result in enumerate(results):
            assert result is not None
            if "duplicateOf" in result:
                first = results[result["duplicateOf"]]
                assert first is not None
                result = {**first, "index": index, "idempotent": True}
            final.append(result)
        failed = sum(1 for result in final if result["status"] == "FAILED")
        return Reply.ok(
            {
                "totalQueued": len(final) - failed,
                "totalFailed": failed,
                "results": final,
                "_efficiency": {"requests": 1, "items": len(final), "recorded": len(accepted)},
            }
        )

    def _status(self, call: _Call) -> Reply:
        return Reply.ok(call.ledger.delta(call.match["recordId"]).wire())

    def _derive(self, call: _Call) -> Reply:
        return Reply.ok(call.ledger.derive(call.match["customerId"], call.query, call.now))

    def _compare(self, call: _Call) -> Reply:
        return Reply.ok(call.ledger.compare(call.body_object(), call.now))

    def _gaps(self, call: _Call) -> Reply:
        return Reply.ok(call.ledger.gaps(call.match["customerId"], call.query))

    def _checkpoint(self, call: _Call) -> Reply:
        checkpoint, created = call.ledger.checkpoint(call.body_object(), call.now)
        if created:
            self._schedule(checkpoint)
        return Reply.ok({**checkpoint.wire(), "idempotent": not created}, 201 if created else 200)

    def _checkpoints(self, call: _Call) -> Reply:
        return Reply.ok(call.ledger.list_checkpoints(call.query, call.now))

    def _receipt(self, call: _Call) -> Reply:
        return Reply.ok(call.ledger.receipt(call.match["customerId"], call.query, call.now, call.base_url))

    def _usage(self, call: _Call) -> Reply:
        return Reply.ok(call.ledger.usage(self.allowance, call.now))

    def _limits(self, call: _Call) -> Reply:
        return Reply.ok(dict(SCOPE_LIMITS))

    def _customers(self, call: _Call) -> Reply:
        return Reply.ok(call.ledger.customers(call.query))

    def _customers_summary(self, call: _Call) -> Reply:
        return Reply.ok(call.ledger.customers_summary())

    def _customer(self, call: _Call) -> Reply:
        return Reply.ok(call.ledger.customer_detail(call.match["customerId"], call.query))

    def _deliveries(self, call: _Call) -> Reply:
        return Reply.ok(self._dispatcher.listing(call.environment, call.query))

    def _retry_delivery(self, call: _Call) -> Reply:
        deliveries = self._dispatcher.retry(call.environment, call.match["eventId"])
        return Reply.ok({**deliveries[0].wire(), "deliveries": [d.wire() for d in deliveries]})

    def _verify(self, call: _Call) -> Reply:
        source = call.query.get("source")
        if source is not None and source not in ("db", "chain", "both"):
            raise ApiError(400, "VALIDATION_ERROR", f"source must be db, chain or both, got {source!r}")
        data = call.ledger.verify(call.match["proofRoot"], call.base_url)
        if source is not None:
            data["source"] = source
        return Reply.ok(data)


def _key_id(header: str | None) -> str | None:
    """``pk_test_PUBLICID`` of a key header, for the request log (never the secret)."""
    match = None if header is None else _KEY.fullmatch(header.strip())
    return None if match is None else match.group(1) + match.group(2)


def _batch_row(index: int, delta: DeltaState) -> dict[str, Any]:
    return {
        "index": index,
        "customerId": delta.customer_id,
        "delta": delta.delta,
        "status": delta.status,
        "recordId": delta.record_id,
        "receiptId": delta.wire()["receiptId"],
        "referenceId": delta.item.reference_id,
        "sequenceNumber": str(delta.sequence_number),
        "idempotent": False,
    }
