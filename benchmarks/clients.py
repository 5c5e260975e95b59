"""The clients under test, each doing the same emit call against the loopback server.

Every client sends ``POST /api/v1/balance/delta`` with the same JSON body fields, an
``X-Api-Key``, ``X-Chain-Id`` and (where the client has the notion) an ``Idempotency-Key``,
and reads and decodes the answer:

- ``raw aiohttp``: the floor. One ``ClientSession`` (default ``TCPConnector``, limit 100),
  ``json.dumps`` for the body, a fresh idempotency key, ``json.loads`` of the answer.
- ``AsyncPacSpace``: ``await pac.balance.emit(...)`` (this SDK).
- ``PacSpace (sync)``: ``pac.balance.emit(...)`` on the generated sync facade (this SDK).
- ``pacspace-sdk 0.7.0``: the official SDK, ``pac.balance.emit(customer_id, delta, reason)``;
  it uses ``urllib.request.urlopen``: a new connection (and over TLS a new default SSL
  context) per call.
- ``requests.Session``: keep-alive, one session per thread.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from decimal import Decimal
from typing import Any

import aiohttp

from pacspace_async import AsyncPacSpace

__all__ = [
    "API_KEY",
    "Variant",
    "Participant",
    "AsyncParticipant",
    "SyncParticipant",
    "make_participants",
]

API_KEY = "pk_test_bench01.s3cretBenchKey"
PATH = "/api/v1/balance/delta"
CUSTOMER = "cust_bench"
DELTA = Decimal("-42.50")
REASON = "bench"
HEADERS = {
    "User-Agent": "bench/1.0",
    "Content-Type": "application/json",
    "Accept": "application/json",
    "X-Chain-Id": "296",
    "X-Api-Key": API_KEY,
}


class Variant:
    """How a scenario reaches the server: plain HTTP, or TLS with one way of trusting it.

    ``context``: the SSLContext the keep-alive clients (aiohttp, ours) get, made once.
    ``verify``: what ``requests`` gets (a CA file). ``official_env``: the ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR`` the official SDK runs under (it cannot be given a context).
    """

    def __init__(
        self,
        key: str,
        title: str,
        url: str,
        *,
        context: ssl.SSLContext | None = None,
        verify: str | bool = True,
        official_env: Callable[[], AbstractContextManager[None]] | None = None,
        setup: str = "",
    ) -> None:
        self.key = key
        self.title = title
        self.url = url
        self.context = context
        self.verify = verify
        self.official_env = official_env or nullcontext
        self.setup = setup


class Participant:
    """One client in one mode (sequential, N in flight, N threads)."""

    client: str
    mode: str
    concurrency: int

    def run(self, calls: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    @property
    def label(self) -> str:
        return f"{self.client} [{self.mode}]"


# --- async clients ------------------------------------------------------------------------------


class AsyncParticipant(Participant):
    """An async client on the harness's loop: sequential awaits, or `concurrency` workers."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        client: str,
        concurrency: int,
        call: Callable[[], Awaitable[Any]],
        close: Callable[[], Awaitable[None]],
    ) -> None:
        self.loop = loop
        self.client = client
        self.concurrency = concurrency
        self.mode = "sequential" if concurrency == 1 else f"{concurrency} in flight"
        self._call = call
        self._close = close

    async def _sequential(self, calls: int) -> None:
        call = self._call
        for _ in range(calls):
            await call()

    async def _in_flight(self, calls: int) -> None:
        call = self._call
        remaining = calls

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await call()

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    def run(self, calls: int) -> None:
        if self.concurrency == 1:
            self.loop.run_until_complete(self._sequential(calls))
        else:
            self.loop.run_until_complete(self._in_flight(calls))

    def close(self) -> None:
        self.loop.run_until_complete(self._close())


def raw_aiohttp(loop: asyncio.AbstractEventLoop, variant: Variant) -> tuple[Callable[[], Awaitable[Any]], Any]:
    async def make() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=100, ssl=variant.context if variant.context is not None else True)
        return aiohttp.ClientSession(connector=connector)

    session = loop.run_until_complete(make())
    url = variant.url + PATH

    async def call() -> Any:
        body = json.dumps({"customerId": CUSTOMER, "delta": float(DELTA), "reason": REASON}).encode()
        headers = {**HEADERS, "Idempotency-Key": f"sandbox:balance.delta:{uuid.uuid4().hex}"}
        async with session.post(url, data=body, headers=headers) as response:
            payload = await response.read()
            if response.status != 201:
                raise RuntimeError(f"raw aiohttp: HTTP {response.status}")
        return json.loads(payload)["data"]

    return call, session.close


def async_pacspace(loop: asyncio.AbstractEventLoop, variant: Variant) -> tuple[Callable[[], Awaitable[Any]], Any]:
    pac = AsyncPacSpace(API_KEY, base_urls={"sandbox": variant.url}, ssl=variant.context)
    emit = pac.balance.emit

    async def call() -> Any:
        return await emit(customer_id=CUSTOMER, delta=DELTA, reason=REASON)

    return call, pac.aclose


# --- sync clients -------------------------------------------------------------------------------


