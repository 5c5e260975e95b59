"""PacSpace tools in an OpenAI Agents SDK run; a human approves the write. `python examples/openai_agents_tools.py`

Offline: the emulator plays PacSpace, a scripted model plays OpenAI's (use `model="gpt-5"` and OPENAI_API_KEY).
"""

import asyncio
from decimal import Decimal

from agents import Agent, RunConfig, Runner, ToolCallOutputItem
from agents.testing import ScriptedModel, assistant_message, function_call

from pacspace_async.testing import Emulator
from pacspace_async.tools import ToolPolicy
from pacspace_async.tools.openai_agents import function_tools

BILL = {"customer_id": "cust_acme", "delta": "-42.50", "reason": "api_usage", "reference_id": "acme-usage-2026-11-28"}
MODEL = ScriptedModel([  # what a model would answer, turn by turn
    [function_call("pacspace_emit_delta", BILL, call_id="call_1")],
    [function_call("pacspace_derive_balance", {"customer_id": "cust_acme"}, call_id="call_2")],
    [assistant_message("Billed cust_acme 42.50 for today's API usage.")],
])  # fmt: skip


async def main() -> None:
    async with Emulator(verify_delay=0.05) as emu, emu.client() as pac:
        policy = ToolPolicy(allow=("read", "pacspace_emit_delta"), max_abs_delta=Decimal("100"), approve=True)
        agent = Agent(name="billing", model=MODEL, tools=function_tools(pac, policy))
        config = RunConfig(tracing_disabled=True)
        result = await Runner.run(agent, "Bill cust_acme 42.50 for today's API usage.", run_config=config)
        state = result.to_state()
        for item in result.interruptions:  # the run stopped before the write: a human decides
            print(f"approve? {item.tool_name} {item.arguments} ({len(emu.requests)} requests sent): yes")
            state.approve(item)
        result = await Runner.run(agent, state, run_config=config)
        print(*(f"tool: {i.output[:110]}" for i in result.new_items if isinstance(i, ToolCallOutputItem)), sep="\n")
        print(f"model: {result.final_output}\nledger: {len(emu.deltas('cust_acme'))} delta")


if __name__ == "__main__":
    asyncio.run(main())
