"""The HTTP pipeline: the aiohttp middlewares every request passes before its handler.

In order, outermost first (`middlewares` builds the list):

1. ``record``: reads the body, opens the request's `Exchange`, appends the `RequestRecord` to
   the request log and stamps ``X-Request-Id`` on the way out.
2. ``inject_faults``: draws the request's fault (every request's, during a 5xx outage);
   answers 5xx or drops the connection before anything is done, drops it after the write,
   delays the answer, or keeps the answer back until a test releases it.
3. ``answer_errors``: turns an `ApiError` into its JSON answer, and an emulator bug into 500.
4. ``authenticate``: the key (401), its environment (401) and its permission (403).
5. ``limit_rate``: requests per second per key (429 + Retry-After).
6. ``check_chain_id``: an ``X-Chain-Id`` of the other environment (400).
7. ``read_json``: the body as JSON, exact numbers kept as Decimal (400).
8. ``idempotency``: replays, 202 while the first request runs, 409 for another body.
9. ``delay_writes``: a "slow" fault waits here, after the Idempotency-Key is taken and before
   the write, so a retry meanwhile sees 202.

The catch-all route (404) passes through ``record`` only: it has no `Exchange`, draws no fault
and is logged without a key id. Order matters; the tests of faults, replays and the request log
pin it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
from aiohttp import web

from .._environments import Environment
from ._clocks import loop_time
from ._faults import Decision, FaultPlan
from ._keys import KeyRecord, key_id_of
from ._keys import authenticate as authenticate_key
from ._ledger import Ledger
from ._merkle import canonical_json
from ._records import RequestRecord
from ._routes import Route, route_of
from ._settings import Settings
from ._wire import ApiError, Reply, loads, too_many_requests, wait_headers

if TYPE_CHECKING:
    from aiohttp.typedefs import Middleware

__all__ = ["Exchange", "IdempotencyStore", "RateLimiter", "exchange_of", "middlewares"]

logger = logging.getLogger("pacspace.emulator")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Step = Callable[[web.Request, Handler, "Exchange"], Awaitable[web.StreamResponse]]

_FAULT_CODES = {"500": "INTERNAL_ERROR", "502": "BAD_GATEWAY", "503": "SERVICE_UNAVAILABLE"}
REPLAYED = "Idempotent-Replayed"


@attrs.define
class Exchange:
    """One API request on its way through the pipeline: what each step learned about it."""

    route: Route
    environment: Environment
    ledger: Ledger  # taken as the request arrives: a reset meanwhile does not move its write
    raw: bytes
    idempotency_key: str | None  # an empty header counts as none
    key_id: str | None  # ``pk_test_PUBLICID`` from the header, for the log (never the secret)
    decision: Decision | None = None
    key: KeyRecord | None = None
    body: Any = None
    replayed: bool = False
    slowed: bool = False  # a "slow" fault already waited (where a write would happen)
    dropped: bool = False

    @property
    def fault(self) -> str | None:
        return None if self.decision is None else self.decision.kind


# aiohttp 3.14 wants typed request keys (a plain string key warns); older releases have none.
_REQUEST_KEY = getattr(web, "RequestKey", None)
_EXCHANGE_NAME = "pacspace.emulator.exchange"
_EXCHANGE: Any = _EXCHANGE_NAME if _REQUEST_KEY is None else _REQUEST_KEY(_EXCHANGE_NAME, Exchange)


def exchange_of(request: web.Request) -> Exchange | None:
    exchange = request.get(_EXCHANGE)
    return exchange if isinstance(exchange, Exchange) else None


def _for_routes(step: Step) -> Middleware:
    """A middleware that runs `step` for API routes and lets the catch-all 404 pass."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        exchange = exchange_of(request)
        if exchange is None:
            return await handler(request)
        return await step(request, handler, exchange)

    middleware.__name__ = middleware.__qualname__ = step.__name__
    return middleware


# --- 1. the request log ----------------------------------------------------------------------


