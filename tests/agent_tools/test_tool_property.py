"""A tool's JSON Schema and its SDK method accept the same arguments (hypothesis).

Arguments are generated per tool from its schema: valid ones from the schema's types, patterns,
enums and bounds, and invalid variants (a wrong type, a value out of range or off its pattern, an
unknown or a missing argument). Each is judged twice: by `jsonschema` against
`definition.input_schema`, and by `call_tool` (the binding to the signature, then the method's own
checks) against an emulator that answers every request 503 before doing anything: a call that gets
an HTTP answer was accepted, and nothing is ever recorded. The two verdicts must agree.

Where they cannot (a rule the schema language of strict-mode hosts cannot state, or a spelling the
SDK takes for a Python caller that the schema does not advertise) the difference is named in
KNOWN_DIFFERENCES, kept out of the generated arguments, and pinned by its own test.
"""

from __future__ import annotations

import calendar
import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pacspace_async._models import parse_datetime
from pacspace_async.testing import Emulator, Faults
from pacspace_async.tools import ToolDefinition, ToolPolicy, tool_definitions
from pacspace_sync import PacSpace
from pacspace_sync.tools import call_tool

TOOLS = tool_definitions()
BY_NAME = {tool.name: tool for tool in TOOLS}
EVERY_TOOL = ToolPolicy(allow=("*",))
LIMIT = Decimal(1_000_000_000)  # the SDK's bound on any amount
# The window of a balance question: several rules between these arguments (below).
SCOPE = ("period", "time_preset", "start_date", "end_date", "starting_checkpoint", "starting_checkpoint_type")
# Arguments sent as a URL path segment, where "." and ".." are refused (a proxy would resolve them).
PATH_SEGMENTS = {("pacspace_delta_status", "record_id"), ("pacspace_wait_for_verified", "record_id")} | {
    ("pacspace_verify_proof", "proof_root"),
    ("pacspace_derive_balance", "customer_id"),
    ("pacspace_get_receipt", "customer_id"),
}


# --- the schema's verdict ------------------------------------------------------------------------------


def _ecma(pattern: str) -> str:
    # JSON Schema patterns are ECMA-262 regexes, where `$` (no multiline flag) is the very end of
    # the text; jsonschema runs them with Python's re, whose `$` also matches before a final
    # newline. Python's \s / \S are kept: the SDK's own test is str.strip(), Python's whitespace.
    return re.sub(r"(?<!\\)\$", r"\\Z", pattern)


def _ecma_pattern(validator: Any, pattern: str, instance: object, schema: Any) -> Iterator[jsonschema.ValidationError]:
    if isinstance(instance, str) and not re.search(_ecma(pattern), instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?([Zz]|[+-]([0-9]{2}):([0-9]{2}))"
)


def is_rfc3339(value: object) -> bool:
    """RFC 3339 date-time (JSON Schema's "date-time"), leap second included, as a validator checks it."""
    if not isinstance(value, str):
        return True  # formats apply to strings only
    match = _RFC3339.fullmatch(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(match.group(n)) for n in range(1, 7))
    offset_ok = match.group(9) is None or (int(match.group(9)) <= 23 and int(match.group(10)) <= 59)
    return (
        1 <= month <= 12
        and 1 <= day <= calendar.monthrange(year or 2000, month)[1]  # year 0 is a leap year
        and hour <= 23
        and minute <= 59
        and second <= 60
        and offset_ok
    )


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("date-time")(is_rfc3339)
Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _ecma_pattern})
VALIDATORS = {tool.name: Validator(tool.input_schema, format_checker=_FORMATS) for tool in TOOLS}


def schema_accepts(tool: ToolDefinition, arguments: object) -> bool:
    if isinstance(arguments, Mapping):
        # A null for an optional argument means "not given" to call_tool (strict-mode models send them).
        arguments = {k: v for k, v in arguments.items() if not (v is None and k in tool.parameters)}
    return bool(VALIDATORS[tool.name].is_valid(arguments))


