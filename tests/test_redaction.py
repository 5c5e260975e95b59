"""Redaction of key secrets in text and in the "pacspace" logger (architecture: Keys, Errors)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from conftest import SANDBOX_KEY, SANDBOX_SECRET

from pacspace_async._credentials import ApiKey
from pacspace_async._logging import RedactingFilter, configure_from_env, logger
from pacspace_async._redact import REDACTED, redact

SECRET = "S3CR3Tzz"
KEY = f"pk_live_a.{SECRET}"


# text, the redacted public part, and text around it that must survive
SHAPES = [
    (KEY, ["pk_live_a.****"], []),
    (f"key {KEY} rejected", ["pk_live_a.****"], ["key ", " rejected"]),
    (f'"{KEY}"', ["pk_live_a.****"], ['"']),
    (f"'{KEY}'", ["pk_live_a.****"], ["'"]),
    (f'{{"apiKey": "{KEY}", "n": 1}}', ["pk_live_a.****"], ['{"apiKey": "', ' "n": 1}']),
    (f"X-Api-Key: {KEY}\r\nUser-Agent: x", ["pk_live_a.****"], ["X-Api-Key: ", "\r\nUser-Agent: x"]),
    ("X-Api-Key: pk_live_a.b", ["pk_live_a.****"], ["X-Api-Key: "]),
    (f"({KEY})", ["pk_live_a.****"], ["("]),
    (f"<{KEY}> next", ["pk_live_a.****"], ["<", " next"]),
    (f"{KEY}, then", ["pk_live_a.****"], [" then"]),
    (f"{KEY}.", ["pk_live_a.****"], []),
    (f"pk_test_x.{SECRET} and pk_live_y.{SECRET}2", ["pk_test_x.****", "pk_live_y.****"], [" and "]),
    (f"pk_live_.{SECRET}", ["pk_live_.****"], []),
    (f"pk_live_a.b.{SECRET}", ["pk_live_a.****"], []),
    (f"key=pk_test_A1_b-2.{SECRET}&x=1", ["key=pk_test_A1_b-2.****"], []),
    (f"line one\n\tpk_live_a.{SECRET}\nline three", ["pk_live_a.****"], ["line one\n\t", "\nline three"]),
]


@pytest.mark.parametrize(("text", "redacted", "kept"), SHAPES)
def test_redact_shapes(text: str, redacted: list[str], kept: list[str]) -> None:
    out = redact(text)
    assert SECRET not in out
    assert "S3CR" not in out
    for part in redacted + kept:
        assert part in out


@pytest.mark.parametrize(
    "text", ["", "nothing to see", "pk_live_nodot", "pk_test_", "sk_live_a.b", "pk_prod_a.secret", "pk_ here"]
)
def test_redact_leaves_other_text_alone(text: str) -> None:
    assert redact(text) == text


def test_redact_is_idempotent() -> None:
    once = redact(f"a {KEY} b")
    assert redact(once) == once
    assert REDACTED == "****"


def test_redact_hides_every_valid_key_from_the_conftest() -> None:
    assert SANDBOX_SECRET not in redact(f"sending {SANDBOX_KEY}")


@pytest.mark.parametrize("punctuation", [",", ";", ")", "]", "}", ">", "'", '"', "<", "&"])
def test_redact_hides_all_of_a_valid_secret_with_punctuation(punctuation: str) -> None:
    key = ApiKey.parse(f"pk_live_a.ab{punctuation}{SECRET}")
    assert SECRET not in redact(f"X-Api-Key: {key.header_value()}")


# --- the logging filter -------------------------------------------------------------------


def record(msg: object, args: object = None) -> logging.LogRecord:
    return logging.LogRecord("pacspace", logging.INFO, __file__, 1, msg, args, None)  # type: ignore[arg-type]


def test_filter_redacts_the_message() -> None:
    rec = record(f"sending {KEY}")
    assert RedactingFilter().filter(rec) is True
    assert rec.getMessage() == "sending pk_live_a.****"


def test_filter_redacts_tuple_args() -> None:
    rec = record("sending %s with %d retries and %r", (KEY, 3, f"X-Api-Key: {KEY}"))
    RedactingFilter().filter(rec)
    message = rec.getMessage()
    assert SECRET not in message
    assert message == "sending pk_live_a.**** with 3 retries and 'X-Api-Key: pk_live_a.****'"
    assert rec.args[1] == 3  # type: ignore[index]


def test_filter_redacts_dict_args() -> None:
    rec = record("key %(key)s attempt %(attempt)d", ({"key": KEY, "attempt": 2},))
    assert isinstance(rec.args, dict)  # LogRecord unwraps a single mapping
    RedactingFilter().filter(rec)
    assert rec.getMessage() == "key pk_live_a.**** attempt 2"


def test_filter_redacts_objects_whose_str_shows_a_key() -> None:
    class Leaky:
        def __str__(self) -> str:
            return f"Leaky({KEY})"

    rec = record("got %s", (Leaky(),))
    RedactingFilter().filter(rec)
    assert rec.getMessage().startswith("got Leaky(pk_live_a.****")
    assert SECRET not in rec.getMessage()


def test_filter_keeps_harmless_args_untouched() -> None:
    marker = object()
    rec = record("%s %s %s", (marker, None, 1.5))
    RedactingFilter().filter(rec)
    assert rec.args == (marker, None, 1.5)


@pytest.fixture
def restore_logger() -> Iterator[None]:
    handlers, level, filters = list(logger.handlers), logger.level, list(logger.filters)
    yield
    for handler in list(logger.handlers):
        if handler not in handlers:
            logger.removeHandler(handler)
    logger.setLevel(level)
    assert logger.filters == filters


def test_the_package_logger_has_the_filter() -> None:
    assert logger.name == "pacspace"
    assert logger is logging.getLogger("pacspace")
    assert any(isinstance(f, RedactingFilter) for f in logger.filters)


@pytest.mark.usefixtures("restore_logger")
def test_caplog_sees_only_redacted_text(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pacspace")
    logging.getLogger("pacspace").debug("request with %s", KEY)
    logging.getLogger("pacspace").info(f"header X-Api-Key: {KEY}")
    logging.getLogger("pacspace").warning("dict %(k)s", {"k": KEY})
    assert len(caplog.records) == 3
    assert SECRET not in caplog.text
    for rec in caplog.records:
        assert SECRET not in rec.getMessage()
        assert "pk_live_a.****" in rec.getMessage()


def _our_handlers() -> list[logging.Handler]:
    return [h for h in logger.handlers if getattr(h, "_pacspace", False)]


@pytest.mark.usefixtures("restore_logger")
def test_configure_from_env_attaches_exactly_one_handler() -> None:
    for handler in _our_handlers():  # another test or the import may have configured it
        logger.removeHandler(handler)
    configure_from_env({"PACSPACE_LOG": "debug"})
    configure_from_env({"PACSPACE_LOG": "debug"})
    configure_from_env({"PACSPACE_LOG": "INFO"})
    handlers = _our_handlers()
    assert len(handlers) == 1
    assert logger.level == logging.DEBUG
    assert any(isinstance(f, RedactingFilter) for f in handlers[0].filters)


@pytest.mark.usefixtures("restore_logger")
def test_configure_from_env_handler_redacts_child_logger_records_too() -> None:
    for handler in _our_handlers():
        logger.removeHandler(handler)
    configure_from_env({"PACSPACE_LOG": " info "})
    (handler,) = _our_handlers()
    assert logger.level == logging.INFO
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    logging.getLogger("pacspace.child").info("child sends %s", KEY)  # the logger's own filter does not run
    logger.debug("below the level %s", KEY)
    out = stream.getvalue()
    assert "child sends pk_live_a.****" in out
    assert SECRET not in out
    assert "below the level" not in out


@pytest.mark.parametrize("value", [{}, {"PACSPACE_LOG": ""}, {"PACSPACE_LOG": "verbose"}, {"PACSPACE_LOG": "0"}])
@pytest.mark.usefixtures("restore_logger")
def test_configure_from_env_without_a_level_attaches_nothing(value: dict[str, str]) -> None:
    for handler in _our_handlers():
        logger.removeHandler(handler)
    configure_from_env(value)
    assert _our_handlers() == []
