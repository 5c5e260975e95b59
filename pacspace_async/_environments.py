"""Sandbox and production: their base URLs, chain ids, and the guard that keeps them apart."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from ._errors import ConfigurationError, EnvironmentMismatchError

__all__ = ["Environment", "resolve_base_urls", "check_routing"]


class Environment(str, enum.Enum):
    """Where a key's traffic goes. The key prefix decides it: ``pk_test_`` or ``pk_live_``."""

    SANDBOX = "sandbox"
    PRODUCTION = "production"

    @property
    def key_prefix(self) -> str:
        return "pk_test_" if self is Environment.SANDBOX else "pk_live_"

    @property
    def chain_id(self) -> int:
        """The verification ledger's chain id, sent as ``X-Chain-Id`` (Hedera testnet/mainnet)."""
        return 296 if self is Environment.SANDBOX else 295

    @property
    def url_variable(self) -> str:
        """The environment variable that overrides this environment's base URL."""
        return f"PACSPACE_{self.name}_URL"

    @classmethod
    def coerce(cls, value: Environment | str) -> Environment:
        """Accept the enum or its value (``"sandbox"``/``"production"``)."""
        if isinstance(value, Environment):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            raise ConfigurationError(
                f"unknown environment {value!r}: use Environment.SANDBOX or Environment.PRODUCTION"
            ) from None


DEFAULT_BASE_URLS: Mapping[Environment, str] = {
    # The consolidated origin; the server routes pk_test_ keys to the sandbox data plane there.
    Environment.SANDBOX: "https://app.pacspace.io",
    Environment.PRODUCTION: "https://api.pacspace.io",
}

# Hosts that serve production only: a sandbox key must never be aimed at them.
PRODUCTION_ONLY_HOSTS = frozenset({"api.pacspace.io"})


def validate_base_url(url: str, *, source: str) -> str:
    """An absolute http(s) URL without credentials, query or fragment; trailing ``/`` removed."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"{source}: a base URL must be a non-empty string like https://app.pacspace.io")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{source}: base URL {url!r} must be absolute http(s), like https://app.pacspace.io")
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(f"{source}: a base URL must not carry credentials; pass the key with api_key=")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{source}: base URL {url!r} must not have a query or fragment")
    return url.strip().rstrip("/")


def resolve_base_urls(
    overrides: Mapping[Environment, str] | Mapping[str, str] | None,
    environ: Mapping[str, str] = os.environ,
) -> dict[Environment, str]:
    """Each environment's base URL: constructor override > environment variable > default."""
    urls = dict(DEFAULT_BASE_URLS)
    for environment in Environment:
        from_env = environ.get(environment.url_variable)
        if from_env:
            urls[environment] = validate_base_url(from_env, source=environment.url_variable)
    for name, url in (overrides or {}).items():
        environment = Environment.coerce(name)
        urls[environment] = validate_base_url(url, source=f"base_urls[{environment.value!r}]")
    return urls


def check_routing(
    *,
    key_environment: Environment | None,
    explicit: Environment | None,
    base_url: str | None = None,
) -> None:
    """Refuse, before any I/O, a key, environment and URL that disagree."""
    if key_environment is not None and explicit is not None and key_environment is not explicit:
        raise EnvironmentMismatchError(
            f"a {key_environment.key_prefix} key belongs to {key_environment.value}, "
            f"but environment={explicit.value!r} was given; use a {explicit.key_prefix} key "
            "or drop environment="
        )
    environment = key_environment or explicit
    if environment is Environment.SANDBOX and base_url is not None:
        host = (urlsplit(base_url).hostname or "").rstrip(".")  # "api.pacspace.io." is the same host
        if host in PRODUCTION_ONLY_HOSTS:
            raise EnvironmentMismatchError(
                f"the sandbox base URL points at {host}, which serves production only; "
                "sandbox keys go to https://app.pacspace.io or your dashboard's sandbox URL"
            )