# --- the SDK's verdict -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def refusing_emulator() -> Iterator[Emulator]:
    """Answers every request 503 before doing anything, and logs it."""
    with Emulator(faults=Faults(rate=1.0, kinds=("503",))) as emu:
        yield emu


@pytest.fixture(scope="module")
def sdk_accepts(refusing_emulator: Emulator) -> Iterator[Callable[[str, object], bool]]:
    key = refusing_emulator.create_key("sandbox")
    with PacSpace(key, base_urls=refusing_emulator.base_urls, max_retries=0) as pac:

        def accepts(name: str, arguments: Any) -> bool:
            before = len(refusing_emulator.requests)
            result = call_tool(pac, name, arguments, policy=EVERY_TOOL)
            error = result["error"]
            if error["status"] is not None:  # an HTTP answer: 503, or 404 from the router for an odd path
                assert error["status"] in (503, 404), result
                return True
            assert error["code"] == "INVALID_ARGUMENTS", result  # refused by the checks ...
            assert len(refusing_emulator.requests) == before  # ... before anything was sent
            return False

        yield accepts


# --- the differences we know of, and keep -------------------------------------------------------------------------


def _decimal(value: str) -> Decimal | None:
    try:
        return Decimal(value)
    except InvalidOperation:
        return None


def _sdk_datetime(value: str) -> bool:
    try:
        parse_datetime(value)
    except ValueError:
        return False
    return True


def sdk_only(tool: str, name: str, value: object) -> bool:
    """Spellings the SDK takes for a Python caller and the schema does not offer a model."""
    if not isinstance(value, str):
        return False
    prop = BY_NAME[tool].input_schema["properties"][name]
    if prop.get("type") == ["string", "number"]:  # money: anything Decimal() reads, within the bounds
        amount = _decimal(value)
        return (
            amount is not None
            and amount.is_finite()
            and abs(amount) <= LIMIT
            and not (name == "delta" and amount == 0)
            and not re.search(_ecma(prop["pattern"]), value)
        )
    if prop.get("format") == "date-time":  # dates alone, naive times, other separators ...
        return value.strip() != "" and not is_rfc3339(value) and _sdk_datetime(value)
    if (tool, name) in PATH_SEGMENTS and name == "customer_id":  # reads take any text as the path id
        return bool(value.strip()) and len(value) <= 128 and value not in (".", "..")
    if name == "period":  # the SDK's \d takes any digits, e.g. Arabic-Indic ones
        return re.fullmatch(r"(\d{4})-(0[1-9]|1[0-2])", value) is not None
    return False


def schema_only(tool: str, name: str, value: object) -> bool:
    """Values the schema cannot tell from good ones, in the JSON Schema subset strict-mode hosts take."""
    if name == "delta" and isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
        return True  # "not zero" needs `not` (strict mode refuses it); the description says it
    if (tool, name) in PATH_SEGMENTS and value in (".", ".."):
        return True  # the same: `not` or a lookahead
    if isinstance(value, str) and BY_NAME[tool].input_schema["properties"][name].get("format") == "date-time":
        return is_rfc3339(value) and not _sdk_datetime(value)  # a leap second, year 0000: not Python datetimes
    return False


KNOWN_DIFFERENCES: list[tuple[str, str, object, str]] = [
    # (tool, argument, value, which side takes it)
    ("pacspace_emit_delta", "delta", "1e3", "sdk"),
    ("pacspace_emit_delta", "delta", " -5 ", "sdk"),
    ("pacspace_emit_delta", "delta", "5.", "sdk"),
    ("pacspace_emit_delta", "delta", ".5", "sdk"),
    ("pacspace_emit_delta", "delta", "1_000", "sdk"),
    ("pacspace_compare_balances", "your_balance", "\u0663", "sdk"),  # an Arabic-Indic 3
    ("pacspace_derive_balance", "start_date", "2026-11-01", "sdk"),
    ("pacspace_derive_balance", "start_date", "2026-11-01T00:00:00", "sdk"),
    ("pacspace_derive_balance", "start_date", "2026-11-01 00:00:00Z", "sdk"),
    ("pacspace_derive_balance", "customer_id", "cust 1", "sdk"),
    ("pacspace_get_receipt", "customer_id", "ü", "sdk"),
    ("pacspace_derive_balance", "period", "\u0662\u0660\u0662\u0666-11", "sdk"),
    ("pacspace_emit_delta", "delta", 0, "schema"),
    ("pacspace_emit_delta", "delta", -0.0, "schema"),
    ("pacspace_delta_status", "record_id", "..", "schema"),
    ("pacspace_verify_proof", "proof_root", ".", "schema"),
    ("pacspace_derive_balance", "customer_id", ".", "schema"),
    ("pacspace_derive_balance", "start_date", "2026-12-31T23:59:60Z", "schema"),
    ("pacspace_derive_balance", "start_date", "0000-01-01T00:00:00Z", "schema"),
]

