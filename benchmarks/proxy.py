"""A latency-injecting TCP proxy on loopback: what a real network adds to every call.

Run as ``python -m benchmarks.proxy RTT_MS UPSTREAM_PORT [UPSTREAM_PORT ...]``: for each
upstream port on 127.0.0.1 it listens on a port of its own, prints one JSON line
(``{"ports": [...], "pid": ...}``), and forwards bytes both ways until stdin closes or says
``quit``. It never looks inside the bytes, so TLS stays end to end between client and server.

The delays: every chunk is forwarded half a round trip after it arrived, in arrival order
(deadlines only grow within a direction). A new connection also costs one round trip before
its first byte goes upstream, as the TCP handshake would over a real network (the loopback
handshake with the proxy itself is free): a client that connects and sends at once gets its
first answer after two round trips, three with a TLS 1.3 handshake. A direction holding more
than ``MAX_PENDING`` bytes not yet forwarded stops reading its source until it drains, so a
fast sender is slowed down, never buffered without bound.

It is an asyncio loop in a process of its own, so it never competes with the measured client
for that client's loop or interpreter. The loop runs on ``select()``, whose timeout has
microsecond resolution, where epoll's rounds every wait up to a whole millisecond (a 0.5 ms
half round trip would become 1 ms).
"""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import socket
import sys
from collections.abc import Callable

__all__ = ["MAX_PENDING", "Delayed", "forward_at", "main"]

MAX_PENDING = 4 * 1024 * 1024


def forward_at(arrived: float, opened: float, rtt: float, *, upstream: bool) -> float:
    """When a chunk that arrived at `arrived` on a connection opened at `opened` is forwarded.

    Half a round trip after it arrived; going upstream, never before the connection's
    handshake round trip is over (a real client could not have sent it earlier).
    """
    start = max(arrived, opened + rtt) if upstream else arrived
    return start + rtt / 2


class Delayed:
    """One direction of one connection: chunks forwarded at their deadlines, in order, bounded.

    `sink` is None until the upstream connection is made; what falls due before then is kept and
    written, in order, once it is there.
    """

    sink: _Side | None

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        deadline: Callable[[float], float],
        source: asyncio.Transport,
    ) -> None:
        self._loop = loop
        self._deadline = deadline
        self._source = source
        self.sink = None
        self._due: list[bytes | None] = []  # fell due before the sink existed; None: end of stream
        self._last = 0.0
        self._pending = 0
        self._paused = False

    def _at(self) -> float:
        # Strictly growing: timers with equal deadlines have no guaranteed order.
        at = max(self._deadline(self._loop.time()), self._last + 1e-9)
        self._last = at
        return at

    def data(self, chunk: bytes) -> None:
        self._pending += len(chunk)
        if self._pending > MAX_PENDING and not self._paused:
            self._paused = True
            self._source.pause_reading()
        self._loop.call_at(self._at(), self._forward, chunk)

    def end(self) -> None:
        self._loop.call_at(self._at(), self._forward, None)

    def _forward(self, chunk: bytes | None) -> None:
        if chunk is not None:
            self._pending -= len(chunk)
            if self._paused and self._pending <= MAX_PENDING // 2:
                self._paused = False
                self._source.resume_reading()
        if self.sink is None:
            self._due.append(chunk)
            return
        self._write(self.sink, chunk)

    def attach(self, sink: _Side) -> None:
        self.sink = sink
        due, self._due = self._due, []
        for chunk in due:
            self._write(sink, chunk)

    @staticmethod
    def _write(sink: _Side, chunk: bytes | None) -> None:
        if chunk is None:
            sink.end_writing()
        elif sink.transport is not None and not sink.transport.is_closing():
            sink.transport.write(chunk)


class _Side(asyncio.Protocol):
    """One socket of a proxied connection: what it reads goes into `outgoing`; closed once it has
    both read its end of stream and been sent the other side's."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.outgoing: Delayed | None = None
        self.read_ended = False
        self.write_ended = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        assert self.outgoing is not None
        self.outgoing.data(data)

    def eof_received(self) -> bool:
        self.read_ended = True
        assert self.outgoing is not None
        self.outgoing.end()
        return not self.write_ended  # half-closed while the other direction may still answer

    def end_writing(self) -> None:
        if self.write_ended:
            return
        self.write_ended = True
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.read_ended or not transport.can_write_eof():
            transport.close()  # sends what is buffered first
        else:
            transport.write_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        self.write_ended = True
        if not self.read_ended and self.outgoing is not None:
            self.read_ended = True
            self.outgoing.end()


_CONNECTING: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks


class _Client(_Side):
    def __init__(self, upstream_port: int, rtt: float) -> None:
        super().__init__()
        self._upstream_port = upstream_port
        self._rtt = rtt

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        opened = loop.time()
        rtt = self._rtt
        self.outgoing = Delayed(loop, lambda now: forward_at(now, opened, rtt, upstream=True), self.transport)
        server = _Side()
        task = loop.create_task(self._connect(loop, server, opened))
        _CONNECTING.add(task)
        task.add_done_callback(_CONNECTING.discard)

    async def _connect(self, loop: asyncio.AbstractEventLoop, server: _Side, opened: float) -> None:
        client = self.transport
        assert client is not None
        assert self.outgoing is not None
        try:
            upstream, _ = await loop.create_connection(lambda: server, "127.0.0.1", self._upstream_port)
        except OSError:
            client.close()
            return
        rtt = self._rtt
        server.outgoing = Delayed(loop, lambda now: forward_at(now, opened, rtt, upstream=False), upstream)
        server.outgoing.attach(self)
        self.outgoing.attach(server)


async def _serve(rtt: float, upstream_ports: list[int]) -> None:
    loop = asyncio.get_running_loop()
    servers = []
    for upstream in upstream_ports:
        server = await loop.create_server(
            lambda upstream=upstream: _Client(upstream, rtt),  # type: ignore[misc]
            "127.0.0.1",
            0,
            backlog=1024,
        )
        servers.append(server)
    ports = [server.sockets[0].getsockname()[1] for server in servers]
    print(json.dumps({"ports": ports, "pid": os.getpid()}), flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line or line.strip() == b"quit":
            break
    for server in servers:
        server.close()


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m benchmarks.proxy RTT_MS UPSTREAM_PORT [UPSTREAM_PORT ...]", file=sys.stderr)
        return 2
    rtt = float(argv[0]) / 1000
    ports = [int(port) for port in argv[1:]]
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        loop.run_until_complete(_serve(rtt, ports))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
