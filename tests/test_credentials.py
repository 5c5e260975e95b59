"""ApiKey parsing and redaction, key providers, and the client's current key (architecture: Keys and environments)."""

from __future__ import annotations

import os
import re
import traceback
from pathlib import Path
from typing import Any

import pytest
from conftest import PRODUCTION_KEY, PRODUCTION_SECRET, SANDBOX_KEY, SANDBOX_SECRET
from hypothesis import given
from hypothesis import strategies as st

from pacspace_async._credentials import (
    ApiKey,
    Credentials,
    KeyProvider,
    default_key_source,
    initial_credentials,
    to_key_source,
)
from pacspace_async._environments import Environment
from pacspace_async._errors import (
    ConfigurationError,
    EnvironmentMismatchError,
    InvalidApiKeyError,
    MissingApiKeyError,
    PacSpaceError,
)

SECRET = "S3CR3Tzz"


def _everything_printed(err: BaseException) -> str:
    """All the text a person or a log could see of an exception."""
    return "\n".join([str(err), repr(err), "".join(traceback.format_exception(err))])


# --- parsing ------------------------------------------------------------------------------

VALID = [
    # text, environment, public_id, secret
    ("pk_test_abc.def", Environment.SANDBOX, "abc", "def"),
    ("pk_live_A1_b-2.sk_live_xyz", Environment.PRODUCTION, "A1_b-2", "sk_live_xyz"),
    (f"pk_live_pub.{SECRET}", Environment.PRODUCTION, "pub", SECRET),
    (f"pk_test_x.{SECRET}!#$%&*+/=?^`|~", Environment.SANDBOX, "x", f"{SECRET}!#$%&*+/=?^`|~"),
    (f"pk_test_pk_live_q.{SECRET}", Environment.SANDBOX, "pk_live_q", SECRET),
    (SANDBOX_KEY, Environment.SANDBOX, "pubSbx", SANDBOX_SECRET),
    (PRODUCTION_KEY, Environment.PRODUCTION, "pubLive", PRODUCTION_SECRET),
]


@pytest.mark.parametrize(("text", "environment", "public_id", "secret"), VALID)
def test_valid_keys_parse(text: str, environment: Environment, public_id: str, secret: str) -> None:
    key = ApiKey.parse(text)
    assert key.environment is environment
    assert key.public_id == public_id
    assert key.key_id == f"{environment.key_prefix}{public_id}"
    assert key.redacted == f"{environment.key_prefix}{public_id}.****"
    assert key.header_value() == text


@pytest.mark.parametrize(("text", "environment", "public_id", "secret"), VALID)
def test_valid_keys_never_show_their_secret(text: str, environment: Environment, public_id: str, secret: str) -> None:
    key = ApiKey.parse(text)
    shown = [str(key), repr(key), f"{key}", f"{key!r}", f"{key!s}", "%s %r" % (key, key)]  # noqa: UP031
    for form in shown:
        assert secret not in form
        assert key.key_id in form
    assert str(key) == key.redacted
    assert repr(key) == f"ApiKey({key.redacted!r})"


# text, the part of it that must never be shown
INVALID: list[tuple[Any, str | None]] = [
    ("garbage", None),
    (f"garbage.{SECRET}", SECRET),
    (f"sk_live_x.{SECRET}", SECRET),
    (f"PK_LIVE_x.{SECRET}", SECRET),
    (f"pk_prod_x.{SECRET}", SECRET),
    (f"pk_live_nodot{SECRET}", SECRET),
    (f"pk_live_a.b.{SECRET}", SECRET),
    (f"pk_live_a.{SECRET}.c", SECRET),
    (f"pk_live_.{SECRET}", SECRET),
    (f"pk_live_{SECRET}.", SECRET),
    ("pk_test_", None),
    ("pk_live_", None),
    (f"pk_live_a.{SECRET} x", SECRET),
    (f"pk_live_a.S3CR {SECRET}", SECRET),
    (f" pk_live_a.{SECRET}", SECRET),
    (f"pk_live_a.{SECRET}\n", SECRET),
    (f"pk_live_a.{SECRET}\r\n", SECRET),
    (f"pk_live_a.\t{SECRET}", SECRET),
    (f"pk_live_a.{SECRET}\u00e9", SECRET),
    (f"pk_live_a.{SECRET}\u200b", SECRET),
    (f"pk_live_a.{SECRET}\x00", SECRET),
    (f"pk_live_a.{SECRET}\x7f", SECRET),
    (f"pk_live_a.{SECRET}".encode(), SECRET),
    (None, None),
    (12345, None),
    ("", None),
]


