"""Helpers shared by the emulator tests (a module of its own: `conftest` names clash)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from aiohttp import web

from pacspace_async import AsyncPacSpace
from pacspace_async._requester import Clock


async def _short_sleep(seconds: float) -> None:
    # Retries and polls still yield to the loop, but never wait out a real backoff.
    await asyncio.sleep(min(seconds, 0.002))


def fast(client: AsyncPacSpace) -> AsyncPacSpace:
    """The same client (same pools) whose waits between retries are cut to ~nothing."""
    return client._with_clock(Clock(sleep=_short_sleep))


@attrs.define
class Receiver:
    """A webhook receiver on 127.0.0.1 that records every delivery and answers `statuses` in turn."""

    statuses: list[int] = attrs.Factory(list)
    deliveries: list[tuple[dict[str, str], bytes]] = attrs.Factory(list)
    url: str = ""
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.deliveries.append((dict(request.headers), await request.read()))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok")

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hooks", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/hooks"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def eventually(check: Callable[[], Any], *, timeout: float = 3.0) -> Any:
    """Poll `check` until it returns something truthy (or an awaitable of it)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.005)