class SyncParticipant(Participant):
    """A blocking client: sequential calls in this thread, or `concurrency` threads."""

    def __init__(
        self,
        client: str,
        concurrency: int,
        call: Callable[[], Any],
        close: Callable[[], None],
        around: Callable[[], AbstractContextManager[None]] = nullcontext,
    ) -> None:
        self.client = client
        self.concurrency = concurrency
        self.mode = "sequential" if concurrency == 1 else f"{concurrency} threads"
        self._call = call
        self._close = close
        self._around = around

    def run(self, calls: int) -> None:
        with self._around():
            if self.concurrency == 1:
                call = self._call
                for _ in range(calls):
                    call()
            else:
                self._threads(calls)

    def _threads(self, calls: int) -> None:
        share, extra = divmod(calls, self.concurrency)
        errors: list[BaseException] = []
        start = threading.Barrier(self.concurrency)
        call = self._call

        def work(count: int) -> None:
            start.wait()
            try:
                for _ in range(count):
                    call()
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=work, args=(share + (1 if index < extra else 0),), daemon=True)
            for index in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def close(self) -> None:
        self._close()


def sync_pacspace(variant: Variant) -> tuple[Callable[[], Any], Callable[[], None]]:
    from pacspace_sync import PacSpace

    pac = PacSpace(API_KEY, base_urls={"sandbox": variant.url}, ssl=variant.context)
    emit = pac.balance.emit

    def call() -> Any:
        return emit(customer_id=CUSTOMER, delta=DELTA, reason=REASON)

    return call, pac.close


def official_sdk(variant: Variant) -> tuple[Callable[[], Any], Callable[[], None]]:
    from pacspace_sdk import PacSpace as OfficialPacSpace  # type: ignore[import-untyped]

    pac = OfficialPacSpace(API_KEY, base_url=variant.url)
    emit = pac.balance.emit
    delta = float(DELTA)

    def call() -> Any:
        return emit(CUSTOMER, delta, REASON)

    return call, pac.close


def requests_session(variant: Variant) -> tuple[Callable[[], Any], Callable[[], None]]:
    import requests

    local = threading.local()
    sessions: list[requests.Session] = []
    lock = threading.Lock()
    url = variant.url + PATH
    verify = variant.verify

    def session() -> requests.Session:
        current: requests.Session | None = getattr(local, "session", None)
        if current is None:
            current = requests.Session()
            local.session = current
            with lock:
                sessions.append(current)
        return current

    def call() -> Any:
        body = json.dumps({"customerId": CUSTOMER, "delta": float(DELTA), "reason": REASON}).encode()
        headers = {**HEADERS, "Idempotency-Key": f"sandbox:balance.delta:{uuid.uuid4().hex}"}
        response = session().post(url, data=body, headers=headers, verify=verify)
        if response.status_code != 201:
            raise RuntimeError(f"requests: HTTP {response.status_code}")
        return response.json()["data"]

    def close() -> None:
        for item in sessions:
            item.close()

    return call, close


# --- the table of who runs where -----------------------------------------------------------------

RAW = "raw aiohttp"
OURS_ASYNC = "AsyncPacSpace"
OURS_SYNC = "PacSpace (sync)"
OFFICIAL = "pacspace-sdk 0.7.0"
REQUESTS = "requests.Session"
CLIENTS = (RAW, OURS_ASYNC, OURS_SYNC, OFFICIAL, REQUESTS)


def make_participants(
    loop: asyncio.AbstractEventLoop, variant: Variant, mode: str, *, threads: int = 8
) -> Iterator[Participant]:
    """The participants of one scenario, in the order they take turns in each round."""
    if mode == "sequential":
        for name, factory in ((RAW, raw_aiohttp), (OURS_ASYNC, async_pacspace)):
            call, close = factory(loop, variant)
            yield AsyncParticipant(loop, name, 1, call, close)
        call_s, close_s = sync_pacspace(variant)
        yield SyncParticipant(OURS_SYNC, 1, call_s, close_s)
        call_s, close_s = official_sdk(variant)
        yield SyncParticipant(OFFICIAL, 1, call_s, close_s, around=variant.official_env)
        call_s, close_s = requests_session(variant)
        yield SyncParticipant(REQUESTS, 1, call_s, close_s)
    elif mode.startswith("inflight"):
        concurrency = int(mode.removeprefix("inflight"))
        for name, factory in ((RAW, raw_aiohttp), (OURS_ASYNC, async_pacspace)):
            call, close = factory(loop, variant)
            yield AsyncParticipant(loop, name, concurrency, call, close)
    elif mode == "threads":
        call_s, close_s = sync_pacspace(variant)
        yield SyncParticipant(OURS_SYNC, threads, call_s, close_s)
        call_s, close_s = official_sdk(variant)
        yield SyncParticipant(OFFICIAL, threads, call_s, close_s, around=variant.official_env)
        call_s, close_s = requests_session(variant)
        yield SyncParticipant(REQUESTS, threads, call_s, close_s)
    else:
        raise ValueError(f"unknown mode {mode!r}")


def timed(participant: Participant, calls: int) -> float:
    started = time.perf_counter()
    participant.run(calls)
    return time.perf_counter() - started
