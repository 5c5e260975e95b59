"""Retry rules: backoff, Retry-After parsing, which statuses are retried (DESIGN 4.3)."""

from __future__ import annotations

import email.utils
import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from pacspace_async._retry import RETRYABLE_STATUSES, RetryPolicy, backoff_delay, parse_retry_after

NOW = 1_800_000_000.0


def lo(a: float, b: float) -> float:
    return a


def hi(a: float, b: float) -> float:
    return b


def now() -> float:
    return NOW


# --- backoff ------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", range(8))
def test_backoff_delay_formula(attempt: int) -> None:
    base = min(8.0, 0.5 * 2**attempt)
    assert backoff_delay(attempt, jitter=lo) == pytest.approx(base * 0.5)
    assert backoff_delay(attempt, jitter=hi) == pytest.approx(base * 1.0)


def test_backoff_delay_known_values() -> None:
    assert [backoff_delay(k, jitter=hi) for k in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


def test_backoff_jitter_bounds_are_half_to_one() -> None:
    seen: list[tuple[float, float]] = []

    def record(a: float, b: float) -> float:
        seen.append((a, b))
        return 0.75

    assert backoff_delay(1, jitter=record) == pytest.approx(0.75)
    assert seen == [(0.5, 1.0)]


@pytest.mark.parametrize("attempt", [4, 5, 10, 64, 1000, 10**6])
def test_backoff_delay_is_capped_at_8(attempt: int) -> None:
    assert backoff_delay(attempt, jitter=hi) == 8.0
    assert backoff_delay(attempt, jitter=lo) == 4.0


def test_backoff_with_real_jitter_stays_in_range() -> None:
    for k in range(10):
        delay = backoff_delay(k)
        base = min(8.0, 0.5 * 2**k)
        assert base * 0.5 <= delay <= base


def test_policy_delay_prefers_the_hint() -> None:
    policy = RetryPolicy()
    assert policy.max_retries == 2
    assert policy.max_retry_after == 60.0
    assert policy.delay(3, 7.5, jitter=hi) == 7.5
    assert policy.delay(3, 0.0, jitter=hi) == 0.0
    assert policy.delay(1, None, jitter=hi) == 1.0


# --- Retry-After --------------------------------------------------------------------------


def http_date(offset: float) -> str:
    return email.utils.format_datetime(datetime.fromtimestamp(NOW + offset, tz=timezone.utc), usegmt=True)


def test_body_hint_wins_over_headers() -> None:
    headers = {"retry-after-ms": "9000", "Retry-After": "7"}
    assert parse_retry_after(headers, {"retryAfterSeconds": 3}, now=now) == 3.0
    assert parse_retry_after(headers, {"error": {"code": "X", "retryAfterSeconds": 4.5}}, now=now) == 4.5
    assert parse_retry_after(headers, {"code": "CADENCE_LIMIT", "retryAfterSeconds": "2.5"}, now=now) == 2.5


def test_unusable_body_hint_falls_back_to_headers() -> None:
    headers = {"Retry-After": "7"}
    for body in ({"retryAfterSeconds": "soon"}, {"retryAfterSeconds": True}, {"retryAfterSeconds": None},
                 {"retryAfterSeconds": "nan"}, {"error": "Too Many Requests"}, "text", [1], None):
        assert parse_retry_after(headers, body, now=now) == 7.0, body


def test_retry_after_ms_wins_over_retry_after() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "Retry-After": "9"}, now=now) == 1.5
    assert parse_retry_after({"retry-after-ms": "nan", "Retry-After": "9"}, now=now) == 9.0
    assert parse_retry_after({"retry-after-ms": "bogus", "Retry-After": "9"}, now=now) == 9.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1.5", 1.5), ("2", 2.0), (" 3 ", 3.0), ("0", 0.0), ("-5", 0.0), ("-0.5", 0.0), ("120", 120.0)],
)
def test_retry_after_seconds(value: str, expected: float) -> None:
    assert parse_retry_after({"Retry-After": value}, now=now) == expected


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "Infinity", "garbage", "", "   ", "1.5s", "Mon, 99 Foo"])
def test_retry_after_unusable(value: str) -> None:
    assert parse_retry_after({"Retry-After": value}, now=now) is None


def test_retry_after_http_date() -> None:
    assert parse_retry_after({"Retry-After": http_date(30)}, now=now) == pytest.approx(30.0)
    assert parse_retry_after({"Retry-After": http_date(0)}, now=now) == pytest.approx(0.0)


