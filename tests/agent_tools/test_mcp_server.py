"""The MCP adapter with the real ``mcp`` package, in-process, against the emulator.

An ``mcp.Client`` connects to `create_server(pac, policy)` in both protocol eras the package
speaks: ``mode="auto"`` (2026-07-28: one request per call, approval through ``input_required``)
and ``mode="legacy"`` (the initialize handshake: approval asked in the middle of the call). The
emulator's request log shows what was sent.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext, ElicitationFnT
from mcp.shared.exceptions import MCPError

from pacspace_async import AsyncPacSpace, ConfigurationError
from pacspace_async.testing import Emulator
from pacspace_async.tools import ToolCallRecord, ToolPolicy, mcp_tools, tool_definitions
from pacspace_async.tools import mcp as adapter
from pacspace_async.tools.mcp import create_server

pytestmark = pytest.mark.pacspace_emulator(verify_delay=0.02)

CUSTOMER = "cust_mcp"
EMIT = {"customer_id": CUSTOMER, "delta": "-42.50", "reason": "usage", "reference_id": "inv_mcp_1"}
EMIT_PATH = "/api/v1/balance/delta"
ERAS = pytest.mark.parametrize("mode", ["auto", "legacy"])


def writer(**options: Any) -> ToolPolicy:
    """A policy of its own for each test: a policy counts what it lets through."""
    return ToolPolicy(allow=("read", "pacspace_emit_delta"), **options)


def emits(emu: Emulator) -> int:
    return sum(1 for r in emu.requests if r.method == "POST" and r.path == EMIT_PATH)


def structured(result: types.CallToolResult) -> dict[str, Any]:
    """The structured content, which the text content carries too (for hosts that read text only)."""
    assert isinstance(result.structured_content, dict)
    assert len(result.content) == 1
    assert isinstance(result.content[0], types.TextContent)
    assert json.loads(result.content[0].text) == result.structured_content
    assert result.is_error is (result.structured_content["ok"] is False)
    return result.structured_content


def refused(result: types.CallToolResult, code: str) -> dict[str, Any]:
    assert result.is_error, result
    error: dict[str, Any] = structured(result)["error"]
    assert error["code"] == code, error
    assert error["next_step"]
    assert "Traceback" not in result.content[0].text  # type: ignore[union-attr]
    return error


def answering(action: str, content: dict[str, Any] | None = None) -> tuple[ElicitationFnT, list[str]]:
    """An elicitation callback giving `action`, and the list of the messages it was shown."""
    shown: list[str] = []

    async def elicit(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        shown.append(params.message)
        return types.ElicitResult(action=action, content=content)  # type: ignore[arg-type]

    return elicit, shown


# --- listing --------------------------------------------------------------------------------


@ERAS
async def test_read_only_by_default_with_truthful_annotations(pacspace_client: AsyncPacSpace, mode: str) -> None:
    async with Client(create_server(pacspace_client), mode=mode) as client:
        listed = (await client.list_tools()).tools
    reads = [tool.name for tool in tool_definitions() if tool.read_only]
    assert [tool.name for tool in listed] == reads
    assert "pacspace_emit_delta" not in reads
    by_name = {tool.name: tool for tool in tool_definitions()}
    for tool in listed:
        assert tool.input_schema == by_name[tool.name].input_schema  # from the registry, as is
        assert tool.description == by_name[tool.name].description
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is True
        assert tool.annotations.destructive_hint is False
        assert tool.annotations.open_world_hint is True


async def test_emit_is_listed_only_when_allowed_and_idempotent(pacspace_client: AsyncPacSpace) -> None:
    async with Client(create_server(pacspace_client, writer())) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    emit = listed["pacspace_emit_delta"]
    assert emit.annotations is not None
    assert emit.annotations.read_only_hint is False
    assert emit.annotations.idempotent_hint is True  # its key comes from reference_id
    assert emit.annotations.destructive_hint is False
    assert emit.annotations.open_world_hint is True
    assert emit.input_schema["required"] == ["customer_id", "delta", "reason", "reference_id"]
    assert "pacspace_create_checkpoint" not in listed  # the other write tool was not allowed
    # The listing is the dict exporter's, made objects: one source for both.
    wire = [tool.model_dump(by_alias=True, exclude_none=True) for tool in listed.values()]
    assert wire == mcp_tools(policy=writer())


# --- calling --------------------------------------------------------------------------------


@ERAS
async def test_calls_return_the_call_tool_result_as_structured_content(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator, mode: str
) -> None:
    records: list[ToolCallRecord] = []
    async with Client(create_server(pacspace_client, writer(on_tool_call=records.append)), mode=mode) as client:
        emitted = structured(await client.call_tool("pacspace_emit_delta", EMIT))["result"]
        status = structured(await client.call_tool("pacspace_delta_status", {"record_id": emitted["record_id"]}))
    assert emitted["record_id"].startswith("rec_")
    assert emitted["delta"] == "-42.5"
    assert emitted["idempotency_key"] == "sandbox:balance.delta:cust_mcp:inv_mcp_1"
    assert status["result"]["record_id"] == emitted["record_id"]
    assert [d.reference_id for d in pacspace_emulator.deltas(CUSTOMER)] == ["inv_mcp_1"]
    assert [(r.tool, r.outcome) for r in records] == [("pacspace_emit_delta", "ok"), ("pacspace_delta_status", "ok")]


@ERAS
async def test_bad_input_is_a_structured_error_and_sends_nothing(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator, mode: str
) -> None:
    async with Client(create_server(pacspace_client, writer()), mode=mode) as client:
        missing = await client.call_tool("pacspace_emit_delta", {k: v for k, v in EMIT.items() if k != "reference_id"})
        comma = await client.call_tool("pacspace_emit_delta", {**EMIT, "delta": "-42,50"})
        unknown = await client.call_tool("pacspace_refund_everything", {})
    assert refused(missing, "INVALID_ARGUMENTS")["action"] == "fix_input"
    assert "reference_id" in refused(missing, "INVALID_ARGUMENTS")["message"]
    assert structured(comma)["error"]["action"] == "fix_input"
    assert structured(comma)["error"]["class"] == "InvalidArgumentError"
    refused(unknown, "UNKNOWN_TOOL")
    assert emits(pacspace_emulator) == 0


async def test_policy_refusals_send_nothing(pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator) -> None:
    capped = writer(max_abs_delta=Decimal("50"), max_total=Decimal("60"), customers=("cust_m*",))
    async with Client(create_server(pacspace_client), mode="legacy") as client:
        not_listed = await client.call_tool("pacspace_emit_delta", EMIT)  # read-only: not even listed
    async with Client(create_server(pacspace_client, capped)) as client:
        too_large = await client.call_tool("pacspace_emit_delta", {**EMIT, "delta": "-50.01"})
        other_customer = await client.call_tool("pacspace_emit_delta", {**EMIT, "customer_id": "cust_other"})
        first = await client.call_tool("pacspace_emit_delta", EMIT)
        over_total = await client.call_tool("pacspace_emit_delta", {**EMIT, "reference_id": "inv_mcp_2"})
    refused(not_listed, "POLICY_TOOL_NOT_ALLOWED")
    refused(too_large, "POLICY_DELTA_TOO_LARGE")
    refused(other_customer, "POLICY_CUSTOMER_NOT_ALLOWED")
    assert structured(first)["ok"] is True
    refused(over_total, "POLICY_TOTAL_EXCEEDED")
    assert emits(pacspace_emulator) == 1  # only the one the policy let through
    assert len(pacspace_emulator.deltas()) == 1


@ERAS
async def test_the_same_emit_delivered_twice_records_one_delta(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator, mode: str
) -> None:
    policy = writer(max_total=Decimal("100"))
    async with Client(create_server(pacspace_client, policy), mode=mode) as client:
        first = structured(await client.call_tool("pacspace_emit_delta", EMIT))["result"]
        again = structured(await client.call_tool("pacspace_emit_delta", EMIT))["result"]
    assert again["record_id"] == first["record_id"]
    assert again["replayed"] is True
    assert emits(pacspace_emulator) == 2  # delivered twice ...
    assert len(pacspace_emulator.deltas()) == 1  # ... recorded once
    assert policy.total == Decimal("42.50")  # and counted once against the running total


async def test_a_failure_of_pacspace_is_a_structured_error_without_the_secret(
    pacspace_emulator: Emulator,
) -> None:
    key = pacspace_emulator.create_key("sandbox")
    pacspace_emulator.revoke_key(key)
    async with (
        AsyncPacSpace(key, base_urls=pacspace_emulator.base_urls, max_retries=0) as pac,
        Client(create_server(pac)) as client,
    ):
        result = await client.call_tool("pacspace_derive_balance", {"customer_id": CUSTOMER})
    error = structured(result)["error"]
    assert result.is_error
    assert error["class"] == "AuthenticationError"
    assert error["action"] == "alert_operator"
    secret = key.split(".", 1)[1]
    assert secret not in result.model_dump_json()


async def test_an_unexpected_exception_is_an_error_result_never_a_traceback(
    pacspace_client: AsyncPacSpace, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("boom pk_test_abc.sEcReTvAlUe123")

    monkeypatch.setattr(adapter, "call_tool", broken)
    async with Client(create_server(pacspace_client)) as client:
        result = await client.call_tool("pacspace_derive_balance", {"customer_id": CUSTOMER})
    error = structured(result)["error"]
    assert result.is_error
    assert error["action"] == "alert_operator"
    assert "RuntimeError" in error["message"]
    text = result.model_dump_json()
    assert "sEcReTvAlUe123" not in text
    assert "Traceback" not in text
    assert "boom" not in text
    assert "sEcReTvAlUe123" not in caplog.text  # the log has the cause, redacted


# --- approval by the person at the host -----------------------------------------------------


@ERAS
async def test_approval_accepted_through_elicitation_sends_the_call(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator, mode: str
) -> None:
    records: list[ToolCallRecord] = []
    elicit, shown = answering("accept", {"approve": True})
    policy = writer(approve=True, on_tool_call=records.append)
    async with Client(create_server(pacspace_client, policy), mode=mode, elicitation_callback=elicit) as client:
        result = await client.call_tool("pacspace_emit_delta", EMIT)
        read = await client.call_tool("pacspace_derive_balance", {"customer_id": CUSTOMER})
    assert structured(result)["ok"] is True
    assert structured(read)["ok"] is True
    assert len(shown) == 1  # the write was asked about, the read was not
    assert "pacspace_emit_delta" in shown[0]
    assert '"delta": "-42.50"' in shown[0]
    assert CUSTOMER in shown[0]
    assert len(pacspace_emulator.deltas()) == 1
    assert [(r.outcome, r.approved_by) for r in records] == [("ok", "host"), ("ok", None)]


@ERAS
@pytest.mark.parametrize(
    ("action", "content"), [("decline", None), ("cancel", None), ("accept", {"approve": False}), ("accept", None)]
)
async def test_approval_declined_sends_nothing(
    pacspace_client: AsyncPacSpace,
    pacspace_emulator: Emulator,
    mode: str,
    action: str,
    content: dict[str, Any] | None,
) -> None:
    records: list[ToolCallRecord] = []
    elicit, shown = answering(action, content)
    policy = writer(approve=True, on_tool_call=records.append)
    async with Client(create_server(pacspace_client, policy), mode=mode, elicitation_callback=elicit) as client:
        result = await client.call_tool("pacspace_emit_delta", EMIT)
    assert len(shown) == 1
    refused(result, "APPROVAL_DENIED")
    assert emits(pacspace_emulator) == 0
    assert [(r.outcome, r.code) for r in records] == [("refused", "APPROVAL_DENIED")]  # one audit record
    assert policy.total == 0


@ERAS
async def test_without_elicitation_support_a_write_is_refused_as_needing_approval(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator, mode: str
) -> None:
    async with Client(create_server(pacspace_client, writer(approve=True)), mode=mode) as client:
        result = await client.call_tool("pacspace_emit_delta", EMIT)
        read = await client.call_tool("pacspace_derive_balance", {"customer_id": CUSTOMER})
    assert "approval" in refused(result, "APPROVAL_REQUIRED")["message"]
    assert structured(read)["error"]["code"] == "CUSTOMER_NOT_FOUND"  # reads need no approval: it was sent
    assert emits(pacspace_emulator) == 0


async def test_nobody_is_asked_about_a_call_the_policy_refuses_anyway(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    elicit, shown = answering("accept", {"approve": True})
    policy = writer(approve=True, max_abs_delta=Decimal("10"), customers=("cust_mcp",))
    async with Client(create_server(pacspace_client, policy), elicitation_callback=elicit) as client:
        too_large = await client.call_tool("pacspace_emit_delta", EMIT)
        elsewhere = await client.call_tool("pacspace_emit_delta", {**EMIT, "delta": "-1", "customer_id": "cust_x"})
    refused(too_large, "POLICY_DELTA_TOO_LARGE")
    refused(elsewhere, "POLICY_CUSTOMER_NOT_ALLOWED")
    assert shown == []
    assert emits(pacspace_emulator) == 0


async def test_an_approval_holds_only_for_the_call_it_was_asked_about(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    """On 2026-07-28 the client echoes the question's state back: it is sealed and bound to the arguments."""
    never, shown = answering("accept", {"approve": True})  # the test answers by hand below
    async with Client(create_server(pacspace_client, writer(approve=True)), elicitation_callback=never) as client:
        asked = await client.session.call_tool("pacspace_emit_delta", EMIT, allow_input_required=True)
        assert isinstance(asked, types.InputRequiredResult)
        assert asked.input_requests is not None
        assert asked.request_state is not None
        (key,) = asked.input_requests
        yes: types.InputResponses = {key: types.ElicitResult(action="accept", content={"approve": True})}
        bigger = {**EMIT, "delta": "-4200.00"}
        with pytest.raises(MCPError, match="requestState"):
            await client.session.call_tool(
                "pacspace_emit_delta", bigger, input_responses=yes, request_state=asked.request_state
            )
        # An answer with no state of ours is no answer: the question is asked again.
        again = await client.session.call_tool(
            "pacspace_emit_delta", bigger, input_responses=yes, allow_input_required=True
        )
        assert isinstance(again, types.InputRequiredResult)
        assert emits(pacspace_emulator) == 0
        done = await client.session.call_tool(
            "pacspace_emit_delta", EMIT, input_responses=yes, request_state=asked.request_state
        )
    assert structured(done)["ok"] is True
    assert shown == []
    assert [d.delta for d in pacspace_emulator.deltas()] == [Decimal("-42.50")]


