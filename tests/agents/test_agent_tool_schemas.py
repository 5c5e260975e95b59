"""The tool registry: valid JSON Schemas derived from the SDK's signatures, and the three list formats."""

from __future__ import annotations

import inspect
import json
import re
import typing
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pacspace_async import AsyncPacSpace, InvalidArgumentError
from pacspace_async.resources._scope import GRANULARITIES, TIME_PRESETS
from pacspace_async.resources.verify import VERIFY_SOURCES, AsyncVerification
from pacspace_async.tools import (
    TRANSPORT_OPTIONS,
    ToolDefinition,
    anthropic_tools,
    mcp_tools,
    openai_tools,
    tool_definitions,
    validate_arguments,
)

TOOLS = tool_definitions()
BY_NAME = {tool.name: tool for tool in TOOLS}
EXPECTED_NAMES = {
    "pacspace_emit_delta",
    "pacspace_delta_status",
    "pacspace_wait_for_verified",
    "pacspace_derive_balance",
    "pacspace_compare_balances",
    "pacspace_create_checkpoint",
    "pacspace_get_receipt",
    "pacspace_verify_proof",
}
# Parameters a tool deliberately does not offer the model (besides the transport options).
NOT_OFFERED = {
    "pacspace_wait_for_verified": {"max_poll_interval"},
    "pacspace_create_checkpoint": {"mode", "fingerprints"},  # undocumented selection modes
    "pacspace_verify_proof": {"environment"},  # the client's environment decides
}
# Transport-named parameters that mean something else in one tool.
KEPT = {"pacspace_wait_for_verified": {"timeout"}}  # the whole wait, not one request
# Optional in Python, required of a model.
MADE_REQUIRED = {"pacspace_emit_delta": {"reference_id"}}


def method_of(tool: ToolDefinition) -> Any:
    """The client method a tool calls, found from AsyncPacSpace's own annotations."""
    owner: Any = AsyncPacSpace
    *path, name = tool.method.split(".")
    for attribute in path:
        owner = typing.get_type_hints(owner)[attribute]
    return getattr(owner, name)


def signature_params(tool: ToolDefinition) -> list[inspect.Parameter]:
    params = list(inspect.signature(method_of(tool)).parameters.values())[1:]
    return [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def test_the_registry_has_the_eight_tools_in_a_stable_order() -> None:
    assert set(BY_NAME) == EXPECTED_NAMES
    assert [t.name for t in tool_definitions()] == [t.name for t in TOOLS]
    assert [t.name for t in tool_definitions(["pacspace_verify_proof", "pacspace_emit_delta"])] == [
        "pacspace_verify_proof",
        "pacspace_emit_delta",
    ]
    with pytest.raises(InvalidArgumentError, match="unknown tools"):
        tool_definitions(["pacspace_emit"])
    with pytest.raises(InvalidArgumentError):
        tool_definitions("pacspace_emit_delta")


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.name)
def test_every_schema_is_valid_json_schema(tool: ToolDefinition) -> None:
    schema = tool.input_schema
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft7Validator.check_schema(schema)  # what older validators (and some providers) read
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert json.loads(json.dumps(schema)) == schema  # plain JSON, nothing Python-only


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.name)
def test_required_arguments_are_the_methods_required_parameters(tool: ToolDefinition) -> None:
    params = signature_params(tool)
    hidden = (TRANSPORT_OPTIONS - KEPT.get(tool.name, set())) | NOT_OFFERED.get(tool.name, set())
    required_in_python = {p.name for p in params if p.default is p.empty and p.name not in hidden}
    expected = required_in_python | MADE_REQUIRED.get(tool.name, set())
    assert set(tool.input_schema.get("required", [])) == expected
    assert set(tool.required) == expected
    # every other parameter of the method is offered, in signature order, and nothing else
    offered = [p.name for p in params if p.name not in hidden]
    assert list(tool.input_schema["properties"]) == offered
    assert list(tool.parameters) == offered


def test_the_verify_tool_describes_what_the_client_forwards_to() -> None:
    # The schema comes from AsyncVerification.verify; the tool calls AsyncPacSpace.verify.
    client = inspect.signature(AsyncPacSpace.verify)
    resource = inspect.signature(AsyncVerification.verify)
    assert list(client.parameters) == list(resource.parameters)
    for name, param in client.parameters.items():
        assert param.default == resource.parameters[name].default
        assert param.annotation == resource.parameters[name].annotation


def test_no_transport_option_is_offered_to_the_model() -> None:
    for tool in TOOLS:
        offered = set(tool.input_schema["properties"]) & TRANSPORT_OPTIONS
        assert offered == KEPT.get(tool.name, set()), tool.name
    assert "idempotency_key" not in json.dumps(openai_tools())


