"""Retry rules: backoff, Retry-After parsing, the status table, and `RetryPolicy.decide` as a table."""

from __future__ import annotations

import email.utils
import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from pacspace_async._retry import (
    NOTHING_TAKEN,
    RETURN,
    Decision,
    GiveUp,
    Outcome,
    Raise,
    Retry,
    RetryPolicy,
    Tally,
    Wait,
    backoff_delay,
    outcome_of_answer,
    outcome_of_failure,
    parse_retry_after,
)
from pacspace_async._status import STATUS_TABLE, ErrorAction, NoAnswer, status_rule

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
    for body in (
        {"retryAfterSeconds": "soon"},
        {"retryAfterSeconds": True},
        {"retryAfterSeconds": None},
        {"retryAfterSeconds": "nan"},
        {"error": "Too Many Requests"},
        "text",
        [1],
        None,
    ):
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
        {
            "error": st.one_of(
                st.text(max_size=10),
                st.fixed_dictionaries({}, optional={"retryAfterSeconds": hint_values, "code": st.text(max_size=5)}),
            )
        },
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


# --- the status table -------------------------------------------------------------------


def test_retried_statuses_are_exactly_the_documented_ones() -> None:
    retried = {status for status in range(100, 600) if status_rule(status).retried}
    assert retried == {408, 429, 500, 502, 503, 504}
    assert status_rule(NoAnswer.LOST).retried
    assert not status_rule(NoAnswer.BROKEN).retried


def test_only_a_rate_limit_waits_outside_the_retry_budget() -> None:
    assert [key for key, rule in STATUS_TABLE.items() if rule.retried and not rule.uses_budget] == [429]


def test_only_401_and_403_refuse_the_key() -> None:
    assert {status for status in range(100, 600) if status_rule(status).key_refused} == {401, 403}


@pytest.mark.parametrize("code", ["CADENCE_LIMIT"])
def test_a_code_overrides_its_status_row_only(code: str) -> None:
    assert not status_rule(429, code).retried
    assert status_rule(429, code).action is ErrorAction.WAIT_AND_RETRY
    assert status_rule(429, "RATE_LIMITED") is status_rule(429)
    assert status_rule(400, code) is status_rule(400)  # another status's code changes nothing


# --- outcomes -----------------------------------------------------------------------------


def test_a_plain_success_allocates_no_outcome() -> None:
    body = {"success": True, "data": {"recordId": "rec_1"}}
    first = outcome_of_answer(201, body, {"Retry-After": "5"})
    assert first is outcome_of_answer(201, {"data": 1}, {}) is outcome_of_answer(201, [1, 2], {})
    assert first == Outcome(201)  # no code, and no hint read


@pytest.mark.parametrize(
    "body",
    [{"code": "IDEMPOTENCY_PENDING", "retryAfterSeconds": 1}, {"error": {"code": "IDEMPOTENCY_PENDING"}}],
)
def test_a_pending_answer_in_either_shape(body: object) -> None:
    outcome = outcome_of_answer(202, body, {"Retry-After": "2"}, now)
    assert outcome.code == "IDEMPOTENCY_PENDING"
    assert outcome.hint == (1.0 if "retryAfterSeconds" in body else 2.0)  # type: ignore[operator]


def test_an_error_answer_carries_its_code_and_hint() -> None:
    outcome = outcome_of_answer(429, {"error": {"code": "CADENCE_LIMIT", "retryAfterSeconds": 30}}, {}, now)
    assert outcome == Outcome(429, "CADENCE_LIMIT", 30.0)
    assert outcome_of_answer(503, None, {"retry-after-ms": "1500"}, now) == Outcome(503, None, 1.5)


def test_no_answer() -> None:
    assert outcome_of_failure(True) == Outcome(NoAnswer.LOST)
    assert outcome_of_failure(False) == Outcome(NoAnswer.BROKEN)


# --- decide, as a table -------------------------------------------------------------------

DEFAULT = RetryPolicy()  # max_retries=2, max_retry_after=60
NO_RETRIES = RetryPolicy(max_retries=0)
FAR = 1_000.0
FRESH = NOTHING_TAKEN


def spent(retries: int = 0, budget: int = 0, refusals: int = 0, pending: int = 0) -> Tally:
    return Tally(retries=retries, budget_used=budget, refusals=refusals, pending_waits=pending)


def backoff(wait: float, before: Tally = NOTHING_TAKEN) -> Retry:
    return Retry(wait, spent(before.retries + 1, before.budget_used + 1, before.refusals, before.pending_waits))


def gate(wait: float, before: Tally = NOTHING_TAKEN) -> Retry:
    return Retry(wait, spent(before.retries + 1, before.budget_used, before.refusals + 1), Wait.GATE)