def record(
    environment: Environment,
    ledgers: Mapping[Environment, Ledger],
    log: deque[RequestRecord],
    now: Callable[[], datetime],
) -> Middleware:
    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = route_of(request)
        exchange = None
        if route is not None:
            raw = await request.read()
            exchange = Exchange(
                route=route,
                environment=environment,
                ledger=ledgers[environment],
                raw=raw,
                idempotency_key=request.headers.get("Idempotency-Key") or None,
                key_id=key_id_of(request.headers.get("X-Api-Key")),
            )
            request[_EXCHANGE] = exchange
        response = await handler(request)
        dropped = exchange is not None and exchange.dropped
        log.append(
            RequestRecord(
                method=request.method,
                path=request.path,
                environment=environment,
                status=None if dropped else response.status,
                key_id=None if exchange is None else exchange.key_id,
                idempotency_key=request.headers.get("Idempotency-Key"),
                fault=None if exchange is None else exchange.fault,
                replayed=exchange is not None and exchange.replayed,
                at=now(),
            )
        )
        if not dropped:
            response.headers["X-Request-Id"] = "req_" + secrets.token_hex(8)
        return response

    return record


# --- 2. faults -------------------------------------------------------------------------------


def _drop(request: web.Request, exchange: Exchange) -> web.StreamResponse:
    exchange.dropped = True
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response()


def inject_faults(plan: FaultPlan) -> Middleware:
    async def inject_faults(request: web.Request, handler: Handler, exchange: Exchange) -> web.StreamResponse:
        decision = plan.decide(request.method, request.path, exchange.route.template, exchange.idempotency_key)
        exchange.decision = decision
        fault = exchange.fault
        if fault in _FAULT_CODES:
            return ApiError(int(fault), _FAULT_CODES[fault], f"emulator fault: HTTP {fault}").reply().response()
        if fault == "drop_before_write":
            return _drop(request, exchange)
        response = await handler(request)
        if decision is not None and fault == "slow" and not exchange.slowed:
            await asyncio.sleep(decision.seconds)  # a replay, a 202/409 or an early error: late too
        hold = plan.hold_for(request.method, request.path, exchange.route.template)
        if hold is not None:
            await hold.wait()  # carried out, its answer kept back until the test releases it
        if fault == "drop_after_write":
            return _drop(request, exchange)
        return response

    return _for_routes(inject_faults)


def delay_writes() -> Middleware:
    async def delay_writes(request: web.Request, handler: Handler, exchange: Exchange) -> web.StreamResponse:
        decision = exchange.decision
        if decision is not None and decision.kind == "slow":
            exchange.slowed = True
            await asyncio.sleep(decision.seconds)
        return await handler(request)

    return _for_routes(delay_writes)


# --- 3. errors -------------------------------------------------------------------------------


def answer_errors() -> Middleware:
    async def answer_errors(request: web.Request, handler: Handler, exchange: Exchange) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as error:
            return error.reply().response()
        except Exception as exc:  # an emulator bug: answer 500 and say so
            logger.exception("emulator error on %s %s", request.method, request.path)
            return ApiError(500, "EMULATOR_ERROR", f"emulator error: {type(exc).__name__}: {exc}").reply().response()

    return _for_routes(answer_errors)


# --- 4, 5. who may call, and how often -------------------------------------------------------


def authenticate(keys: Mapping[str, KeyRecord]) -> Middleware:
    async def authenticate(request: web.Request, handler: Handler, exchange: Exchange) -> web.StreamResponse:
        route = exchange.route
        if route.permission is not None:
            header = request.headers.get("X-Api-Key")
            exchange.key = authenticate_key(header, keys, exchange.environment, route.permission, route.resource)
        return await handler(request)

    return _for_routes(authenticate)


