"""The loopback server the benchmark talks to: a separate process, canned answers.

It is a raw asyncio protocol (no framework) so that the server is not what is measured: it
parses just enough HTTP/1.1 (request line, ``Content-Length``, ``Connection: close``), checks the
route and the ``X-Api-Key`` header, and answers ``201`` with a fixed emit body. Keep-alive is
the HTTP/1.1 default; a ``Connection: close`` request (urllib, hence the official SDK) gets its
answer and then the connection is closed.

Run as ``python -m benchmarks.server CERT KEY``. It prints one JSON line with its ports
(``{"http": ..., "https": ...}``) and then answers one JSON line per command line read on
stdin:

- ``stats``: this process's CPU time (user, system), live and peak connections, connections
  accepted, requests answered and requests refused (wrong route or no key).
- ``reset-peak``: the peak of live connections starts again from the live count.
- ``quit``: stop.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import ssl
import sys
from typing import Any

ROUTE = b"POST /api/v1/balance/delta "
BODY = json.dumps(
    {
        "success": True,
        "data": {
            "recordId": "rec_1",
            "status": "QUEUED",
            "receiptId": "0x9c1e5f8a",
            "customerId": "cust_bench",
            "delta": -42.5,
            "reason": "bench",
        },
    },
    separators=(",", ":"),
).encode()


def _answer(status: bytes, body: bytes, close: bool) -> bytes:
    head = (
        b"HTTP/1.1 " + status + b"\r\n"
        b"Content-Type: application/json\r\n"
        b"X-Request-Id: req_bench\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
    )
    if close:
        head += b"Connection: close\r\n"
    return head + b"\r\n" + body


_CREATED = _answer(b"201 Created", BODY, close=False)
_CREATED_CLOSE = _answer(b"201 Created", BODY, close=True)
_NOT_FOUND = _answer(b"404 Not Found", b'{"error":{"code":"NOT_FOUND","message":"bench route only"}}', close=True)
_NO_KEY = _answer(b"401 Unauthorized", b'{"error":{"code":"UNAUTHORIZED","message":"no key"}}', close=True)
_BAD = _answer(b"400 Bad Request", b'{"error":{"code":"BAD_REQUEST","message":"bench server"}}', close=True)


class Counters:
    def __init__(self) -> None:
        self.live = 0
        self.peak = 0
        self.accepted = 0
        self.requests = 0
        self.refused = 0

    def stats(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "user": usage.ru_utime,
            "system": usage.ru_stime,
            "cpu": usage.ru_utime + usage.ru_stime,
            "live": self.live,
            "peak": self.peak,
            "accepted": self.accepted,
            "requests": self.requests,
            "refused": self.refused,
        }


class BenchProtocol(asyncio.Protocol):
    """One connection: requests in, canned answers out, in order."""

    __slots__ = ("buffer", "counters", "transport")

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        counters = self.counters
        counters.live += 1
        counters.accepted += 1
        if counters.live > counters.peak:
            counters.peak = counters.live

    def connection_lost(self, exc: Exception | None) -> None:
        self.counters.live -= 1
        self.transport = None

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        transport = self.transport
        while transport is not None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end].lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                try:
                    length = int(head[at + 17 : stop if stop >= 0 else len(head)])
                except ValueError:
                    transport.write(_BAD)
                    transport.close()
                    return
            elif b"\r\ntransfer-encoding:" in head:
                transport.write(_BAD)  # the benchmark clients all send Content-Length
                transport.close()
                return
            total = end + 4 + length
            if len(buffer) < total:
                break
            request_line = buffer[: len(ROUTE)]
            buffer = buffer[total:]
            line_end = head.find(b"\r\n")
            close = b"\r\nconnection: close" in head or head[: line_end if line_end >= 0 else len(head)].endswith(
                b"http/1.0"
            )
            if request_line != ROUTE:
                self.counters.refused += 1
                transport.write(_NOT_FOUND)
                transport.close()
                return
            if b"\r\nx-api-key:" not in head:
                self.counters.refused += 1
                transport.write(_NO_KEY)
                transport.close()
                return
            self.counters.requests += 1
            if close:
                transport.write(_CREATED_CLOSE)
                transport.close()
                return
            transport.write(_CREATED)
        self.buffer = buffer


async def _control(counters: Counters, stopped: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        command = line.decode().strip()
        if not line or command == "quit":
            stopped.set()
            return
        if command == "reset-peak":
            counters.peak = counters.live
        _reply(counters.stats() if command in ("stats", "reset-peak") else {"error": f"unknown {command!r}"})


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def serve(cert: str, key: str) -> None:
    loop = asyncio.get_running_loop()
    counters = Counters()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    plain = await loop.create_server(lambda: BenchProtocol(counters), "127.0.0.1", 0, backlog=4096)
    secure = await loop.create_server(lambda: BenchProtocol(counters), "127.0.0.1", 0, backlog=4096, ssl=tls)
    stopped = asyncio.Event()
    control = asyncio.create_task(_control(counters, stopped))
    _reply(
        {
            "http": plain.sockets[0].getsockname()[1],
            "https": secure.sockets[0].getsockname()[1],
            "pid": os.getpid(),
        }
    )
    await stopped.wait()
    control.cancel()
    plain.close()
    secure.close()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m benchmarks.server CERT.pem KEY.pem", file=sys.stderr)
        return 2
    asyncio.run(serve(argv[0], argv[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
