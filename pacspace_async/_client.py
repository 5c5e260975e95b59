"""`AsyncPacSpace`: configuration, resources, key rotation and the client's lifetime."""

from __future__ import annotations

import os
import ssl as _ssl
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import attrs

from ._checks import count_arg, seconds_arg
from ._credentials import (
    ApiKey,
    Credentials,
    KeySource,
    NoKey,
    default_key_source,
    initial_credentials,
    to_key_source,
)
from ._environments import Environment, check_routing, resolve_base_urls
from ._errors import (
    APIStatusError,
    AuthenticationError,
    ConfigurationError,
    InvalidArgumentError,
    PermissionDeniedError,
    error_message,
    reworded,
)
from ._logging import configure_from_env
from ._requester import APIResponse, AuthErrorHook, Clock, Requester, Settings, tell_auth_hook
from ._retry import RetryPolicy
from ._transport import Transport
from .models.verify import ProofVerification
from .resources.balance import AsyncBalance
from .resources.checkpoints import AsyncCheckpoints
from .resources.customers import AsyncCustomers
from .resources.summaries import AsyncSummaries
from .resources.verify import AsyncVerification
from .resources.webhook_deliveries import AsyncWebhookDeliveries
from .webhooks import SECRET_ENV_VAR, WebhookVerifier

__all__ = ["AsyncPacSpace"]

PROBE_PATH = "/api/v1/balance/usage"
"""The probe that checks a key: the cheapest read known to need a key (a few plan counters, no
customer data, no parameters). ``/balance/limits`` is cheaper still, but nothing says it needs
a key: a public route would answer 200 to any key, and the probe would vouch for a revoked one."""


async def probe_key(requester: Requester, key: ApiKey, key_in_use: str | None = None) -> APIResponse:
    """Send one ``GET /api/v1/balance/usage`` with `key` to `key`'s own environment.

    The client's key is untouched (the probe has its own credentials), a 429 to the new key
    holds back none of the client's traffic (its own rate gates), and it is one attempt within
    the client's timeout: a refusal is never retried, and a caller waiting to cut over should
    hear of an unreachable API at once. A 401/403 is raised naming `key` (never its secret).
    """
    settings = requester.settings
    scoped = Requester(
        requester.transport, Credentials(key, key.environment), attrs.evolve(settings, on_auth_error=None)
    )
    try:
        return await scoped.request("GET", PROBE_PATH, max_retries=0, deadline=settings.timeout)
    except (AuthenticationError, PermissionDeniedError) as error:
        keeps = "" if key_in_use is None else f"; {key_in_use} stays in use"
        said = error_message(error.body, error.status)
        raise reworded(error, f"PacSpace refused the key {key.key_id} ({said}){keeps}") from None