class RateLimiter:
    """A token bucket per key: `rate` requests per second, bursts of up to ``max(1, rate)``."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, loop time)

    def take(self, key_id: str, rate: float) -> None:
        """Spend one token of `key_id`'s bucket, or raise 429 saying how long to wait."""
        now = loop_time()
        capacity = max(1.0, rate)
        tokens, last = self._buckets.get(key_id, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens < 1.0:
            wait = (1.0 - tokens) / rate
            self._buckets[key_id] = (tokens, now)
            raise too_many_requests("RATE_LIMITED", f"key {key_id} exceeded {rate:g} requests per second", wait)
        self._buckets[key_id] = (tokens - 1.0, now)

    def clear(self) -> None:
        self._buckets.clear()


def limit_rate(limiter: RateLimiter, settings: Settings) -> Middleware:
    async def limit_rate(request: web.Request, handler: Handler, exchange: Exchange) -> web.StreamResponse:
        rate = settings.rate_limit
        if exchange.key is not None and rate is not None:
            limiter.take(exchange.key.key_id, rate)
        return await handler(request)

    return _for_routes(limit_rate)


# --- 6, 7. what the request says -------------------------------------------------------------


def check_chain_id() -> Middleware:
    async def check_chain_id(request: web.Request, handler: Handler, exchange: Exchange) -> web.StreamResponse:
        chain = request.headers.get("X-Chain-Id")
        expected = exchange.environment.chain_id
        if chain is not None and chain.strip() != str(expected):
            raise ApiError(
                400,
                "CHAIN_ID_MISMATCH",
                f"X-Chain-Id {chain} does not belong to {exchange.environment.value} (expected {expected})",
            )
        return await handler(request)

    return _for_routes(check_chain_id)


def read_json() -> Middleware:
    async def read_json(request: web.Request, handler: Handler, exchange: Exchange) -> web.StreamResponse:
        if exchange.raw.strip():
            try:
                exchange.body = loads(exchange.raw)
            except ValueError:
                raise ApiError(400, "INVALID_JSON", "the request body is not valid JSON") from None
        return await handler(request)

    return _for_routes(read_json)


# --- 8. idempotency --------------------------------------------------------------------------


@attrs.frozen
class _Stored:
    """A successful answer kept for replays: the very status, headers and body bytes."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def response(self) -> web.Response:
        return web.Response(status=self.status, headers=list(self.headers), body=self.body)


@attrs.define(eq=False)
class _Entry:
    """One Idempotency-Key: the request's fingerprint, and its answer once there is one."""

    fingerprint: str
    answer: _Stored | None = None


class IdempotencyStore:
    """One environment's Idempotency-Keys (a key of the other environment is another key)."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def get(self, key: str) -> _Entry | None:
        return self._entries.get(key)

    def take(self, key: str, fingerprint: str) -> _Entry:
        entry = self._entries[key] = _Entry(fingerprint)
        return entry

    def release(self, key: str, entry: _Entry) -> None:
        """Forget `key` unless a reset (or a later request) already replaced `entry`."""
        if self._entries.get(key) is entry:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()


def idempotency(stores: Mapping[Environment, IdempotencyStore], settings: Settings) -> Middleware:
    async def idempotency(request: web.Request, handler: Handler, exchange: Exchange) -> web.StreamResponse:
        key = exchange.idempotency_key
        if request.method != "POST" or key is None:
            return await handler(request)
        store = stores[exchange.environment]
        fingerprint = hashlib.sha256(
            f"{request.method} {request.path} {canonical_json(exchange.body)}".encode()
        ).hexdigest()
        existing = store.get(key)
        if existing is not None:
            if existing.fingerprint != fingerprint:
                raise ApiError(
                    409,
                    "IDEMPOTENCY_KEY_REUSED",
                    "this Idempotency-Key was already used with a different request; use a new key",
                )
            if existing.answer is None:
                wait = settings.idempotency_pending_seconds
                body = {
                    "code": "IDEMPOTENCY_PENDING",
                    "retryAfterSeconds": wait,
                    "message": "a request with this Idempotency-Key is still being processed",
                }
                pending = Reply(202, body, wait_headers(wait)).response()
                pending.headers[REPLAYED] = "false"
                return pending
            exchange.replayed = True
            replay = existing.answer.response()
            replay.headers[REPLAYED] = "true"
            return replay
        entry = store.take(key, fingerprint)
        try:
            response = await handler(request)
        except BaseException:
            store.release(key, entry)
            raise
        if 200 <= response.status < 300 and isinstance(response, web.Response) and isinstance(response.body, bytes):
            entry.answer = _Stored(response.status, tuple(response.headers.items()), response.body)
            # As Stripe does: every successful keyed POST says whether it came from idempotency memory.
            response.headers[REPLAYED] = "false"
        else:
            store.release(key, entry)
        return response

    return _for_routes(idempotency)


def middlewares(
    environment: Environment,
    *,
    settings: Settings,
    keys: Mapping[str, KeyRecord],
    ledgers: Mapping[Environment, Ledger],
    stores: Mapping[Environment, IdempotencyStore],
    limiter: RateLimiter,
    plan: FaultPlan,
    log: deque[RequestRecord],
    now: Callable[[], datetime],
) -> list[Middleware]:
    """The pipeline of one environment's server, outermost first."""
    return [
        record(environment, ledgers, log, now),
        inject_faults(plan),
        answer_errors(),
        authenticate(keys),
        limit_rate(limiter, settings),
        check_chain_id(),
        read_json(),
        idempotency(stores, settings),
        delay_writes(),
    ]