def pending(wait: float, waits_before: int = 0) -> Retry:
    return Retry(wait, spent(pending=waits_before + 1), Wait.PENDING)


def give_up(why: GiveUp, gate_wait: float | None = None) -> Raise:
    return Raise(why, gate_wait)


PENDING = "IDEMPOTENCY_PENDING"
# (case, policy, outcome, spent so far, seconds left, decision). Jitter at its top: backoff
# before retry k is min(8, 0.5 * 2**k).
DECISIONS: list[tuple[str, RetryPolicy, Outcome, Tally, float, Decision]] = [
    # success
    ("200", DEFAULT, Outcome(200), FRESH, FAR, RETURN),
    ("201 after retries", DEFAULT, Outcome(201), spent(2, 2, 1, 1), 0.001, RETURN),
    ("2xx with another code", DEFAULT, Outcome(200, "SOMETHING"), FRESH, FAR, RETURN),
    # 202 IDEMPOTENCY_PENDING: the hint, never below a floor that grows with each wait
    ("pending, hint", DEFAULT, Outcome(202, PENDING, 3.0), FRESH, FAR, pending(3.0)),
    ("pending, no hint", DEFAULT, Outcome(202, PENDING), FRESH, FAR, pending(0.5)),
    ("pending, no hint, 3rd", DEFAULT, Outcome(202, PENDING), spent(pending=2), FAR, pending(2.0, 2)),
    ("pending, hint 0: floor", DEFAULT, Outcome(202, PENDING, 0.0), FRESH, FAR, pending(0.1)),
    ("pending, hint 0: floor grows", DEFAULT, Outcome(200, PENDING, 0.0), spent(pending=3), FAR, pending(0.8, 3)),
    ("pending, hint 0: floor caps", DEFAULT, Outcome(202, PENDING, 0.0), spent(pending=9), FAR, pending(2.0, 9)),
    ("pending uses no budget", NO_RETRIES, Outcome(202, PENDING, 1.0), FRESH, FAR, pending(1.0)),
    ("pending at the deadline", DEFAULT, Outcome(202, PENDING, 3.0), FRESH, 3.0, give_up(GiveUp.STILL_PENDING)),
    # the key refused: never retried, whatever the budget
    ("401", DEFAULT, Outcome(401), FRESH, FAR, give_up(GiveUp.KEY_REFUSED)),
    ("403 with a hint", DEFAULT, Outcome(403, "FORBIDDEN", 1.0), FRESH, FAR, give_up(GiveUp.KEY_REFUSED)),
    # other 4xx, 3xx and 5xx that are not transient: raised
    *[
        (str(status), DEFAULT, Outcome(status, "SOME_CODE", 1.0), FRESH, FAR, give_up(GiveUp.FINAL))
        for status in (301, 400, 402, 404, 405, 409, 412, 418, 422, 501, 505)
    ],
    # 408 and 5xx: backoff, or the server's hint
    *[(str(status), DEFAULT, Outcome(status), FRESH, FAR, backoff(0.5)) for status in (408, 500, 502, 503, 504)],
    ("503, 2nd retry", DEFAULT, Outcome(503), spent(1, 1), FAR, backoff(1.0, spent(1, 1))),
    ("503 after 429s", DEFAULT, Outcome(503), spent(3, 0, 3), FAR, backoff(0.5, spent(3, 0, 3))),
    ("503 with a hint", DEFAULT, Outcome(503, None, 7.5), FRESH, FAR, backoff(7.5)),
    ("500 with hint 0", DEFAULT, Outcome(500, None, 0.0), FRESH, FAR, backoff(0.0)),
    ("hint at max_retry_after", DEFAULT, Outcome(503, None, 60.0), FRESH, FAR, backoff(60.0)),
    ("hint > max_retry_after", DEFAULT, Outcome(503, None, 60.5), FRESH, FAR, give_up(GiveUp.WAIT_TOO_LONG)),
    ("budget used up", DEFAULT, Outcome(500), spent(2, 2), FAR, give_up(GiveUp.NO_RETRIES_LEFT)),
    ("budget before hint", DEFAULT, Outcome(500, None, 99.0), spent(2, 2), FAR, give_up(GiveUp.NO_RETRIES_LEFT)),
    ("max_retries=0, 503", NO_RETRIES, Outcome(503), FRESH, FAR, give_up(GiveUp.NO_RETRIES_LEFT)),
    ("deadline too close", DEFAULT, Outcome(503, None, 2.0), FRESH, 2.0, give_up(GiveUp.DEADLINE)),
    ("deadline just far enough", DEFAULT, Outcome(503, None, 2.0), FRESH, 2.001, backoff(2.0)),
    ("deadline vs backoff", DEFAULT, Outcome(502), spent(1, 1), 1.0, give_up(GiveUp.DEADLINE)),
    # no answer
    ("connection lost", DEFAULT, Outcome(NoAnswer.LOST), FRESH, FAR, backoff(0.5)),
    ("connection lost, 2nd", DEFAULT, Outcome(NoAnswer.LOST), spent(1, 1), FAR, backoff(1.0, spent(1, 1))),
    ("connection lost, used up", DEFAULT, Outcome(NoAnswer.LOST), spent(2, 2), FAR, give_up(GiveUp.NO_RETRIES_LEFT)),
    ("connection lost, deadline", DEFAULT, Outcome(NoAnswer.LOST), FRESH, 0.5, give_up(GiveUp.DEADLINE)),
    ("TLS or bad URL", DEFAULT, Outcome(NoAnswer.BROKEN), FRESH, FAR, give_up(GiveUp.FINAL)),
    # 429: the client's gate, outside the retry budget; the deadline is checked at the gate
    ("429 with a hint", DEFAULT, Outcome(429, "RATE_LIMITED", 7.0), FRESH, FAR, gate(7.0)),
    ("429 no hint", DEFAULT, Outcome(429), FRESH, FAR, gate(0.5)),
    ("429 no hint, 4th", DEFAULT, Outcome(429), spent(3, 0, 3), FAR, gate(4.0, spent(3, 0, 3))),
    ("429 with the budget used up", DEFAULT, Outcome(429, None, 1.0), spent(2, 2), FAR, gate(1.0, spent(2, 2))),
    ("429 near the deadline", DEFAULT, Outcome(429, None, 5.0), FRESH, 0.1, gate(5.0)),
    ("429, hint 3600", DEFAULT, Outcome(429, None, 3600.0), FRESH, FAR, give_up(GiveUp.WAIT_TOO_LONG, 3600.0)),
    ("429, max_retries=0", NO_RETRIES, Outcome(429, None, 2.0), FRESH, FAR, give_up(GiveUp.NO_RETRIES_LEFT, 2.0)),
    ("429, max_retries=0, no hint", NO_RETRIES, Outcome(429), FRESH, FAR, give_up(GiveUp.NO_RETRIES_LEFT, 0.5)),
    ("429 CADENCE_LIMIT", DEFAULT, Outcome(429, "CADENCE_LIMIT", 30.0), FRESH, FAR, give_up(GiveUp.FINAL)),
]