@pytest.mark.parametrize(("text", "secret"), INVALID)
def test_invalid_keys_are_refused_without_showing_the_secret(text: Any, secret: str | None) -> None:
    with pytest.raises(InvalidApiKeyError) as info:
        ApiKey.parse(text)
    err = info.value
    assert isinstance(err, ConfigurationError)
    assert isinstance(err, PacSpaceError)
    assert isinstance(err, ValueError)
    assert "pk_" in str(err) or "str" in str(err)  # it says what is expected
    assert "\n" not in str(err)
    if secret is not None:
        assert secret not in _everything_printed(err)


def test_parse_names_the_source_but_not_the_value() -> None:
    text = f"pk_live_a.{SECRET}\n"
    with pytest.raises(InvalidApiKeyError, match="PACSPACE_API_KEY") as info:
        ApiKey.parse(text, source="PACSPACE_API_KEY")
    assert "whitespace" in str(info.value)
    assert SECRET not in _everything_printed(info.value)


# Random text: either a key that round-trips, or InvalidApiKeyError whose message shows nothing of
# the text. A message is built from fixed wording plus the length, so a "secret" that happens to be
# a piece of that fixed wording (say "characters") is not a leak; everything else is.
_CANARIES: list[object] = [
    "", "a b", "\u00e9", "xx", "pk_live_a", "pk_live_.s", "pk_live_a.", "pk_live_a.b.c", b"x", None,
]


def _normalised(message: str) -> str:
    return re.sub(r"\(\d+ characters\)", "(N characters)", message)


def _vocabulary() -> str:
    messages = []
    for canary in _CANARIES:
        try:
            ApiKey.parse(canary)  # type: ignore[arg-type]
        except InvalidApiKeyError as exc:
            messages.append(_normalised(str(exc)))
    return "\n".join(messages)


_VOCABULARY = _vocabulary()

_key_like = st.builds(
    lambda prefix, public, sep, secret: f"{prefix}{public}{sep}{secret}",
    st.sampled_from(["pk_test_", "pk_live_", "sk_live_", "pk_", "PK_TEST_", ""]),
    st.text(max_size=20),
    st.sampled_from([".", "..", "", " .", ".\n"]),
    st.text(max_size=30),
)


@given(st.one_of(st.text(max_size=60), _key_like))
def test_parse_never_raises_anything_else_and_never_echoes(text: str) -> None:
    try:
        key = ApiKey.parse(text)
    except InvalidApiKeyError as exc:
        message = _normalised(str(exc))
        if "." in text:
            secret = text.split(".", 1)[1]
            if len(secret) >= 4:
                assert secret not in message or secret in _VOCABULARY
    else:
        assert key.header_value() == text
        assert str(key) == f"{key.key_id}.****"


# --- providers ----------------------------------------------------------------------------


async def test_from_env_reads_the_variable_and_picks_up_a_change() -> None:
    environ = {"MY_KEY": SANDBOX_KEY}
    provider = KeyProvider.from_env("MY_KEY", environ=environ)
    assert (await provider.get()).header_value() == SANDBOX_KEY
    environ["MY_KEY"] = "pk_test_other.newSecret"
    assert (await provider.get()).header_value() == "pk_test_other.newSecret"
    assert provider.load_now().key_id == "pk_test_other"


