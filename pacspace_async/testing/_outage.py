"""Outages: the emulator's ports refusing connections, or every answer a 5xx, for a while.

A refusing outage is real at the socket level: the listening socket is closed and every open
connection cut, so clients get ECONNREFUSED (as from a host whose server is down) and a
keep-alive connection in a client's pool breaks. The port stays bound, without listening,
until the outage ends: no other program can take it meanwhile, and the emulator comes back
on the very same URL.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from aiohttp import web

from ._faults import FaultPlan

__all__ = ["OUTAGE_KINDS", "Listener", "Outage", "OutageSwitch"]

OUTAGE_KINDS: tuple[str, ...] = ("refuse", "500", "502", "503")
"""``refuse``: connections are refused and open ones cut. ``500``/``502``/``503``: every API
request is answered with that status before anything is done."""

_BACKLOG = 128


def _bound(family: int, address: Any) -> socket.socket:
    """A TCP socket bound to `address`, not listening: connections to it are refused."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if os.name == "posix":  # as asyncio does: elsewhere the option lets others share the port
            # The port's earlier connections may linger in TIME_WAIT; they must not stop the rebind.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


class Listener:
    """One environment's listening socket, which an outage closes and opens again on the same port."""

    def __init__(self, server: web.Server, family: int, sock: socket.socket) -> None:
        self._server = server
        self.family = family
        self.address: Any = sock.getsockname()  # the port chosen, when asked for port 0
        self._bound: socket.socket | None = sock  # bound, not listening: refusing connections
        self._serving: asyncio.AbstractServer | None = None

    @classmethod
    async def open(cls, server: web.Server, host: str, port: int) -> Listener:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, _, _, _, address = infos[0]
        listener = cls(server, family, _bound(family, address))
        try:
            await listener.serve()
        except BaseException:
            listener.close()
            raise
        return listener

    @property
    def port(self) -> int:
        return int(self.address[1])

    @property
    def listening(self) -> bool:
        return self._bound is None

    def listen_now(self) -> None:
        """Accept connections from now on (the kernel queues them until `serve` takes them)."""
        if self._bound is not None and self._serving is None:
            self._bound.listen(_BACKLOG)

    async def serve(self) -> None:
        sock = self._bound
        if sock is None:
            return
        self.listen_now()
        self._serving = await asyncio.get_running_loop().create_server(self._server, sock=sock, backlog=_BACKLOG)
        self._bound = None

    def refuse(self) -> None:
        """Close the listening socket, keep the port bound, and cut every open connection."""
        serving, self._serving = self._serving, None
        if serving is not None:
            serving.close()
        if self._bound is not None:  # listening already, at the end of an earlier outage
            self._bound.close()
        self._bound = _bound(self.family, self.address)
        for handler in self._server.connections:
            transport = handler.transport
            if transport is not None:
                transport.abort()

    def close(self) -> None:
        serving, self._serving = self._serving, None
        if serving is not None:
            serving.close()
        bound, self._bound = self._bound, None
        if bound is not None:
            bound.close()


class OutageSwitch:
    """Turns the emulator's outage on and off; every method runs on the emulator's loop.

    Each outage gets a number, so ending an outage that is over (by its timer, say) never
    ends a later one.
    """

    def __init__(self, listeners: Callable[[], Iterable[Listener]], plan: FaultPlan) -> None:
        self._listeners = listeners
        self._plan = plan
        self.kind: str | None = None
        self.number = 0
        self._ending: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def begin(self, kind: str, seconds: float | None) -> int:
        if self.kind is not None:
            raise RuntimeError(f"an outage ({self.kind}) is already on: end it first")
        self.number += 1
        if kind == "refuse":
            for listener in self._listeners():
                listener.refuse()
        else:
            self._plan.outage = kind
        self.kind = kind
        if seconds is not None:
            number = self.number
            self._timer = asyncio.get_running_loop().call_later(seconds, lambda: self.end_soon(number))
        return self.number

    def active(self, number: int) -> bool:
        return self.kind is not None and self.number == number

    async def end(self, number: int) -> None:
        self._end_now(number)
        await self._serve(number)

    def end_soon(self, number: int) -> None:
        """End now: the ports listen at once, and are served as soon as the loop gets to it."""
        self._end_now(number)
        task = asyncio.get_running_loop().create_task(self._serve(number))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    def _end_now(self, number: int) -> None:
        if not self.active(number):
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._plan.outage = None
        self.kind = None
        for listener in self._listeners():
            listener.listen_now()

    async def _serve(self, number: int) -> None:
        if self.kind is None and self.number == number:  # no later outage began meanwhile
            await asyncio.gather(*(listener.serve() for listener in self._listeners()))

    async def aclose(self) -> None:
        """Forget the outage (the emulator is closing): nothing is served again."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._plan.outage = None
        self.kind = None
        self.number += 1
        ending, self._ending = list(self._ending), set()
        await asyncio.gather(*ending, return_exceptions=True)


class Outage:
    """An outage of an `Emulator`, from `Emulator.outage()` until it is ended.

    Sync code (an emulator started with ``start_in_thread()``): ``with emu.outage(): ...`` or
    ``outage.end()``. Async code: ``async with emu.outage(): ...`` or ``await outage.aend()``.
    """

    def __init__(
        self,
        kind: str,
        switch: OutageSwitch,
        number: int,
        loop: asyncio.AbstractEventLoop,
        loop_thread: int | None,
    ) -> None:
        self.kind = kind
        self._switch = switch
        self._number = number
        self._loop = loop
        self._loop_thread = loop_thread

    def __repr__(self) -> str:
        return f"Outage(kind={self.kind!r}, active={self.active})"

    @property
    def active(self) -> bool:
        return self._switch.active(self._number)

    def end(self, *, timeout: float = 10.0) -> None:
        """End the outage. From another thread, returns once the emulator serves again; on the
        emulator's own loop, the ports listen at once and are served when the loop next runs."""
        if self._loop.is_closed() or not self._loop.is_running():
            return
        if threading.get_ident() == self._loop_thread:
            self._switch.end_soon(self._number)
            return
        asyncio.run_coroutine_threadsafe(self._switch.end(self._number), self._loop).result(timeout)

    async def aend(self) -> None:
        """End the outage; returns once the emulator serves again (from any event loop)."""
        if self._loop.is_closed() or not self._loop.is_running():
            return
        if asyncio.get_running_loop() is self._loop:
            await self._switch.end(self._number)
        else:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._switch.end(self._number), self._loop))

    def __enter__(self) -> Outage:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.end()

    async def __aenter__(self) -> Outage:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aend()
