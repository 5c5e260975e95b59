"""One API call: headers, the key, attempts, waits, the idempotency key, and the error.

Resources describe a call; this module carries it out. It is the only place that decides
whether to try again, so the rules of `_retry` are applied exactly once.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import attrs
from multidict import CIMultiDictProxy

from . import _codec
from ._checks import count_arg, seconds_arg
from ._credentials import Credentials
from ._environments import Environment
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ErrorAction,
    InvalidArgumentError,
    MissingApiKeyError,
    error_code,
    error_from_response,
)
from ._gate import RateGate
from ._idempotency import IdempotencyKeys
from ._logging import logger
from ._retry import RetryPolicy, backoff_delay, parse_retry_after
from ._transport import Transport, TransportFailure
from ._version import __version__

__all__ = ["Requester", "Settings", "Clock", "APIResponse", "AuthErrorHook", "checked_extra_headers"]

USER_AGENT = f"pacspace-python/{__version__}"
# The key, the idempotency key and the chain id are the SDK's to set: a chain id of the other
# environment would mix sandbox and production.
_RESERVED_HEADERS = frozenset({"x-api-key", "idempotency-key", "x-chain-id", "host", "content-length"})


class _Headers(dict[str, str]):
    """A request's headers; the key never shows in a repr (tracebacks with locals, debuggers)."""

    def __repr__(self) -> str:
        return repr({name: ("****" if name == "X-Api-Key" else value) for name, value in self.items()})


AuthErrorHook = Callable[[APIStatusError], "Awaitable[None] | None"]


