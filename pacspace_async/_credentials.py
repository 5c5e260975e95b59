"""Where keys come from (providers, checked re-reads) and the client's current key."""

from __future__ import annotations

import enum
import inspect
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Union

import attrs

from ._api_key import MAX_API_KEY_LENGTH, ApiKey
from ._environments import Environment, check_routing
from ._errors import (
    APIStatusError,
    AuthenticationError,
    ConfigurationError,
    EnvironmentMismatchError,
    MissingApiKeyError,
    PacSpaceError,
    PermissionDeniedError,
)
from ._logging import logger

__all__ = [
    "ApiKey",
    "KeyProvider",
    "KeySource",
    "Credentials",
    "KeyCheck",
    "API_KEY_VARIABLE",
    "MAX_API_KEY_LENGTH",
    "NoKey",
    "NO_KEY",
    "initial_credentials",
]

API_KEY_VARIABLE = "PACSPACE_API_KEY"


_Loaded = Union[str, ApiKey]
KeyReader = Callable[[], Union[_Loaded, Awaitable[_Loaded]]]


@attrs.frozen
class KeyCheck:
    """A client's means to check a key: `probe` raises if PacSpace refuses it (401/403, another
    environment) or cannot say (no answer); `notify` tells the operator (``on_auth_error``)."""

    probe: Callable[[ApiKey], Awaitable[object]]
    notify: Callable[[APIStatusError], Awaitable[None]]


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
        # Set by from_file(verify=True): a changed key is probed before it replaces the cached one.
        self._verify = False
        self._recheck: Callable[[], None] = lambda: None  # read the source again at the next check
        self._reread = False  # a 401 asked for a fresh read; the cached key stays the fallback
        self._probing = False  # one probe at a time; meanwhile the cached key carries on
        self._refused: ApiKey | None = None  # not probed again until the source changes
        self._told: set[object] = set()  # the operator hears once per refused key (or bad file)
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
        verify: bool = False,
    ) -> KeyProvider:
        """Read the key from a file (a mounted secret); re-read when its mtime or size changes.

        Surrounding whitespace, such as the trailing newline most tools write, is stripped.

        ``verify=True``: a changed file's key is used only once the client's probe (one
        ``GET /api/v1/balance/usage``) is accepted. While it is refused (401/403, another
        environment, not a key) the key in use stays, and the operator is told once per refused
        key: ``on_auth_error`` (401/403) and one warning naming the key id. It is checked again
        when the file changes again (a ``touch`` will do), or, if PacSpace did not answer, at the
        next check interval.
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

        def recheck() -> None:
            nonlocal seen
            seen = None

        provider = cls(read, name=f"KeyProvider.from_file({str(file)!r})", stale=stale)
        provider._verify = bool(verify)
        provider._recheck = recheck
        return provider

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
        if self._verify:  # read again, but keep the key in use until a new one is accepted
            self._reread = True
        else:
            self._cached = None

    def load_now(self) -> ApiKey:
        """Read a synchronous source immediately (the client does this to fail fast)."""
        if self._is_async:
            raise ConfigurationError(f"{self._name} is async; it can only be read inside the event loop")
        cached = self._cached
        if cached is not None and (self._verify or not (self._stale and self._stale())):
            return cached  # a verifying provider changes keys only through a probe (get)
        loaded = self._read()
        if inspect.isawaitable(loaded):
            close = getattr(loaded, "close", None)
            if close is not None:
                close()
            raise ConfigurationError(f"{self._name} returned an awaitable; make it an `async def`")
        return self._keep(loaded)

    async def get(self, check: KeyCheck | None = None) -> ApiKey:
        """The current key, re-read if the source changed or after `invalidate`.

        `check` is how a verifying provider probes a changed key (the client passes it); without
        one there is nothing to probe with and the new key is used as read.
        """
        if self._verify:
            return await self._get_verified(check)
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
        key = self._parse(loaded)
        self._cached = key
        self._last_text = loaded
        return key

    def _parse(self, loaded: object) -> ApiKey:
        if isinstance(loaded, ApiKey):
            return loaded
        if isinstance(loaded, str):
            return ApiKey.parse(loaded, source=self._name)
        raise ConfigurationError(f"{self._name} returned {type(loaded).__name__}, not a str or ApiKey")

    async def _get_verified(self, check: KeyCheck | None) -> ApiKey:
        """A changed key replaces the one in use once PacSpace accepted a probe with it. Only a
        changed file (or a 401) probes, one probe at a time; other requests never wait for it."""
        current = self._cached
        if current is None:
            return self.load_now()  # the first key: nothing to fall back to, used as read
        if self._probing:
            return current
        try:
            changed = bool(self._stale and self._stale())
            if not (changed or self._reread):
                return current
            self._reread = False
            candidate = self._parse(self._read())
        except ConfigurationError as error:  # a vanished file, or not a key: refused, nothing sent
            self._warn_once(str(error), "(unreadable)", str(error), current)
            return current
        if candidate == current or check is None:
            return self._keep(candidate)
        if candidate == self._refused and not changed:
            return current  # re-read after a 401 on the key in use; this one was refused already
        self._probing = True
        try:
            await check.probe(candidate)
        except (AuthenticationError, PermissionDeniedError, EnvironmentMismatchError) as error:
            self._refused = candidate
            if candidate not in self._told and isinstance(error, APIStatusError):
                await check.notify(error)
            self._warn_once(candidate, candidate.key_id, str(error), current)
            return current
        except PacSpaceError as error:  # no verdict on the key: checked again at the next interval
            self._recheck()
            logger.warning("could not check the new API key %s from %s: %s", candidate.key_id, self._name, error)
            return current
        finally:
            self._probing = False
        self._refused = None
        logger.info("switched to API key %s from %s after PacSpace accepted it", candidate.key_id, self._name)
        return self._keep(candidate)

    def _warn_once(self, subject: object, key_id: str, why: str, current: ApiKey) -> None:
        if subject not in self._told:
            self._told.add(subject)
            logger.warning(
                "refused the new API key %s from %s; still using %s: %s", key_id, self._name, current.key_id, why
            )

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
        self._key_check: KeyCheck | None = None

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
        key = await source.get(self._key_check)
        self._check(key)
        self._last_key_id = key.key_id
        return key

    def attach_probe(
        self,
        probe: Callable[[ApiKey, str | None], Awaitable[object]],
        notify: Callable[[APIStatusError], Awaitable[None]],
    ) -> None:
        """How this client checks a key before using it (`rotate_key(verify=True)`, verifying
        providers): `probe(key, key_in_use)` raises if PacSpace refuses `key`."""

        async def checked(key: ApiKey) -> None:
            self._check(key)  # another environment's key: refused before anything is sent
            await probe(key, self.key_id)

        self._key_check = KeyCheck(checked, notify)

    def after_auth_failure(self) -> None:
        """After a 401 a provider is read again before the next request."""
        if isinstance(self._source, KeyProvider):
            self._source.invalidate()

    async def rotate(self, new: ApiKey | KeyProvider, *, verify: bool = False) -> None:
        """Swap to `new`; with `verify`, only after a probe with it was accepted."""
        key = await new.get() if isinstance(new, KeyProvider) else new
        self._check(key)
        if verify:
            if self._key_check is None:
                raise ConfigurationError("rotate_key(verify=True) needs a client to send the probe")
            await self._key_check.probe(key)
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
