"""The tool registry: valid JSON Schemas derived from the SDK's signatures, the three list formats, and the
strict schemas of OpenAI's strict mode.

That a schema and its method accept the same arguments is proven in test_tool_property.py.
"""

from __future__ import annotations

import inspect
import json
import re
import typing
from typing import Any

import jsonschema
import pytest

from pacspace_async import AsyncPacSpace, InvalidArgumentError
from pacspace_async.resources._scope import GRANULARITIES, TIME_PRESETS
from pacspace_async.resources.verify import VERIFY_SOURCES, AsyncVerification
from pacspace_async.testing import Emulator
from pacspace_async.tools import (
    TRANSPORT_OPTIONS,
    ToolDefinition,
    ToolPolicy,
    anthropic_tools,
    call_tool,
    mcp_tools,
    openai_tools,
    strict_schema,
    tool_definitions,
)

TOOLS = tool_definitions()
READS = [tool for tool in TOOLS if tool.read_only]
EVERY_TOOL = ToolPolicy(allow=("*",))
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
    assert "idempotency_key" not in json.dumps(openai_tools(policy=EVERY_TOOL))
    assert "idempotency_key" not in json.dumps(openai_tools(policy=EVERY_TOOL, strict=False))


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
    # what the SDK refuses, the schema says: no zero delta, no amount beyond ±1,000,000,000, no blank text
    for amount, is_delta, fine in [
        ("0.00", True, False),
        ("0.00", False, True),
        ("1000000000", True, True),
        ("-1000000000.000", True, True),
        ("1000000000.01", False, False),
        ("999999999.99", True, True),
    ]:
        pattern = (
            emit["delta"]["pattern"]
            if is_delta
            else BY_NAME["pacspace_compare_balances"].input_schema["properties"]["your_balance"]["pattern"]
        )
        assert bool(re.fullmatch(pattern, amount)) is fine, (amount, is_delta)
    assert (emit["delta"]["minimum"], emit["delta"]["maximum"]) == (-1_000_000_000, 1_000_000_000)
    assert emit["reason"]["pattern"] == r"\S"
    assert not re.search(emit["reason"]["pattern"], " \t\n")
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
    for strict in (True, False):
        openai_tools(strict=strict)[0]["function"]["parameters"]["required"].clear()
        assert openai_tools(strict=strict)[0]["function"]["parameters"]["required"]
    strict_schema(tool)["properties"].clear()
    assert strict_schema(tool)["properties"]


NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # what OpenAI and Anthropic accept as a tool name


def test_the_lists_hold_what_the_policy_allows_read_only_without_one() -> None:
    reads = [tool.name for tool in READS]
    assert "pacspace_emit_delta" not in reads
    assert "pacspace_create_checkpoint" not in reads
    for policy in (None, ToolPolicy()):
        assert [t["function"]["name"] for t in openai_tools(policy=policy)] == reads
        assert [t["name"] for t in anthropic_tools(policy=policy)] == reads
        assert [t["name"] for t in mcp_tools(policy=policy)] == reads
    emits = ToolPolicy(allow=("read", "pacspace_emit_delta"))
    assert [t["name"] for t in anthropic_tools(policy=emits)] == ["pacspace_emit_delta", *reads]  # registry order
    assert [t["name"] for t in mcp_tools(policy=ToolPolicy(allow=("write",)))] == [
        "pacspace_emit_delta",
        "pacspace_create_checkpoint",
    ]
    assert [t["name"] for t in anthropic_tools(policy=EVERY_TOOL)] == [tool.name for tool in TOOLS]
    # naming a tool the policy does not allow is a mistake of the host, said at once
    for listing in (openai_tools, anthropic_tools, mcp_tools):
        with pytest.raises(InvalidArgumentError, match=r"the policy does not allow \['pacspace_emit_delta'\]"):
            listing(["pacspace_emit_delta"])
        assert len(listing(["pacspace_emit_delta"], policy=emits)) == 1


def test_openai_format() -> None:
    listed = openai_tools(policy=EVERY_TOOL)
    assert [t["function"]["name"] for t in listed] == [t.name for t in TOOLS]
    for entry, tool in zip(listed, TOOLS, strict=True):
        assert set(entry) == {"type", "function"}
        assert entry["type"] == "function"
        assert set(entry["function"]) == {"name", "description", "parameters", "strict"}
        assert NAME.match(entry["function"]["name"])
        assert entry["function"]["description"] == tool.description
        assert entry["function"]["strict"] is True  # the default: what strict-mode hosts need
        assert entry["function"]["parameters"] == strict_schema(tool)
    for entry, tool in zip(openai_tools(policy=EVERY_TOOL, strict=False), TOOLS, strict=True):
        assert entry["function"]["strict"] is False
        assert entry["function"]["parameters"] == tool.input_schema
    json.dumps(listed)
    assert [t["function"]["name"] for t in openai_tools(["pacspace_delta_status"])] == ["pacspace_delta_status"]


def test_anthropic_format() -> None:
    listed = anthropic_tools(policy=EVERY_TOOL)
    for entry, tool in zip(listed, TOOLS, strict=True):
        assert set(entry) == {"name", "description", "input_schema"}
        assert NAME.match(entry["name"])
        assert entry["name"] == tool.name
        assert entry["input_schema"] == tool.input_schema
    json.dumps(listed)


