"""Environments: default URLs, chain ids, URL resolution and the routing guard (architecture: Keys and environments)."""

from __future__ import annotations

import pytest

from pacspace_async._environments import (
    DEFAULT_BASE_URLS,
    Environment,
    check_routing,
    resolve_base_urls,
    validate_base_url,
)
from pacspace_async._errors import ConfigurationError, EnvironmentMismatchError, PacSpaceError

SANDBOX, PRODUCTION = Environment.SANDBOX, Environment.PRODUCTION


def test_defaults_and_chain_ids() -> None:
    assert DEFAULT_BASE_URLS[SANDBOX] == "https://app.pacspace.io"
    assert DEFAULT_BASE_URLS[PRODUCTION] == "https://api.pacspace.io"
    assert SANDBOX.chain_id == 296
    assert PRODUCTION.chain_id == 295
    assert SANDBOX.key_prefix == "pk_test_"
    assert PRODUCTION.key_prefix == "pk_live_"
    assert SANDBOX.value == "sandbox"
    assert PRODUCTION.value == "production"
    assert SANDBOX.url_variable == "PACSPACE_SANDBOX_URL"
    assert PRODUCTION.url_variable == "PACSPACE_PRODUCTION_URL"


def test_resolve_defaults_with_an_empty_environment() -> None:
    assert resolve_base_urls(None, environ={}) == {
        SANDBOX: "https://app.pacspace.io",
        PRODUCTION: "https://api.pacspace.io",
    }


def test_resolve_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACSPACE_SANDBOX_URL", "http://127.0.0.1:9999")
    assert resolve_base_urls(None)[SANDBOX] == "http://127.0.0.1:9999"


def test_resolve_environment_variables_override_defaults() -> None:
    environ = {
        "PACSPACE_SANDBOX_URL": "http://127.0.0.1:8787/",
        "PACSPACE_PRODUCTION_URL": "https://prod.example.com",
    }
    assert resolve_base_urls(None, environ=environ) == {
        SANDBOX: "http://127.0.0.1:8787",
        PRODUCTION: "https://prod.example.com",
    }


def test_resolve_empty_environment_variable_is_ignored() -> None:
    assert resolve_base_urls(None, environ={"PACSPACE_SANDBOX_URL": ""})[SANDBOX] == "https://app.pacspace.io"


def test_resolve_constructor_overrides_win_over_environment_variables() -> None:
    environ = {
        "PACSPACE_SANDBOX_URL": "http://127.0.0.1:1111",
        "PACSPACE_PRODUCTION_URL": "http://127.0.0.1:2222",
    }
    urls = resolve_base_urls({SANDBOX: "http://127.0.0.1:3333/"}, environ=environ)
    assert urls == {SANDBOX: "http://127.0.0.1:3333", PRODUCTION: "http://127.0.0.1:2222"}


@pytest.mark.parametrize(
    ("name", "environment"),
    [("sandbox", SANDBOX), ("production", PRODUCTION), ("SANDBOX", SANDBOX), ("Production", PRODUCTION)],
)
def test_resolve_accepts_string_keys(name: str, environment: Environment) -> None:
    urls = resolve_base_urls({name: "https://override.example.com///"}, environ={})
    assert urls[environment] == "https://override.example.com"
    other = PRODUCTION if environment is SANDBOX else SANDBOX
    assert urls[other] == DEFAULT_BASE_URLS[other]


def test_resolve_keeps_a_path_prefix_without_the_trailing_slash() -> None:
    urls = resolve_base_urls({"sandbox": "https://proxy.example.com/pacspace/"}, environ={})
    assert urls[SANDBOX] == "https://proxy.example.com/pacspace"


def test_resolve_unknown_environment_name() -> None:
    with pytest.raises(ConfigurationError, match="staging"):
        resolve_base_urls({"staging": "https://x.example.com"}, environ={})


