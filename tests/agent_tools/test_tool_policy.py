"""`ToolPolicy` against the emulator: what an agent may call, on whom and how much; a refused call is
never sent. Approval and the audit record: test_tool_approval_audit.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from conftest import SANDBOX_KEY, LoopbackServer

from pacspace_async import AsyncPacSpace, InvalidArgumentError
from pacspace_async.testing import Emulator
from pacspace_async.tools import (
    ToolCallRecord,
    ToolPolicy,
    anthropic_tools,
    call_tool,
    mcp_tools,
    openai_tools,
    tool_definitions,
)

from ._policy_support import DELTA_PATH, POLICY_CODES, VERIFY, code, emit, emits_sent

pytestmark = pytest.mark.pacspace_emulator(verify_delay=0.02)

READS = [tool.name for tool in tool_definitions() if tool.read_only]
WRITES = [tool.name for tool in tool_definitions() if not tool.read_only]
ALL = [tool.name for tool in tool_definitions()]

# One call per kind of tool that succeeds against a fresh emulator (a derive of an unknown customer
# is a 404: still sent).
SAMPLE_CALLS: dict[str, dict[str, Any]] = {
    "pacspace_derive_balance": {"customer_id": "cust_1"},
    "pacspace_emit_delta": emit("r-1", "-1"),
    "pacspace_create_checkpoint": {"customer_id": "cust_1"},
    "pacspace_verify_proof": VERIFY,
}


# --- allow: names, groups, "*"; read-only by default --------------------------------------------


@pytest.mark.parametrize(
    ("allow", "allowed"),
    [
        (("read",), READS),
        (("write",), WRITES),
        (("*",), ALL),
        (("pacspace_emit_delta",), ["pacspace_emit_delta"]),
        (("read", "pacspace_emit_delta"), ["pacspace_emit_delta", *READS]),
        ("pacspace_verify_proof", ["pacspace_verify_proof"]),  # one name alone is one name, not its letters
        ((), []),
    ],
)
async def test_allow_by_name_and_group_decides_what_is_listed_and_what_may_be_called(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator, allow: Any, allowed: list[str]
) -> None:
    policy = ToolPolicy(allow=allow)
    listed = [tool.name for tool in policy.tools()]
    assert sorted(listed) == sorted(allowed)
    assert listed == [name for name in ALL if name in allowed]  # the registry's order
    assert [t["name"] for t in anthropic_tools(policy=policy)] == listed
    assert [t["name"] for t in mcp_tools(policy=policy)] == listed
    assert [t["function"]["name"] for t in openai_tools(policy=policy)] == listed
    for name, arguments in SAMPLE_CALLS.items():
        assert policy.allows(name) is (name in allowed)
        before = len(pacspace_emulator.requests)
        result = await call_tool(pacspace_client, name, arguments, policy=policy)
        if name in allowed:  # sent (a derive of an unknown customer is a 404: still sent)
            assert code(result) not in POLICY_CODES, (name, result)
            assert len(pacspace_emulator.requests) == before + 1
        else:
            assert code(result) == "POLICY_TOOL_NOT_ALLOWED", (name, result)
            assert len(pacspace_emulator.requests) == before  # never sent
    assert policy.allows("pacspace_nope") is False


async def test_without_a_policy_the_tools_are_read_only(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    assert [tool.name for tool in ToolPolicy().tools()] == READS
    assert [t["name"] for t in anthropic_tools()] == READS
    assert [t["name"] for t in mcp_tools()] == READS
    assert [t["function"]["name"] for t in openai_tools()] == READS
    for name in WRITES:
        result = await call_tool(pacspace_client, name, SAMPLE_CALLS.get(name, {}))
        error = result["error"]
        assert (error["code"], error["action"], error["class"]) == (
            "POLICY_TOOL_NOT_ALLOWED",
            "alert_operator",
            "ToolPolicyError",
        )
        assert f"{name} is not allowed for this agent (allowed: read)" in error["message"]
    assert pacspace_emulator.requests == []
    assert (await call_tool(pacspace_client, "pacspace_verify_proof", VERIFY))["ok"] is True


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"allow": ("pacspace_emit",)}, "allow names unknown tools ['pacspace_emit']"),
        ({"allow": ("read", 3)}, "allow must be tool names and groups"),
        ({"allow": None}, "allow must be tool names and groups"),
        ({"customers": ("cust_*", "")}, "customers must be customer ids or glob patterns"),
        ({"customers": 7}, "customers must be customer ids or glob patterns"),
        ({"max_abs_delta": 0.5}, "max_abs_delta must be exact"),
        ({"max_abs_delta": "-1"}, "max_abs_delta must be more than 0"),
        ({"max_total": "lots"}, "max_total must be a Decimal, int or numeric string"),
        ({"approve": "yes"}, "approve must be None, True"),
        ({"on_tool_call": "log"}, "on_tool_call must be a callable"),
    ],
)
def test_a_bad_policy_is_refused_when_it_is_made(options: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidArgumentError) as refused:
        ToolPolicy(**options)
    assert says in refused.value.message


# --- customers: exact ids and globs ---------------------------------------------------------------


async def test_customers_exact_and_glob(pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator) -> None:
    policy = ToolPolicy(allow=("*",), customers=("cust_vip", "team_*"))
    assert (
        code(await call_tool(pacspace_client, "pacspace_emit_delta", emit("a", customer="cust_vip"), policy=policy))
        is None
    )
    assert (
        code(await call_tool(pacspace_client, "pacspace_emit_delta", emit("b", customer="team_x"), policy=policy))
        is None
    )
    sent = len(pacspace_emulator.requests)
    for customer in ("cust_other", "cust_vip2", "TEAM_x", "xteam_1"):  # exact means exact; globs are case-sensitive
        result = await call_tool(pacspace_client, "pacspace_emit_delta", emit("c", customer=customer), policy=policy)
        assert code(result) == "POLICY_CUSTOMER_NOT_ALLOWED", customer
        assert f"customer {customer!r} is not allowed" in result["error"]["message"]
        assert "cust_vip, team_*" in result["error"]["message"]
    # reads name a customer too
    for name in ("pacspace_derive_balance", "pacspace_get_receipt"):
        refused = await call_tool(pacspace_client, name, {"customer_id": "cust_other"}, policy=policy)
        assert code(refused) == "POLICY_CUSTOMER_NOT_ALLOWED"
    compare = {"customer_id": "cust_other", "your_balance": "1", "their_balance": "1"}
    assert code(await call_tool(pacspace_client, "pacspace_compare_balances", compare, policy=policy)) == (
        "POLICY_CUSTOMER_NOT_ALLOWED"
    )
    # a checkpoint without customer_id covers every customer: refused under a customer restriction
    everyone = await call_tool(pacspace_client, "pacspace_create_checkpoint", {}, policy=policy)
    assert code(everyone) == "POLICY_CUSTOMER_NOT_ALLOWED"
    assert "every customer" in everyone["error"]["message"]
    nulls = await call_tool(pacspace_client, "pacspace_create_checkpoint", {"customer_id": None}, policy=policy)
    assert code(nulls) == "POLICY_CUSTOMER_NOT_ALLOWED"  # null is "not given": still every customer
    assert len(pacspace_emulator.requests) == sent
    one = await call_tool(pacspace_client, "pacspace_create_checkpoint", {"customer_id": "team_x"}, policy=policy)
    assert one["ok"] is True, one
    # a tool that names no customer is not restricted by customers
    verified = await call_tool(
        pacspace_client, "pacspace_verify_proof", SAMPLE_CALLS["pacspace_verify_proof"], policy=policy
    )
    assert verified["ok"] is True
    assert {d.customer_id for d in pacspace_emulator.deltas()} == {"cust_vip", "team_x"}


# --- amounts: per delta and running total -----------------------------------------------------------


async def test_max_abs_delta_bounds_each_emit_either_sign(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    policy = ToolPolicy(allow=("*",), max_abs_delta="50")
    for n, delta in enumerate(("-50", "50", "-49.99", "0.01")):
        assert (
            code(await call_tool(pacspace_client, "pacspace_emit_delta", emit(f"ok{n}", delta), policy=policy)) is None
        )
    for n, delta in enumerate(("-50.01", "50.000001", "1000")):
        result = await call_tool(pacspace_client, "pacspace_emit_delta", emit(f"no{n}", delta), policy=policy)
        assert code(result) == "POLICY_DELTA_TOO_LARGE"
        assert "do not split it" in result["error"]["message"]
    text = json.dumps(emit("json", "0")).replace('"0"', "-50.5")  # a JSON number, read exactly
    assert (
        code(await call_tool(pacspace_client, "pacspace_emit_delta", text, policy=policy)) == "POLICY_DELTA_TOO_LARGE"
    )
    assert emits_sent(pacspace_emulator) == 4
    # balances are not deltas: comparing large balances is not bounded
    compare = {"customer_id": "cust_1", "your_balance": "1000", "their_balance": "-1000"}
    assert (await call_tool(pacspace_client, "pacspace_compare_balances", compare, policy=policy))["ok"] is True


async def test_max_total_holds_under_concurrency(pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator) -> None:
    policy = ToolPolicy(allow=("pacspace_emit_delta",), max_total="50")
    results = await asyncio.gather(
        *(
            call_tool(pacspace_client, "pacspace_emit_delta", emit(f"burst-{n}", "-10"), policy=policy)
            for n in range(20)
        )
    )
    codes = [code(result) for result in results]
    assert codes.count(None) == 5
    assert codes.count("POLICY_TOTAL_EXCEEDED") == 15
    assert policy.total == Decimal("50")
    assert emits_sent(pacspace_emulator) == 5
    assert len(pacspace_emulator.deltas()) == 5
    refused = next(result for result in results if not result["ok"])
    assert "running total to 60, above its limit of 50" in refused["error"]["message"]


async def test_max_total_is_given_back_when_pacspace_refuses_the_write(pacspace_emulator: Emulator) -> None:
    policy = ToolPolicy(allow=("*",), max_total="10")
    async with pacspace_emulator.client() as pac:
        assert code(await call_tool(pac, "pacspace_emit_delta", emit("first", "-5"), policy=policy)) is None
        # 409: the same reference with another amount records nothing
        conflict = await call_tool(pac, "pacspace_emit_delta", emit("first", "-6"), policy=policy)
        assert conflict["error"]["status"] == 409
        assert policy.total == Decimal("5")
    async with pacspace_emulator.client(permissions={"balance:read"}) as reader:  # 403
        denied = await call_tool(reader, "pacspace_emit_delta", emit("second", "-5"), policy=policy)
        assert denied["error"]["status"] == 403
        assert policy.total == Decimal("5")
    key = pacspace_emulator.create_key()
    async with AsyncPacSpace(key, base_urls=pacspace_emulator.base_urls) as revoked:  # 401
        pacspace_emulator.revoke_key(key)
        assert (await call_tool(revoked, "pacspace_emit_delta", emit("third", "-5"), policy=policy))["error"][
            "status"
        ] == 401
    assert policy.total == Decimal("5")
    # the method's own refusal sends nothing either
    blank = await call_tool(revoked, "pacspace_emit_delta", {**emit("fourth", "-5"), "reason": " "}, policy=policy)
    assert code(blank) == "INVALID_ARGUMENTS"
    assert policy.total == Decimal("5")
    async with pacspace_emulator.client() as pac:
        assert code(await call_tool(pac, "pacspace_emit_delta", emit("fifth", "-5"), policy=policy)) is None
    assert policy.total == Decimal("10")
    assert [d.reference_id for d in pacspace_emulator.deltas()] == ["first", "fifth"]


@pytest.mark.parametrize("fault", ["slow", "drop_after_write", "drop_before_write"])
async def test_max_total_keeps_an_emit_whose_outcome_is_unknown(pacspace_emulator: Emulator, fault: str) -> None:
    # No answer: the delta may be recorded (drop_after_write: it is), so it keeps counting.
    pacspace_emulator.inject(fault, method="POST", path=DELTA_PATH, seconds=0.2)
    policy = ToolPolicy(allow=("*",), max_total="10")
    async with pacspace_emulator.client(max_retries=0, timeout=0.05) as pac:
        lost = await call_tool(pac, "pacspace_emit_delta", emit("lost", "-10"), policy=policy)
        assert lost["error"]["action"] == "retry"
        assert lost["error"]["class"] == ("APITimeoutError" if fault == "slow" else "APIConnectionError")
        assert policy.total == Decimal("10")
        another = await call_tool(pac, "pacspace_emit_delta", emit("another", "-1"), policy=policy)
        assert code(another) == "POLICY_TOTAL_EXCEEDED"
        if fault == "slow":
            return  # the first request is still being answered, late
        # the retry the model is told to make: the same event, counted once, even at the limit
        retried = await call_tool(pac, "pacspace_emit_delta", emit("lost", "-10"), policy=policy)
        assert retried["ok"] is True, retried
        assert retried["result"]["replayed"] is (fault == "drop_after_write")
        assert policy.total == Decimal("10")
    assert emits_sent(pacspace_emulator) == 2
    assert [d.reference_id for d in pacspace_emulator.deltas()] == ["lost"]


async def test_max_total_is_given_back_for_a_replay(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    policy = ToolPolicy(allow=("*",), max_total="20")
    first = await call_tool(pacspace_client, "pacspace_emit_delta", emit("once", "-10"), policy=policy)
    again = await call_tool(pacspace_client, "pacspace_emit_delta", emit("once", "-10"), policy=policy)
    assert again["result"]["replayed"] is True
    assert again["result"]["record_id"] == first["result"]["record_id"]
    assert policy.total == Decimal("10")  # recorded once, counted once
    assert code(await call_tool(pacspace_client, "pacspace_emit_delta", emit("two", "-10"), policy=policy)) is None
    assert policy.total == Decimal("20")
    assert len(pacspace_emulator.deltas()) == 2


async def test_at_the_limit_a_repeated_emit_still_gets_its_replay(pacspace_client: AsyncPacSpace) -> None:
    policy = ToolPolicy(allow=("*",), max_total="10")
    assert code(await call_tool(pacspace_client, "pacspace_emit_delta", emit("once", "-10"), policy=policy)) is None
    again = await call_tool(pacspace_client, "pacspace_emit_delta", emit("once", "-10"), policy=policy)
    assert again["ok"] is True, again
    assert again["result"]["replayed"] is True


@pytest.mark.pacspace_emulator(verify_delay=0.02, rate_limit=0.5)
async def test_a_4xx_after_a_lost_attempt_keeps_the_total(pacspace_emulator: Emulator) -> None:
    pacspace_emulator.inject("drop_after_write", method="POST", path=DELTA_PATH)
    policy = ToolPolicy(allow=("*",), max_total="10")
    # Room for the one retry (its backoff is 0.25-0.5 s, jittered), never for the 429's 2 s wait.
    async with pacspace_emulator.client(max_retries=2, deadline=1.9) as pac:
        result = await call_tool(pac, "pacspace_emit_delta", emit("limited", "-10"), policy=policy)
    assert result["error"]["status"] == 429  # the retry's answer
    assert len(pacspace_emulator.deltas()) == 1  # the first attempt's write
    assert policy.total == Decimal("10")


async def test_a_cancelled_emit_in_flight_keeps_the_total(loopback: Callable[[], LoopbackServer]) -> None:
    server = loopback()
    arrived = asyncio.Event()
    done = asyncio.Event()

    async def hang(request: web.Request) -> web.StreamResponse:
        arrived.set()  # the write is on PacSpace's side now
        await done.wait()
        return web.Response(status=503)

    server.route("POST", DELTA_PATH, hang)
    await server.start()
    policy = ToolPolicy(allow=("*",), max_total="10")
    try:
        async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url}) as pac:
            task = asyncio.create_task(call_tool(pac, "pacspace_emit_delta", emit("inflight"), policy=policy))
            await arrived.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    finally:
        done.set()  # let the server stop at once
    assert policy.total == Decimal("10")


# --- a refusal is never sent ----------------------------------------------------------------------------


REFUSALS: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    ("POLICY_TOOL_NOT_ALLOWED", {}, "pacspace_emit_delta", emit("r")),
    ("POLICY_TOOL_NOT_ALLOWED", {"allow": ("write",)}, "pacspace_derive_balance", {"customer_id": "cust_1"}),
    ("POLICY_CUSTOMER_NOT_ALLOWED", {"allow": ("*",), "customers": ("cust_2",)}, "pacspace_emit_delta", emit("r")),
    ("POLICY_CUSTOMER_NOT_ALLOWED", {"allow": ("*",), "customers": ("x*",)}, "pacspace_create_checkpoint", {}),
    ("POLICY_DELTA_TOO_LARGE", {"allow": ("*",), "max_abs_delta": "9.99"}, "pacspace_emit_delta", emit("r")),
    ("POLICY_TOTAL_EXCEEDED", {"allow": ("*",), "max_total": "9"}, "pacspace_emit_delta", emit("r")),
    ("APPROVAL_DENIED", {"allow": ("*",), "approve": lambda call: False}, "pacspace_emit_delta", emit("r")),
    ("APPROVAL_DENIED", {"allow": ("*",), "approve": lambda call: False}, "pacspace_create_checkpoint", {}),
    ("APPROVAL_REQUIRED", {"allow": ("*",), "approve": True}, "pacspace_emit_delta", emit("r")),
]


@pytest.mark.parametrize(("expected", "options", "name", "arguments"), REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_every_refusal_is_structured_and_never_sent(
    pacspace_client: AsyncPacSpace,
    pacspace_emulator: Emulator,
    expected: str,
    options: dict[str, Any],
    name: str,
    arguments: dict[str, Any],
) -> None:
    records: list[ToolCallRecord] = []
    policy = ToolPolicy(**options, on_tool_call=records.append)
    result = await call_tool(pacspace_client, name, json.dumps(arguments), policy=policy)
    assert result["ok"] is False
    error = result["error"]
    assert error["code"] == expected
    assert error["class"] == "ToolPolicyError"
    assert error["action"] == "alert_operator"
    assert error["retryable"] is False
    assert error["status"] is None
    assert error["idempotency_key"] is None
    assert "nothing was sent" in error["next_step"]
    assert "Do not retry it or work around it" in error["next_step"]
    json.dumps(result)
    assert pacspace_emulator.requests == []
    assert policy.total == 0
    assert [(r.tool, r.outcome, r.code, r.action) for r in records] == [(name, "refused", expected, "alert_operator")]