BASE: dict[str, dict[str, Any]] = {
    "pacspace_emit_delta": {"customer_id": "cust_1", "delta": "-1", "reason": "usage", "reference_id": "r1"},
    "pacspace_delta_status": {"record_id": "rec_1"},
    "pacspace_derive_balance": {"customer_id": "cust_1"},
    "pacspace_compare_balances": {"customer_id": "cust_1", "your_balance": "1", "their_balance": "1"},
    "pacspace_get_receipt": {"customer_id": "cust_1"},
    "pacspace_verify_proof": {"proof_root": "0xabc"},
}
PAIRED = {"start_date": "end_date", "end_date": "start_date"}
GOOD: dict[str, object] = {
    "delta": "-1",
    "your_balance": "1",
    "start_date": "2026-11-01T00:00:00Z",
    "customer_id": "cust_1",
    "period": "2026-11",
    "record_id": "rec_1",
    "proof_root": "0xabc",
}


def with_value(tool: str, name: str, value: object) -> dict[str, Any]:
    arguments = {**BASE[tool], name: value}
    if name in PAIRED:  # dates come in pairs: the other one, well after
        arguments[PAIRED[name]] = "2000-01-01T00:00:00Z" if name == "end_date" else "9999-01-01T00:00:00Z"
    return arguments


@pytest.mark.parametrize(("tool", "name", "value", "side"), KNOWN_DIFFERENCES)
def test_the_known_differences_between_a_schema_and_its_method(
    sdk_accepts: Callable[[str, object], bool], tool: str, name: str, value: object, side: str
) -> None:
    arguments = with_value(tool, name, value)
    fine = with_value(tool, name, GOOD[name])  # the same call with a good value: taken by both
    assert schema_accepts(BY_NAME[tool], fine)
    assert sdk_accepts(tool, fine)
    assert schema_accepts(BY_NAME[tool], arguments) is (side == "schema")
    assert sdk_accepts(tool, arguments) is (side == "sdk")
    classified = sdk_only if side == "sdk" else schema_only
    assert classified(tool, name, value), "the generators must keep this difference out"


# --- generating arguments ------------------------------------------------------------------------------


@functools.cache
def rfc3339_datetimes() -> st.SearchStrategy[str]:
    @st.composite
    def build(draw: st.DrawFn) -> str:
        moment = draw(st.datetimes(min_value=datetime(1, 1, 2)))
        fraction = draw(st.sampled_from(["", ".5", ".123", ".123456", ".1234567"]))
        zone = draw(st.sampled_from(["Z", "z", "+00:00", "-05:30", "+14:00"]))
        sep = draw(st.sampled_from(["T", "t"]))
        return stamp(moment, sep) + fraction + zone

    return build()


def stamp(moment: datetime, sep: str = "T") -> str:
    # Not strftime: its %Y drops the leading zeros of years before 1000 on some platforms.
    return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}{sep}{moment:%H:%M:%S}"


def _in_order(pair: list[datetime]) -> tuple[str, str]:
    start, end = sorted(pair)
    return stamp(start) + "Z", stamp(end) + "Z"


