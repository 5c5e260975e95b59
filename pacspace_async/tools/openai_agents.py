"""PacSpace tools for the OpenAI Agents SDK: native `FunctionTool`s, strict schemas, approvals.

>>> from agents import Agent
>>> from pacspace_async.tools import ToolPolicy
>>> from pacspace_async.tools.openai_agents import function_tools
>>> agent = Agent(name="billing", tools=function_tools(pac, ToolPolicy(allow=("read", "pacspace_emit_delta"))))

Needs ``pip install 'pacspace[openai-agents]'``. One `FunctionTool` per tool the policy lists,
built from the registry. Each tool:

- works with the SDK's default ``strict_json_schema=True``: every property is listed as required,
  the optional ones are nullable, and a null means "not given";
- runs `call_tool` on the event loop (an `AsyncPacSpace`) or in a worker thread (a
  ``pacspace_sync.PacSpace``), so the loop never blocks;
- returns the JSON text of the result, ``{"ok": true, ...}`` or ``{"ok": false, "error": {...}}``:
  a refusal or a failure is something the model reads and acts on, never an exception;
- with ``ToolPolicy(approve=True)``, sets ``needs_approval`` on the write tools: the run stops
  with an interruption, and the call is sent only once it is approved on the `RunState`
  (``state.approve(item)``) and the run resumed. A rejected call is never sent.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .._client import AsyncPacSpace
from .._errors import ConfigurationError
from . import ToolDefinition, ToolPolicy, call_tool, strict_schema

try:
    from agents import FunctionTool, Tool
    from agents.tool_context import ToolContext
except ImportError as missing:  # pragma: no cover - depends on the installation
    raise ImportError(
        "pacspace_async.tools.openai_agents needs the OpenAI Agents SDK: pip install 'pacspace[openai-agents]'"
    ) from missing

if TYPE_CHECKING:
    from pacspace_sync import PacSpace

__all__ = ["function_tools"]

# One tool call, whatever the client: (tool name, the model's JSON text, approved by the host).
_Call = Callable[[str, str, bool | None], Awaitable[dict[str, Any]]]


def function_tools(pac: AsyncPacSpace | PacSpace, policy: ToolPolicy | None = None) -> list[Tool]:
    """The tools `policy` allows (read-only by default) as OpenAI Agents `FunctionTool`s.

    `pac` is an `AsyncPacSpace`, or a blocking ``pacspace_sync.PacSpace`` (each call then runs in
    a worker thread). Pass the list as ``Agent(tools=...)``; every item is a `FunctionTool` (the
    list is typed as the SDK's ``list[Tool]``, what ``Agent`` takes). The same `policy` object
    should serve every call of an agent, as its running total counts what it has let through.
    """
    policy = ToolPolicy() if policy is None else policy
    if not isinstance(policy, ToolPolicy):
        raise ConfigurationError(
            f"policy must be a pacspace_async.tools.ToolPolicy or None, got {type(policy).__name__}"
        )
    call = _caller(pac, policy)
    tools: list[Tool] = [
        _function_tool(definition, call, policy.needs_host_approval(definition.name)) for definition in policy.tools()
    ]
    return tools


def _caller(pac: object, policy: ToolPolicy) -> _Call:
    """How one call reaches `call_tool` for this kind of client, without blocking the loop."""
    if isinstance(pac, AsyncPacSpace):

        async def call_async(name: str, arguments: str, approved: bool | None) -> dict[str, Any]:
            return await call_tool(pac, name, arguments, policy=policy, approved=approved)

        return call_async
    sync_client, sync_call_tool = _sync_api()
    if isinstance(pac, sync_client):

        async def call_in_thread(name: str, arguments: str, approved: bool | None) -> dict[str, Any]:
            # The blocking client waits for its own loop thread; a worker thread keeps ours free.
            blocking = functools.partial(sync_call_tool, pac, name, arguments, policy=policy, approved=approved)
            return await asyncio.to_thread(blocking)

        return call_in_thread
    raise ConfigurationError(
        "function_tools needs a client: a pacspace_async.AsyncPacSpace or a pacspace_sync.PacSpace, "
        f"got {type(pac).__name__}"
    )


def _sync_api() -> tuple[type[Any], Callable[..., dict[str, Any]]]:
    # Imported on first use: the blocking facade is built on this package, not the other way round.
    from pacspace_sync import PacSpace
    from pacspace_sync.tools import call_tool as sync_call_tool

    return PacSpace, sync_call_tool


def _function_tool(definition: ToolDefinition, call: _Call, host_approval: bool) -> FunctionTool:
    name = definition.name

    async def invoke(context: ToolContext[Any], arguments: str) -> str:
        # The Runner invokes a tool that needs approval only once the call is approved; asking the
        # run's own record as well means a call that reaches here any other way is refused, not sent.
        approved = True if host_approval and context.is_tool_approved(context.tool_name, context.tool_call_id) else None
        result = await call(name, arguments, approved)
        return json.dumps(result, ensure_ascii=False, allow_nan=False, separators=(",", ":"))

    return FunctionTool(
        name=name,
        description=definition.description,
        params_json_schema=strict_schema(definition),
        on_invoke_tool=invoke,
        strict_json_schema=True,
        needs_approval=host_approval,
    )