# --- the event loop -------------------------------------------------------------------------


@pytest.mark.pacspace_emulator(verify_delay=None)
@ERAS
async def test_a_tool_call_never_blocks_the_event_loop(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator, mode: str
) -> None:
    """The wait below can only end if a ticker task runs while the call is in flight: the ticker
    is what moves the delta to VERIFIED (the emulator verifies nothing by itself here)."""
    ticks: list[int] = []

    async def ticker() -> None:
        while True:
            ticks.append(len(ticks))
            if len(ticks) == 20:
                pacspace_emulator.settle()
            await asyncio.sleep(0.005)

    async with Client(create_server(pacspace_client, writer()), mode=mode) as client:
        record_id = structured(await client.call_tool("pacspace_emit_delta", EMIT))["result"]["record_id"]
        ticking = asyncio.create_task(ticker())
        try:
            waited = await client.call_tool(
                "pacspace_wait_for_verified", {"record_id": record_id, "timeout": 30, "poll_interval": 0.01}
            )
        finally:
            ticking.cancel()
    assert structured(waited)["result"]["status"] == "VERIFIED"
    assert len(ticks) >= 20


# --- set-up errors --------------------------------------------------------------------------


async def test_create_server_refuses_what_is_not_a_client_or_a_policy(pacspace_client: AsyncPacSpace) -> None:
    with pytest.raises(ConfigurationError, match="AsyncPacSpace"):
        create_server(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="ToolPolicy"):
        create_server(pacspace_client, {"allow": "*"})  # type: ignore[arg-type]
