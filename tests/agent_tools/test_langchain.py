"""LangChain adapter: real langchain-core `StructuredTool`s against the emulator, both clients, offline."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import StructuredTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from pacspace_async import AsyncPacSpace, ConfigurationError
from pacspace_async.testing import Emulator
from pacspace_async.tools import ToolCall, ToolCallRecord, ToolPolicy, strict_schema, tool_definitions
from pacspace_async.tools.langchain import structured_tools
from pacspace_sync import PacSpace

pytestmark = pytest.mark.pacspace_emulator(verify_delay=0.02)

CUSTOMER = "cust_lc"
EMIT = {"customer_id": CUSTOMER, "delta": "-42.50", "reason": "usage", "reference_id": "lc-inv-1"}
EMIT_TOOL = "pacspace_emit_delta"
DERIVE_TOOL = "pacspace_derive_balance"
WRITES = ("read", EMIT_TOOL)


def by_name(tools: list[StructuredTool]) -> dict[str, StructuredTool]:
    return {tool.name: tool for tool in tools}


def tool_call(name: str, args: dict[str, Any], call_id: str = "call_1") -> dict[str, Any]:
    """A tool call as a chat model returns it in ``AIMessage.tool_calls`` and an agent passes it on."""
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def ok(result: Any) -> dict[str, Any]:
    assert isinstance(result, dict), result
    assert result["ok"] is True, result
    assert json.loads(json.dumps(result, allow_nan=False)) == result  # JSON-safe as it is
    value: dict[str, Any] = result["result"]
    return value


def refused(result: Any, code: str) -> dict[str, Any]:
    assert isinstance(result, dict), result
    assert result["ok"] is False, result
    error: dict[str, Any] = result["error"]
    assert error["code"] == code, error
    assert error["action"]
    assert error["message"]
    return error


def message_result(message: Any, call_id: str = "call_1", name: str = EMIT_TOOL) -> dict[str, Any]:
    """The ToolMessage an agent gets: JSON text for the model, the dict as the artifact."""
    assert isinstance(message, ToolMessage), message
    assert (message.tool_call_id, message.name) == (call_id, name)
    assert isinstance(message.content, str)
    result: dict[str, Any] = json.loads(message.content)
    assert result == message.artifact
    assert message.status == ("success" if result["ok"] else "error")
    return result


# --- the tools are the registry's ----------------------------------------------------------------


async def test_the_tools_are_the_policys_registry_tools_with_their_schemas(pacspace_client: AsyncPacSpace) -> None:
    read_only = structured_tools(pacspace_client)
    assert [tool.name for tool in read_only] == [tool.name for tool in ToolPolicy().tools()]
    assert all(definition.read_only for definition in ToolPolicy().tools())
    everything = structured_tools(pacspace_client, ToolPolicy(allow=("*",)))
    assert [tool.name for tool in everything] == [definition.name for definition in tool_definitions()]
    for tool, definition in zip(everything, tool_definitions(), strict=True):
        assert isinstance(tool, StructuredTool)
        assert tool.description == definition.description
        assert tool.args_schema == definition.input_schema
        assert tool.coroutine is not None
        assert tool.func is not None
        assert tool.metadata == {"pacspace_method": definition.method, "read_only": definition.read_only}
        # What a chat model is sent (bind_tools goes through this conversion) is the registry's schema.
        sent = convert_to_openai_tool(tool)["function"]
        assert (sent["name"], sent["description"]) == (definition.name, definition.description)
        assert sent["parameters"] == definition.input_schema
    names = [tool.name for tool in structured_tools(pacspace_client, ToolPolicy(allow=("read", EMIT_TOOL)))]
    assert EMIT_TOOL in names
    assert "pacspace_create_checkpoint" not in names


async def test_strict_gives_schemas_that_langchain_strict_mode_keeps(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    policy = ToolPolicy(allow=("*",))
    strict = by_name(structured_tools(pacspace_client, policy, strict=True))
    for definition in tool_definitions():
        assert strict[definition.name].args_schema == strict_schema(definition)
        sent = convert_to_openai_tool(strict[definition.name], strict=True)["function"]
        assert sent["parameters"] == strict_schema(definition)
    # Why: LangChain's own strict conversion of the plain schema makes every optional argument required.
    plain = by_name(structured_tools(pacspace_client, policy))[DERIVE_TOOL]
    forced = convert_to_openai_tool(plain, strict=True)["function"]["parameters"]
    assert set(forced["required"]) == set(forced["properties"]) != {"customer_id"}
    # A strict-mode model sends null for every optional argument: null means "not given".
    for name, arguments in ((EMIT_TOOL, EMIT), (DERIVE_TOOL, {"customer_id": CUSTOMER})):
        (definition,) = tool_definitions([name])
        nulls = dict.fromkeys(strict_schema(definition)["properties"])
        ok(await strict[name].ainvoke({**nulls, **arguments}))
    assert len(pacspace_emulator.deltas(CUSTOMER)) == 1


async def test_bad_set_ups_are_refused_with_the_fix(pacspace_client: AsyncPacSpace) -> None:
    with pytest.raises(ConfigurationError, match=r"AsyncPacSpace or a pacspace_sync\.PacSpace"):
        structured_tools("pk_test_x.y")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="ToolPolicy"):
        structured_tools(pacspace_client, ("read",))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="strict"):
        structured_tools(pacspace_client, strict="yes")  # type: ignore[arg-type]


# --- an AsyncPacSpace ----------------------------------------------------------------------------


async def test_async_client_ainvoke_and_invoke_from_a_worker_thread(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    tools = by_name(structured_tools(pacspace_client, ToolPolicy(allow=WRITES)))
    emitted = ok(await tools[EMIT_TOOL].ainvoke(EMIT))
    assert emitted["record_id"].startswith("rec_")
    # A framework that runs tools in worker threads: the call goes to the client's loop, this one keeps running.
    status = ok(await asyncio.to_thread(tools["pacspace_delta_status"].invoke, {"record_id": emitted["record_id"]}))
    assert status["record_id"] == emitted["record_id"]
    # Optional arguments may be left out: the method's defaults apply (here the current month).
    derived = ok(await tools[DERIVE_TOOL].ainvoke({"customer_id": CUSTOMER}))
    assert derived["computed_balance"] == "-42.5"
    message = await tools[DERIVE_TOOL].ainvoke(tool_call(DERIVE_TOOL, {"customer_id": CUSTOMER}, "call_9"))
    assert message_result(message, "call_9", DERIVE_TOOL)["result"]["deltas_count"] == 1
    threaded = await asyncio.to_thread(tools[EMIT_TOOL].invoke, tool_call(EMIT_TOOL, EMIT, "call_2"))
    assert message_result(threaded, "call_2")["result"]["record_id"] == emitted["record_id"]
    assert len(pacspace_emulator.deltas(CUSTOMER)) == 1


async def test_async_client_invoke_on_a_running_loop_raises_instead_of_blocking_it(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    tool = by_name(structured_tools(pacspace_client, ToolPolicy(allow=WRITES)))[EMIT_TOOL]
    with pytest.raises(RuntimeError, match=r"await tool\.ainvoke"):
        tool.invoke(EMIT)
    assert pacspace_emulator.requests == []


def test_async_client_tools_made_outside_a_loop_follow_the_client(pacspace_emulator_thread: Emulator) -> None:
    pac = AsyncPacSpace(pacspace_emulator_thread.create_key(), base_urls=pacspace_emulator_thread.base_urls)
    tools = by_name(structured_tools(pac, ToolPolicy(allow=WRITES)))
    with pytest.raises(RuntimeError, match="none is running"):
        tools[EMIT_TOOL].invoke(EMIT)  # no loop has the client yet: there is nowhere to wait
    assert pacspace_emulator_thread.requests == []

    async def main() -> tuple[Any, Any]:
        try:
            emitted = await tools[EMIT_TOOL].ainvoke(EMIT)  # the client now lives on this loop
            return emitted, await asyncio.to_thread(tools[DERIVE_TOOL].invoke, {"customer_id": CUSTOMER})
        finally:
            await pac.aclose()

    emitted, derived = asyncio.run(main())
    assert ok(emitted)["delta"] == ok(derived)["computed_balance"] == "-42.5"


# --- a pacspace_sync.PacSpace --------------------------------------------------------------------


async def test_sync_client_invoke_and_ainvoke(
    pacspace_sync_client: PacSpace, pacspace_emulator_thread: Emulator
) -> None:
    tools = by_name(structured_tools(pacspace_sync_client, ToolPolicy(allow=WRITES)))
    assert all(tool.coroutine is None and tool.func is not None for tool in tools.values())
    emitted = ok(await tools[EMIT_TOOL].ainvoke(EMIT))  # LangChain's executor thread: the loop stays free
    derived = ok(await asyncio.to_thread(tools[DERIVE_TOOL].invoke, {"customer_id": CUSTOMER}))
    assert derived["computed_balance"] == "-42.5"
    message = await tools["pacspace_delta_status"].ainvoke(
        tool_call("pacspace_delta_status", {"record_id": emitted["record_id"]})
    )
    assert message_result(message, name="pacspace_delta_status")["result"]["record_id"] == emitted["record_id"]


def test_sync_client_invoke_in_blocking_code(
    pacspace_sync_client: PacSpace, pacspace_emulator_thread: Emulator
) -> None:
    tools = by_name(structured_tools(pacspace_sync_client, ToolPolicy(allow=WRITES)))
    emitted = ok(tools[EMIT_TOOL].invoke(EMIT))
    message = tools[EMIT_TOOL].invoke(tool_call(EMIT_TOOL, EMIT))
    assert message_result(message)["result"]["record_id"] == emitted["record_id"]
    bad = message_result(tools[EMIT_TOOL].invoke(tool_call(EMIT_TOOL, {**EMIT, "delta": "one"})))
    assert bad["ok"] is False
    assert bad["error"]["action"] == "fix_input"
    assert len(pacspace_emulator_thread.deltas(CUSTOMER)) == 1


# --- both clients: policy, replays, audit, the loop ----------------------------------------------


class Clients:
    """Run one tool call through either client kind, the way an async agent would (ainvoke)."""

    def __init__(self, kind: str, emulator: Emulator, client: AsyncPacSpace | PacSpace) -> None:
        self.kind, self.emulator, self.client = kind, emulator, client

    def tools(self, policy: ToolPolicy) -> dict[str, StructuredTool]:
        return by_name(structured_tools(self.client, policy))


@pytest.fixture(params=["async", "sync"])
def clients(request: pytest.FixtureRequest) -> Iterator[Clients]:
    # Each kind with its own emulator: on the test's loop for AsyncPacSpace, on a thread for PacSpace.
    if request.param == "async":
        yield Clients("async", request.getfixturevalue("pacspace_emulator"), request.getfixturevalue("pacspace_client"))
    else:
        yield Clients(
            "sync", request.getfixturevalue("pacspace_emulator_thread"), request.getfixturevalue("pacspace_sync_client")
        )


async def test_a_policy_refusal_sends_nothing_and_comes_back_structured(clients: Clients) -> None:
    records: list[ToolCallRecord] = []
    small = clients.tools(ToolPolicy(allow=WRITES, max_abs_delta=Decimal("10"), on_tool_call=records.append))
    error = refused(await small[EMIT_TOOL].ainvoke(EMIT), "POLICY_DELTA_TOO_LARGE")
    assert "do not split" in error["message"]
    message = await small[EMIT_TOOL].ainvoke(tool_call(EMIT_TOOL, EMIT, "call_7"))
    assert message_result(message, "call_7")["error"]["code"] == "POLICY_DELTA_TOO_LARGE"
    elsewhere = clients.tools(ToolPolicy(allow=WRITES, customers=("cust_other_*",)))
    refused(await elsewhere[DERIVE_TOOL].ainvoke({"customer_id": CUSTOMER}), "POLICY_CUSTOMER_NOT_ALLOWED")
    host = clients.tools(ToolPolicy(allow=WRITES, approve=True))  # LangChain has no approval step of its own
    refused(await host[EMIT_TOOL].ainvoke(EMIT), "APPROVAL_REQUIRED")
    no = clients.tools(ToolPolicy(allow=WRITES, approve=lambda call: False))
    refused(await no[EMIT_TOOL].ainvoke(EMIT), "APPROVAL_DENIED")
    typo = refused(await small[DERIVE_TOOL].ainvoke({"customer_id": CUSTOMER, "month": "2026-11"}), "INVALID_ARGUMENTS")
    assert typo["action"] == "fix_input"
    assert clients.emulator.requests == []
    assert [record.outcome for record in records] == ["refused"] * 3
    assert [record.code for record in records] == ["POLICY_DELTA_TOO_LARGE"] * 2 + ["INVALID_ARGUMENTS"]


async def test_an_approved_write_is_sent_and_audited(clients: Clients) -> None:
    asked: list[ToolCall] = []
    records: list[ToolCallRecord] = []

    def approve(call: ToolCall) -> bool:
        asked.append(call)
        return True

    tools = clients.tools(ToolPolicy(allow=WRITES, approve=approve, on_tool_call=records.append))
    result = message_result(await tools[EMIT_TOOL].ainvoke(tool_call(EMIT_TOOL, EMIT)))
    assert ok(result)["reference_id"] == EMIT["reference_id"]
    assert [(call.name, call.arguments["reference_id"], call.read_only) for call in asked] == [
        (EMIT_TOOL, EMIT["reference_id"], False)
    ]
    (record,) = records
    assert (record.tool, record.outcome, record.approved_by) == (EMIT_TOOL, "ok", "policy")
    assert record.idempotency_key == result["result"]["idempotency_key"]


async def test_the_same_emit_tool_call_twice_records_one_delta(clients: Clients) -> None:
    policy = ToolPolicy(allow=WRITES, max_total=Decimal("100"))
    tool = clients.tools(policy)[EMIT_TOOL]
    call = tool_call(EMIT_TOOL, EMIT, "call_emit")
    first = message_result(await tool.ainvoke(call), "call_emit")
    again = message_result(await tool.ainvoke(call), "call_emit")  # a resumed run delivers it again
    assert again["result"]["record_id"] == first["result"]["record_id"]
    assert again["result"]["replayed"] is True
    assert len(clients.emulator.deltas(CUSTOMER)) == 1
    assert policy.total == Decimal("42.50")  # the replay moved no money, so it counts once


async def test_the_event_loop_keeps_ticking_during_ainvoke(clients: Clients) -> None:
    armed, seen, seen_on_the_loop = threading.Event(), threading.Event(), asyncio.Event()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            if armed.is_set():
                ticks += 1
                if ticks >= 3:
                    seen.set()
                    seen_on_the_loop.set()

    # The approver runs in the middle of the call, where call_tool runs it: it lets the write through
    # only once this test's loop has ticked three times since the call began.
    approve: Callable[[ToolCall], bool | Awaitable[bool]]
    if clients.kind == "async":

        async def approve_on_the_loop(call: ToolCall) -> bool:
            armed.set()
            await seen_on_the_loop.wait()
            return True

        approve = approve_on_the_loop
    else:

        def approve_in_the_client_thread(call: ToolCall) -> bool:
            armed.set()
            return seen.wait(timeout=10)  # never reached while the loop is blocked: then refused

        approve = approve_in_the_client_thread
    tool = clients.tools(ToolPolicy(allow=WRITES, approve=approve))[EMIT_TOOL]
    task = asyncio.create_task(ticker())
    try:
        result = await tool.ainvoke(EMIT)
    finally:
        task.cancel()
    assert ok(result)["reference_id"] == EMIT["reference_id"]
    assert ticks >= 3


async def test_the_ticker_detects_a_blocked_loop(pacspace_sync_client: PacSpace) -> None:
    """The check above can fail: a blocking call made on the loop (what a naive adapter does) starves it."""
    from pacspace_sync.tools import call_tool as blocking_call_tool

    seen = threading.Event()

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0)
            seen.set()

    policy = ToolPolicy(allow=WRITES, approve=lambda call: seen.wait(timeout=0.2))
    task = asyncio.create_task(ticker())
    try:
        with pytest.warns(RuntimeWarning, match="blocks the running loop"):
            result = blocking_call_tool(pacspace_sync_client, EMIT_TOOL, EMIT, policy=policy)
    finally:
        task.cancel()
    refused(result, "APPROVAL_DENIED")
