"""The OpenAI Agents SDK adapter, with the real library: a `Runner` and a scripted model, offline.

The model is ours (their `Model` interface, canned responses, no network, no key); the tools are
`function_tools(pac, policy)`; the server is the emulator, whose request log shows what was sent.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from agents import Agent, FunctionTool, ModelBehaviorError, RunConfig, Runner, RunResult, RunState, Tool
from agents.items import ModelResponse, TResponseInputItem, TResponseOutputItem
from agents.models.interface import Model
from agents.tool_context import ToolContext
from agents.usage import Usage

# (This test package is tests/agent_tools, not tests/agents: tests/ is on sys.path under pytest,
# and a directory named `agents` would shadow the SDK's own top-level package.)
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

from pacspace_async import AsyncPacSpace, ConfigurationError
from pacspace_async.testing import Emulator
from pacspace_async.tools import ToolCallRecord, ToolPolicy, strict_schema
from pacspace_async.tools.openai_agents import function_tools

pytestmark = pytest.mark.pacspace_emulator(verify_delay=0.02)

CUSTOMER = "cust_agents"
EMIT = {"customer_id": CUSTOMER, "delta": "-42.50", "reason": "usage", "reference_id": "inv_agents_1"}
EMIT_PATH = "/api/v1/balance/delta"
NO_TRACING = RunConfig(tracing_disabled=True)


def writer() -> ToolPolicy:
    """A policy of its own for each test: a policy counts what it lets through."""
    return ToolPolicy(allow=("read", "pacspace_emit_delta"))


# What the model has seen so far: each tool output it was given, parsed, by call id.
Seen = Mapping[str, Any]
Turn = Callable[[Seen], list[TResponseOutputItem]]


class ScriptedModel(Model):
    """A model that answers each turn from a script: tool calls, then a final message."""

    def __init__(self, *turns: Turn) -> None:
        self.turns = list(turns)
        self.seen: dict[str, Any] = {}

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        *args: Any,
        **kwargs: Any,
    ) -> ModelResponse:
        items: list[Any] = [] if isinstance(input, str) else list(input)
        for item in items:
            if isinstance(item, Mapping) and item.get("type") == "function_call_output":
                output = item["output"]
                self.seen[item["call_id"]] = json.loads(output) if output.startswith("{") else output
        assert self.turns, f"the model was asked for more turns than scripted; it saw {self.seen}"
        return ModelResponse(output=self.turns.pop(0)(self.seen), usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("these tests do not stream")


def call(name: str, arguments: Mapping[str, Any], call_id: str) -> TResponseOutputItem:
    return ResponseFunctionToolCall(
        id=call_id, call_id=call_id, type="function_call", name=name, arguments=json.dumps(arguments)
    )


def calls(*items: tuple[str, Mapping[str, Any], str]) -> Turn:
    return lambda seen: [call(*item) for item in items]


def say(text: str) -> Turn:
    message = ResponseOutputMessage(
        id="msg", type="message", role="assistant", status="completed",
        content=[ResponseOutputText(text=text, type="output_text", annotations=[], logprobs=[])],
    )  # fmt: skip
    return lambda seen: [message]


def by_name(tools: list[Tool]) -> dict[str, FunctionTool]:
    assert all(isinstance(tool, FunctionTool) for tool in tools)
    return {tool.name: tool for tool in tools if isinstance(tool, FunctionTool)}


def agent(tools: list[Tool], model: ScriptedModel) -> Agent[Any]:
    return Agent(name="billing", instructions="Bill usage with PacSpace.", model=model, tools=tools)


async def run(agent_: Agent[Any], start: Any = "Bill cust_agents 42.50 for usage.") -> RunResult:
    return await Runner.run(agent_, start, run_config=NO_TRACING)


def emits(emu: Emulator) -> int:
    return sum(1 for r in emu.requests if r.method == "POST" and r.path == EMIT_PATH)


def strict_nulls(name: str, **given: Any) -> dict[str, Any]:
    """What a strict-mode model sends: every property, null for those it does not give."""
    (tool,) = [tool for tool in ToolPolicy(allow=("*",)).tools() if tool.name == name]
    return {key: given.get(key) for key in strict_schema(tool)["properties"]}


# --- a run that calls our tools ---------------------------------------------------------------


async def test_a_runner_run_emits_then_reads_the_status(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    def status_of_emit(seen: Seen) -> list[TResponseOutputItem]:
        record_id = seen["c1"]["result"]["record_id"]
        return [call("pacspace_delta_status", strict_nulls("pacspace_delta_status", record_id=record_id), "c2")]

    model = ScriptedModel(calls(("pacspace_emit_delta", strict_nulls("pacspace_emit_delta", **EMIT), "c1")),
                          status_of_emit, say("Billed."))  # fmt: skip
    result = await run(agent(function_tools(pacspace_client, writer()), model))

    assert result.final_output == "Billed."
    emitted, status = model.seen["c1"], model.seen["c2"]
    assert emitted["ok"] is True, emitted
    assert emitted["result"]["delta"] == "-42.5"
    assert emitted["result"]["idempotency_key"].endswith(f":{CUSTOMER}:{EMIT['reference_id']}")
    assert status["ok"] is True, status
    assert status["result"]["record_id"] == emitted["result"]["record_id"]
    assert [d.delta for d in pacspace_emulator.deltas(CUSTOMER)] == [Decimal("-42.50")]


async def test_only_the_tools_the_policy_allows_are_listed_and_read_only_is_the_default(
    pacspace_client: AsyncPacSpace,
) -> None:
    read_only = {tool.name for tool in function_tools(pacspace_client)}
    assert read_only == {tool.name for tool in ToolPolicy().tools()}
    assert "pacspace_emit_delta" not in read_only
    assert "pacspace_create_checkpoint" not in read_only
    everything = {tool.name for tool in function_tools(pacspace_client, ToolPolicy(allow=("*",)))}
    assert everything == {tool.name for tool in ToolPolicy(allow=("*",)).tools()}
    assert everything > read_only


# --- refusals: nothing sent, the model reads why ----------------------------------------------


@pytest.mark.parametrize(
    ("policy", "arguments", "code"),
    [
        (ToolPolicy(allow=("pacspace_emit_delta",), max_abs_delta=Decimal("10")), EMIT, "POLICY_DELTA_TOO_LARGE"),
        (ToolPolicy(allow=("write",), customers=("cust_other*",)), EMIT, "POLICY_CUSTOMER_NOT_ALLOWED"),
        (ToolPolicy(allow=("write",), max_total=Decimal("40")), EMIT, "POLICY_TOTAL_EXCEEDED"),
    ],
)
async def test_a_policy_refusal_sends_nothing_and_the_model_gets_the_structured_error(
    pacspace_client: AsyncPacSpace,
    pacspace_emulator: Emulator,
    policy: ToolPolicy,
    arguments: dict[str, Any],
    code: str,
) -> None:
    model = ScriptedModel(
        calls(("pacspace_emit_delta", strict_nulls("pacspace_emit_delta", **arguments), "c1")), say("I asked a human.")
    )
    result = await run(agent(function_tools(pacspace_client, policy), model))

    assert result.final_output == "I asked a human."
    refused = model.seen["c1"]
    assert refused["ok"] is False
    assert refused["error"]["code"] == code
    assert refused["error"]["action"] == "alert_operator"
    assert refused["error"]["next_step"]
    assert emits(pacspace_emulator) == 0
    assert pacspace_emulator.deltas() == []


async def test_a_tool_the_policy_does_not_list_is_never_run(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    # Read-only by default: emit is not among the tools, so a model that calls it anyway fails the
    # run in the SDK itself, before anything reaches PacSpace.
    model = ScriptedModel(calls(("pacspace_emit_delta", strict_nulls("pacspace_emit_delta", **EMIT), "c1")))
    with pytest.raises(ModelBehaviorError, match="pacspace_emit_delta"):
        await run(agent(function_tools(pacspace_client), model))
    assert pacspace_emulator.requests == []


async def test_bad_arguments_come_back_as_fix_input_without_a_request(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    model = ScriptedModel(
        calls(("pacspace_emit_delta", strict_nulls("pacspace_emit_delta", **{**EMIT, "delta": "-42,50"}), "c1")),
        say("I will fix the amount."),
    )
    await run(agent(function_tools(pacspace_client, writer()), model))
    assert model.seen["c1"]["ok"] is False
    assert model.seen["c1"]["error"]["action"] == "fix_input"
    assert pacspace_emulator.requests == []


# --- replays ----------------------------------------------------------------------------------


async def test_the_same_emit_delivered_twice_records_one_delta(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    arguments = strict_nulls("pacspace_emit_delta", **EMIT)
    # A model that repeats itself: the same call in a later turn (a new call id, so the SDK runs it
    # again), then twice at once in one turn.
    model = ScriptedModel(
        calls(("pacspace_emit_delta", arguments, "c1")),
        calls(("pacspace_emit_delta", arguments, "c2")),
        calls(("pacspace_emit_delta", arguments, "c3"), ("pacspace_emit_delta", arguments, "c4")),
        say("Billed once."),
    )
    await run(agent(function_tools(pacspace_client, writer()), model))

    results = [model.seen[call_id] for call_id in ("c1", "c2", "c3", "c4")]
    assert all(result["ok"] for result in results), results
    assert len({result["result"]["record_id"] for result in results}) == 1
    assert len(pacspace_emulator.deltas(CUSTOMER)) == 1


# --- approval: the SDK's own interruptions ----------------------------------------------------


def approving_policy(records: list[ToolCallRecord]) -> ToolPolicy:
    return ToolPolicy(allow=("read", "pacspace_emit_delta"), approve=True, on_tool_call=records.append)


async def interrupted_run(pac: AsyncPacSpace, policy: ToolPolicy, model: ScriptedModel) -> tuple[Agent[Any], RunResult]:
    billing = agent(function_tools(pac, policy), model)
    result = await run(billing)
    assert [item.tool_name for item in result.interruptions] == ["pacspace_emit_delta"]
    return billing, result


async def test_a_write_needing_approval_stops_the_run_then_is_sent_once_approved(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    records: list[ToolCallRecord] = []
    model = ScriptedModel(
        calls(("pacspace_emit_delta", strict_nulls("pacspace_emit_delta", **EMIT), "c1")), say("Billed, approved.")
    )
    billing, result = await interrupted_run(pacspace_client, approving_policy(records), model)
    assert emits(pacspace_emulator) == 0
    assert records == []  # not even tried: the run waits for a human

    state = result.to_state()
    state.approve(result.interruptions[0])
    resumed = await run(billing, state)

    assert resumed.interruptions == []
    assert resumed.final_output == "Billed, approved."
    assert model.seen["c1"]["ok"] is True, model.seen["c1"]
    assert emits(pacspace_emulator) == 1
    assert len(pacspace_emulator.deltas(CUSTOMER)) == 1
    assert [(r.tool, r.outcome, r.approved_by) for r in records] == [("pacspace_emit_delta", "ok", "host")]


async def test_an_approved_state_saved_and_resumed_twice_records_one_delta(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    # The approval is saved with the run (a human approves in another process, later); a worker
    # that resumes the saved state, crashes, and is retried delivers the same call twice.
    records: list[ToolCallRecord] = []
    model = ScriptedModel(
        calls(("pacspace_emit_delta", strict_nulls("pacspace_emit_delta", **EMIT), "c1")),
        say("Billed."),
        say("Billed."),
    )
    billing, result = await interrupted_run(pacspace_client, approving_policy(records), model)
    state = result.to_state()
    state.approve(result.interruptions[0])
    saved = state.to_string()

    record_ids = []
    for _ in range(2):
        resumed = await run(billing, await RunState.from_string(billing, saved))
        assert resumed.final_output == "Billed."
        assert model.seen["c1"]["ok"] is True, model.seen["c1"]
        record_ids.append(model.seen["c1"]["result"]["record_id"])

    assert record_ids[0] == record_ids[1]
    assert emits(pacspace_emulator) == 2
    assert len(pacspace_emulator.deltas(CUSTOMER)) == 1
    assert [(r.outcome, r.approved_by) for r in records] == [("ok", "host"), ("ok", "host")]
    assert records[0].idempotency_key == records[1].idempotency_key


async def test_a_rejected_write_is_never_sent_and_the_model_is_told(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    records: list[ToolCallRecord] = []
    model = ScriptedModel(
        calls(("pacspace_emit_delta", strict_nulls("pacspace_emit_delta", **EMIT), "c1")), say("Not billed.")
    )
    billing, result = await interrupted_run(pacspace_client, approving_policy(records), model)

    state = result.to_state()
    state.reject(result.interruptions[0], rejection_message="A human said no: do not bill this.")
    resumed = await run(billing, state)

    assert resumed.final_output == "Not billed."
    assert model.seen["c1"] == "A human said no: do not bill this."
    assert emits(pacspace_emulator) == 0
    assert pacspace_emulator.deltas() == []
    assert records == []


async def test_reads_need_no_approval_under_an_approving_policy(pacspace_client: AsyncPacSpace) -> None:
    tools = by_name(function_tools(pacspace_client, approving_policy([])))
    assert tools.pop("pacspace_emit_delta").needs_approval is True
    assert tools
    assert all(tool.needs_approval is False for tool in tools.values())
    assert all(tool.needs_approval is False for tool in by_name(function_tools(pacspace_client, writer())).values())


async def test_a_write_invoked_without_the_runs_approval_is_refused_not_sent(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    # Called outside a Runner (no approval recorded in the context): the adapter does not take the
    # tool being invoked as approval.
    emit = by_name(function_tools(pacspace_client, approving_policy([])))["pacspace_emit_delta"]
    arguments = json.dumps(strict_nulls("pacspace_emit_delta", **EMIT))
    context: ToolContext[Any] = ToolContext(
        context=None, tool_name=emit.name, tool_call_id="c1", tool_arguments=arguments
    )
    result = json.loads(await emit.on_invoke_tool(context, arguments))
    assert result["ok"] is False
    assert result["error"]["code"] == "APPROVAL_REQUIRED"
    assert emits(pacspace_emulator) == 0


# --- the event loop stays free ----------------------------------------------------------------


class Ticker:
    """Counts its ticks: a loop blocked by a tool call would stop them."""

    def __init__(self) -> None:
        self.ticks = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.002)
            self.ticks += 1


@pytest.fixture
async def ticker() -> AsyncIterator[Ticker]:
    ticking = Ticker()
    task = asyncio.create_task(ticking.run())
    yield ticking
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def ticks_during_a_slow_status_call(tools: list[Tool], ticker: Ticker) -> int:
    arguments = strict_nulls("pacspace_delta_status", record_id="rec_missing")
    model = ScriptedModel(calls(("pacspace_delta_status", arguments, "c1")), say("done"))
    before = ticker.ticks
    await run(agent(tools, model))
    assert model.seen["c1"]["error"]["class"] == "NotFoundError", model.seen["c1"]
    return ticker.ticks - before


async def test_a_tool_call_never_blocks_the_event_loop(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator, ticker: Ticker
) -> None:
    pacspace_emulator.inject("slow", method="GET", path="/api/v1/balance/delta/rec_missing", seconds=0.2)
    assert await ticks_during_a_slow_status_call(function_tools(pacspace_client), ticker) >= 5


async def test_a_sync_client_runs_in_a_worker_thread_and_never_blocks_the_event_loop(
    pacspace_sync_client: Any, pacspace_emulator_thread: Emulator, ticker: Ticker
) -> None:
    pacspace_emulator_thread.inject("slow", method="GET", path="/api/v1/balance/delta/rec_missing", seconds=0.2)
    assert await ticks_during_a_slow_status_call(function_tools(pacspace_sync_client), ticker) >= 5


async def test_a_sync_client_emits_once_through_a_run(
    pacspace_sync_client: Any, pacspace_emulator_thread: Emulator
) -> None:
    arguments = strict_nulls("pacspace_emit_delta", **EMIT)
    model = ScriptedModel(
        calls(("pacspace_emit_delta", arguments, "c1")), calls(("pacspace_emit_delta", arguments, "c2")), say("ok")
    )
    await run(agent(function_tools(pacspace_sync_client, writer()), model))
    assert model.seen["c1"]["ok"] is True, model.seen["c1"]
    assert model.seen["c2"]["result"]["record_id"] == model.seen["c1"]["result"]["record_id"]
    assert len(pacspace_emulator_thread.deltas(CUSTOMER)) == 1


# --- strict schemas ---------------------------------------------------------------------------


def object_nodes(schema: Any) -> Iterator[dict[str, Any]]:
    if isinstance(schema, dict):
        if schema.get("type") == "object" or "properties" in schema:
            yield schema
        for value in schema.values():
            yield from object_nodes(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from object_nodes(value)


async def test_every_schema_is_strict_as_the_sdk_takes_it_unchanged(pacspace_client: AsyncPacSpace) -> None:
    everything = ToolPolicy(allow=("*",))
    tools = list(by_name(function_tools(pacspace_client, everything)).values())
    assert [tool.name for tool in tools] == [tool.name for tool in everything.tools()]
    for tool, definition in zip(tools, everything.tools(), strict=True):
        assert tool.strict_json_schema is True
        # The SDK's strict check rewrites what is not strict (it closes open objects, requires
        # every property): an unchanged schema is one it had nothing to fix in.
        rebuilt = FunctionTool(
            name=tool.name,
            description=tool.description,
            params_json_schema=copy.deepcopy(strict_schema(definition)),
            on_invoke_tool=tool.on_invoke_tool,
            strict_json_schema=True,
        )
        assert rebuilt.params_json_schema == strict_schema(definition) == tool.params_json_schema
        jsonschema.Draft202012Validator.check_schema(tool.params_json_schema)
        for node in object_nodes(tool.params_json_schema):
            assert node["additionalProperties"] is False, (tool.name, node)
            assert set(node["required"]) == set(node["properties"]), (tool.name, node)
        # Every argument the tool takes stays sendable: optional ones are nullable.
        for key in set(definition.parameters) & set(tool.params_json_schema["properties"]):
            kinds = tool.params_json_schema["properties"][key]["type"]
            assert (key in definition.required) is ("null" not in kinds), (tool.name, key)


async def test_derive_balance_can_be_called_with_only_a_customer_id(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    await pacspace_client.balance.emit(customer_id=CUSTOMER, delta=Decimal("-1.25"), reason="usage", reference_id="r1")
    arguments = strict_nulls("pacspace_derive_balance", customer_id=CUSTOMER)
    assert set(arguments) > {"customer_id", "period", "time_preset", "start_date", "end_date"}
    tools = by_name(function_tools(pacspace_client))
    jsonschema.validate(arguments, tools["pacspace_derive_balance"].params_json_schema)  # what strict mode sends

    model = ScriptedModel(calls(("pacspace_derive_balance", arguments, "c1")), say("-1.25"))
    await run(agent(list(tools.values()), model))
    derived = model.seen["c1"]
    assert derived["ok"] is True, derived
    assert derived["result"]["computed_balance"] == "-1.25"


# --- set-up errors ----------------------------------------------------------------------------


def test_a_wrong_client_or_policy_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"AsyncPacSpace or a pacspace_sync\.PacSpace, got str"):
        function_tools("pk_test_x.y")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"policy must be a pacspace_async\.tools\.ToolPolicy"):
        function_tools("pk_test_x.y", {"allow": "*"})  # type: ignore[arg-type]