def test_retry_after_http_date_with_an_offset() -> None:
    when = datetime.fromtimestamp(NOW + 45, tz=timezone(timedelta(hours=2)))
    assert parse_retry_after({"Retry-After": email.utils.format_datetime(when)}, now=now) == pytest.approx(45.0)


def test_retry_after_http_date_in_the_past_is_zero() -> None:
    assert parse_retry_after({"Retry-After": http_date(-3600)}, now=now) == 0.0


def test_no_hint_at_all() -> None:
    assert parse_retry_after({}, now=now) is None
    assert parse_retry_after({"X-Other": "5"}, {"message": "slow down"}, now=now) is None


@pytest.mark.parametrize("name", ["Retry-After", "RETRY-AFTER", "retry-after", "rEtRy-AfTeR"])
def test_plain_dict_headers_are_case_insensitive(name: str) -> None:
    assert parse_retry_after({name: "4"}, now=now) == 4.0


def test_ms_header_is_case_insensitive_in_a_plain_dict() -> None:
    assert parse_retry_after({"Retry-After-Ms": "250", "Retry-After": "9"}, now=now) == 0.25


def test_multidict_headers() -> None:
    headers = CIMultiDict({"Retry-After": "6", "RETRY-AFTER-MS": "1200"})
    assert parse_retry_after(headers, now=now) == 1.2


def test_huge_integer_body_hint_does_not_crash() -> None:
    # Regression: float(10**400) raises OverflowError, which used to escape.
    result = parse_retry_after({"Retry-After": "5"}, {"retryAfterSeconds": 10**400}, now=now)
    assert result == 5.0  # an unusable body hint falls back to the header


# Header values: arbitrary text, numbers as text, and well-formed dates far in the past or future.
header_values = st.one_of(
    st.text(max_size=40),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.datetimes(timezones=st.timezones() | st.just(timezone.utc)).map(lambda d: email.utils.format_datetime(d)),
)
headers_strategy = st.dictionaries(
    st.sampled_from(["Retry-After", "retry-after", "RETRY-AFTER", "retry-after-ms", "Retry-After-Ms", "X-Other"]),
    header_values,
    max_size=4,
)
hint_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(),
    st.decimals(),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=2),
)
bodies = st.one_of(
    st.none(),
    st.text(max_size=10),
    st.integers(),
    st.fixed_dictionaries({}, optional={"retryAfterSeconds": hint_values, "code": st.text(max_size=5)}),
    st.fixed_dictionaries(
        {"error": st.one_of(
            st.text(max_size=10),
            st.fixed_dictionaries({}, optional={"retryAfterSeconds": hint_values, "code": st.text(max_size=5)}),
        )},
        optional={"retryAfterSeconds": hint_values},
    ),
)


@given(headers=headers_strategy, body=bodies)
def test_parse_retry_after_never_raises(headers: dict[str, str], body: object) -> None:
    result = parse_retry_after(headers, body, now=now)
    assert result is None or (isinstance(result, float) and math.isfinite(result) and result >= 0)


def test_decimal_body_hint() -> None:
    assert parse_retry_after({}, {"retryAfterSeconds": Decimal("1.25")}, now=now) == 1.25
    assert parse_retry_after({}, {"retryAfterSeconds": Decimal("sNaN")}, now=now) is None


# --- which statuses ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses(status: int) -> None:
    policy = RetryPolicy()
    assert policy.is_retryable_status(status, None)
    assert policy.is_retryable_status(status, {"error": {"code": "SOMETHING"}})


@pytest.mark.parametrize("status", [200, 202, 301, 400, 401, 402, 403, 404, 409, 412, 418, 422, 501, 505])
def test_not_retryable_statuses(status: int) -> None:
    assert not RetryPolicy().is_retryable_status(status, None)


def test_retryable_set_is_exactly_the_documented_one() -> None:
    assert frozenset({408, 429, 500, 502, 503, 504}) == RETRYABLE_STATUSES


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"code": "CADENCE_LIMIT", "retryAfterSeconds": 5, "customerId": "c"}},
        {"code": "CADENCE_LIMIT", "retryAfterSeconds": 5},
    ],
)
def test_cadence_limit_is_not_retried(body: object) -> None:
    assert not RetryPolicy().is_retryable_status(429, body)
    assert RetryPolicy().is_retryable_status(429, {"error": {"code": "RATE_LIMITED"}})