def test_mcp_format() -> None:
    listed = mcp_tools(policy=EVERY_TOOL)
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


# --- strict schemas (OpenAI strict mode, OpenAI Agents' default) -------------------------------------

# Free-form objects cannot be described in strict mode (every object there must list its properties).
FREE_FORM = {"metadata", "adjusts"}


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.name)
def test_every_strict_schema_is_what_strict_mode_takes(tool: ToolDefinition) -> None:
    strict = strict_schema(tool)
    jsonschema.Draft202012Validator.check_schema(strict)
    jsonschema.Draft7Validator.check_schema(strict)
    assert json.loads(json.dumps(strict)) == strict
    assert strict["type"] == "object"
    assert strict["additionalProperties"] is False
    assert list(strict["properties"]) == [name for name in tool.parameters if name not in FREE_FORM]
    assert strict["required"] == list(strict["properties"])  # every property listed as required
    assert "default" not in strict
    plain = tool.input_schema["properties"]
    for name, prop in strict["properties"].items():
        assert "default" not in prop
        kinds = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
        assert "object" not in kinds
        if name in tool.required:
            assert "null" not in kinds, name
            assert prop == plain[name]
        else:
            assert kinds[-1] == "null", name  # optional: null means "not given"
            if "enum" in prop:
                assert prop["enum"] == [*plain[name]["enum"], None]
            if "default" in plain[name]:
                assert f"Default: {plain[name]['default']}." in prop["description"]  # said in words instead
        # the same constraints as the plain schema, apart from null
        same = {key: value for key, value in prop.items() if key not in ("type", "enum", "description")}
        assert same == {
            key: value for key, value in plain[name].items() if key not in ("type", "enum", "description", "default")
        }


def test_strict_schemas_accept_nulls_and_refuse_missing_or_unknown_properties() -> None:
    derive = strict_schema(BY_NAME["pacspace_derive_balance"])
    validator = jsonschema.Draft202012Validator(derive)
    nulls = dict.fromkeys(derive["properties"])
    assert validator.is_valid({**nulls, "customer_id": "cust_1"})
    assert not validator.is_valid(nulls)  # customer_id is required and not nullable
    assert not validator.is_valid({"customer_id": "cust_1"})  # strict: every property present
    assert not validator.is_valid({**nulls, "customer_id": "cust_1", "extra": 1})
    assert not validator.is_valid({**nulls, "customer_id": "cust_1", "time_preset": "last_week"})
    assert validator.is_valid({**nulls, "customer_id": "cust_1", "time_preset": "custom"})


def strict_call(tool: ToolDefinition, given: dict[str, Any]) -> dict[str, Any]:
    """What a strict-mode model sends: every property, null for the optional ones it leaves out."""
    arguments = {name: given.get(name) for name in strict_schema(tool)["properties"]}
    assert jsonschema.Draft202012Validator(strict_schema(tool)).is_valid(arguments), arguments
    return arguments


STRICT_CALLS: dict[str, dict[str, Any]] = {
    "pacspace_emit_delta": {"customer_id": "cust_strict", "delta": "-2.50", "reason": "usage", "reference_id": "s1"},
    "pacspace_delta_status": {"record_id": "REPLACED"},
    "pacspace_wait_for_verified": {"record_id": "REPLACED"},
    "pacspace_derive_balance": {"customer_id": "cust_strict"},
    "pacspace_compare_balances": {"customer_id": "cust_strict", "your_balance": "-2.50", "their_balance": "-2"},
    "pacspace_create_checkpoint": {},
    "pacspace_get_receipt": {"customer_id": "cust_strict"},
    "pacspace_verify_proof": {"proof_root": "REPLACED"},
}


@pytest.mark.pacspace_emulator(verify_delay=0.01)
async def test_a_call_built_from_the_strict_schema_with_nulls_for_every_optional_argument_works(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    assert set(STRICT_CALLS) == set(BY_NAME)
    results: dict[str, Any] = {}
    for name, given in STRICT_CALLS.items():
        given = dict(given)
        if given.get("record_id") == "REPLACED":
            given["record_id"] = results["pacspace_emit_delta"]["record_id"]
        if given.get("proof_root") == "REPLACED":
            given["proof_root"] = results["pacspace_wait_for_verified"]["receipt_id"]
        tool = BY_NAME[name]
        arguments = strict_call(tool, given)
        optional = [key for key in arguments if key not in tool.required]
        assert [key for key, value in arguments.items() if value is None] == [k for k in optional if k not in given]
        result = await call_tool(pacspace_client, name, json.dumps(arguments), policy=EVERY_TOOL)
        assert result["ok"] is True, (name, result)
        results[name] = result["result"]
    assert results["pacspace_wait_for_verified"]["status"] == "VERIFIED"
    assert results["pacspace_derive_balance"]["computed_balance"] == "-2.5"
    assert results["pacspace_compare_balances"]["matches_yours"] is True
    assert results["pacspace_verify_proof"]["verified"] is True
    assert len(pacspace_emulator.deltas("cust_strict")) == 1