@functools.cache
def dates_in_order() -> st.SearchStrategy[tuple[str, str]]:
    """A start strictly before its end (whole seconds: distinct datetimes may print alike)."""
    moments = st.datetimes(min_value=datetime(2000, 1, 1)).map(lambda moment: moment.replace(microsecond=0))
    return st.lists(moments, min_size=2, max_size=2, unique=True).map(_in_order)


JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(-1e6, 1e6), st.text(max_size=10)
)
JSON_OBJECTS = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        JSON_LEAVES,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=8,
    ),
    max_size=4,
)


@functools.cache  # strategies are built once: building from_regex is costly
def valid_values(tool: str, name: str) -> st.SearchStrategy[Any]:
    prop = BY_NAME[tool].input_schema["properties"][name]
    kinds = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    if "enum" in prop:
        found: st.SearchStrategy[Any] = st.sampled_from(prop["enum"])
    elif prop.get("format") == "date-time":
        found = rfc3339_datetimes()
    elif kinds == ["string", "number"]:
        low, high = prop.get("minimum", -LIMIT), prop.get("maximum", LIMIT)
        found = st.one_of(
            st.from_regex(_ecma(prop["pattern"]), fullmatch=True),
            st.integers(low, high),
            st.floats(low, high, allow_nan=False),
        )
    elif kinds == ["integer"]:
        ints = st.integers(prop.get("minimum"), prop.get("maximum"))
        found = st.one_of(ints, ints.map(float))  # JSON's 10.0 is the integer 10
    elif kinds == ["number"]:
        high = prop.get("maximum", 10**9)
        found = st.one_of(st.floats(0, high, exclude_min=True), st.integers(1, high))
    elif kinds == ["object"]:
        found = JSON_OBJECTS
    elif prop.get("pattern", "").startswith("^"):
        found = st.from_regex(_ecma(prop["pattern"]), fullmatch=True)
    else:  # free text: something besides whitespace, within its length
        found = st.text(min_size=1, max_size=min(prop.get("maxLength", 40), 40)).filter(str.strip)
    return found.filter(lambda value: not schema_only(tool, name, value))


@functools.cache
def invalid_values(tool: str, name: str) -> st.SearchStrategy[Any]:
    prop = BY_NAME[tool].input_schema["properties"][name]
    wrong_type = st.sampled_from([True, 7, 2.5, "text", ["a"], {"a": 1}]).filter(
        lambda value: not jsonschema.Draft202012Validator({"type": prop["type"]}).is_valid(value)
    )
    bad: list[Any] = ["", "   ", "\t\n"]
    if "maxLength" in prop:
        bad += ["x" * (prop["maxLength"] + 1)]
    if "enum" in prop:
        bad += ["last_week", "DAY", "both ", "Custom"]
    if prop.get("format") == "date-time":
        bad += [
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-01T24:00:00Z",
            "2026-11-01T00:00Z",
        ]
    if prop.get("type") == ["string", "number"]:
        bad += ["forty", "1,5", "--1", "NaN", "Infinity", "0x10", "1000000000.01", "-99999999999", 1e9 + 1, -(10**10)]
        if name == "delta":
            bad += ["0", "-0.00", "+0", "000"]
    if prop.get("type") == "integer":
        bad += [prop.get("minimum", 0) - 1, 10.5] + ([prop["maximum"] + 1] if "maximum" in prop else [])
    if prop.get("type") == "number":
        bad += [0, -1, -0.5, 0.0]
    if name == "customer_id":
        bad += ["a b", "cust/1", "ü", "x" * 129]
    if name == "period":
        bad += ["2026-13", "2026-1", "26-11", "2026-11-01", "2026-11\n"]
    type_correct = st.sampled_from(bad).filter(lambda value: not property_accepts(tool, name, value))
    return st.one_of(wrong_type, type_correct).filter(lambda value: not sdk_only(tool, name, value))


def property_accepts(tool: str, name: str, value: object) -> bool:
    """Whether the property's own schema takes `value` (a "bad" candidate it takes is no bad value)."""
    prop = BY_NAME[tool].input_schema["properties"][name]
    return bool(Validator(prop, format_checker=_FORMATS).is_valid(value))


