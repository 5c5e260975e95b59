"""Money through `call_tool` stays exact however the JSON number arrives; a float given to the SDK is refused."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from pacspace_async import AsyncPacSpace, InvalidArgumentError
from pacspace_async.testing import Emulator
from pacspace_async.tools import ToolPolicy, call_tool, tool_definitions

EMIT = {"customer_id": "cust_agent", "reason": "usage", "reference_id": "inv_1"}
EMITS = ToolPolicy(allow=("read", "pacspace_emit_delta"))


def emitted(result: dict[str, Any]) -> dict[str, Any]:
    assert result["ok"] is True, result
    value: dict[str, Any] = result["result"]
    return value


@pytest.mark.parametrize(
    ("number", "exact"),
    [(0.1, Decimal("0.1")), (-42.5, Decimal("-42.5")), (1e-07, Decimal("1E-7")), (-1234.56, Decimal("-1234.56"))],
)
async def test_a_float_the_host_parsed_is_taken_at_its_shortest_repr(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator, number: float, exact: Decimal
) -> None:
    # A host (an agent framework) that parsed the model's JSON itself hands over a float.
    result = await call_tool(pacspace_client, "pacspace_emit_delta", {**EMIT, "delta": number}, policy=EMITS)
    assert emitted(result)["delta"] == str(exact)
    (stored,) = pacspace_emulator.deltas("cust_agent")
    assert stored.delta == exact  # exact, never 0.1000000000000000055511151231257827...


async def test_json_text_numbers_are_read_as_decimals(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    text = '{"customer_id": "cust_agent", "reason": "usage", "reference_id": "inv_1", "delta": -0.30}'
    emitted(await call_tool(pacspace_client, "pacspace_emit_delta", text, policy=EMITS))
    assert pacspace_emulator.deltas("cust_agent")[0].delta == Decimal("-0.30")
    compared = await call_tool(
        pacspace_client,
        "pacspace_compare_balances",
        json.dumps({"customer_id": "cust_agent", "your_balance": 0.1, "their_balance": -0.3}),
    )
    assert compared["ok"] is True, compared


async def test_the_sdk_itself_refuses_the_float_the_tool_converted(pacspace_client: AsyncPacSpace) -> None:
    with pytest.raises(InvalidArgumentError, match=r'pass Decimal\("0.1"\) or the string "0.1"'):
        await pacspace_client.balance.emit(**EMIT, delta=0.1)  # type: ignore[arg-type]


async def test_a_reference_id_over_the_limit_is_refused_before_sending(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    (emit,) = tool_definitions(["pacspace_emit_delta"])
    assert emit.input_schema["properties"]["reference_id"]["maxLength"] == 255  # the model is told the limit
    arguments = {**EMIT, "delta": "-1", "reference_id": "r" * 256}
    result = await call_tool(pacspace_client, "pacspace_emit_delta", arguments, policy=EMITS)
    assert result["ok"] is False
    assert result["error"]["code"] == "INVALID_ARGUMENTS"
    assert "reference_id must be at most 255 characters, got 256" in result["error"]["message"]
    assert pacspace_emulator.requests == []


@pytest.mark.parametrize(
    ("delta", "allowed"),
    [(0.3, True), ("-0.30", True), (-0.3, True), (0.30000000000000004, False), ("0.3000000000000000001", False)],
)
async def test_the_policy_bounds_the_exact_amount(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator, delta: object, allowed: bool
) -> None:
    # The bound is compared with the amount the SDK will send, never with a binary float.
    policy = ToolPolicy(allow=("pacspace_emit_delta",), max_abs_delta=Decimal("0.3"), max_total="0.3")
    result = await call_tool(pacspace_client, "pacspace_emit_delta", {**EMIT, "delta": delta}, policy=policy)
    if allowed:
        assert emitted(result)["delta"] in ("0.3", "-0.3", "-0.30")
        assert policy.total == Decimal("0.3")
    else:
        assert result["error"]["code"] == "POLICY_DELTA_TOO_LARGE"
        assert policy.total == 0
        assert pacspace_emulator.requests == []


async def test_the_policy_limits_take_exact_amounts_only() -> None:
    assert ToolPolicy(max_abs_delta="50", max_total=100).max_abs_delta == Decimal("50")
    with pytest.raises(InvalidArgumentError, match="max_abs_delta must be exact"):
        ToolPolicy(max_abs_delta=0.1)
    with pytest.raises(InvalidArgumentError, match="max_total must be more than 0"):
        ToolPolicy(max_total="0")
