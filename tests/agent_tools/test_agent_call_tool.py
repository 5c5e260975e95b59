"""`call_tool` against the emulator: every tool round-trips; failures come back as actions, not exceptions."""

from __future__ import annotations

import functools
import json
from decimal import Decimal
from typing import Any

import pytest

from pacspace_async import NO_KEY, AsyncPacSpace, Environment, ErrorAction, InvalidArgumentError
from pacspace_async.testing import Emulator
from pacspace_async.tools import ToolPolicy, call_tool, error_result, to_jsonable, tool_definitions

pytestmark = pytest.mark.pacspace_emulator(verify_delay=0.02)

# call_tool is read-only without a policy: every test that writes says so.
WRITES = ToolPolicy(allow=("*",))

CUSTOMER = "cust_agent"
EMIT = {"customer_id": CUSTOMER, "delta": "-42.50", "reason": "usage", "reference_id": "inv_2026_11_0001"}


def json_safe(result: dict[str, Any]) -> dict[str, Any]:
    """The result survives plain json (no default=) unchanged."""
    text = json.dumps(result, allow_nan=False)
    assert json.loads(text) == result
    return result


def ok(result: dict[str, Any]) -> dict[str, Any]:
    assert result["ok"] is True, result
    assert set(result) == {"ok", "result"}
    value: dict[str, Any] = json_safe(result)["result"]
    return value


def failed(result: dict[str, Any], action: ErrorAction) -> dict[str, Any]:
    assert result["ok"] is False, result
    assert set(result) == {"ok", "error"}
    error: dict[str, Any] = json_safe(result)["error"]
    assert error["action"] == action.value
    assert ErrorAction(error["action"]) is action
    for field in ("class", "action", "retryable", "retry_after", "message", "status", "code", "idempotency_key"):
        assert field in error
    assert error["retryable"] is (action in (ErrorAction.RETRY, ErrorAction.WAIT_AND_RETRY))
    assert error["next_step"]
    return error


