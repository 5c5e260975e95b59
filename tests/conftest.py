"""Shared fixtures: keys with recognisable secrets, a fake clock, a loopback API server."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import attrs
import pytest
from aiohttp import web

from pacspace_async._requester import Clock

SANDBOX_SECRET = "sbxSECRETvalue123"
PRODUCTION_SECRET = "liveSECRETvalue456"
SANDBOX_KEY = f"pk_test_pubSbx.{SANDBOX_SECRET}"
PRODUCTION_KEY = f"pk_live_pubLive.{PRODUCTION_SECRET}"
SECRETS = (SANDBOX_SECRET, PRODUCTION_SECRET)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "PACSPACE_API_KEY",
        "PACSPACE_SANDBOX_URL",
        "PACSPACE_PRODUCTION_URL",
        "PACSPACE_WEBHOOK_SECRET",
        "PACSPACE_LOG",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _sigint_handler_restored() -> Iterator[None]:
    """A test may leave a SIGINT handler behind (an event loop runner whose run was cut short):
    the next test must start with Python's own, as a program does (the sync client's Ctrl-C
    handling depends on which handler is installed)."""
    yield
    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@attrs.define
class FakeClock:
    """Time that moves only when the SDK sleeps; every wait is recorded, none is real."""

    now: float = 1_000_000.0
    sleeps: list[float] = attrs.Factory(list)

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)

    def clock(self) -> Clock:
        # Jitter fixed at its top so expected delays are exact.
        return Clock(monotonic=self.monotonic, wall=self.wall, sleep=self.sleep, jitter=lambda lo, hi: hi)


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@attrs.define
class LoopbackServer:
    """A real HTTP server on 127.0.0.1 whose routes the test writes before `start()`."""

    app: web.Application = attrs.Factory(web.Application)
    url: str = ""
    requests: list[web.Request] = attrs.Factory(list)
    bodies: list[bytes] = attrs.Factory(list)
    transports: set[Any] = attrs.Factory(set)
    request_transports: list[Any] = attrs.Factory(list)
    runner: web.AppRunner | None = None

    @property
    def connections(self) -> int:
        """Distinct TCP connections that carried a request."""
        return len(self.transports)

    def route(self, method: str, path: str, handler: Handler) -> None:
        async def recording(request: web.Request) -> web.StreamResponse:
            self.requests.append(request)
            self.bodies.append(await request.read())
            self.transports.add(request.transport)
            self.request_transports.append(request.transport)
            return await handler(request)

        self.app.router.add_route(method, path, recording)

    async def start(self) -> str:
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self.url


@pytest.fixture
async def loopback() -> AsyncIterator[Callable[[], LoopbackServer]]:
    """Make loopback servers; all are stopped after the test."""
    made: list[LoopbackServer] = []

    def make() -> LoopbackServer:
        server = LoopbackServer()
        made.append(server)
        return server

    yield make
    for server in made:
        if server.runner is not None:
            await server.runner.cleanup()


def ok(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response({"success": True, "data": data}, status=status)


def delta_record(record_id: str = "rec_1", **extra: Any) -> dict[str, Any]:
    return {"recordId": record_id, "status": "QUEUED", "receiptId": "0x" + "ab" * 32, **extra}
