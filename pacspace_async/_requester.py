"""One API call: headers, the key, attempts, waits, the idempotency key, and the error.

Resources describe a call; this module carries it out: it sends, asks `RetryPolicy.decide`
what comes next, and does that. Which answers are retried, and after how long, is decided there
and only there (see "Requests and retries" in docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import attrs
from multidict import CIMultiDictProxy

from . import _codec
from ._checks import count_arg, seconds_arg
from ._credentials import ApiKey, Credentials
from ._environments import Environment
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    InvalidArgumentError,
    MissingApiKeyError,
    PacSpaceError,
    error_from_response,
)
from ._gate import RateGate
from ._idempotency import IdempotencyKeys
from ._logging import logger
from ._retry import (
    NOTHING_TAKEN,
    RETURN,
    GiveUp,
    Outcome,
    Raise,
    Retry,
    RetryPolicy,
    Tally,
    Wait,
    outcome_of_answer,
    outcome_of_failure,
)
from ._status import NoAnswer, status_rule
from ._telemetry import AVAILABLE as _TELEMETRY
from ._telemetry import CallTelemetry, start_call
from ._transport import Transport, TransportFailure
from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["Requester", "Settings", "Clock", "APIResponse", "AuthErrorHook", "checked_extra_headers", "tell_auth_hook"]

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
    #: Send the W3C ``traceparent`` of the current span to PacSpace (off: no trace id leaves).
    send_traceparent: bool = False
    #: Where spans and metrics go (None: OpenTelemetry's global providers).
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None


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
        this call sends the very same one. After each attempt `RetryPolicy.decide` says what
        comes next; this loop only carries it out.
        """
        settings = self.settings
        clock = settings.clock
        policy = settings.policy
        if max_retries is not None:  # this call's own budget
            policy = RetryPolicy(count_arg("max_retries", max_retries), policy.max_retry_after)
        per_attempt = settings.timeout if timeout is None else seconds_arg("timeout", timeout)
        whole_call = settings.deadline if deadline is None else min(settings.deadline, deadline)
        environment = environment or self.credentials.environment
        base_url = settings.base_urls[environment]
        url = base_url + path + (build_query(query) if query else "")
        body = None if json is None else _codec.dumps(json)
        headers = _Headers(self._static_headers[environment])  # built once, for every attempt
        if extra_headers:
            headers.update(checked_extra_headers(extra_headers))
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        if authenticated and not self.credentials.has_key:
            raise MissingApiKeyError(
                f"{method} {path} needs an API key; pass api_key= or set PACSPACE_API_KEY "
                "(only verify() works without one)"
            )
        gate = self.gates[environment]
        deadline_at = clock.monotonic() + whole_call
        taken = NOTHING_TAKEN
        refused_by: PacSpaceError | None = None  # the call's latest 429: raised if its turn comes too late
        failure: TransportFailure | None = None  # the attempt's, when it got no answer
        call: CallTelemetry | None = None  # spans and metrics; None unless OpenTelemetry records
        if _TELEMETRY:
            credentials = self.credentials if authenticated else None
            call = start_call(settings, method, path, base_url, url, environment, credentials, idempotency_key)
        try:
            while True:
                key_id = None
                if authenticated:  # read per attempt: a rotated key is used from the next one on
                    key = self.credentials.fixed_key or await self._current_key(method, path)
                    headers["X-Api-Key"] = key.header_value()
                    key_id = self.credentials.key_id  # key.key_id, without building the string again
                now = clock.monotonic()
                if gate.holds(now):  # time at the gate counts against the deadline, not max_retries
                    held = now
                    now = await self._wait_for_turn(gate, deadline_at, refused_by, method, path, idempotency_key, taken)
                    if call is not None:
                        call.gate_waited(now - held)
                remaining = deadline_at - now
                if remaining <= 0:
                    raise _timeout(
                        f"the call's deadline of {whole_call:g}s passed", method, path, idempotency_key, taken
                    )

                if call is not None:
                    call.begin_attempt(taken.attempts - 1, headers)
                try:
                    raw = await self.transport.send(
                        environment, method, url, headers=headers, body=body, timeout=min(per_attempt, remaining)
                    )
                except TransportFailure as exc:
                    failure, decoded, request_id = exc, None, None
                    outcome = outcome_of_failure(exc.retryable)
                else:
                    failure, decoded, request_id = None, _codec.loads(raw.body), _request_id(raw.headers)
                    outcome = outcome_of_answer(raw.status, decoded, raw.headers, clock.wall)
                    if gate.pace and raw.status != 429:  # any other answer: the key is within its limit
                        gate.succeeded()
                    if logger.isEnabledFor(logging.DEBUG):
                        _log_answer(method, path, raw.status, taken, clock.monotonic() - now, request_id, key_id)

                decision = policy.decide(outcome, taken, deadline_at - clock.monotonic(), clock.jitter)
                if decision is RETURN:
                    if call is not None:
                        call.end_attempt(raw.status, request_id, raw.headers, None)
                        call.end(None, taken.retries, request_id, raw.headers)
                    return APIResponse(raw.status, unwrap(decoded), decoded, raw.headers, request_id, idempotency_key)
                # What this attempt ends the call with if it is the last (a 429's is kept for the gate).
                error = _error(
                    outcome, failure, decoded, request_id, key_id, method, path, idempotency_key, taken, whole_call
                )
                if call is not None:
                    if failure is None:
                        call.end_attempt(raw.status, request_id, raw.headers, error)
                    else:
                        call.end_attempt(None, None, None, error)
                if decision.gate_wait is not None:  # a 429 holds back every request of this environment
                    gate.refused(clock.monotonic(), decision.gate_wait, now)
                    refused_by = error
                if isinstance(decision, Raise):
                    if decision.why is GiveUp.KEY_REFUSED:
                        await self._auth_failed(error)
                    raise error
                _log_retry(method, path, decision, outcome, failure, policy.max_retries, request_id, key_id)
                if call is not None:
                    resend = decision.taken.attempts - 1
                    call.retrying(decision, outcome, None if failure is None else failure.timeout, resend)
                if decision.kind is not Wait.GATE:  # a 429's wait is spent at the gate, before the next send
                    await clock.sleep(decision.wait)
                taken = decision.taken
        except BaseException as exc:
            if call is not None:
                call.end(exc, taken.retries)
            raise
        finally:
            # The frame outlives the call in a traceback (shown with its locals by Sentry, rich,
            # pytest --showlocals): leave no key in it, not even one a server echoed back.
            headers.pop("X-Api-Key", None)
            raw = decoded = outcome = failure = None  # type: ignore[assignment]

    async def _current_key(self, method: str, path: str) -> ApiKey:
        key = await self.credentials.current()
        if key is None:  # rotated to nothing: cannot happen through the public API
            raise MissingApiKeyError(f"{method} {path} needs an API key")
        return key

    async def _wait_for_turn(
        self,
        gate: RateGate,
        deadline_at: float,
        refused_by: PacSpaceError | None,
        method: str,
        path: str,
        idempotency_key: str | None,
        taken: Tally,
    ) -> float:
        """Wait for this request's turn at the 429 gate and return the time then.

        Raises if the turn comes too late: after the call's deadline, or further off than
        `max_retry_after`. The error is the call's own latest 429 if it had one, else a
        `RateLimitError` saying nothing was sent.
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
                    retries_taken=taken.retries,
                    key_id=self.credentials.key_id,
                    retry_after=until,
                )
            if wait <= 0:
                return now
            await clock.sleep(wait)
            if gate.epoch == epoch:
                return clock.monotonic()

    async def _auth_failed(self, error: PacSpaceError) -> None:
        """A 401 or 403: a key provider is read again (401), and `on_auth_error` is told."""
        if not isinstance(error, APIStatusError):
            return
        if error.status == 401:
            self.credentials.after_auth_failure()
        await tell_auth_hook(self.settings, error)


async def tell_auth_hook(settings: Settings, error: APIStatusError) -> None:
    """Call `on_auth_error` (sync or async) with a refusal; a hook that raises is logged, never
    lets its error replace the refusal or stop the client going on with its key."""
    hook = settings.on_auth_error
    if hook is None:
        return
    try:
        result = hook(error)
        if inspect.isawaitable(result):
            await result
    except Exception as exc:
        logger.warning("on_auth_error hook raised %s: %s", type(exc).__name__, exc)


def _timeout(message: str, method: str, path: str, idempotency_key: str | None, taken: Tally) -> APITimeoutError:
    return APITimeoutError(
        message, method=method, path=path, idempotency_key=idempotency_key, retries_taken=taken.retries
    )


def _error(
    outcome: Outcome,
    failure: TransportFailure | None,
    body: Any,
    request_id: str | None,
    key_id: str | None,
    method: str,
    path: str,
    idempotency_key: str | None,
    taken: Tally,
    whole_call: float,
) -> PacSpaceError:
    """The error an attempt ends its call with when it is the last one (pure: no I/O)."""
    status = outcome.status
    if failure is not None or isinstance(status, NoAnswer):
        return (APITimeoutError if failure and failure.timeout else APIConnectionError)(
            str(failure),
            method=method,
            path=path,
            idempotency_key=idempotency_key,
            retries_taken=taken.retries,
            action=status_rule(status).action,
        )
    if 200 <= status < 300:  # IDEMPOTENCY_PENDING: the first request with this key is still running
        return _timeout(
            "the first request with this idempotency key was still in progress at the "
            f"deadline ({whole_call:g}s); call again later with the same idempotency_key",
            method,
            path,
            idempotency_key,
            taken,
        )
    return error_from_response(
        status=status,
        body=body,
        method=method,
        path=path,
        request_id=request_id,
        idempotency_key=idempotency_key,
        retries_taken=taken.retries,
        key_id=key_id,
        retry_after=outcome.hint if status in (429, 503) else None,
    )


def _log_answer(
    method: str, path: str, status: int, taken: Tally, seconds: float, request_id: str | None, key_id: str | None
) -> None:
    logger.debug(
        "%s %s -> %s (attempt %d, %.1f ms, request_id=%s, key_id=%s)",
        method,
        path,
        status,
        taken.attempts,
        seconds * 1000,
        request_id,
        key_id,
    )


def _log_retry(
    method: str,
    path: str,
    retry: Retry,
    outcome: Outcome,
    failure: TransportFailure | None,
    max_retries: int,
    request_id: str | None,
    key_id: str | None,
) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    if retry.kind is Wait.PENDING:
        why, count = "202 IDEMPOTENCY_PENDING", "waiting"
    elif retry.kind is Wait.GATE:  # a 429's retries wait at the gate and use no retry budget
        why, count = "429 rate limited", f"retry {retry.taken.refusals} after the rate gate reopens"
    else:
        why = str(outcome.status if failure is None else failure)
        count = f"retry {retry.taken.budget_used} of {max_retries}"
    logger.info(
        "%s %s: %s; %s in %.2fs (request_id=%s, key_id=%s)",
        method,
        path,
        why,
        count,
        retry.wait,
        request_id,
        key_id,
    )