async def test_every_tool_round_trips_against_the_emulator(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    called: set[str] = set()

    async def call(name: str, arguments: Any) -> dict[str, Any]:
        called.add(name)
        return ok(await call_tool(pacspace_client, name, arguments, policy=WRITES))

    emitted = await call("pacspace_emit_delta", {**EMIT, "metadata": {"plan": "growth"}})
    assert emitted["record_id"].startswith("rec_")
    assert emitted["delta"] == "-42.5"  # exact, as a decimal string
    assert emitted["status"] in ("QUEUED", "PROCESSING", "VERIFIED")
    assert emitted["reference_id"] == EMIT["reference_id"]
    assert emitted["idempotency_key"] == "sandbox:balance.delta:cust_agent:inv_2026_11_0001"
    assert "raw" not in emitted
    record_id = emitted["record_id"]

    status = await call("pacspace_delta_status", {"record_id": record_id})
    assert status["record_id"] == record_id
    assert isinstance(status["is_final"], bool)

    final = await call("pacspace_wait_for_verified", {"record_id": record_id, "timeout": 10, "poll_interval": 0.02})
    assert final["status"] == "VERIFIED"
    assert final["is_final"] is True

    derived = await call("pacspace_derive_balance", {"customer_id": CUSTOMER})
    assert derived["computed_balance"] == "-42.5"
    assert derived["deltas_count"] == 1
    assert derived["deltas"][0]["delta"] == "-42.5"

    compared = await call(
        "pacspace_compare_balances", {"customer_id": CUSTOMER, "your_balance": "-42.50", "their_balance": "-40"}
    )
    assert compared == {**compared, "neutral_balance": "-42.5", "matches_yours": True, "matches_theirs": False}

    checkpoint = await call("pacspace_create_checkpoint", {"customer_id": CUSTOMER})
    assert checkpoint["checkpoint_id"].startswith("chk_")
    assert checkpoint["proof_root"].startswith("0x")
    assert checkpoint["created_at"].endswith("Z")

    receipt = await call("pacspace_get_receipt", {"customer_id": CUSTOMER, "period": derived["period"]})
    assert receipt["final_balance"] == "-42.5"
    assert receipt["proof_root"] == checkpoint["proof_root"]
    assert receipt["verification_api_url"].startswith("http://127.0.0.1:")

    verified = await call("pacspace_verify_proof", {"proof_root": final["receipt_id"], "source": "both"})
    assert verified["verified"] is True
    assert verified["summary"]["net_change"] == "-42.5"

    assert called == {tool.name for tool in tool_definitions()}
    assert len(pacspace_emulator.deltas(CUSTOMER)) == 1


async def test_json_text_arguments_as_openai_sends_them_keep_money_exact(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    text = json.dumps({**EMIT, "delta": 0.1})  # a JSON number: read as Decimal("0.1"), never 0.1000000000000000055
    emitted = ok(await call_tool(pacspace_client, "pacspace_emit_delta", text, policy=WRITES))
    assert emitted["delta"] == "0.1"
    assert pacspace_emulator.deltas(CUSTOMER)[0].delta == Decimal("0.1")
    # bytes work too, and nulls for optional arguments mean "not given"
    status = ok(
        await call_tool(pacspace_client, "pacspace_derive_balance", b'{"customer_id": "cust_agent", "period": null}')
    )
    assert status["computed_balance"] == "0.1"


# (tool, arguments, what the refusal says). Names and shapes are checked by binding the arguments
# to the method's signature; values by the SDK method's own checks, before anything is sent.
BAD_ARGUMENTS: list[tuple[str, Any, str]] = [
    ("pacspace_emit_delta", {k: v for k, v in EMIT.items() if k != "reference_id"}, "reference_id: required"),
    ("pacspace_emit_delta", {**EMIT, "delta": "forty-two"}, "delta must be a Decimal, int or numeric string"),
    ("pacspace_emit_delta", {**EMIT, "delta": True}, "delta must be a Decimal, int or numeric string (a bool"),
    ("pacspace_emit_delta", {**EMIT, "delta": "0"}, "delta must not be zero"),
    ("pacspace_emit_delta", {**EMIT, "delta": "1000000000.01"}, "delta must be within"),
    ("pacspace_emit_delta", {**EMIT, "idempotency_key": "k"}, "idempotency_key: unexpected argument"),
    ("pacspace_emit_delta", {**EMIT, "customer_id": "cust agent"}, "customer_id must be 1-128 characters"),
    ("pacspace_emit_delta", {**EMIT, "metadata": "plan=growth"}, "metadata must be a mapping"),
    ("pacspace_emit_delta", {**EMIT, "reason": "   "}, "reason must be a non-empty string"),
    ("pacspace_delta_status", {"record_id": ""}, "record_id must be a non-empty string"),
    ("pacspace_delta_status", {"record_id": ".."}, "record_id cannot be '..'"),
    ("pacspace_delta_status", {}, "record_id: required"),
    ("pacspace_delta_status", {"record_id": None}, "record_id: required"),  # null is "not given"
    ("pacspace_wait_for_verified", {"record_id": "rec_1", "timeout": -1}, "timeout must be a positive number"),
    ("pacspace_derive_balance", {"customer_id": CUSTOMER, "limit": "10"}, "limit must be a whole number >= 1"),
    ("pacspace_derive_balance", {"customer_id": CUSTOMER, "limit": 10.5}, "limit must be a whole number >= 1"),
    ("pacspace_derive_balance", {"customer_id": CUSTOMER, "time_preset": "last_week"}, "time_preset must be one of"),
    (
        "pacspace_derive_balance",
        {"customer_id": CUSTOMER, "period": "2026-11", "time_preset": "current_month"},
        "period cannot be combined with time_preset",  # the SDK's scope rules, still before any I/O
    ),
    ("pacspace_compare_balances", {"customer_id": CUSTOMER, "your_balance": "1"}, "their_balance: required"),
    ("pacspace_create_checkpoint", {"period": "2026-13"}, "period must be 'YYYY-MM'"),
    ("pacspace_get_receipt", {"customer_id": CUSTOMER, "start_date": "yesterday", "end_date": "today"}, "start_date"),
    ("pacspace_verify_proof", {"proof_root": "0xabc", "source": "web"}, "source must be one of db, chain, both"),
    ("pacspace_emit_delta", ["cust_agent", "-1"], "arguments must be a JSON object, got list"),
    ("pacspace_emit_delta", '{"customer_id": ', "arguments are not valid JSON"),
    ("pacspace_emit_delta", '{"customer_id": "c", "delta": NaN}', "arguments are not valid JSON"),
    ("pacspace_emit_delta", b"\xff{}", "arguments must be UTF-8 JSON text"),
    ("pacspace_emit_delta", '{"metadata": ' + "[" * 5000 + "]" * 5000 + "}", "arguments are not valid JSON"),
    (
        "pacspace_emit_delta",
        {**EMIT, "metadata": functools.reduce(lambda inner, _: {"x": inner}, range(200), {})},
        "metadata must not nest more than 90 levels",
    ),
    ("pacspace_emit", EMIT, "unknown tool 'pacspace_emit'"),
]


@pytest.mark.parametrize(("name", "arguments", "says"), BAD_ARGUMENTS)
async def test_bad_arguments_return_fix_input_without_sending_anything(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator, name: str, arguments: Any, says: str
) -> None:
    # Every tool allowed: what refuses these is the binding or the method's checks, not the policy.
    error = failed(await call_tool(pacspace_client, name, arguments, policy=WRITES), ErrorAction.FIX_INPUT)
    assert error["class"] == "InvalidArgumentError"
    assert error["code"] == ("UNKNOWN_TOOL" if name == "pacspace_emit" else "INVALID_ARGUMENTS")
    assert says in error["message"]
    assert error["status"] is None
    assert error["retry_after"] is None
    assert "correct them" in error["next_step"]
    assert pacspace_emulator.requests == []
    assert pacspace_emulator.deltas() == []


async def test_the_method_refuses_bad_values_as_a_direct_call_would(pacspace_client: AsyncPacSpace) -> None:
    # One gate: the tool's refusal is the SDK method's own error, word for word.
    arguments = {**EMIT, "delta": "forty-two"}
    with pytest.raises(InvalidArgumentError) as direct:
        await pacspace_client.balance.emit(**arguments)
    error = failed(
        await call_tool(pacspace_client, "pacspace_emit_delta", arguments, policy=WRITES), ErrorAction.FIX_INPUT
    )
    assert error["message"] == direct.value.message


async def test_unbindable_arguments_are_listed_one_by_one(pacspace_client: AsyncPacSpace) -> None:
    result = await call_tool(
        pacspace_client, "pacspace_emit_delta", {"customer_id": "a b", "delta": "x", "foo": 1}, policy=WRITES
    )
    error = failed(result, ErrorAction.FIX_INPUT)
    assert error["code"] == "INVALID_ARGUMENTS"
    assert len(error["errors"]) == 3  # foo unexpected; reason and reference_id missing
    text = "\n".join(error["errors"])
    for part in ("foo: unexpected argument", "reason: required", "reference_id: required"):
        assert part in text
    assert "known: customer_id, delta, reason, reference_id, metadata, adjusts" in text
    # Once the names bind, the method's checks speak and name the bad value.
    bound = failed(
        await call_tool(pacspace_client, "pacspace_emit_delta", {**EMIT, "customer_id": "a b"}, policy=WRITES),
        ErrorAction.FIX_INPUT,
    )
    assert bound["code"] == "INVALID_ARGUMENTS"
    assert bound["message"].startswith("customer_id must be")
    unknown = failed(await call_tool(pacspace_client, "nope", {}), ErrorAction.FIX_INPUT)
    assert unknown["code"] == "UNKNOWN_TOOL"
    # the model is told the tools it may call: read-only ones without a policy
    readable = ", ".join(tool.name for tool in tool_definitions() if tool.read_only)
    assert unknown["message"] == f"unknown tool 'nope'; the tools are: {readable}"


async def test_bad_arguments_to_a_write_the_policy_forbids_are_refused_by_the_policy(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    # Names are checked first (a model learns the shape), then the policy, then the values.
    missing = failed(await call_tool(pacspace_client, "pacspace_emit_delta", {"delta": "x"}), ErrorAction.FIX_INPUT)
    assert missing["code"] == "INVALID_ARGUMENTS"
    refused = failed(
        await call_tool(pacspace_client, "pacspace_emit_delta", {**EMIT, "delta": "x"}), ErrorAction.ALERT_OPERATOR
    )
    assert refused["code"] == "POLICY_TOOL_NOT_ALLOWED"
    assert pacspace_emulator.requests == []


async def test_a_revoked_key_returns_alert_operator_and_no_secret(pacspace_emulator: Emulator) -> None:
    key = pacspace_emulator.create_key()
    async with AsyncPacSpace(key, base_urls=pacspace_emulator.base_urls) as pac:
        pacspace_emulator.revoke_key(key)
        result = await call_tool(pac, "pacspace_emit_delta", EMIT, policy=WRITES)
    error = failed(result, ErrorAction.ALERT_OPERATOR)
    assert error["class"] == "AuthenticationError"
    assert error["status"] == 401
    assert error["code"] == "API_KEY_REVOKED"
    assert error["key_id"] == key.split(".")[0]
    assert "Stop and tell a human operator" in error["next_step"]
    secret = key.split(".", 1)[1]
    assert secret not in json.dumps(result)
    assert len(pacspace_emulator.requests) == 1  # never retried


async def test_a_key_without_the_permission_returns_alert_operator(pacspace_emulator: Emulator) -> None:
    async with pacspace_emulator.client(permissions={"balance:read"}) as pac:
        error = failed(await call_tool(pac, "pacspace_emit_delta", EMIT, policy=WRITES), ErrorAction.ALERT_OPERATOR)
    assert error["class"] == "PermissionDeniedError"
    assert error["status"] == 403


async def test_no_key_at_all_returns_alert_operator_without_sending_but_verify_works(
    pacspace_emulator: Emulator,
) -> None:
    async with AsyncPacSpace(NO_KEY, environment=Environment.SANDBOX, base_urls=pacspace_emulator.base_urls) as pac:
        error = failed(await call_tool(pac, "pacspace_emit_delta", EMIT, policy=WRITES), ErrorAction.ALERT_OPERATOR)
        assert error["class"] == "MissingApiKeyError"
        assert pacspace_emulator.requests == []
        verified = ok(await call_tool(pac, "pacspace_verify_proof", {"proof_root": "0x" + "00" * 32}))
    assert verified["verified"] is False


@pytest.mark.pacspace_emulator(verify_delay=0.02, rate_limit=0.5)
async def test_a_429_returns_wait_and_retry_with_retry_after(pacspace_emulator: Emulator) -> None:
    async with pacspace_emulator.client(max_retries=0) as pac:
        ok(await call_tool(pac, "pacspace_emit_delta", EMIT, policy=WRITES))  # the one request the bucket allows now
        result = await call_tool(pac, "pacspace_delta_status", {"record_id": "rec_anything"})
    error = failed(result, ErrorAction.WAIT_AND_RETRY)
    assert error["class"] == "RateLimitError"
    assert error["status"] == 429
    assert error["code"] == "RATE_LIMITED"
    assert isinstance(error["retry_after"], float)
    assert 0 < error["retry_after"] <= 2.5
    assert "retry_after" in error["next_step"]


async def test_the_same_emit_replayed_three_times_leaves_one_delta(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    results = [ok(await call_tool(pacspace_client, "pacspace_emit_delta", dict(EMIT), policy=WRITES)) for _ in range(3)]
    assert len({r["record_id"] for r in results}) == 1
    assert len({r["idempotency_key"] for r in results}) == 1
    ledger = pacspace_emulator.deltas(CUSTOMER)
    assert len(ledger) == 1
    assert ledger[0].delta == Decimal("-42.50")
    assert ledger[0].reference_id == EMIT["reference_id"]
    # a restarted agent (a new client, a new key) sending it again still leaves one delta
    async with pacspace_emulator.client() as restarted:
        again = ok(await call_tool(restarted, "pacspace_emit_delta", dict(EMIT), policy=WRITES))
    assert again["record_id"] == results[0]["record_id"]
    assert len(pacspace_emulator.deltas(CUSTOMER)) == 1


async def test_an_emit_whose_answer_was_lost_is_retried_by_the_agent_without_double_counting(
    pacspace_emulator: Emulator,
) -> None:
    # The write happens, then the connection drops before the answer: the agent sees RETRY.
    pacspace_emulator.inject("drop_after_write", method="POST", path="/api/v1/balance/delta")
    async with pacspace_emulator.client(max_retries=0) as pac:
        lost = failed(await call_tool(pac, "pacspace_emit_delta", EMIT, policy=WRITES), ErrorAction.RETRY)
        assert lost["class"] == "APIConnectionError"
        assert lost["idempotency_key"] == "sandbox:balance.delta:cust_agent:inv_2026_11_0001"
        retried = ok(
            await call_tool(pac, "pacspace_emit_delta", EMIT, policy=WRITES)
        )  # same arguments, same reference_id
    assert len(pacspace_emulator.deltas(CUSTOMER)) == 1
    assert pacspace_emulator.deltas(CUSTOMER)[0].record_id == retried["record_id"]


async def test_the_same_reference_with_another_amount_is_refused_as_fix_input(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    ok(await call_tool(pacspace_client, "pacspace_emit_delta", EMIT, policy=WRITES))
    error = failed(
        await call_tool(pacspace_client, "pacspace_emit_delta", {**EMIT, "delta": "-40"}, policy=WRITES),
        ErrorAction.FIX_INPUT,
    )
    assert error["status"] == 409
    assert "new reference_id" in error["next_step"]
    assert len(pacspace_emulator.deltas(CUSTOMER)) == 1


@pytest.mark.pacspace_emulator(verify_delay=None)  # deltas stay QUEUED until settle()
async def test_a_wait_that_times_out_returns_wait_and_retry_with_the_record(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    record_id = ok(await call_tool(pacspace_client, "pacspace_emit_delta", EMIT, policy=WRITES))["record_id"]
    result = await call_tool(
        pacspace_client, "pacspace_wait_for_verified", {"record_id": record_id, "timeout": 0.05, "poll_interval": 0.01}
    )
    error = failed(result, ErrorAction.WAIT_AND_RETRY)
    assert error["class"] == "VerificationTimeoutError"
    assert error["record_id"] == record_id
    assert error["last_status"] == "QUEUED"
    assert error["retry_after"] is None


def test_error_results_and_jsonable_values_are_plain_json() -> None:
    from datetime import datetime, timezone

    from pacspace_async import DeltaStatus, RateLimitError

    error = RateLimitError(
        "slow down", status=429, code="RATE_LIMITED", method="POST", path="/x", retry_after=1.5, key_id="pk_test_a"
    )
    result = error_result(error)
    assert result["error"]["retry_after"] == 1.5
    assert result["error"]["class"] == "RateLimitError"
    json_safe(result)
    value = {"at": datetime(2026, 11, 1, tzinfo=timezone.utc), "amount": Decimal("1.10"), "s": DeltaStatus.VERIFIED}
    assert to_jsonable(value) == {"at": "2026-11-01T00:00:00Z", "amount": "1.10", "s": "VERIFIED"}