def test_from_env_default_variable_uses_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACSPACE_API_KEY", PRODUCTION_KEY)
    assert KeyProvider.from_env().load_now().header_value() == PRODUCTION_KEY


async def test_from_env_missing_variable() -> None:
    provider = KeyProvider.from_env("NOT_THERE", environ={})
    with pytest.raises(MissingApiKeyError, match="NOT_THERE"):
        await provider.get()


async def test_from_env_invalid_value_is_refused_without_secret() -> None:
    provider = KeyProvider.from_env("MY_KEY", environ={"MY_KEY": f"pk_live_a.{SECRET}\n"})
    with pytest.raises(InvalidApiKeyError) as info:
        await provider.get()
    assert SECRET not in _everything_printed(info.value)
    assert "MY_KEY" in str(info.value)


class FakeMonotonic:
    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def test_from_file_strips_surrounding_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "key"
    _write(path, f"  {SANDBOX_KEY} \n\n")
    key = KeyProvider.from_file(path, clock=FakeMonotonic()).load_now()
    assert key.header_value() == SANDBOX_KEY


def test_from_file_rereads_a_changed_file_at_most_once_per_interval(tmp_path: Path) -> None:
    path = tmp_path / "key"
    _write(path, SANDBOX_KEY + "\n")
    clock = FakeMonotonic()
    provider = KeyProvider.from_file(path, check_interval=1.0, clock=clock)
    assert provider.load_now().header_value() == SANDBOX_KEY

    new_key = "pk_test_rotated.aMuchLongerSecretThanBefore"
    _write(path, new_key + "\n")
    assert provider.load_now().header_value() == SANDBOX_KEY  # same instant
    clock.now += 0.5
    assert provider.load_now().header_value() == SANDBOX_KEY  # within the interval
    clock.now += 0.5
    assert provider.load_now().header_value() == new_key  # interval passed, file changed


def test_from_file_is_not_reread_when_mtime_and_size_are_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "key"
    _write(path, "pk_test_aaaa.1111\n")
    before = path.stat()
    clock = FakeMonotonic()
    provider = KeyProvider.from_file(path, check_interval=1.0, clock=clock)
    assert provider.load_now().public_id == "aaaa"

    _write(path, "pk_test_bbbb.2222\n")  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # same mtime
    clock.now += 5.0
    assert provider.load_now().public_id == "aaaa"

    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    clock.now += 5.0
    assert provider.load_now().public_id == "bbbb"


def test_from_file_interval_with_an_integer_clock(tmp_path: Path) -> None:
    path = tmp_path / "key"
    _write(path, SANDBOX_KEY)
    now = [100]
    provider = KeyProvider.from_file(path, check_interval=1.0, clock=lambda: now[0])
    assert provider.load_now().header_value() == SANDBOX_KEY
    # Regression: the interval used to be honoured only for a clock returning a float.
    _write(path, "pk_test_rotated.aMuchLongerSecretThanBefore")
    assert provider.load_now().header_value() == SANDBOX_KEY  # interval not passed yet
    now[0] += 1
    assert provider.load_now().header_value() == "pk_test_rotated.aMuchLongerSecretThanBefore"


def test_from_file_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    provider = KeyProvider.from_file(tmp_path / "absent", clock=FakeMonotonic())
    with pytest.raises(ConfigurationError, match="absent"):
        provider.load_now()


def test_from_file_invalid_content_does_not_show_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "key"
    _write(path, f"pk_live_a.{SECRET} trailing-garbage\n")
    with pytest.raises(InvalidApiKeyError) as info:
        KeyProvider.from_file(path, clock=FakeMonotonic()).load_now()
    assert SECRET not in _everything_printed(info.value)


class Counter:
    def __init__(self, *values: object) -> None:
        self.values = list(values)
        self.calls = 0

    def __call__(self) -> object:
        value = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        return value


