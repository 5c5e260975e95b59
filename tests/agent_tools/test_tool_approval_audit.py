"""`ToolPolicy` approval and the audit record, against the emulator: an approver (sync or async, or
the host's own mechanism) is asked before every write; every call, allowed, refused, failed or
raised, leaves one `ToolCallRecord` and one `pacspace` log line."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from pacspace_async import APIConnectionError, AsyncPacSpace
from pacspace_async.testing import Emulator
from pacspace_async.tools import ToolCall, ToolCallRecord, ToolPolicy, call_tool
from pacspace_sync import PacSpace
from pacspace_sync.tools import call_tool as call_tool_sync

from ._policy_support import VERIFY, code, emit, emits_sent

pytestmark = pytest.mark.pacspace_emulator(verify_delay=0.02)


# --- approval -----------------------------------------------------------------------------------------


def approver(answer: object, asked: list[ToolCall]) -> Callable[[ToolCall], object]:
    def approve(call: ToolCall) -> object:
        asked.append(call)
        return answer

    return approve


def async_approver(answer: object, asked: list[ToolCall]) -> Callable[[ToolCall], Awaitable[object]]:
    async def approve(call: ToolCall) -> object:
        asked.append(call)
        await asyncio.sleep(0)
        return answer

    return approve


@pytest.mark.parametrize("make", [approver, async_approver], ids=["sync", "async"])
async def test_an_approver_is_asked_before_every_write_and_only_then(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator, make: Any
) -> None:
    asked: list[ToolCall] = []
    records: list[ToolCallRecord] = []
    policy = ToolPolicy(allow=("*",), approve=make(True, asked), on_tool_call=records.append)
    assert (await call_tool(pacspace_client, "pacspace_verify_proof", VERIFY, policy=policy))["ok"]
    assert asked == []  # reads need no approval
    result = await call_tool(pacspace_client, "pacspace_emit_delta", emit("approved"), policy=policy)
    assert result["ok"] is True
    assert asked == [ToolCall("pacspace_emit_delta", emit("approved"), read_only=False)]
    assert records[-1].approved_by == "policy"
    assert records[0].approved_by is None
    for answer in (False, None, "yes", 1):  # only True approves
        denied_policy = ToolPolicy(allow=("*",), max_total="100", approve=make(answer, asked))
        denied = await call_tool(pacspace_client, "pacspace_emit_delta", emit(f"no-{answer}"), policy=denied_policy)
        assert code(denied) == "APPROVAL_DENIED", answer
        assert denied["error"]["action"] == "alert_operator"
        assert "was not approved; nothing was sent" in denied["error"]["message"]
        assert denied_policy.total == 0  # the reservation went back
    assert emits_sent(pacspace_emulator) == 1


async def test_a_sync_approver_may_return_an_awaitable(pacspace_client: AsyncPacSpace) -> None:
    policy = ToolPolicy(allow=("*",), approve=lambda call: asyncio.sleep(0, result=True))
    assert (await call_tool(pacspace_client, "pacspace_emit_delta", emit("awaitable"), policy=policy))["ok"] is True


@pytest.mark.parametrize("make", [approver, async_approver], ids=["sync", "async"])
async def test_a_raising_approver_sends_nothing_and_raises_to_the_host(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator, make: Any
) -> None:
    # A broken approver is the host's bug, not something the model can act on: call_tool raises it
    # (after the audit record), fails closed, and gives the reservation back.
    class ApprovalServiceDown(Exception):
        pass

    def broken(call: ToolCall) -> object:
        raise ApprovalServiceDown("approvals unreachable")

    async def broken_async(call: ToolCall) -> object:
        raise ApprovalServiceDown("approvals unreachable")

    records: list[ToolCallRecord] = []
    policy = ToolPolicy(
        allow=("*",),
        max_total="10",
        approve=broken if make is approver else broken_async,
        on_tool_call=records.append,
    )
    with pytest.raises(ApprovalServiceDown):
        await call_tool(pacspace_client, "pacspace_emit_delta", emit("unapproved"), policy=policy)
    assert pacspace_emulator.requests == []
    assert policy.total == 0
    assert [(r.outcome, r.code, r.approved_by) for r in records] == [("failed", "ApprovalServiceDown", None)]


async def test_an_approver_raising_a_pacspace_error_gives_the_reservation_back(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    def approve(call: ToolCall) -> bool:
        raise APIConnectionError("approval backend unreachable", method="POST", path="/approvals")

    policy = ToolPolicy(allow=("*",), max_total="10", approve=approve)
    result = await call_tool(pacspace_client, "pacspace_emit_delta", emit("unapproved"), policy=policy)
    assert result["ok"] is False
    assert pacspace_emulator.requests == []
    assert policy.total == 0


async def test_approve_true_needs_the_host_and_approved_true_is_the_host_saying_yes(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator
) -> None:
    records: list[ToolCallRecord] = []
    policy = ToolPolicy(allow=("*",), approve=True, on_tool_call=records.append)
    assert policy.needs_host_approval("pacspace_emit_delta") is True
    assert policy.needs_host_approval("pacspace_create_checkpoint") is True
    assert policy.needs_host_approval("pacspace_derive_balance") is False
    assert ToolPolicy(allow=("*",)).needs_host_approval("pacspace_emit_delta") is False
    required = await call_tool(pacspace_client, "pacspace_emit_delta", emit("host"), policy=policy)
    assert code(required) == "APPROVAL_REQUIRED"
    assert "needs a human's approval" in required["error"]["message"]
    assert pacspace_emulator.requests == []
    assert (await call_tool(pacspace_client, "pacspace_verify_proof", VERIFY, policy=policy))["ok"]
    sent = await call_tool(pacspace_client, "pacspace_emit_delta", emit("host"), policy=policy, approved=True)
    assert sent["ok"] is True
    assert [r.approved_by for r in records] == [None, None, "host"]
    assert emits_sent(pacspace_emulator) == 1
    # approved=True is the host's approval, not a way around the other rules
    capped = ToolPolicy(allow=("*",), approve=True, max_abs_delta="5")
    over = await call_tool(pacspace_client, "pacspace_emit_delta", emit("big", "-6"), policy=capped, approved=True)
    assert code(over) == "POLICY_DELTA_TOO_LARGE"
    read_only = await call_tool(pacspace_client, "pacspace_emit_delta", emit("ro"), approved=True)
    assert code(read_only) == "POLICY_TOOL_NOT_ALLOWED"
    # approved=False: the person the host asked said no
    declined = await call_tool(pacspace_client, "pacspace_emit_delta", emit("no"), policy=policy, approved=False)
    assert code(declined) == "APPROVAL_DENIED"
    assert "declined" in declined["error"]["message"]
    assert records[-1].outcome == "refused"
    assert emits_sent(pacspace_emulator) == 1
    assert policy.total == Decimal("10")  # the one the host approved


async def test_a_blocking_sync_approver_does_not_block_the_event_loop(pacspace_client: AsyncPacSpace) -> None:
    # The approver (a person at a prompt) blocks until the loop has ticked 40 times: if it ran on
    # the loop's thread the ticker could not tick, and it would time out and deny.
    ticked = threading.Event()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1
            if ticks == 40:
                ticked.set()

    def person(call: ToolCall) -> bool:
        return ticked.wait(timeout=10)

    ticking = asyncio.create_task(ticker())
    try:
        policy = ToolPolicy(allow=("*",), approve=person)
        result = await call_tool(pacspace_client, "pacspace_emit_delta", emit("prompted"), policy=policy)
    finally:
        ticking.cancel()
    assert result["ok"] is True, result
    assert ticks >= 40


# --- the audit record ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("hook_kind", ["sync", "async"])
async def test_one_audit_record_per_call_ok_refused_failed_and_raised(
    pacspace_emulator: Emulator, caplog: pytest.LogCaptureFixture, hook_kind: str
) -> None:
    records: list[ToolCallRecord] = []

    def sync_hook(record: ToolCallRecord) -> None:
        records.append(record)

    async def async_hook(record: ToolCallRecord) -> None:
        await asyncio.sleep(0)
        records.append(record)

    policy = ToolPolicy(allow=("*",), on_tool_call=sync_hook if hook_kind == "sync" else async_hook)
    caplog.set_level(logging.INFO, logger="pacspace")
    key = pacspace_emulator.create_key()
    secret = key.split(".", 1)[1]
    pac = AsyncPacSpace(key, base_urls=pacspace_emulator.base_urls, max_retries=0)
    ok = await call_tool(pac, "pacspace_emit_delta", emit("audited"), policy=policy)
    replay = await call_tool(pac, "pacspace_emit_delta", emit("audited"), policy=policy)
    refused = await call_tool(pac, "pacspace_emit_delta", emit("x", "-10", "a b"), policy=policy)
    unknown = await call_tool(pac, "pacspace_nope", {"a": 1}, policy=policy)
    pacspace_emulator.revoke_key(key)
    failed = await call_tool(pac, "pacspace_derive_balance", {"customer_id": "cust_1"}, policy=policy)
    await pac.aclose()
    with pytest.raises(RuntimeError):  # a closed client: the host's bug, raised
        await call_tool(pac, "pacspace_delta_status", {"record_id": "rec_1"}, policy=policy)
    assert ok["ok"]
    assert replay["ok"]
    assert [code(refused), code(unknown), failed["error"]["status"]] == ["INVALID_ARGUMENTS", "UNKNOWN_TOOL", 401]

    assert [(r.tool, r.outcome, r.code) for r in records] == [
        ("pacspace_emit_delta", "ok", None),
        ("pacspace_emit_delta", "ok", None),
        ("pacspace_emit_delta", "refused", "INVALID_ARGUMENTS"),
        ("pacspace_nope", "refused", "UNKNOWN_TOOL"),
        ("pacspace_derive_balance", "failed", "API_KEY_REVOKED"),
        ("pacspace_delta_status", "failed", "RuntimeError"),
    ]
    first, second, bad, _, revoked, raised = records
    assert first.arguments == emit("audited")
    assert first.idempotency_key == second.idempotency_key == "sandbox:balance.delta:cust_1:audited"
    assert (first.replayed, second.replayed) == (False, True)
    assert (first.action, bad.action, revoked.action, raised.action) == (None, "fix_input", "alert_operator", None)
    assert bad.replayed is None
    assert str(revoked.request_id).startswith("req_")
    assert all(r.duration_s >= 0 for r in records)
    assert raised.arguments == {"record_id": "rec_1"}

    lines = [r.getMessage() for r in caplog.records if r.name == "pacspace" and r.getMessage().startswith("tool ")]
    assert len(lines) == len(records)
    assert lines[0].startswith("tool pacspace_emit_delta ok (code=None, idempotency_key=sandbox:balance.delta:")
    assert '"reference_id":"audited"' in lines[0]
    assert lines[4].startswith("tool pacspace_derive_balance failed (code=API_KEY_REVOKED")
    assert "request_id=req_" in lines[4]
    assert lines[5].startswith("tool pacspace_delta_status failed (code=RuntimeError")
    assert all(secret not in line for line in lines)
    assert all(secret not in repr(r) for r in records)


@pytest.mark.parametrize("hook_kind", ["sync", "async"])
async def test_a_raising_audit_hook_does_not_change_the_result(
    pacspace_client: AsyncPacSpace, pacspace_emulator: Emulator, caplog: pytest.LogCaptureFixture, hook_kind: str
) -> None:
    def sync_hook(record: ToolCallRecord) -> None:
        raise ValueError("audit sink is down")

    async def async_hook(record: ToolCallRecord) -> None:
        raise ValueError("audit sink is down")

    policy = ToolPolicy(allow=("*",), on_tool_call=sync_hook if hook_kind == "sync" else async_hook)
    caplog.set_level(logging.WARNING, logger="pacspace")
    result = await call_tool(pacspace_client, "pacspace_emit_delta", emit("kept"), policy=policy)
    assert result["ok"] is True
    refused = await call_tool(pacspace_client, "pacspace_emit_delta", emit("x", "-1", "a b"), policy=policy)
    assert code(refused) == "INVALID_ARGUMENTS"
    assert len(pacspace_emulator.deltas()) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings.count("on_tool_call hook raised ValueError: audit sink is down") == 2


# --- the blocking client ----------------------------------------------------------------------------------------


def test_the_sync_call_tool_applies_the_policy(
    pacspace_sync_client: PacSpace, pacspace_emulator_thread: Emulator
) -> None:
    asked: list[str] = []
    records: list[ToolCallRecord] = []

    def approve(call: ToolCall) -> bool:
        asked.append(threading.current_thread().name)
        return bool(call.arguments["reference_id"] != "rejected")

    policy = ToolPolicy(
        allow=("read", "pacspace_emit_delta"),
        max_abs_delta="10",
        max_total="15",
        customers=("cust_*",),
        approve=approve,
        on_tool_call=records.append,
    )
    sent = call_tool_sync(pacspace_sync_client, "pacspace_emit_delta", emit("s1", "-10"), policy=policy)
    assert sent["ok"] is True, sent
    refusals = [
        call_tool_sync(pacspace_sync_client, "pacspace_emit_delta", emit("s2", "-11"), policy=policy),
        call_tool_sync(pacspace_sync_client, "pacspace_emit_delta", emit("s3", "-6"), policy=policy),
        call_tool_sync(pacspace_sync_client, "pacspace_emit_delta", emit("s4", "-1", "other"), policy=policy),
        call_tool_sync(pacspace_sync_client, "pacspace_emit_delta", emit("rejected", "-1"), policy=policy),
        call_tool_sync(pacspace_sync_client, "pacspace_create_checkpoint", {}, policy=policy),
    ]
    assert [code(r) for r in refusals] == [
        "POLICY_DELTA_TOO_LARGE",
        "POLICY_TOTAL_EXCEEDED",
        "POLICY_CUSTOMER_NOT_ALLOWED",
        "APPROVAL_DENIED",
        "POLICY_TOOL_NOT_ALLOWED",
    ]
    assert policy.total == Decimal("10")
    assert len(pacspace_emulator_thread.deltas()) == 1
    assert emits_sent(pacspace_emulator_thread) == 1
    assert len(asked) == 2  # asked for s1 and "rejected" only, each in a worker thread
    assert threading.main_thread().name not in asked
    assert [r.outcome for r in records] == ["ok", "refused", "refused", "refused", "refused", "refused"]
    assert records[0].approved_by == "policy"
