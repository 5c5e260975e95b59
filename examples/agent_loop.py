"""A minimal async agent loop: a model calls PacSpace tools, the loop runs them with `call_tool`.

    python examples/agent_loop.py

No network, no account: the PacSpace emulator runs in-process, and the "model" is a script that
answers like a model API would (Anthropic Messages style: ``tool_use`` blocks in, ``tool_result``
blocks back). Swap `ScriptedModel.create` for a real ``client.messages.create(tools=TOOLS, ...)``
and the loop stays the same.

The agent gets a `ToolPolicy`: without one the tools are read-only. This one lets it emit deltas
of at most 100 and commit checkpoints, and logs one audit record per tool call.

What the script does, as a model would: it sends an emit with no reference_id, reads the
``fix_input`` result and fixes it; its next emit loses its answer (the connection drops after the
write), so it sends the very same call again, same reference_id, and the ledger still holds one
delta; then it waits for verification, derives and compares balances, commits a checkpoint,
fetches the receipt and verifies the delta's proof with no key. Last, it offers a goodwill credit
of 500, which the policy refuses without sending anything (``alert_operator``): the model leaves
it to a human. A 429 on the way is waited out by the loop (``wait_and_retry`` with ``retry_after``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections import Counter
from collections.abc import Generator
from decimal import Decimal
from typing import Any

from pacspace_async import AsyncPacSpace
from pacspace_async.testing import Emulator
from pacspace_async.tools import ToolCallRecord, ToolPolicy, anthropic_tools, call_tool

CUSTOMER = "cust_acme"
REFERENCE = "acme-usage-2026-11-28"
AUDIT: Counter[str] = Counter()


def audit(record: ToolCallRecord) -> None:
    """One record per tool call (allowed, refused or failed); a real host would store it."""
    AUDIT[record.outcome] += 1


POLICY = ToolPolicy(
    allow=("read", "pacspace_emit_delta", "pacspace_create_checkpoint"),
    max_abs_delta=Decimal("100"),
    on_tool_call=audit,
)
TOOLS = anthropic_tools(policy=POLICY)  # plain dicts: pass them as `tools=` to the Messages API

# What the model is asked to do.
TASK = (
    f"Bill customer {CUSTOMER} 42.50 for today's API usage (event {REFERENCE}), wait until it is verified, "
    "then tell me the balance, whether our ledger (-42.50) or theirs (-40.00) is right, close the month "
    "with a checkpoint and give me a receipt with a verified proof."
)

Call = tuple[str, dict[str, Any]]
Plan = Generator[Call, dict[str, Any], str]


def plan() -> Plan:
    """The model's reasoning, scripted: each `yield` is a tool call; it receives the tool's result."""
    # A first attempt with a mistake a model makes: no reference_id.
    result = yield ("pacspace_emit_delta", {"customer_id": CUSTOMER, "delta": "-42.50", "reason": "api_usage"})
    assert result["error"]["action"] == "fix_input", result
    # It reads the error and fixes the call: the event id as reference_id.
    emit = {"customer_id": CUSTOMER, "delta": "-42.50", "reason": "api_usage", "reference_id": REFERENCE}
    result = yield ("pacspace_emit_delta", emit)
    while not result["ok"]:
        # No answer (action "retry"): the write may or may not have happened. Sending the SAME
        # arguments with the SAME reference_id is safe: PacSpace records the delta once.
        assert result["error"]["retryable"], result
        result = yield ("pacspace_emit_delta", emit)
    record_id = result["result"]["record_id"]
    result = yield ("pacspace_wait_for_verified", {"record_id": record_id, "timeout": 30, "poll_interval": 0.05})
    proof = result["result"]["receipt_id"]
    balance = (yield ("pacspace_derive_balance", {"customer_id": CUSTOMER}))["result"]
    compared = (
        yield (
            "pacspace_compare_balances",
            {"customer_id": CUSTOMER, "your_balance": "-42.50", "their_balance": "-40.00"},
        )
    )["result"]
    checkpoint = (yield ("pacspace_create_checkpoint", {"customer_id": CUSTOMER, "period": balance["period"]}))[
        "result"
    ]
    receipt = (yield ("pacspace_get_receipt", {"customer_id": CUSTOMER, "period": balance["period"]}))["result"]
    verified = (yield ("pacspace_verify_proof", {"proof_root": proof}))["result"]
    # Beyond what this agent may do alone: the policy refuses it, and nothing is sent.
    goodwill = {"customer_id": CUSTOMER, "delta": "500", "reason": "goodwill", "reference_id": f"{REFERENCE}-gw"}
    refused = yield ("pacspace_emit_delta", goodwill)
    assert refused["error"]["action"] == "alert_operator", refused
    winner = "ours" if compared["matches_yours"] else "theirs" if compared["matches_theirs"] else "neither"
    return (
        f"Billed {CUSTOMER} {balance['computed_balance']} (record {record_id}, verified). "
        f"The ledger says {compared['neutral_balance']}: {winner} is right. "
        f"Checkpoint {checkpoint['checkpoint_id']} commits {balance['period']}; receipt {receipt['receipt_id']} "
        f"shows a final balance of {receipt['final_balance']}. Proof {proof[:12]}... verified: {verified['verified']}. "
        f"The goodwill credit of 500 needs a human operator ({refused['error']['code']})."
    )


class ScriptedModel:
    """Stands in for a model API: given the conversation, returns the next assistant message."""

    def __init__(self) -> None:
        self._plan = plan()
        self._ids = itertools.count(1)
        self._started = False

    def create(self, *, tools: list[dict[str, Any]], messages: list[dict[str, Any]]) -> dict[str, Any]:
        known = {tool["name"] for tool in tools}
        try:
            if not self._started:
                self._started = True
                name, arguments = next(self._plan)
            else:
                last = messages[-1]["content"][-1]  # the tool_result of the previous call
                name, arguments = self._plan.send(json.loads(last["content"]))
        except StopIteration as done:
            return {"role": "assistant", "stop_reason": "end_turn", "content": [{"type": "text", "text": done.value}]}
        assert name in known
        block = {"type": "tool_use", "id": f"toolu_{next(self._ids):02d}", "name": name, "input": arguments}
        return {"role": "assistant", "stop_reason": "tool_use", "content": [block]}


async def run_tool(pac: AsyncPacSpace, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """One tool call, with the loop's own policy for waits: a 429 is waited out here."""
    for _ in range(5):
        result = await call_tool(pac, name, arguments, policy=POLICY)
        error = result.get("error")
        if error is None or error["action"] != "wait_and_retry" or error["retry_after"] is None:
            return result
        print(f"   … 429: waiting {error['retry_after']:.2f}s, then the same call again")
        await asyncio.sleep(error["retry_after"])
    return result