@functools.cache
def scopes(tool: str) -> st.SearchStrategy[dict[str, Any]]:
    """A window as the SDK's rules have it: one way to name it; dates in pairs, start before end;
    "custom" only with dates, "current_month" only without; a checkpoint start alone."""
    params = BY_NAME[tool].parameters
    if "period" not in params:
        return st.just({})
    choices: list[st.SearchStrategy[dict[str, Any]]] = [
        st.just({}),
        valid_values(tool, "period").map(lambda period: {"period": period}),
        st.just({"time_preset": "current_month"}),
        st.tuples(dates_in_order(), st.booleans()).map(
            lambda drawn: (
                {"start_date": drawn[0][0], "end_date": drawn[0][1]} | ({"time_preset": "custom"} if drawn[1] else {})
            )
        ),
    ]
    if "starting_checkpoint" in params:
        checkpoint = valid_values(tool, "starting_checkpoint")
        kind = valid_values(tool, "starting_checkpoint_type")
        choices.append(
            st.tuples(checkpoint, st.none() | kind).map(
                lambda drawn: (
                    {"starting_checkpoint": drawn[0]}
                    | ({} if drawn[1] is None else {"starting_checkpoint_type": drawn[1]})
                )
            )
        )
    return st.one_of(choices)


@st.composite
def valid_arguments(draw: st.DrawFn, tool: str) -> dict[str, Any]:
    definition = BY_NAME[tool]
    arguments = {name: draw(valid_values(tool, name)) for name in definition.required}
    optional = [name for name in definition.parameters if name not in definition.required and name not in SCOPE]
    for name in draw(st.lists(st.sampled_from(optional), unique=True)) if optional else []:
        arguments[name] = draw(valid_values(tool, name))
    arguments.update(draw(scopes(tool)))
    absent = [name for name in definition.parameters if name not in arguments]
    for name in draw(st.lists(st.sampled_from(absent), unique=True)) if absent else []:
        arguments[name] = None  # "not given", as a strict-mode model says it
    return arguments


MUTATIONS = (
    "none",
    "none",
    "none",
    "bad_value",
    "bad_value",
    "bad_value",
    "unknown",
    "missing",
    "null_required",
    "not_object",
)


@st.composite
def arguments_and_intent(draw: st.DrawFn, tool: str) -> tuple[object, str]:
    """(arguments, mutation): valid arguments, or valid ones with exactly one thing made wrong."""
    definition = BY_NAME[tool]
    arguments = draw(valid_arguments(tool))
    mutation = draw(st.sampled_from(MUTATIONS))
    present = [name for name, value in arguments.items() if value is not None]
    if mutation == "bad_value" and present:
        name = draw(st.sampled_from(present))
        arguments[name] = draw(invalid_values(tool, name))
    elif mutation == "unknown":
        extra = ("unexpected", "idempotency_key", "timeout", "max_retries", "extra_headers", "customerId")
        name = draw(st.sampled_from([n for n in extra if n not in definition.parameters]))
        arguments[name] = draw(st.sampled_from(["x", 1, None, {"a": 1}]))
    elif mutation in ("missing", "null_required") and definition.required:
        name = draw(st.sampled_from(definition.required))
        if mutation == "missing":
            del arguments[name]
        else:
            arguments[name] = None
    elif mutation == "not_object":
        return draw(st.sampled_from([[], ["a"], "text", 3, True])), mutation
    else:
        mutation = "none"
    return arguments, mutation


@pytest.mark.parametrize("tool", [tool.name for tool in TOOLS])
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_a_schema_and_its_method_accept_the_same_arguments(
    sdk_accepts: Callable[[str, object], bool], tool: str, data: st.DataObject
) -> None:
    arguments, mutation = data.draw(arguments_and_intent(tool), label="arguments")
    as_json = data.draw(st.booleans(), label="sent as JSON text")
    expected = schema_accepts(BY_NAME[tool], arguments)
    assert expected is (mutation == "none"), "the generator itself went wrong"
    sent = json.dumps(arguments) if as_json else arguments
    assert sdk_accepts(tool, sent) is expected, (mutation, arguments)