async def test_from_callable_sync_is_called_once_then_cached() -> None:
    read = Counter(SANDBOX_KEY, "pk_test_second.secondSecret")
    provider = KeyProvider.from_callable(read)
    assert not provider.is_async
    assert (await provider.get()).header_value() == SANDBOX_KEY
    assert provider.load_now().header_value() == SANDBOX_KEY
    assert read.calls == 1
    provider.invalidate()
    assert (await provider.get()).header_value() == "pk_test_second.secondSecret"
    assert read.calls == 2


async def test_from_callable_async_is_called_once_then_cached() -> None:
    calls = 0

    async def read() -> str:
        nonlocal calls
        calls += 1
        return SANDBOX_KEY if calls == 1 else PRODUCTION_KEY

    provider = KeyProvider.from_callable(read)
    assert provider.is_async
    assert (await provider.get()).header_value() == SANDBOX_KEY
    assert (await provider.get()).header_value() == SANDBOX_KEY
    assert calls == 1
    provider.invalidate()
    assert (await provider.get()).header_value() == PRODUCTION_KEY
    assert calls == 2


async def test_from_callable_async_object_is_async_and_cannot_be_read_synchronously() -> None:
    class Lookup:
        async def __call__(self) -> ApiKey:
            return ApiKey.parse(SANDBOX_KEY)

    provider = KeyProvider.from_callable(Lookup())
    assert provider.is_async
    with pytest.raises(ConfigurationError, match="async"):
        provider.load_now()
    assert (await provider.get()).key_id == "pk_test_pubSbx"


def test_from_callable_returning_a_coroutine_from_a_sync_function_is_refused() -> None:
    async def inner() -> str:
        return SANDBOX_KEY

    provider = KeyProvider.from_callable(lambda: inner())
    with pytest.raises(ConfigurationError, match="awaitable"):
        provider.load_now()


@pytest.mark.parametrize("value", [b"pk_test_a.b", 123, None, ["pk_test_a.b"]])
def test_from_callable_returning_a_wrong_type_is_refused(value: object) -> None:
    provider = KeyProvider.from_callable(lambda: value)
    with pytest.raises(ConfigurationError, match=type(value).__name__):
        provider.load_now()


def test_initial_credentials() -> None:
    async def read() -> str:
        return SANDBOX_KEY

    def environment(source: object, explicit: Environment | None) -> Environment:
        return initial_credentials(source, explicit).environment  # type: ignore[arg-type]

    async_provider = KeyProvider.from_callable(read)
    with pytest.raises(ConfigurationError, match="environment="):
        initial_credentials(async_provider, None)
    assert environment(async_provider, Environment.SANDBOX) is Environment.SANDBOX
    sync_provider = KeyProvider.from_callable(lambda: PRODUCTION_KEY)
    assert environment(sync_provider, None) is Environment.PRODUCTION
    # a synchronous provider is read at construction, so its identity is known at once
    assert initial_credentials(sync_provider, None).key_id == ApiKey.parse(PRODUCTION_KEY).key_id
    assert initial_credentials(async_provider, Environment.SANDBOX).key_id is None
    assert environment(ApiKey.parse(SANDBOX_KEY), None) is Environment.SANDBOX
    assert environment(None, None) is Environment.PRODUCTION
    assert environment(None, Environment.SANDBOX) is Environment.SANDBOX
    with pytest.raises(EnvironmentMismatchError):
        initial_credentials(ApiKey.parse(SANDBOX_KEY), Environment.PRODUCTION)
    with pytest.raises(EnvironmentMismatchError):
        initial_credentials(sync_provider, Environment.SANDBOX)


def test_to_key_source_accepts_the_documented_types() -> None:
    key = ApiKey.parse(SANDBOX_KEY)
    provider = KeyProvider.from_env("X", environ={})
    assert to_key_source(key) is key
    assert to_key_source(provider) is provider
    parsed = to_key_source(PRODUCTION_KEY)
    assert isinstance(parsed, ApiKey)
    assert parsed.header_value() == PRODUCTION_KEY
    assert isinstance(to_key_source(lambda: SANDBOX_KEY), KeyProvider)