@attrs.frozen
class Clock:
    """Time as the retry loop sees it; tests swap it so no test really waits."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    jitter: Callable[[float, float], float] = random.uniform


@attrs.frozen
class Settings:
    """What `with_options` may change; everything else is shared between copies."""

    base_urls: Mapping[Environment, str]
    timeout: float = 30.0
    deadline: float = 120.0
    policy: RetryPolicy = attrs.Factory(RetryPolicy)
    on_auth_error: AuthErrorHook | None = None
    clock: Clock = attrs.Factory(Clock)


@attrs.frozen
class APIResponse:
    """A successful answer: the unwrapped ``data`` and what identifies the exchange."""

    status: int
    data: Any
    body: Any
    headers: CIMultiDictProxy[str]
    request_id: str | None
    idempotency_key: str | None


def unwrap(body: Any) -> Any:
    """``{"success": true, "data": ...}`` and ``{"statusCode": 200, "data": ...}`` → data."""
    if isinstance(body, dict) and "data" in body and ("success" in body or "statusCode" in body):
        return body["data"]
    return body


def _query_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return _codec.decimal_text(value)
    return str(value)


def build_query(query: Mapping[str, object] | None) -> str:
    """``?a=1&b=x`` without the None values, or an empty string."""
    if not query:
        return ""
    pairs = [(name, _query_value(value)) for name, value in query.items() if value is not None]
    return f"?{urlencode(pairs)}" if pairs else ""


def _pending(decoded: Any) -> bool:
    """A 2xx that says ``IDEMPOTENCY_PENDING`` (either body shape)."""
    if type(decoded) is dict and "error" not in decoded and "code" not in decoded:
        return False  # what error_code() finds in such a body: no code at all
    return error_code(decoded) == "IDEMPOTENCY_PENDING"


def _request_id(headers: Mapping[str, str]) -> str | None:
    return headers.get("X-Request-Id") or headers.get("request-id")


def checked_extra_headers(extra: Mapping[str, str] | None) -> Mapping[str, str]:
    """`extra_headers` as given, refused if it sets what the SDK owns (key, idempotency, chain)."""
    if not extra:
        return {}
    for name, value in extra.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidArgumentError("extra_headers must map str names to str values")
        if name.lower() in _RESERVED_HEADERS:
            raise InvalidArgumentError(
                f"extra_headers may not set {name}: the key comes from api_key= and rotate_key(), "
                "the idempotency key from idempotency_key="
            )
    return extra


class Requester:
    """Carries out calls for one client and its `with_options` copies."""

    def __init__(
        self,
        transport: Transport,
        credentials: Credentials,
        settings: Settings,
        gates: Mapping[Environment, RateGate] | None = None,
    ) -> None:
        self.transport = transport
        self.credentials = credentials
        self.settings = settings
        # Shared by every copy (like the pools): a 429 holds back the whole client's traffic.
        self.gates = gates if gates is not None else {environment: RateGate() for environment in Environment}
        self.idempotency = IdempotencyKeys(credentials.environment)
        self._static_headers = {
            environment: {
                "User-Agent": USER_AGENT,
                "Content-Type": "application/json",
                "Accept": "application/json",
                "X-Chain-Id": str(environment.chain_id),
            }
            for environment in Environment
        }

    def with_settings(self, **changes: Any) -> Requester:
        return Requester(self.transport, self.credentials, attrs.evolve(self.settings, **changes), self.gates)

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, object] | None = None,
        json: Any = None,
        authenticated: bool = True,
        environment: Environment | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> APIResponse:
        """Send until success, a final error, the retry budget or the deadline.

        `idempotency_key` is the finished key (`IdempotencyKeys.for_call`); every attempt of
        this call sends the very same one.
        """
        settings = self.settings
        clock = settings.clock
        policy = settings.policy
        retry_budget = policy.max_retries if max_retries is None else count_arg("max_retries", max_retries)
        attempt_timeout = settings.timeout if timeout is None else seconds_arg("timeout", timeout)
        whole_call = settings.deadline if deadline is None else min(settings.deadline, deadline)
        credentials = self.credentials
        environment = environment or credentials.environment
        url = settings.base_urls[environment] + path
        if query:
            url += build_query(query)
        body = None if json is None else _codec.dumps(json)
        headers = _Headers(self._static_headers[environment])
        if extra_headers:
            headers.update(checked_extra_headers(extra_headers))
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        if authenticated and not credentials.has_key:
            raise MissingApiKeyError(
                f"{method} {path} needs an API key; pass api_key= or set PACSPACE_API_KEY "
                "(only verify() works without one)"
            )

        gate = self.gates[environment]
        started = clock.monotonic()
        deadline_at = started + whole_call
        retries = 0  # resends, what errors report as retries_taken
        budget_spent = 0  # resends that count against max_retries: those after a 429 do not
        refusals = 0  # 429s answered to this call
        refused_by: APIStatusError | None = None  # the latest of them
        attempt = 0
        pending_waits = 0
        try:
            while True:
                attempt += 1
                key_id: str | None = None
                if authenticated:
                    key = credentials.fixed_key
                    if key is None:
                        key = await credentials.current()
                    if key is None:  # rotated to nothing: cannot happen through the public API
                        raise MissingApiKeyError(f"{method} {path} needs an API key")
                    headers["X-Api-Key"] = key.header_value()
                    key_id = key.key_id
                now = clock.monotonic()
                if gate.holds(now):
                    # Time at the gate counts against the deadline, and no turn is taken past it.
                    await self._wait_for_turn(gate, deadline_at, refused_by, method, path, idempotency_key, retries)
                    now = clock.monotonic()
                remaining = deadline_at - now
                if remaining <= 0:
                    raise APITimeoutError(
                        f"the call's deadline of {whole_call:g}s passed",
                        method=method,
                        path=path,
                        idempotency_key=idempotency_key,
                        retries_taken=retries,
                    )
                sent_at = now
                try:
                    raw = await self.transport.send(
                        environment,
                        method,
                        url,
                        headers=headers,
                        body=body,
                        timeout=min(attempt_timeout, remaining),
                    )
                except TransportFailure as failure:
                    error_type = APITimeoutError if failure.timeout else APIConnectionError
                    connection_error = error_type(
                        str(failure),
                        method=method,
                        path=path,
                        idempotency_key=idempotency_key,
                        retries_taken=retries,
                        action=None if failure.retryable else ErrorAction.ALERT_OPERATOR,
                    )
                    if failure.retryable and budget_spent < retry_budget:
                        delay = policy.delay(budget_spent, None, jitter=clock.jitter)
                        if clock.monotonic() + delay < deadline_at:
                            self._log_retry(
                                method, path, str(failure), delay, budget_spent + 1, retry_budget, None, key_id
                            )
                            await clock.sleep(delay)
                            retries += 1
                            budget_spent += 1
                            continue
                    raise connection_error from None

                status = raw.status
                decoded = _codec.loads(raw.body)
                request_id = _request_id(raw.headers)
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug(
                        "%s %s -> %s (attempt %d, %.1f ms, request_id=%s, key_id=%s)",
                        method,
                        path,
                        status,
                        attempt,
                        (clock.monotonic() - sent_at) * 1000,
                        request_id,
                        key_id,
                    )
                if status != 429 and gate.pace:
                    gate.succeeded()
                if 200 <= status < 300:
                    if not _pending(decoded):
                        return APIResponse(status, unwrap(decoded), decoded, raw.headers, request_id, idempotency_key)
                    # The first request with this key is still running server-side: wait, resend.
                    hint = parse_retry_after(raw.headers, decoded, now=clock.wall)
                    delay = policy.pending_delay(pending_waits, hint, jitter=clock.jitter)
                    pending_waits += 1
                    if clock.monotonic() + delay >= deadline_at:
                        raise APITimeoutError(
                            "the first request with this idempotency key was still in progress at the "
                            f"deadline ({whole_call:g}s); call again later with the same idempotency_key",
                            method=method,
                            path=path,
                            idempotency_key=idempotency_key,
                            retries_taken=retries,
                        )
                    self._log_retry(method, path, "202 IDEMPOTENCY_PENDING", delay, None, None, request_id, key_id)
                    await clock.sleep(delay)
                    continue

                hint = parse_retry_after(raw.headers, decoded, now=clock.wall)
                error = error_from_response(
                    status=status,
                    body=decoded,
                    method=method,
                    path=path,
                    request_id=request_id,
                    idempotency_key=idempotency_key,
                    retries_taken=retries,
                    key_id=key_id,
                    retry_after=hint if status in (429, 503) else None,
                )
                if status in (401, 403):
                    await self._auth_failed(error)
                    raise error
                if not policy.is_retryable_status(status, decoded):
                    raise error
                if status == 429:
                    # The key sends too fast: the gate holds back every request of this
                    # environment, this one included, until the server's wait has passed.
                    wait = hint if hint is not None else backoff_delay(refusals, jitter=clock.jitter)
                    gate.refused(clock.monotonic(), wait, sent_at)
                    refusals += 1
                    if retry_budget == 0 or wait > policy.max_retry_after:
                        raise error
                    self._log_retry(method, path, "429 rate limited", wait, refusals, None, request_id, key_id)
                    refused_by = error
                    retries += 1
                    continue
                if budget_spent >= retry_budget or (hint is not None and hint > policy.max_retry_after):
                    raise error
                delay = policy.delay(budget_spent, hint, jitter=clock.jitter)
                if clock.monotonic() + delay >= deadline_at:
                    raise error
                self._log_retry(method, path, str(status), delay, budget_spent + 1, retry_budget, request_id, key_id)
                await clock.sleep(delay)
                retries += 1
                budget_spent += 1
        finally:
            # The frame outlives the call in a traceback (shown with its locals by Sentry, rich,
            # pytest --showlocals): leave no key in it, not even one a server echoed back.
            headers.pop("X-Api-Key", None)
            raw = decoded = None  # type: ignore[assignment]

    async def _wait_for_turn(
        self,
        gate: RateGate,
        deadline_at: float,
        refused_by: APIStatusError | None,
        method: str,
        path: str,
        idempotency_key: str | None,
        retries: int,
    ) -> None:
        """Wait for this request's turn at the 429 gate, or raise if it comes too late.

        Too late: after the call's deadline, or further off than `max_retry_after`. The error is
        the call's own latest 429 if it had one, else a `RateLimitError` saying nothing was sent.
        """
        clock = self.settings.clock
        max_wait = self.settings.policy.max_retry_after
        while True:
            now = clock.monotonic()
            epoch = gate.epoch
            wait = gate.turn(now, clock.jitter, latest=min(deadline_at, now + max_wait))
            if wait is None:
                if refused_by is not None:
                    raise refused_by
                until = max(gate.closed_until, gate.next_turn) - now
                raise error_from_response(
                    status=429,
                    body={
                        "error": {
                            "code": "RATE_LIMITED",
                            "message": f"not sent: PacSpace is rate-limiting this key and the next turn is in "
                            f"{until:.1f}s, past this call's deadline or max_retry_after",
                        }
                    },
                    method=method,
                    path=path,
                    request_id=None,
                    idempotency_key=idempotency_key,
                    retries_taken=retries,
                    key_id=self.credentials.key_id,
                    retry_after=until,
                )
            if wait <= 0:
                return
            await clock.sleep(wait)
            if gate.epoch == epoch:
                return

    async def _auth_failed(self, error: APIStatusError) -> None:
        if error.status == 401:
            self.credentials.after_auth_failure()
        hook = self.settings.on_auth_error
        if hook is None:
            return
        try:
            result = hook(error)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # the hook must not hide the auth error from the caller
            logger.warning("on_auth_error hook raised %s: %s", type(exc).__name__, exc)

    @staticmethod
    def _log_retry(
        method: str,
        path: str,
        why: str,
        delay: float,
        retry: int | None,
        budget: int | None,
        request_id: str | None,
        key_id: str | None,
    ) -> None:
        if not logger.isEnabledFor(logging.INFO):
            return
        if retry is None:
            count = "waiting"
        elif budget is None:  # a 429's retries wait at the gate and use no retry budget
            count = f"retry {retry} after the rate gate reopens"
        else:
            count = f"retry {retry} of {budget}"
        logger.info(
            "%s %s: %s; %s in %.2fs (request_id=%s, key_id=%s)",
            method,
            path,
            why,
            count,
            delay,
            request_id,
            key_id,
        )
