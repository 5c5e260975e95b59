"""API keys: parsing, redaction, where they come from, and the client's current key.

The secret half of a key is read at exactly one place, `ApiKey.header_value`, which builds
the ``X-Api-Key`` header. Everything else sees `key_id` or `redacted`.
"""

from __future__ import annotations

import enum
import inspect
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Union

import attrs

from ._environments import Environment, check_routing
from ._errors import ConfigurationError, EnvironmentMismatchError, InvalidApiKeyError, MissingApiKeyError
from ._redact import REDACTED

__all__ = [
    "ApiKey",
    "KeyProvider",
    "KeySource",
    "Credentials",
    "API_KEY_VARIABLE",
    "MAX_API_KEY_LENGTH",
    "NoKey",
    "NO_KEY",
    "initial_credentials",
]

API_KEY_VARIABLE = "PACSPACE_API_KEY"
# Far above any real key (a prefix, a public id and a secret of a few dozen characters each),
# far below the header line limits of servers and proxies (8 KB in aiohttp, nginx, many load
# balancers): a longer text is a pasted file or the wrong variable, and sent as a header it
# would be refused as a bad request (telling an agent to change its arguments) and may be
# echoed, secret included, into the logs of whatever refused it.
MAX_API_KEY_LENGTH = 512

_PREFIXES = {environment.key_prefix: environment for environment in Environment}


def _refuse(text: str, why: str, source: str) -> InvalidApiKeyError:
    # Only the length and the rule broken: any slice of a malformed key may be its secret.
    return InvalidApiKeyError(
        f"invalid API key from {source} ({len(text)} characters): {why}; "
        "expected the form pk_{test|live}_<publicId>.<secret>"
    )


def _split(text: object, source: str) -> tuple[Environment, str, str]:
    """The environment, public id and secret of a well-formed key, or the rule it breaks."""
    if not isinstance(text, str):
        raise InvalidApiKeyError(f"the API key from {source} must be a str, not {type(text).__name__}")
    if not text:
        raise _refuse(text, "it is empty (leave api_key unset for public calls only)", source)
    if len(text) > MAX_API_KEY_LENGTH:
        raise _refuse(text, f"it is longer than {MAX_API_KEY_LENGTH} characters, more than any PacSpace key", source)
    if any(ch.isspace() for ch in text):
        raise _refuse(text, "it contains whitespace (a trailing newline from a file or a paste?)", source)
    if not text.isascii() or not text.isprintable():
        raise _refuse(text, "it contains characters that are not visible ASCII", source)
    environment = _PREFIXES.get(text[:8])
    if environment is None:
        raise _refuse(text, "it must start with pk_test_ (sandbox) or pk_live_ (production)", source)
    dots = text.count(".")
    if dots != 1:
        raise _refuse(text, f"it must contain exactly one '.' between public id and secret, found {dots}", source)
    public_id, secret = text[8:].split(".")
    if not public_id:
        raise _refuse(text, "the public id before '.' is empty", source)
    if not secret:
        raise _refuse(text, "the secret after '.' is empty", source)
    return environment, public_id, secret


@attrs.frozen(repr=False)
class ApiKey:
    """A parsed PacSpace key. Shows only ``pk_live_PUBLICID.****`` when printed.

    >>> key = ApiKey.parse("pk_test_abc123.s3cr3t")
    >>> key.environment.value, key.key_id, str(key)
    ('sandbox', 'pk_test_abc123', 'pk_test_abc123.****')
    """

    environment: Environment
    public_id: str
    _secret: str = attrs.field(alias="secret")

    def __attrs_post_init__(self) -> None:
        # Built directly rather than parsed: hold it to the same rules, so no header can be
        # smuggled in through a public id or secret.
        if not isinstance(self.environment, Environment) or not isinstance(self.public_id, str):
            raise InvalidApiKeyError("ApiKey(environment, public_id, secret) needs an Environment and strings")
        _split(f"{self.environment.key_prefix}{self.public_id}.{self._secret}", "ApiKey(...)")

    @classmethod
    def parse(cls, text: str, *, source: str = "api_key") -> ApiKey:
        """Check the exact shape ``pk_{test|live}_{publicId}.{secret}``; never echo the input."""
        return cls(*_split(text, source))

    @property
    def key_id(self) -> str:
        """``pk_live_PUBLICID``: safe to log and to show an operator."""
        return f"{self.environment.key_prefix}{self.public_id}"

    @property
    def redacted(self) -> str:
        return f"{self.key_id}.{REDACTED}"

    def header_value(self) -> str:
        """The full key, for the ``X-Api-Key`` header only."""
        return f"{self.key_id}.{self._secret}"

    def __repr__(self) -> str:
        return f"ApiKey({self.redacted!r})"

    def __str__(self) -> str:
        return self.redacted