@pytest.mark.parametrize("value", [12, 1.5, b"pk_live_a." + SECRET.encode(), None, [SANDBOX_KEY], {"k": 1}])
def test_to_key_source_refuses_wrong_types(value: Any) -> None:
    with pytest.raises(ConfigurationError, match=type(value).__name__) as info:
        to_key_source(value)
    assert SECRET not in _everything_printed(info.value)


def test_to_key_source_empty_string_is_an_invalid_key_not_no_key() -> None:
    with pytest.raises(InvalidApiKeyError):
        to_key_source("")


def test_default_key_source() -> None:
    assert default_key_source({}) is None
    key = default_key_source({"PACSPACE_API_KEY": SANDBOX_KEY})
    assert key is not None
    assert key.header_value() == SANDBOX_KEY
    with pytest.raises(InvalidApiKeyError, match="PACSPACE_API_KEY") as info:
        default_key_source({"PACSPACE_API_KEY": f"pk_live_a.{SECRET}\n"})
    assert SECRET not in _everything_printed(info.value)
    with pytest.raises(InvalidApiKeyError):
        default_key_source({"PACSPACE_API_KEY": ""})


# --- Credentials --------------------------------------------------------------------------


async def test_rotate_refuses_a_key_of_the_other_environment_and_keeps_the_old_one() -> None:
    old = ApiKey.parse(SANDBOX_KEY)
    credentials = Credentials(old, Environment.SANDBOX)
    with pytest.raises(EnvironmentMismatchError) as info:
        await credentials.rotate(ApiKey.parse(PRODUCTION_KEY))
    assert PRODUCTION_SECRET not in _everything_printed(info.value)
    assert await credentials.current() is old
    assert credentials.key_id == "pk_test_pubSbx"

    with pytest.raises(EnvironmentMismatchError):
        await credentials.rotate(KeyProvider.from_callable(lambda: PRODUCTION_KEY))
    assert await credentials.current() is old


async def test_rotate_to_a_key_of_the_same_environment() -> None:
    credentials = Credentials(ApiKey.parse(SANDBOX_KEY), Environment.SANDBOX)
    await credentials.rotate(ApiKey.parse("pk_test_next.nextSecret"))
    current = await credentials.current()
    assert current is not None
    assert current.header_value() == "pk_test_next.nextSecret"
    assert credentials.key_id == "pk_test_next"


async def test_after_auth_failure_invalidates_a_provider() -> None:
    read = Counter(SANDBOX_KEY, "pk_test_fresh.freshSecret")
    credentials = Credentials(KeyProvider.from_callable(read), Environment.SANDBOX)
    assert credentials.has_key
    assert credentials.key_id is None
    assert (await credentials.current()).header_value() == SANDBOX_KEY  # type: ignore[union-attr]
    assert (await credentials.current()).header_value() == SANDBOX_KEY  # type: ignore[union-attr]
    assert read.calls == 1
    credentials.after_auth_failure()
    assert (await credentials.current()).header_value() == "pk_test_fresh.freshSecret"  # type: ignore[union-attr]
    assert read.calls == 2
    assert credentials.key_id == "pk_test_fresh"


async def test_after_auth_failure_without_a_provider_is_harmless() -> None:
    key = ApiKey.parse(SANDBOX_KEY)
    credentials = Credentials(key, Environment.SANDBOX)
    credentials.after_auth_failure()
    assert await credentials.current() is key
    keyless = Credentials(None, Environment.PRODUCTION)
    keyless.after_auth_failure()
    assert not keyless.has_key
    assert await keyless.current() is None


async def test_current_refuses_a_provider_key_of_the_other_environment() -> None:
    credentials = Credentials(KeyProvider.from_callable(lambda: PRODUCTION_KEY), Environment.SANDBOX)
    with pytest.raises(EnvironmentMismatchError):
        await credentials.current()