BAD_URLS = [
    "/relative/path",
    "app.pacspace.io",
    "ftp://app.pacspace.io",
    "file:///etc/passwd",
    "https://user:pass@app.pacspace.io",
    "https://user@app.pacspace.io",
    "https://app.pacspace.io/?x=1",
    "https://app.pacspace.io/#frag",
    "https://",
    "",
    "   ",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_invalid_urls_are_refused_as_overrides(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_base_urls({SANDBOX: url}, environ={})
    assert isinstance(info.value, ValueError)
    assert "base_urls['sandbox']" in str(info.value)


@pytest.mark.parametrize("url", [u for u in BAD_URLS if u.strip()])
def test_invalid_urls_are_refused_from_environment_variables(url: str) -> None:
    with pytest.raises(ConfigurationError, match="PACSPACE_PRODUCTION_URL"):
        resolve_base_urls(None, environ={"PACSPACE_PRODUCTION_URL": url})


def test_credentials_in_a_url_are_not_echoed() -> None:
    with pytest.raises(ConfigurationError) as info:
        validate_base_url("https://user:hunter2pw@app.pacspace.io", source="test")
    assert "hunter2pw" not in str(info.value)


def test_validate_base_url_strips_surrounding_whitespace() -> None:
    assert validate_base_url("  https://app.pacspace.io/ \n", source="t") == "https://app.pacspace.io"


def test_check_routing_explicit_environment_disagreeing_with_the_key() -> None:
    with pytest.raises(EnvironmentMismatchError, match="pk_test_"):
        check_routing(key_environment=SANDBOX, explicit=PRODUCTION)
    with pytest.raises(EnvironmentMismatchError, match="pk_live_"):
        check_routing(key_environment=PRODUCTION, explicit=SANDBOX)
    err = EnvironmentMismatchError("x")
    assert isinstance(err, ConfigurationError)
    assert isinstance(err, PacSpaceError)


@pytest.mark.parametrize(
    "url", ["https://api.pacspace.io", "https://api.pacspace.io/", "https://API.PacSpace.io:443/v1"]
)
def test_check_routing_sandbox_aimed_at_the_production_only_host(url: str) -> None:
    with pytest.raises(EnvironmentMismatchError, match=r"api\.pacspace\.io"):
        check_routing(key_environment=SANDBOX, explicit=None, base_url=url)
    with pytest.raises(EnvironmentMismatchError):
        check_routing(key_environment=None, explicit=SANDBOX, base_url=url)


def test_check_routing_sandbox_aimed_at_the_production_host_written_with_a_trailing_dot() -> None:
    # "api.pacspace.io." is the fully-qualified spelling of the same host.
    with pytest.raises(EnvironmentMismatchError):
        check_routing(key_environment=SANDBOX, explicit=None, base_url="https://api.pacspace.io./")


@pytest.mark.parametrize(
    ("key_environment", "explicit", "url"),
    [
        (SANDBOX, None, "https://app.pacspace.io"),
        (SANDBOX, SANDBOX, "http://127.0.0.1:8787"),
        (PRODUCTION, None, "https://api.pacspace.io"),
        (PRODUCTION, PRODUCTION, "https://app.pacspace.io"),
        (None, None, "https://api.pacspace.io"),
        (None, PRODUCTION, "https://api.pacspace.io"),
        (SANDBOX, None, None),
    ],
)
def test_check_routing_accepts_consistent_settings(
    key_environment: Environment | None, explicit: Environment | None, url: str | None
) -> None:
    check_routing(key_environment=key_environment, explicit=explicit, base_url=url)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (SANDBOX, SANDBOX),
        (PRODUCTION, PRODUCTION),
        ("sandbox", SANDBOX),
        ("production", PRODUCTION),
        ("SANDBOX", SANDBOX),
        ("Production", PRODUCTION),
    ],
)
def test_coerce_accepts_enum_and_value(value: Environment | str, expected: Environment) -> None:
    assert Environment.coerce(value) is expected


@pytest.mark.parametrize("value", ["staging", "", "test", "live", None, 296])
def test_coerce_refuses_anything_else(value: object) -> None:
    with pytest.raises(ConfigurationError, match="unknown environment"):
        Environment.coerce(value)  # type: ignore[arg-type]