def show(result: dict[str, Any]) -> str:
    if not result["ok"]:
        error = result["error"]
        code = f" {error['code']}" if error["code"] else ""
        return f"{error['action']}: {error['class']}{code}: {error['message'][:110]}"
    shown = {k: v for k, v in result["result"].items() if v is not None and not isinstance(v, (list, dict))}
    return "ok " + json.dumps(shown)[:130]


async def agent(pac: AsyncPacSpace, model: ScriptedModel) -> str:
    messages: list[dict[str, Any]] = [{"role": "user", "content": TASK}]
    while True:
        reply = model.create(tools=TOOLS, messages=messages)
        messages.append({"role": "assistant", "content": reply["content"]})
        if reply["stop_reason"] != "tool_use":
            return str(reply["content"][0]["text"])
        results = []
        for block in reply["content"]:
            if block["type"] != "tool_use":
                continue
            print(f"-> {block['name']} {json.dumps(block['input'])}")
            result = await run_tool(pac, block["name"], block["input"])
            print(f"   {show(result)}")
            results.append(
                {
                    "type": "tool_result",
                    "tool_use_id": block["id"],
                    "content": json.dumps(result),
                    "is_error": not result["ok"],
                }
            )
        messages.append({"role": "user", "content": results})


async def main() -> int:
    async with Emulator(verify_delay=0.1, rate_limit=4) as emu:
        # The first real emit will be written, then its connection dropped before the answer.
        emu.inject("drop_after_write", method="POST", path="/api/v1/balance/delta")
        # max_retries=0: every failure reaches the agent, to show what it does with each one.
        async with emu.client(max_retries=0) as pac:
            print(f"agent: {len(TOOLS)} tools: {', '.join(tool['name'] for tool in TOOLS)}")
            answer = await agent(pac, ScriptedModel())
        print(f"model: {answer}")
        ledger = emu.deltas(CUSTOMER)
        sent = sum(1 for r in emu.requests if r.method == "POST" and r.path == "/api/v1/balance/delta")
    print(f"ledger: {len(ledger)} delta for {REFERENCE} after {sent} emit requests")
    print(f"audit: {sum(AUDIT.values())} tool calls: " + ", ".join(f"{n} {o}" for o, n in sorted(AUDIT.items())))
    if len(ledger) != 1 or str(ledger[0].delta) != "-42.50":
        print("FAILED: the ledger should hold exactly one delta of -42.50", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