class AsyncPacSpace:
    """The async PacSpace client: one per event loop, shared by every task on it.

    >>> async with AsyncPacSpace() as pac:          # key from PACSPACE_API_KEY
    ...     rec = await pac.balance.emit(customer_id="cust_1", delta=Decimal("-1"), reason="usage")
    """

    balance: AsyncBalance
    checkpoints: AsyncCheckpoints
    customers: AsyncCustomers
    webhook_deliveries: AsyncWebhookDeliveries
    summaries: AsyncSummaries

    def __init__(
        self,
        api_key: KeySource | NoKey | None = None,
        *,
        environment: Environment | str | None = None,
        base_urls: Mapping[Environment, str] | Mapping[str, str] | None = None,
        timeout: float = 30.0,
        deadline: float = 120.0,
        max_retries: int = 2,
        max_retry_after: float = 60.0,
        pool_limit: int = 100,
        on_auth_error: AuthErrorHook | None = None,
        webhook_secret: str | None = None,
        ssl: _ssl.SSLContext | None = None,
        send_traceparent: bool = False,
    ) -> None:
        configure_from_env()
        if isinstance(api_key, NoKey):
            source = None
        else:
            source = default_key_source() if api_key is None else to_key_source(api_key)
        explicit = None if environment is None else Environment.coerce(environment)
        credentials = initial_credentials(source, explicit)
        urls = resolve_base_urls(base_urls)
        check_routing(key_environment=credentials.environment, explicit=None, base_url=urls[credentials.environment])
        if isinstance(pool_limit, bool) or not isinstance(pool_limit, int) or pool_limit < 1:
            raise InvalidArgumentError(f"pool_limit must be an int >= 1, got {pool_limit!r}")
        if ssl is not None and not isinstance(ssl, _ssl.SSLContext):
            raise ConfigurationError("ssl must be an ssl.SSLContext")
        if on_auth_error is not None and not callable(on_auth_error):
            raise ConfigurationError("on_auth_error must be a callable taking the error")
        if not isinstance(send_traceparent, bool):
            raise ConfigurationError(f"send_traceparent must be True or False, got {send_traceparent!r}")
        settings = Settings(
            base_urls=urls,
            timeout=seconds_arg("timeout", timeout),
            deadline=seconds_arg("deadline", deadline),
            policy=RetryPolicy(count_arg("max_retries", max_retries), seconds_arg("max_retry_after", max_retry_after)),
            on_auth_error=on_auth_error,
            # Off by default: a trace id is information about your system; send it only by choice.
            send_traceparent=send_traceparent,
        )
        # An empty variable is "not configured": it must not break clients that never verify webhooks.
        webhooks = None
        if webhook_secret is not None or os.environ.get(SECRET_ENV_VAR, "").strip():
            webhooks = WebhookVerifier(webhook_secret)
        requester = Requester(Transport(pool_limit=pool_limit, ssl=ssl), credentials, settings)

        async def probe(key: ApiKey, key_in_use: str | None) -> APIResponse:
            return await probe_key(requester, key, key_in_use)

        async def notify(error: APIStatusError) -> None:
            await tell_auth_hook(settings, error)

        credentials.attach_probe(probe, notify)
        self._setup(requester, webhooks, None)

    def _setup(self, requester: Requester, webhooks: WebhookVerifier | None, summaries: AsyncSummaries | None) -> None:
        self._requester = requester
        self._webhooks = webhooks
        self.balance = AsyncBalance(requester)
        # One queue per client: copies made by with_options share it, like the pools.
        self.summaries = summaries or AsyncSummaries(self.balance, requester.settings.clock)
        self.checkpoints = AsyncCheckpoints(requester)
        self.customers = AsyncCustomers(requester)
        self.webhook_deliveries = AsyncWebhookDeliveries(requester)
        self._verification = AsyncVerification(requester)

    # --- identity ---------------------------------------------------------------------------

    @property
    def environment(self) -> Environment:
        """Where this client's traffic goes (decided by the key's prefix)."""
        return self._requester.credentials.environment

    @property
    def key_id(self) -> str | None:
        """``pk_test_PUBLICID`` of the current key (never the secret); None without a key."""
        return self._requester.credentials.key_id

    @property
    def base_url(self) -> str:
        return self._requester.settings.base_urls[self.environment]

    def __repr__(self) -> str:
        return f"AsyncPacSpace(environment={self.environment.value!r}, key_id={self.key_id!r})"

    @property
    def webhooks(self) -> WebhookVerifier:
        """The webhook verifier for ``webhook_secret`` (or ``PACSPACE_WEBHOOK_SECRET``).

        >>> event = pac.webhooks.verify(request.headers, raw_body)
        """
        if self._webhooks is None:
            raise ConfigurationError(
                "pac.webhooks needs the webhook signing secret: pass webhook_secret='whsec_...' "
                f"or set {SECRET_ENV_VAR}"
            )
        return self._webhooks

    # --- public calls -----------------------------------------------------------------------

    async def verify(
        self,
        proof_root: str,
        *,
        source: str | None = None,
        environment: Environment | str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> ProofVerification:
        """Check a proof root publicly. No key is sent; works on a keyless client.

        >>> result = await AsyncPacSpace().verify("0x7f...", source="both")
        """
        return await self._verification.verify(
            proof_root,
            source=source,
            environment=environment,
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
        )

    # --- configuration ----------------------------------------------------------------------

    async def rotate_key(self, api_key: KeySource, *, verify: bool = False) -> None:
        """Swap the key atomically; requests already sent finish with the old one.

        A key of the other environment is refused and the old key stays in use.

        ``verify=True`` first sends one cheap authenticated request with the new key
        (``GET /api/v1/balance/usage`` to the new key's environment, one attempt within the
        client's timeout) and swaps only if PacSpace accepts it. A refusal raises
        `AuthenticationError` (401) or `PermissionDeniedError` (403) naming the new key's id;
        no answer raises `APIConnectionError`. Either way the old key stays in use, and
        ``on_auth_error`` is not called: the caller holds the error.

        >>> await pac.rotate_key("pk_live_NEW.secret", verify=True)
        """
        if not isinstance(verify, bool):
            raise InvalidArgumentError(f"verify must be True or False, got {verify!r}")
        await self._requester.credentials.rotate(to_key_source(api_key), verify=verify)

    async def _probe_key(self, key: ApiKey) -> APIResponse:
        """The probe `rotate_key(verify=True)` sends, for `pacspace key check`."""
        return await probe_key(self._requester, key)

    def with_options(
        self,
        *,
        timeout: float | None = None,
        deadline: float | None = None,
        max_retries: int | None = None,
        max_retry_after: float | None = None,
        on_auth_error: AuthErrorHook | None = None,
    ) -> AsyncPacSpace:
        """A copy with other defaults that shares this client's pools and key.

        >>> fast = pac.with_options(timeout=5, max_retries=0)
        """
        settings = self._requester.settings
        changes: dict[str, Any] = {}
        if timeout is not None:
            changes["timeout"] = seconds_arg("timeout", timeout)
        if deadline is not None:
            changes["deadline"] = seconds_arg("deadline", deadline)
        if max_retries is not None or max_retry_after is not None:
            changes["policy"] = RetryPolicy(
                settings.policy.max_retries if max_retries is None else count_arg("max_retries", max_retries),
                settings.policy.max_retry_after
                if max_retry_after is None
                else seconds_arg("max_retry_after", max_retry_after),
            )
        if on_auth_error is not None:
            changes["on_auth_error"] = on_auth_error
        return self._copy(self._requester.with_settings(**changes), self.summaries)

    def _with_clock(self, clock: Clock) -> AsyncPacSpace:
        """A copy whose waits and time go through `clock` (for tests and the emulator).

        It gets its own summary queue, whose timer must run on that clock too.
        """
        return self._copy(self._requester.with_settings(clock=clock), None)

    def _copy(self, requester: Requester, summaries: AsyncSummaries | None) -> AsyncPacSpace:
        copy = object.__new__(type(self))
        copy._setup(requester, self._webhooks, summaries)
        return copy

    # --- lifetime ---------------------------------------------------------------------------

    def _forget_pools_after_fork(self) -> None:
        """For the sync facade in a forked child: fresh pools, the parent's sockets untouched."""
        self._requester.transport.forget_after_fork()

    @property
    def is_closed(self) -> bool:
        return self._requester.transport.closed

    async def aclose(self, *, flush_summaries: bool = True) -> None:
        """Flush queued summaries (unless told not to), then close every connection pool.

        Pools and the summary queue are shared with `with_options` copies. Idempotent.
        """
        if not self.is_closed:
            await self.summaries.aclose(flush=flush_summaries)
        await self._requester.transport.aclose()

    async def __aenter__(self) -> AsyncPacSpace:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