def test_emit_requires_a_reference_id_and_tells_the_model_to_reuse_it_on_retries() -> None:
    emit = BY_NAME["pacspace_emit_delta"]
    assert "reference_id" in emit.required
    text = emit.input_schema["properties"]["reference_id"]["description"]
    assert "SAME reference_id" in text
    assert "retry" in text
    assert "reference_id" in emit.description


def test_types_defaults_and_choices_follow_the_signatures() -> None:
    emit = BY_NAME["pacspace_emit_delta"].input_schema["properties"]
    assert emit["delta"]["type"] == ["string", "number"]
    assert '"-42.50"' in emit["delta"]["description"]
    assert re.fullmatch(emit["delta"]["pattern"], "-42.50")
    assert not re.fullmatch(emit["delta"]["pattern"], "-42,50")
    assert emit["metadata"]["type"] == "object"
    assert emit["customer_id"]["type"] == "string"
    derive = BY_NAME["pacspace_derive_balance"].input_schema["properties"]
    assert derive["limit"]["type"] == "integer"
    assert derive["time_preset"]["enum"] == list(TIME_PRESETS)
    assert derive["granularity"]["enum"] == list(GRANULARITIES)
    assert derive["start_date"] == {**derive["start_date"], "type": "string", "format": "date-time"}
    assert re.fullmatch(derive["period"]["pattern"], "2026-11")
    assert not re.fullmatch(derive["period"]["pattern"], "2026-13")
    assert derive["starting_balance"]["type"] == ["string", "number"]
    assert "default" not in derive["starting_balance"]  # None: not sent
    compare = BY_NAME["pacspace_compare_balances"].input_schema["properties"]
    assert compare["starting_balance"]["default"] == "0"  # the signature's 0, as a decimal string
    wait = BY_NAME["pacspace_wait_for_verified"].input_schema["properties"]
    assert wait["timeout"]["type"] == "number"
    assert (
        wait["timeout"]["default"]
        == inspect.signature(method_of(BY_NAME["pacspace_wait_for_verified"])).parameters["timeout"].default
    )
    verify = BY_NAME["pacspace_verify_proof"].input_schema["properties"]
    assert verify["source"]["enum"] == list(VERIFY_SOURCES)


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.name)
def test_every_tool_and_parameter_is_described_for_a_model(tool: ToolDefinition) -> None:
    assert len(tool.description) > 60
    assert tool.title
    for name, prop in tool.input_schema["properties"].items():
        text = prop["description"]
        fallback = name.replace("_", " ").capitalize() + "."
        assert text != fallback, f"{tool.name}.{name} has no hand-written description"
        assert len(text) > 20


def test_the_input_schema_is_a_fresh_copy() -> None:
    tool = BY_NAME["pacspace_emit_delta"]
    schema = tool.input_schema
    schema["properties"].clear()
    assert tool.input_schema["properties"]
    openai_tools()[0]["function"]["parameters"]["required"].clear()
    assert openai_tools()[0]["function"]["parameters"]["required"]


NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # what OpenAI and Anthropic accept as a tool name


def test_openai_format() -> None:
    listed = openai_tools()
    assert [t["function"]["name"] for t in listed] == [t.name for t in TOOLS]
    for entry, tool in zip(listed, TOOLS, strict=True):
        assert set(entry) == {"type", "function"}
        assert entry["type"] == "function"
        assert set(entry["function"]) == {"name", "description", "parameters"}
        assert NAME.match(entry["function"]["name"])
        assert entry["function"]["description"] == tool.description
        assert entry["function"]["parameters"] == tool.input_schema
    json.dumps(listed)
    assert [t["function"]["name"] for t in openai_tools(["pacspace_delta_status"])] == ["pacspace_delta_status"]


def test_anthropic_format() -> None:
    listed = anthropic_tools()
    for entry, tool in zip(listed, TOOLS, strict=True):
        assert set(entry) == {"name", "description", "input_schema"}
        assert NAME.match(entry["name"])
        assert entry["name"] == tool.name
        assert entry["input_schema"] == tool.input_schema
    json.dumps(listed)


def test_mcp_format() -> None:
    listed = mcp_tools()
    for entry, tool in zip(listed, TOOLS, strict=True):
        assert set(entry) == {"name", "title", "description", "inputSchema", "annotations"}
        assert entry["name"] == tool.name
        assert entry["inputSchema"] == tool.input_schema
        hints = entry["annotations"]
        assert hints["readOnlyHint"] is tool.read_only
        assert hints["destructiveHint"] is False
        assert hints["idempotentHint"] is True
    by_name = {entry["name"]: entry for entry in listed}
    assert by_name["pacspace_emit_delta"]["annotations"]["readOnlyHint"] is False
    assert by_name["pacspace_verify_proof"]["annotations"]["readOnlyHint"] is True
    json.dumps(listed)


# --- the built-in validator agrees with a real JSON Schema validator --------------------------------

SAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("pacspace_emit_delta", {"customer_id": "cust_1", "delta": "-42.50", "reason": "usage", "reference_id": "r1"}),
    ("pacspace_emit_delta", {"customer_id": "cust_1", "delta": -42.5, "reason": "usage", "reference_id": "r1"}),
    ("pacspace_emit_delta", {"customer_id": "cust_1", "delta": "-42.50", "reason": "usage"}),
    ("pacspace_emit_delta", {"customer_id": "cust 1", "delta": "1", "reason": "usage", "reference_id": "r"}),
    ("pacspace_emit_delta", {"customer_id": "c", "delta": True, "reason": "usage", "reference_id": "r"}),
    ("pacspace_emit_delta", {"customer_id": "c", "delta": "1e3", "reason": "usage", "reference_id": "r"}),
    ("pacspace_emit_delta", {"customer_id": "c", "delta": "1", "reason": "x" * 501, "reference_id": "r"}),
    ("pacspace_emit_delta", {"customer_id": "c", "delta": "1", "reason": "u", "reference_id": "r", "extra": 1}),
    ("pacspace_emit_delta", {"customer_id": "c", "delta": "1", "reason": "u", "reference_id": "", "metadata": []}),
    ("pacspace_delta_status", {"record_id": "rec_1"}),
    ("pacspace_delta_status", {"record_id": 12}),
    ("pacspace_wait_for_verified", {"record_id": "rec_1", "timeout": 0}),
    ("pacspace_wait_for_verified", {"record_id": "rec_1", "timeout": 300, "poll_interval": 0.5}),
    ("pacspace_wait_for_verified", {"record_id": "rec_1", "timeout": 301}),
    ("pacspace_derive_balance", {"customer_id": "c", "limit": 10, "offset": 0, "period": "2026-11"}),
    ("pacspace_derive_balance", {"customer_id": "c", "limit": 10.0}),
    ("pacspace_derive_balance", {"customer_id": "c", "limit": 10.5}),
    ("pacspace_derive_balance", {"customer_id": "c", "limit": 0}),
    ("pacspace_derive_balance", {"customer_id": "c", "time_preset": "last_week"}),
    ("pacspace_derive_balance", {"customer_id": "c", "period": "2026-1"}),
    ("pacspace_compare_balances", {"customer_id": "c", "your_balance": "1", "their_balance": 2}),
    ("pacspace_compare_balances", {"customer_id": "c", "your_balance": "1"}),
    ("pacspace_create_checkpoint", {}),
    ("pacspace_create_checkpoint", {"granularity": "day"}),
    ("pacspace_get_receipt", {"customer_id": "c", "start_date": "2026-11-01T00:00:00Z", "end_date": "x"}),
    ("pacspace_verify_proof", {"proof_root": "0xabc", "source": "both"}),
    ("pacspace_verify_proof", {"proof_root": "0xabc", "source": "web"}),
]


@pytest.mark.parametrize(("name", "arguments"), SAMPLES)
def test_the_builtin_validator_agrees_with_jsonschema(name: str, arguments: dict[str, Any]) -> None:
    expected = jsonschema.Draft202012Validator(BY_NAME[name].input_schema).is_valid(arguments)
    assert (validate_arguments(name, arguments) == []) is expected


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-2000, max_value=2000),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
    st.sampled_from(["", " ", "cust_1", "a b", "-42.50", "1e3", "2026-11", "2026-13", "day", "custom", "both"]),
    st.text(max_size=8),
    st.just({"plan": "growth"}),
    st.just(["a"]),
)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(EXPECTED_NAMES)),
    data=st.data(),
)
def test_the_builtin_validator_agrees_with_jsonschema_on_random_arguments(name: str, data: st.DataObject) -> None:
    tool = BY_NAME[name]
    keys = [*tool.parameters, "unexpected"]
    chosen = data.draw(st.lists(st.sampled_from(keys), unique=True))
    arguments = {key: data.draw(JSON_VALUES) for key in chosen}
    # A null for an optional argument means "not given" to call_tool (models send them).
    as_given = {
        k: v for k, v in arguments.items() if not (v is None and k in tool.parameters and k not in tool.required)
    }
    expected = jsonschema.Draft202012Validator(tool.input_schema).is_valid(as_given)
    assert (validate_arguments(name, arguments) == []) is expected, arguments


def test_validation_names_every_problem() -> None:
    problems = validate_arguments("pacspace_emit_delta", {"customer_id": "a b", "delta": "x", "foo": 1})
    text = "\n".join(problems)
    for part in ("reason: required", "reference_id: required", "foo: unexpected", "customer_id", "delta"):
        assert part in text
    assert validate_arguments("nope", {}) == ["unknown tool 'nope'; the tools are: " + ", ".join(t.name for t in TOOLS)]
    assert validate_arguments("pacspace_emit_delta", ["not", "an", "object"]) == [  # type: ignore[arg-type]
        "arguments must be a JSON object, got array"
    ]
