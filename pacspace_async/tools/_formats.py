"""The tools as plain dicts in each vendor's format, and the strict schema OpenAI's strict mode needs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._errors import InvalidArgumentError
from ._policy import ToolPolicy
from ._registry import ToolDefinition, tool_definitions

__all__ = ["anthropic_tools", "listed", "mcp_annotations", "mcp_tools", "openai_tools", "strict_schema"]


def listed(names: Iterable[str] | None, policy: ToolPolicy | None) -> tuple[ToolDefinition, ...]:
    """The tools `policy` exposes (read-only without one), or those of `names` it allows."""
    policy = policy or ToolPolicy()
    if names is None:
        return policy.tools()
    chosen = tool_definitions(names)
    refused = [tool.name for tool in chosen if not policy.allows(tool.name)]
    if refused:
        raise InvalidArgumentError(
            f"the policy does not allow {refused}: pass policy=ToolPolicy(allow=(...)) naming them or their group"
        )
    return chosen


def strict_schema(tool: ToolDefinition) -> dict[str, Any]:
    """The arguments' schema as OpenAI's strict mode takes it.

    Every property is required and the optional ones accept null (a null means "not given" to
    `call_tool`); no ``default`` (strict mode refuses it: the description says it). Free-form
    objects (``metadata``, ``adjusts``) cannot be described strictly and are left out.
    """
    schema = tool.input_schema
    required = set(schema.get("required", ()))
    properties: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        if prop.get("type") == "object":
            continue
        prop = dict(prop)
        default = prop.pop("default", None)
        if default is not None:
            prop["description"] = f"{prop['description']} Default: {default}."
        if name not in required:
            kinds = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
            prop["type"] = [*kinds, "null"]
            if "enum" in prop:
                prop["enum"] = [*prop["enum"], None]
        properties[name] = prop
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def openai_tools(
    names: Iterable[str] | None = None, *, policy: ToolPolicy | None = None, strict: bool = True
) -> list[dict[str, Any]]:
    """The tools in OpenAI's function-calling format (``tools=`` of chat completions).

    ``[{"type": "function", "function": {"name", "description", "parameters", "strict"}}, ...]``;
    with `strict` (the default) the schemas are `strict_schema`'s.
    """
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": strict_schema(tool) if strict else tool.input_schema,
                "strict": strict,
            },
        }
        for tool in listed(names, policy)
    ]


def anthropic_tools(names: Iterable[str] | None = None, *, policy: ToolPolicy | None = None) -> list[dict[str, Any]]:
    """The tools in Anthropic's Messages API format: ``[{"name", "description", "input_schema"}, ...]``."""
    return [
        {"name": tool.name, "description": tool.description, "input_schema": tool.input_schema}
        for tool in listed(names, policy)
    ]


def mcp_annotations(tool: ToolDefinition) -> dict[str, Any]:
    """MCP tool annotations that tell the truth: reads are read-only; emit is idempotent (its key
    is derived from ``reference_id``); nothing deletes; PacSpace is outside the host's world."""
    return {
        "title": tool.title,
        "readOnlyHint": tool.read_only,
        "destructiveHint": False,
        "idempotentHint": tool.idempotent,
        "openWorldHint": True,
    }


def mcp_tools(names: Iterable[str] | None = None, *, policy: ToolPolicy | None = None) -> list[dict[str, Any]]:
    """The tools as an MCP ``tools/list`` result lists them: ``name``, ``title``, ``description``,
    ``inputSchema`` and ``annotations``."""
    return [
        {
            "name": tool.name,
            "title": tool.title,
            "description": tool.description,
            "inputSchema": tool.input_schema,
            "annotations": mcp_annotations(tool),
        }
        for tool in listed(names, policy)
    ]