# --- fixed samples (what the old built-in validator was checked on) ---------------------------------------

SAMPLES: list[tuple[str, object]] = [
    ("pacspace_emit_delta", {"customer_id": "cust_1", "delta": "-42.50", "reason": "usage", "reference_id": "r1"}),
    ("pacspace_emit_delta", {"customer_id": "cust_1", "delta": -42.5, "reason": "usage", "reference_id": "r1"}),
    ("pacspace_emit_delta", {"customer_id": "cust_1", "delta": "-42.50", "reason": "usage"}),
    ("pacspace_emit_delta", {"customer_id": "cust 1", "delta": "1", "reason": "usage", "reference_id": "r"}),
    ("pacspace_emit_delta", {"customer_id": "c", "delta": True, "reason": "usage", "reference_id": "r"}),
    ("pacspace_emit_delta", {"customer_id": "c", "delta": "0.00", "reason": "usage", "reference_id": "r"}),
    ("pacspace_emit_delta", {"customer_id": "c", "delta": "1", "reason": "x" * 501, "reference_id": "r"}),
    ("pacspace_emit_delta", {"customer_id": "c", "delta": "1", "reason": "u", "reference_id": "r", "extra": 1}),
    ("pacspace_emit_delta", {"customer_id": "c", "delta": "1", "reason": "u", "reference_id": "", "metadata": []}),
    ("pacspace_emit_delta", {"customer_id": "c", "delta": "1", "reason": "u", "reference_id": " \n"}),
    ("pacspace_emit_delta", {"customer_id": "c\n", "delta": "1", "reason": "u", "reference_id": "r"}),
    ("pacspace_emit_delta", {"customer_id": "c", "delta": 2e9, "reason": "u", "reference_id": "r"}),
    ("pacspace_delta_status", {"record_id": "rec_1"}),
    ("pacspace_delta_status", {"record_id": 12}),
    ("pacspace_wait_for_verified", {"record_id": "rec_1", "timeout": 0}),
    ("pacspace_wait_for_verified", {"record_id": "rec_1", "timeout": 300, "poll_interval": 0.5}),
    ("pacspace_wait_for_verified", {"record_id": "rec_1", "timeout": 3600}),
    ("pacspace_derive_balance", {"customer_id": "c", "limit": 10, "offset": 0, "period": "2026-11"}),
    ("pacspace_derive_balance", {"customer_id": "c", "limit": 10.0}),
    ("pacspace_derive_balance", {"customer_id": "c", "limit": 10.5}),
    ("pacspace_derive_balance", {"customer_id": "c", "limit": 0}),
    ("pacspace_derive_balance", {"customer_id": "c", "time_preset": "last_week"}),
    ("pacspace_derive_balance", {"customer_id": "c", "period": "2026-1"}),
    ("pacspace_compare_balances", {"customer_id": "c", "your_balance": "1", "their_balance": 2}),
    ("pacspace_compare_balances", {"customer_id": "c", "your_balance": "1"}),
    ("pacspace_create_checkpoint", {}),
    ("pacspace_create_checkpoint", {"customer_id": None, "period": None}),
    ("pacspace_get_receipt", {"customer_id": "c", "start_date": "2026-11-01T00:00:00Z", "end_date": "x"}),
    ("pacspace_verify_proof", {"proof_root": "0xabc", "source": "both"}),
    ("pacspace_verify_proof", {"proof_root": "0xabc", "source": "web"}),
    ("pacspace_verify_proof", ["0xabc"]),
]


@pytest.mark.parametrize(("name", "arguments"), SAMPLES)
def test_a_schema_and_its_method_agree_on_samples(
    sdk_accepts: Callable[[str, object], bool], name: str, arguments: object
) -> None:
    assert sdk_accepts(name, arguments) is schema_accepts(BY_NAME[name], arguments)
