"""One environment's aiohttp application: the pipeline, the routes, and the 404 for the rest.

Both environments' applications serve from one `Backend`: the state an `Emulator` holds. Each
application knows its own environment, so a sandbox key on the production port is refused and
the two ledgers never mix.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

import attrs
from aiohttp import web

from .._environments import Environment
from ._deliveries import Dispatcher
from ._faults import FaultPlan
from ._handlers import Call
from ._keys import KeyRecord
from ._ledger import Ledger
from ._pipeline import IdempotencyStore, RateLimiter, exchange_of, middlewares
from ._records import RequestRecord
from ._routes import ROUTES, Route
from ._settings import Settings
from ._settlement import Settlement
from ._wire import ApiError

__all__ = ["Backend", "build_app"]


@attrs.frozen
class Backend:
    """Everything both servers share. The mappings are the emulator's own, changed in place."""

    settings: Settings
    keys: Mapping[str, KeyRecord]
    ledgers: Mapping[Environment, Ledger]
    idempotency: Mapping[Environment, IdempotencyStore]
    limiter: RateLimiter
    plan: FaultPlan
    log: deque[RequestRecord]
    settlement: Settlement
    dispatcher: Dispatcher
    urls: Mapping[Environment, str]
    now: Callable[[], datetime]


def build_app(environment: Environment, backend: Backend) -> web.Application:
    app = web.Application(
        middlewares=middlewares(
            environment,
            settings=backend.settings,
            keys=backend.keys,
            ledgers=backend.ledgers,
            stores=backend.idempotency,
            limiter=backend.limiter,
            plan=backend.plan,
            log=backend.log,
            now=backend.now,
        )
    )
    for route in ROUTES:
        app.router.add_route(route.method, route.template, _endpoint(environment, route, backend))

    async def not_found(request: web.Request) -> web.StreamResponse:
        return ApiError(404, "NOT_FOUND", f"no route {request.method} {request.path}").reply().response()

    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


def _endpoint(
    environment: Environment, route: Route, backend: Backend
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        exchange = exchange_of(request)
        assert exchange is not None  # the pipeline opened it
        call = Call(
            environment=environment,
            ledger=exchange.ledger,
            key=exchange.key,
            query=request.query,
            match=request.match_info,
            body=exchange.body,
            idempotency_key=exchange.idempotency_key,
            now=backend.now(),
            base_url=backend.urls.get(environment, ""),
            settings=backend.settings,
            schedule=backend.settlement.schedule,
            dispatcher=backend.dispatcher,
        )
        return route.handler(call).response()

    return endpoint
