# hand-written: the blocking twin of pacspace_async.tools (a package, which the generator does not mirror)
"""PacSpace as tools for an AI agent, for a blocking `PacSpace` client.

>>> from pacspace_sync.tools import ToolPolicy, call_tool, openai_tools
>>> policy = ToolPolicy(allow=("read", "pacspace_emit_delta"))
>>> result = call_tool(pac, "pacspace_emit_delta", {"customer_id": "cust_1", "delta": "-42.50",
...                                                 "reason": "usage", "reference_id": "inv_1"},
...                    policy=policy)
>>> result["ok"], result["result"]["record_id"]

The same registry, policy, schemas and results as `pacspace_async.tools` (the very same objects);
`call_tool` blocks. The call runs on the client's loop thread: an `approve` callable that is not a
coroutine function runs in a worker thread there, so a person answering it holds back no other call.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import pacspace_async.tools as _async_tools
from pacspace_async.tools import (
    TRANSPORT_OPTIONS,
    ToolCall,
    ToolCallRecord,
    ToolDefinition,
    ToolPolicy,
    ToolPolicyError,
    anthropic_tools,
    error_result,
    mcp_tools,
    openai_tools,
    strict_schema,
    to_jsonable,
    tool_definitions,
)
from pacspace_sync._client import PacSpace

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


def call_tool(
    pac: PacSpace,
    name: str,
    arguments: Mapping[str, Any] | str | bytes | None = None,
    *,
    policy: ToolPolicy | None = None,
    approved: bool | None = None,
) -> dict[str, Any]:
    """Run tool `name` with the model's `arguments`; blocks. See `pacspace_async.tools.call_tool`.

    >>> result = call_tool(pac, "pacspace_delta_status", {"record_id": "rec_1"})
    """
    return pac._portal.call(
        functools.partial(_async_tools.call_tool, pac._wrapped, name, arguments, policy=policy, approved=approved)
    )
