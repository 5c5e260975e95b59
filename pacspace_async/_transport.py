"""One connection pool per environment, and one HTTP attempt on it.

A sandbox request never travels on a production connection: each environment has its own
aiohttp session and connector, created lazily inside the running loop. The transport knows
nothing of keys, retries or resources; it sends bytes and returns bytes.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
import warnings
from collections.abc import Mapping

import aiohttp
import attrs
from multidict import CIMultiDictProxy
from yarl import URL

from ._environments import Environment

__all__ = ["Transport", "RawResponse", "TransportFailure"]

# Sessions inherited across fork() belong to the parent's sockets and loop: the child must
# neither use nor close them, and must not let their finalizers complain. They are parked
# here, unreachable to the SDK, for the child's lifetime.
_INHERITED: list[object] = []


@attrs.frozen
class RawResponse:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class TransportFailure(Exception):
    """No HTTP answer. `timeout` and `retryable` let the caller decide what comes next."""

    def __init__(self, message: str, *, timeout: bool = False, retryable: bool = True) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.retryable = retryable


class Transport:
    """The pools of one client and of every `with_options` copy of it."""

    def __init__(
        self,
        *,
        pool_limit: int = 100,
        ssl: _ssl.SSLContext | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        self.pool_limit = pool_limit
        self._ssl = ssl
        self._connect_timeout = connect_timeout
        self._sessions: dict[Environment, aiohttp.ClientSession] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self.closed = False

    def _session(self, environment: Environment) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                "this AsyncPacSpace is bound to the event loop that first used it; create one "
                "client per event loop, or use pacspace_sync.PacSpace from threads"
            )
        if self.closed:
            raise RuntimeError("this client is closed; create a new one (or use `async with`)")
        session = self._sessions.get(environment)
        if session is None:
            connector = aiohttp.TCPConnector(
                limit=self.pool_limit,
                ssl=self._ssl if self._ssl is not None else True,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                trust_env=True,
                auto_decompress=True,
                raise_for_status=False,
            )
            self._sessions[environment] = session
        return session

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            connect = min(self._connect_timeout, seconds)
            timeout = aiohttp.ClientTimeout(total=seconds, sock_connect=connect)
            if len(self._timeouts) < 64:
                self._timeouts[seconds] = timeout
        return timeout

    async def send(
        self,
        environment: Environment,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float,
    ) -> RawResponse:
        """One attempt. Redirects are returned, never followed: a key must not travel on."""
        session = self._session(environment)
        try:
            async with session.request(
                method,
                URL(url, encoded=True),
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=self._timeout(timeout),
            ) as response:
                payload = await response.read()
                return RawResponse(response.status, response.headers, payload)
        except (aiohttp.ClientSSLError, aiohttp.ClientConnectorCertificateError) as exc:
            raise TransportFailure(f"TLS failure: {type(exc).__name__}", retryable=False) from None
        except asyncio.TimeoutError:
            raise TransportFailure(f"no answer within {timeout:g}s", timeout=True) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise TransportFailure(f"connection failed: {_describe(exc)}") from None
        except aiohttp.InvalidURL:
            raise TransportFailure("invalid URL", retryable=False) from None

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's pools untouched; new ones are made on first use."""
        _INHERITED.extend(self._sessions.values())
        self._sessions = {}
        self._loop = None

    async def aclose(self) -> None:
        """Close every pool. Idempotent."""
        self.closed = True
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()

    def __del__(self) -> None:
        if self._sessions and not self.closed:
            warnings.warn(
                "a PacSpace client was not closed: use `async with AsyncPacSpace() as pac:` or "
                "`await pac.aclose()` (sync: `with PacSpace() as pac:` or `pac.close()`)",
                ResourceWarning,
                stacklevel=2,
            )


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text