_Loaded = Union[str, ApiKey]
KeyReader = Callable[[], Union[_Loaded, Awaitable[_Loaded]]]


class KeyProvider:
    """Where the client reads its key, consulted before each request.

    The value is cached; it is read again when the source changes (file providers), when the
    variable changes (environment providers), and always after a 401.

    >>> provider = KeyProvider.from_env("PACSPACE_API_KEY")
    """

    def __init__(self, read: KeyReader, *, name: str, stale: Callable[[], bool] | None = None) -> None:
        self._read = read
        self._name = name
        self._stale = stale
        self._cached: ApiKey | None = None
        self._last_text: object = None
        self._is_async = inspect.iscoroutinefunction(read) or inspect.iscoroutinefunction(
            getattr(read, "__call__", None)  # noqa: B004 - an object with an async __call__
        )

    @classmethod
    def from_env(cls, name: str = API_KEY_VARIABLE, *, environ: Mapping[str, str] | None = None) -> KeyProvider:
        """Read the key from an environment variable; a changed value is picked up."""
        env = os.environ if environ is None else environ

        def read() -> str:
            try:
                return env[name]
            except KeyError:
                raise MissingApiKeyError(f"environment variable {name} is not set") from None

        provider = cls(read, name=f"KeyProvider.from_env({name!r})")
        provider._stale = provider._text_changed(read)
        return provider

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> KeyProvider:
        """Read the key from a file (a mounted secret); re-read when its mtime or size changes.

        Surrounding whitespace, such as the trailing newline most tools write, is stripped.
        """
        file = Path(path)
        checked_at: float | None = None
        seen: tuple[int, int] | None = None

        def signature() -> tuple[int, int]:
            try:
                st = file.stat()
            except OSError as exc:
                raise ConfigurationError(f"cannot read the API key file {str(file)!r}: {exc.strerror}") from None
            return (st.st_mtime_ns, st.st_size)

        def read() -> str:
            nonlocal checked_at, seen
            seen, checked_at = signature(), clock()
            try:
                return file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                problem = type(exc).__name__
            # Raised outside the handler: a UnicodeDecodeError holds the file's bytes, and an
            # exception raised inside would keep it as __context__ even with `from None`.
            raise ConfigurationError(f"cannot read the API key file {str(file)!r}: {problem}")

        def stale() -> bool:
            nonlocal checked_at
            now = clock()
            if checked_at is not None and now - checked_at < check_interval:
                return False
            checked_at = now
            return signature() != seen

        return cls(read, name=f"KeyProvider.from_file({str(file)!r})", stale=stale)

    @classmethod
    def from_callable(cls, read: KeyReader) -> KeyProvider:
        """Any sync or async callable returning the key (a secret manager lookup).

        It is called once, then again only after a 401 or a `rotate_key`.
        """
        return cls(read, name=f"KeyProvider.from_callable({getattr(read, '__qualname__', type(read).__name__)})")

    @property
    def is_async(self) -> bool:
        return self._is_async

    def invalidate(self) -> None:
        """Forget the cached key: the next request reads the source again."""
        self._cached = None

    def load_now(self) -> ApiKey:
        """Read a synchronous source immediately (the client does this to fail fast)."""
        if self._is_async:
            raise ConfigurationError(f"{self._name} is async; it can only be read inside the event loop")
        cached = self._cached
        if cached is not None and not (self._stale and self._stale()):
            return cached
        loaded = self._read()
        if inspect.isawaitable(loaded):
            close = getattr(loaded, "close", None)
            if close is not None:
                close()
            raise ConfigurationError(f"{self._name} returned an awaitable; make it an `async def`")
        return self._keep(loaded)

    async def get(self) -> ApiKey:
        """The current key, re-read if the source changed or after `invalidate`."""
        if not self._is_async:
            return self.load_now()
        cached = self._cached
        if cached is not None:
            return cached
        loaded = self._read()
        if inspect.isawaitable(loaded):
            loaded = await loaded
        return self._keep(loaded)

    def _keep(self, loaded: object) -> ApiKey:
        # On a bad value nothing stays cached: every call reports it until the source is fixed,
        # rather than quietly going on with a key the operator meant to replace.
        self._cached = None
        if isinstance(loaded, ApiKey):
            key = loaded
        elif isinstance(loaded, str):
            key = ApiKey.parse(loaded, source=self._name)
        else:
            raise ConfigurationError(f"{self._name} returned {type(loaded).__name__}, not a str or ApiKey")
        self._cached = key
        self._last_text = loaded
        return key

    def _text_changed(self, read: Callable[[], str]) -> Callable[[], bool]:
        def stale() -> bool:
            return read() != self._last_text

        return stale

    def __repr__(self) -> str:
        return self._name


