"""PacSpace as an MCP server, and an MCP client calling it in-process (offline: the emulator).

    python examples/mcp_server.py

For a real host, serve it with `serve_stdio(server)` or `serve_http(server, token=...)`, or
run `pacspace mcp`. Needs ``pip install 'pacspace[mcp,emulator]'``.
"""

import asyncio
import sys
from decimal import Decimal

from mcp import Client

from pacspace_async.testing import Emulator
from pacspace_async.tools import ToolPolicy
from pacspace_async.tools.mcp import create_server

EMIT = {"customer_id": "cust_acme", "delta": "-42.50", "reason": "usage", "reference_id": "acme-2026-11-28"}


async def main() -> int:
    async with Emulator() as emu, emu.client() as pac:
        policy = ToolPolicy(allow=("read", "pacspace_emit_delta"), max_abs_delta=Decimal("100"))
        async with Client(create_server(pac, policy)) as client:  # what an MCP host does
            tools = (await client.list_tools()).tools
            print("tools:", ", ".join(tool.name for tool in tools))
            for attempt in ("sent", "sent again (a retry)"):
                result = await client.call_tool("pacspace_emit_delta", EMIT)
                print(f"emit {attempt}: record {result.structured_content['result']['record_id']}")
            refused = await client.call_tool("pacspace_emit_delta", {**EMIT, "delta": "-5000", "reference_id": "big"})
            print("over the limit: isError", refused.is_error, refused.structured_content["error"]["code"])
        ledger = emu.deltas()
    print(f"ledger: {len(ledger)} delta for {EMIT['reference_id']}")
    return 0 if len(ledger) == 1 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