@pytest.mark.parametrize(
    ("policy", "outcome", "taken", "time_left", "expected"),
    [case[1:] for case in DECISIONS],
    ids=[case[0] for case in DECISIONS],
)
def test_decide(policy: RetryPolicy, outcome: Outcome, taken: Tally, time_left: float, expected: Decision) -> None:
    assert policy.decide(outcome, taken, time_left, jitter=hi) == expected


def test_every_way_to_decide_is_in_the_table() -> None:
    decided = {policy.decide(outcome, taken, left, jitter=hi) for _, policy, outcome, taken, left, _ in DECISIONS}
    assert {type(d) for d in decided} == {type(RETURN), Raise, Retry}
    assert {d.why for d in decided if isinstance(d, Raise)} == set(GiveUp)
    assert {d.kind for d in decided if isinstance(d, Retry)} == set(Wait)


def test_only_a_429_closes_the_gate() -> None:
    for case, _, outcome, _, _, expected in DECISIONS:
        closes = isinstance(expected, (Raise, Retry)) and expected.gate_wait is not None
        assert closes == (outcome.status == 429 and outcome.code != "CADENCE_LIMIT"), case


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_a_server_code_does_not_stop_a_retry(status: int) -> None:
    outcome = outcome_of_answer(status, {"error": {"code": "SOMETHING"}}, {}, now)
    assert isinstance(DEFAULT.decide(outcome, NOTHING_TAKEN, FAR, jitter=hi), Retry)


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"code": "CADENCE_LIMIT", "retryAfterSeconds": 5, "customerId": "c"}},
        {"code": "CADENCE_LIMIT", "retryAfterSeconds": 5},
    ],
)
def test_cadence_limit_is_not_retried_in_either_body_shape(body: object) -> None:
    decision = DEFAULT.decide(outcome_of_answer(429, body, {}, now), NOTHING_TAKEN, FAR, jitter=hi)
    assert decision == Raise(GiveUp.FINAL)


def test_decide_uses_the_jitter_it_is_given() -> None:
    seen: list[tuple[float, float]] = []

    def record(lo: float, hi: float) -> float:
        seen.append((lo, hi))
        return 0.75

    decision = DEFAULT.decide(Outcome(503), spent(1, 1), FAR, jitter=record)
    assert decision == backoff(0.75, spent(1, 1))
    assert seen == [(0.5, 1.0)]
