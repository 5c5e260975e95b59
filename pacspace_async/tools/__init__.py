"""PacSpace as tools for an AI agent: one registry, one call gate, a policy, and framework adapters.

>>> from pacspace_async.tools import ToolPolicy, call_tool, openai_tools
>>> policy = ToolPolicy(allow=("read", "pacspace_emit_delta"), max_abs_delta=Decimal("50"))
>>> tools = openai_tools(policy=policy)           # or anthropic_tools(), mcp_tools(): plain dicts
>>> result = await call_tool(pac, "pacspace_emit_delta", {"customer_id": "cust_1", "delta": "-42.50",
...                                                       "reason": "usage", "reference_id": "inv_1"},
...                          policy=policy)
>>> result["ok"], result["result"]["record_id"]

Every tool wraps one SDK method; its JSON Schema is derived from that method's signature and the
SDK's own constants, and its arguments pass that method's own checks (the one validation gate).
A policy (read-only by default) decides what may be sent; a refused call is never sent, and
every call yields one audit record. Framework adapters: `pacspace_async.tools.mcp`,
`pacspace_async.tools.openai_agents`, `pacspace_async.tools.langchain` (each in its own extra).
"""

from ._call import call_tool
from ._formats import anthropic_tools, mcp_tools, openai_tools, strict_schema
from ._policy import ToolCall, ToolCallRecord, ToolPolicy, ToolPolicyError
from ._registry import ToolDefinition, tool_definitions
from ._results import error_result, to_jsonable
from ._specs import TRANSPORT_OPTIONS

__all__ = [
    "TRANSPORT_OPTIONS",
    "ToolCall",
    "ToolCallRecord",
    "ToolDefinition",
    "ToolPolicy",
    "ToolPolicyError",
    "anthropic_tools",
    "call_tool",
    "error_result",
    "mcp_tools",
    "openai_tools",
    "strict_schema",
    "to_jsonable",
    "tool_definitions",
]
