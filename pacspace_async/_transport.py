"""One connection pool per environment, and one HTTP attempt on it.

A sandbox request never travels on a production connection: each environment has its own
aiohttp session and connector, created lazily inside the running loop. The transport knows
nothing of keys, retries or resources; it sends bytes and returns bytes.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
import sys
import warnings
from collections.abc import Mapping
from typing import Any

import aiohttp
import attrs
from multidict import CIMultiDictProxy
from yarl import URL

from ._environments import Environment

try:
    from aiohttp.helpers import basicauth_from_netrc, get_env_proxy_for_url, netrc_from_env
except ImportError:  # pragma: no cover - an aiohttp without these helpers keeps its own lookups
    _ENV_HELPERS = False
else:
    _ENV_HELPERS = True

__all__ = ["Transport", "RawResponse", "TransportFailure"]

# With ``trust_env=True`` aiohttp looks up, before *every* request, the proxy for the URL
# (``*_proxy``/``no_proxy``) and the host's ``.netrc`` entry, each in a worker thread: two thread
# hops per request, most of the cost of a loopback call. The transport makes the very same
# lookups with aiohttp's own helpers once per host, when it first sends there, and keeps them for
# its lifetime, as httpx does: a proxy set after the client's first request needs a new client.
# Where proxies may also come from system settings no environment variable shows (macOS,
# Windows), aiohttp's per-request lookups are kept.
_CACHE_ENV_LOOKUPS = _ENV_HELPERS and sys.platform not in ("darwin", "win32", "cygwin")
# netrc for the target host (not only for proxies) came with a later aiohttp than proxies did.
_NETRC_FOR_HOST = hasattr(aiohttp.ClientSession, "_get_netrc_auth")

# Sessions inherited across fork() belong to the parent's sockets and loop: the child must
# neither use nor close them, and must not let their finalizers complain. They are parked
# here, unreachable to the SDK, for the child's lifetime.
_INHERITED: list[object] = []


@attrs.define  # slotted; not frozen only because a frozen init costs twice as much per response
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


def _look_up(url: URL) -> dict[str, Any]:
    """aiohttp's trust_env lookups for `url`, as request options (empty: nothing applies)."""
    options: dict[str, Any] = {}
    try:
        options["proxy"], options["proxy_auth"] = get_env_proxy_for_url(url)
    except LookupError:
        options = {}
    if _NETRC_FOR_HOST and url.host is not None:
        try:
            options["auth"] = basicauth_from_netrc(netrc_from_env(), url.host)
        except LookupError:
            pass
    return options


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
        # Parsed URLs by their text, with their request options: a URL is immutable, and aiohttp
        # reads its host, origin and path on every request, which a URL object computes once.
        self._targets: dict[str, tuple[URL, dict[str, Any]]] = {}
        # Proxy and netrc answers per (scheme, host); None: aiohttp looks up per request.
        self._env: dict[tuple[str, str | None], dict[str, Any]] | None = {} if _CACHE_ENV_LOOKUPS else None
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
                # Proxies (and netrc) from the environment either way: see _CACHE_ENV_LOOKUPS.
                trust_env=self._env is None,
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

    def _target(self, url: str) -> tuple[URL, dict[str, Any]]:
        """The parsed URL and the proxy/auth options for it (see _CACHE_ENV_LOOKUPS)."""
        target = URL(url, encoded=True)
        options: dict[str, Any] = {}
        if self._env is not None:
            host = (target.scheme, target.host)
            found = self._env.get(host)
            if found is None:
                found = self._env[host] = _look_up(target)
            options = found
        if len(self._targets) >= 256:
            self._targets.clear()
        self._targets[url] = (target, options)
        return target, options

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
            target, options = self._targets.get(url) or self._target(url)
            context = session.request(
                method,
                target,
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=self._timeout(timeout),
                **options,
            )
            async with context as response:
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