KeySource = Union[str, ApiKey, KeyProvider, KeyReader]


class NoKey(enum.Enum):
    """``api_key=NO_KEY``: a public-only client, whatever ``PACSPACE_API_KEY`` holds."""

    NO_KEY = "no-key"


NO_KEY = NoKey.NO_KEY


def to_key_source(value: KeySource, *, source: str = "api_key") -> ApiKey | KeyProvider:
    """Normalize what a caller passed as a key."""
    if isinstance(value, (ApiKey, KeyProvider)):
        return value
    if isinstance(value, str):
        return ApiKey.parse(value, source=source)
    if callable(value):
        return KeyProvider.from_callable(value)
    raise ConfigurationError(
        f"{source} must be a str, an ApiKey, a KeyProvider or a callable, not {type(value).__name__}"
    )


def default_key_source(environ: Mapping[str, str] = os.environ) -> ApiKey | None:
    """The key in ``PACSPACE_API_KEY``, or None (public endpoints only)."""
    text = environ.get(API_KEY_VARIABLE)
    return None if text is None else ApiKey.parse(text, source=API_KEY_VARIABLE)


class Credentials:
    """The client's current key. Shared by `with_options` copies so a rotation reaches all.

    A rotation is one attribute swap on the event loop: requests already sent keep the key
    they were sent with, every later request reads the new one.
    """

    def __init__(
        self,
        source: ApiKey | KeyProvider | None,
        environment: Environment,
        initial_key: ApiKey | None = None,
    ) -> None:
        self.environment = environment
        self._source = source
        known = source if isinstance(source, ApiKey) else initial_key
        self._last_key_id = known.key_id if known is not None else None

    @property
    def has_key(self) -> bool:
        return self._source is not None

    @property
    def key_id(self) -> str | None:
        """The identity of the key last used (never the secret)."""
        return self._last_key_id

    @property
    def fixed_key(self) -> ApiKey | None:
        """The key itself when it is a fixed `ApiKey` (not a provider): read without awaiting."""
        source = self._source
        return source if type(source) is ApiKey else None

    async def current(self) -> ApiKey | None:
        source = self._source
        if source is None or isinstance(source, ApiKey):
            return source
        key = await source.get()
        self._check(key)
        self._last_key_id = key.key_id
        return key

    def after_auth_failure(self) -> None:
        """After a 401 a provider is read again before the next request."""
        if isinstance(self._source, KeyProvider):
            self._source.invalidate()

    async def rotate(self, new: ApiKey | KeyProvider) -> None:
        key = await new.get() if isinstance(new, KeyProvider) else new
        self._check(key)
        self._source = new
        self._last_key_id = key.key_id

    def _check(self, key: ApiKey) -> None:
        if key.environment is not self.environment:
            raise EnvironmentMismatchError(
                f"key {key.key_id} belongs to {key.environment.value}, but this client serves "
                f"{self.environment.value}; the current key stays in use (create a separate client "
                f"for {key.environment.value})"
            )


def initial_credentials(source: ApiKey | KeyProvider | None, explicit: Environment | None) -> Credentials:
    """The client's credentials, its environment decided at construction, before any request.

    A synchronous provider is read here, so a bad key fails fast.
    """
    key: ApiKey | None
    if isinstance(source, KeyProvider):
        if source.is_async:
            if explicit is None:
                raise ConfigurationError(
                    "an async key provider cannot be read before the event loop runs; "
                    "pass environment=Environment.SANDBOX or Environment.PRODUCTION with it"
                )
            return Credentials(source, explicit)
        key = source.load_now()
    else:
        key = source
    key_environment = key.environment if key is not None else None
    check_routing(key_environment=key_environment, explicit=explicit)
    return Credentials(source, key_environment or explicit or Environment.PRODUCTION, key)
