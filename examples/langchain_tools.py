"""LangChain tools from the PacSpace registry: a model's tool calls, run through a policy.

    python examples/langchain_tools.py

Offline: the emulator runs in-process; the tool calls are what ``model.bind_tools(tools)`` returns.
"""

import asyncio
import json
from decimal import Decimal

from pacspace_async.testing import Emulator
from pacspace_async.tools import ToolPolicy
from pacspace_async.tools.langchain import structured_tools

BILL = {"customer_id": "cust_acme", "delta": "-42.50", "reason": "api_usage", "reference_id": "acme-2026-11-28"}
CALLS = [  # a bill, the same bill again (a resumed run), one above the limit, then the balance
    ("pacspace_emit_delta", BILL),
    ("pacspace_emit_delta", BILL),
    ("pacspace_emit_delta", {**BILL, "delta": "-5000", "reference_id": "acme-big"}),
    ("pacspace_derive_balance", {"customer_id": "cust_acme"}),
]
SHOWN = ("record_id", "replayed", "computed_balance", "code", "action")


async def main() -> None:
    async with Emulator(verify_delay=0.05) as emu, emu.client() as pac:
        policy = ToolPolicy(allow=("read", "pacspace_emit_delta"), max_abs_delta=Decimal("100"))
        tools = {tool.name: tool for tool in structured_tools(pac, policy)}
        for number, (name, args) in enumerate(CALLS, 1):
            call = {"name": name, "args": args, "id": f"call_{number}", "type": "tool_call"}
            message = await tools[name].ainvoke(call)  # a ToolMessage, ready for the model
            result = json.loads(message.content)
            said = result["result"] if result["ok"] else result["error"]
            print(f"{message.tool_call_id} {name} [{message.status}]", {k: said[k] for k in SHOWN if k in said})
        print(f"ledger: {len(emu.deltas('cust_acme'))} delta; {len(emu.requests)} requests for {len(CALLS)} calls")


if __name__ == "__main__":
    asyncio.run(main())
