"""PacSpace as tools for an AI agent: names, descriptions for a model, JSON Schemas, one entry point.

>>> from pacspace_async.tools import anthropic_tools, call_tool
>>> tools = anthropic_tools()                    # or openai_tools(), mcp_tools(): plain dicts
>>> result = await call_tool(pac, "pacspace_emit_delta", {"customer_id": "cust_1", "delta": "-42.50",
...                                                       "reason": "usage", "reference_id": "inv_1"})
>>> result["ok"], result["result"]["record_id"]

Every tool wraps one SDK method. Its JSON Schema is derived from that method's signature (types,
required parameters, defaults) and the SDK's own constants (choices, patterns); only the sentences
written for the model are hand-written. Transport options (``timeout``, ``max_retries``,
``extra_headers``, ``idempotency_key``) are not offered to the model.

`call_tool` never raises for something the agent can act on: arguments are checked against the
schema before anything is sent, and every `PacSpaceError` comes back as
``{"ok": false, "error": {"class", "action", "retryable", "retry_after", "message", ...}}``, where
``action`` is an `ErrorAction` value (``fix_input``, ``retry``, ``wait_and_retry``,
``alert_operator``). Success is ``{"ok": true, "result": {...}}`` with JSON-safe values (amounts
as decimal strings, times as ISO 8601 strings).

Retries are safe: ``pacspace_emit_delta`` requires a ``reference_id``, and the idempotency key of
the request is derived from it, so the same call sent again (after a timeout, a crash, a 429)
records the delta once.

No dependency beyond the SDK's own: the validator covers the part of JSON Schema the tools use.
"""

from __future__ import annotations

import ast
import copy
import functools
import inspect
import json
import math
import operator
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, Union

import attrs

from . import _codec
from ._errors import ConflictError, ErrorAction, InvalidArgumentError, PacSpaceError
from .resources._args import (
    CUSTOMER_ID_PATTERN,
    MAX_CUSTOMER_ID_LENGTH,
    MAX_REASON_LENGTH,
    MAX_REFERENCE_ID_LENGTH,
)
from .resources._scope import GRANULARITIES, PERIOD_PATTERN, TIME_PRESETS
from .resources.balance import MAX_DERIVE_LIMIT, AsyncBalance
from .resources.checkpoints import AsyncCheckpoints
from .resources.verify import VERIFY_SOURCES, AsyncVerification

if TYPE_CHECKING:
    from ._client import AsyncPacSpace

__all__ = [
    "TRANSPORT_OPTIONS",
    "ToolDefinition",
    "anthropic_tools",
    "call_tool",
    "error_result",
    "mcp_tools",
    "openai_tools",
    "to_jsonable",
    "tool_definitions",
    "validate_arguments",
]

TRANSPORT_OPTIONS = frozenset({"timeout", "max_retries", "extra_headers", "idempotency_key"})
"""Per-call options of every SDK method that are the host's business, never the model's."""

MONEY_PATTERN = r"^[+-]?[0-9]+(\.[0-9]+)?$"


# --- the tools, as written for a model ----------------------------------------------------------


@attrs.frozen
class _Spec:
    """One tool: which SDK method it calls and the words a model reads about it."""

    name: str
    title: str
    target: tuple[str, ...]  # attribute path from the client: ("balance", "emit")
    function: Callable[..., Any]  # the async method whose signature defines the schema
    description: str
    read_only: bool
    idempotent: bool = True
    keep: frozenset[str] = frozenset()  # transport-named parameters that mean something else here
    drop: frozenset[str] = frozenset()  # parameters the model should not set
    require: frozenset[str] = frozenset()  # optional in Python, required of the model
    notes: Mapping[str, str] = attrs.field(factory=dict)  # per-tool parameter descriptions


_MONEY_NOTE = 'Send a decimal string such as "-42.50", not a float, so the amount stays exact.'

# Per-parameter sentences for the model, shared by every tool that has the parameter. Types,
# required-ness and defaults are not written here: they come from the method signatures.
_PARAMETERS: Mapping[str, str] = {
    "customer_id": "The customer's id in your system: 1-128 letters, digits, '_', '-', '.' or ':'.",
    "delta": (
        "The amount of the change: negative for usage or a charge, positive for a credit or a top-up; "
        f"never zero. {_MONEY_NOTE}"
    ),
    "reason": 'Why the balance changes, e.g. "usage", "refund", "top_up" (at most 500 characters).',
    "reference_id": (
        "Your unique id for this business event (an invoice line, a usage event id). When you retry this "
        "call for any reason (an error, a timeout, no answer), send the SAME reference_id and the same "
        "arguments: the delta is then recorded once, however many times it is sent. Use a new "
        "reference_id for every new event."
    ),
    "metadata": 'Optional JSON object stored with the delta, e.g. {"plan": "growth"}. No secrets.',
    "adjusts": 'Optional link to the earlier delta this one corrects, e.g. {"referenceId": "inv_0"}.',
    "record_id": "The record_id returned by pacspace_emit_delta (it starts with rec_).",
    "timeout": "Seconds to wait in total before giving up; the delta stays recorded either way.",
    "poll_interval": "Seconds between the first status checks; the interval grows by half after each check.",
    "period": 'A UTC month as "YYYY-MM", e.g. "2026-11". Do not combine with time_preset, start_date or end_date.',
    "time_preset": '"current_month", or "custom" together with both start_date and end_date.',
    "start_date": 'Start of the window, ISO 8601 in UTC, e.g. "2026-11-01T00:00:00Z". Needs end_date.',
    "end_date": 'End of the window (exclusive), ISO 8601 in UTC, e.g. "2026-12-01T00:00:00Z". Needs start_date.',
    "granularity": "Size of the buckets of the breakdown: day, week or month.",
    "starting_balance": f"The balance before the window starts. {_MONEY_NOTE}",
    "starting_checkpoint": (
        "Start from this checkpoint's proof root instead of a window (then give no period, time_preset or dates)."
    ),
    "starting_checkpoint_type": 'What starting_checkpoint is, e.g. "proofRoot". Needs starting_checkpoint.',
    "limit": "At most this many deltas listed in the result.",
    "offset": "Skip this many deltas of the list (to page through a long one).",
    "your_balance": f"The balance according to your records. {_MONEY_NOTE}",
    "their_balance": f"The balance according to the counterparty. {_MONEY_NOTE}",
    "proof_root": (
        "The proof root to verify (0x followed by 64 hex digits): a receipt's or a checkpoint's proof_root, "
        "or a delta's receipt_id."
    ),
    "source": 'Where to check: "db", "chain" or "both".',
}

# Extra JSON Schema constraints, mirroring checks the SDK makes anyway (so the model learns them
# from the schema instead of from a refusal).
_CONSTRAINTS: Mapping[str, Mapping[str, Any]] = {
    "customer_id": {"pattern": f"^{CUSTOMER_ID_PATTERN.pattern}$", "maxLength": MAX_CUSTOMER_ID_LENGTH},
    "reason": {"maxLength": MAX_REASON_LENGTH},
    "reference_id": {"maxLength": MAX_REFERENCE_ID_LENGTH},
    "period": {"pattern": f"^{PERIOD_PATTERN.pattern}$"},
    "limit": {"minimum": 1, "maximum": MAX_DERIVE_LIMIT},
    "offset": {"minimum": 0},
    "timeout": {"exclusiveMinimum": 0, "maximum": 300},
    "poll_interval": {"exclusiveMinimum": 0, "maximum": 60},
}

# Parameters typed `str` whose values are one of the SDK's known choices.
_CHOICES: Mapping[str, Sequence[str]] = {
    "time_preset": TIME_PRESETS,
    "granularity": GRANULARITIES,
    "source": VERIFY_SOURCES,
}

_SPECS: tuple[_Spec, ...] = (
    _Spec(
        name="pacspace_emit_delta",
        title="Record a balance delta",
        target=("balance", "emit"),
        function=AsyncBalance.emit,
        description=(
            "Record a change to a customer's balance (a delta) in the PacSpace ledger: negative for usage or "
            "a charge, positive for a credit or a top-up. Returns the record_id and its status, QUEUED until "
            "PacSpace verifies it. Safe to retry: sending the same reference_id again never counts twice."
        ),
        read_only=False,
        require=frozenset({"reference_id"}),
    ),
    _Spec(
        name="pacspace_delta_status",
        title="Check a delta's status",
        target=("balance", "status"),
        function=AsyncBalance.status,
        description=(
            "Look up the current status of a recorded delta by its record_id: QUEUED, PROCESSING, VERIFIED "
            "or FAILED. Returns at once; use pacspace_wait_for_verified to wait for the final status."
        ),
        read_only=True,
    ),
    _Spec(
        name="pacspace_wait_for_verified",
        title="Wait until a delta is verified",
        target=("balance", "wait_for_verified"),
        function=AsyncBalance.wait_for_verified,
        description=(
            "Wait until a recorded delta is VERIFIED or FAILED and return it with its receipt_id (its proof). "
            "If the wait times out (action wait_and_retry), the delta is still recorded: call again later."
        ),
        read_only=True,
        keep=frozenset({"timeout"}),  # here it bounds the whole wait, not one request
        drop=frozenset({"max_poll_interval"}),
    ),
    _Spec(
        name="pacspace_derive_balance",
        title="Derive a customer's balance",
        target=("balance", "derive"),
        function=AsyncBalance.derive,
        description=(
            "Recompute a customer's balance from the deltas recorded in PacSpace over a window (by default "
            "the current UTC month). Use it to state a balance from the ledger rather than from memory."
        ),
        read_only=True,
    ),
    _Spec(
        name="pacspace_compare_balances",
        title="Compare two balances with the ledger",
        target=("balance", "compare"),
        function=AsyncBalance.compare,
        description=(
            "Compare your balance and a counterparty's balance for one customer with the neutral balance "
            "PacSpace computes from the ledger, and say which of the two matches. Use it to settle a dispute."
        ),
        read_only=True,
    ),
    _Spec(
        name="pacspace_create_checkpoint",
        title="Create a checkpoint",
        target=("checkpoints", "create"),
        function=AsyncCheckpoints.create,
        description=(
            "Commit a checkpoint: one proof root over every verified delta of a window (by default the "
            "current UTC month), for one customer or, without customer_id, for all. The same window twice "
            "gives the same checkpoint. Use it when closing a period."
        ),
        read_only=False,
        drop=frozenset({"mode", "fingerprints"}),  # undocumented selection modes
    ),
    _Spec(
        name="pacspace_get_receipt",
        title="Fetch a customer's receipt",
        target=("balance", "receipt"),
        function=AsyncBalance.receipt,
        description=(
            "Fetch a customer's receipt for a window (by default the current UTC month): final balance, "
            "number of deltas, proof root and the links a customer can use to verify it."
        ),
        read_only=True,
    ),
    _Spec(
        name="pacspace_verify_proof",
        title="Verify a proof root",
        target=("verify",),
        function=AsyncVerification.verify,  # what AsyncPacSpace.verify forwards to
        description=(
            "Check publicly whether a proof root is verified: a receipt's or checkpoint's proof_root, or a "
            "delta's receipt_id. Needs no API key. Returns verified true/false with a summary of the records."
        ),
        read_only=True,
        drop=frozenset({"environment"}),  # the client's environment decides
    ),
)


# --- schemas from signatures ----------------------------------------------------------------------


@attrs.frozen
class _Param:
    name: str
    kind: str  # how a JSON value becomes the Python argument: money, integer, number, string, ...
    required: bool


def _alias_names(annotation: object) -> set[str]:
    """The names written in a (string) annotation, e.g. {"PeriodLike"} for ``PeriodLike | None``."""
    if not isinstance(annotation, str):
        return set()
    return {node.id for node in ast.walk(ast.parse(annotation, mode="eval")) if isinstance(node, ast.Name)}


def _members(hint: Any) -> list[Any]:
    """The members of a union, None left out."""
    members = list(typing.get_args(hint)) if typing.get_origin(hint) in (Union, types.UnionType) else [hint]
    return [m for m in members if m is not type(None)]


def _schema_of(where: str, name: str, hint: Any, written: object) -> tuple[dict[str, Any], str]:
    """The JSON Schema of one parameter and the kind of conversion its value needs."""
    members = _members(hint)
    aliases = _alias_names(written)
    if "PeriodLike" in aliases:
        return {"type": "string"}, "string"
    if "DateLike" in aliases or set(members) == {str, date, datetime}:
        return {"type": "string", "format": "date-time"}, "string"
    if Decimal in members:
        return {"type": ["string", "number"], "pattern": MONEY_PATTERN}, "money"
    if len(members) != 1:
        raise TypeError(f"{where}: cannot describe parameter {name}: {hint!r} to a model")
    (only,) = members
    origin = typing.get_origin(only)
    if origin is Literal:
        values = list(typing.get_args(only))
        kinds = {type(v) for v in values}
        if kinds == {str}:
            return {"type": "string", "enum": values}, "string"
        if kinds == {int}:
            return {"type": "integer", "enum": values}, "integer"
        raise TypeError(f"{where}: cannot describe parameter {name}: {hint!r} to a model")
    if only is bool:
        return {"type": "boolean"}, "boolean"
    if only is int:
        return {"type": "integer"}, "integer"
    if only is float:
        return {"type": "number"}, "number"
    if only is str:
        if name in _CHOICES:
            return {"type": "string", "enum": list(_CHOICES[name])}, "string"
        return {"type": "string", "minLength": 1}, "string"
    if only in (dict, Mapping) or origin in (dict, Mapping):
        return {"type": "object"}, "object"
    if origin in (list, tuple, Sequence) and len(typing.get_args(only)) == 1:
        item, item_kind = _schema_of(where, name, typing.get_args(only)[0], None)
        if item_kind not in ("string", "integer", "number", "boolean"):
            raise TypeError(f"{where}: cannot describe parameter {name}: {hint!r} to a model")
        return {"type": "array", "items": item}, "array"
    raise TypeError(f"{where}: cannot describe parameter {name}: {hint!r} to a model")


def _json_default(kind: str, value: object) -> object:
    if kind == "money" and isinstance(value, (Decimal, int)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, (bool, int, float, str)):
        return value
    return None


def _exposed_parameters(spec: _Spec) -> list[inspect.Parameter]:
    """The method's parameters the model is offered, in signature order."""
    hidden = (TRANSPORT_OPTIONS - spec.keep) | spec.drop
    params = list(inspect.signature(spec.function).parameters.values())[1:]  # without self
    return [
        p
        for p in params
        if p.name not in hidden and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


def _build(spec: _Spec) -> ToolDefinition:
    where = f"{spec.name} ({spec.function.__qualname__})"
    hints = typing.get_type_hints(spec.function)
    properties: dict[str, Any] = {}
    params: list[_Param] = []
    for param in _exposed_parameters(spec):
        schema, kind = _schema_of(where, param.name, hints[param.name], param.annotation)
        schema.update(_CONSTRAINTS.get(param.name, {}))
        description = spec.notes.get(param.name) or _PARAMETERS.get(param.name)
        if description is None:  # a new parameter nobody described yet: still usable
            description = param.name.replace("_", " ").capitalize() + "."
        required = param.default is inspect.Parameter.empty or param.name in spec.require
        if not required and param.default is not None:
            default = _json_default(kind, param.default)
            if default is not None:
                schema["default"] = default
        properties[param.name] = {"description": description, **schema}
        params.append(_Param(param.name, kind, required))
    missing = spec.require - set(properties)
    if missing:
        raise TypeError(f"{where}: required parameters {sorted(missing)} are not parameters of the method")
    object_schema: dict[str, Any] = {"type": "object", "properties": properties}
    if any(p.required for p in params):
        object_schema["required"] = [p.name for p in params if p.required]
    object_schema["additionalProperties"] = False
    return ToolDefinition(
        name=spec.name,
        title=spec.title,
        description=spec.description,
        method=".".join(spec.target),
        read_only=spec.read_only,
        idempotent=spec.idempotent,
        schema=object_schema,
        params=tuple(params),
    )


@attrs.frozen
class ToolDefinition:
    """One tool: its name, what a model reads about it, and the JSON Schema of its arguments.

    `method` names what it calls on the client (``"balance.emit"``). `input_schema` is a fresh
    copy each time, so callers may change it freely.
    """

    name: str
    title: str
    description: str
    method: str
    read_only: bool
    idempotent: bool
    _schema: Mapping[str, Any] = attrs.field(repr=False)
    _params: tuple[_Param, ...] = attrs.field(repr=False)

    @property
    def input_schema(self) -> dict[str, Any]:
        """The JSON Schema (draft 2020-12 compatible) of the arguments: an object schema."""
        return copy.deepcopy(dict(self._schema))

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(p.name for p in self._params if p.required)

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(p.name for p in self._params)


@functools.cache
def _registry() -> dict[str, ToolDefinition]:
    return {spec.name: _build(spec) for spec in _SPECS}


def tool_definitions(names: Iterable[str] | None = None) -> tuple[ToolDefinition, ...]:
    """The tools, in a stable order; `names` picks some of them (an unknown name is a ValueError).

    >>> [tool.name for tool in tool_definitions()]
    ['pacspace_emit_delta', 'pacspace_delta_status', ...]
    """
    registry = _registry()
    if names is None:
        return tuple(registry.values())
    if isinstance(names, str):
        raise InvalidArgumentError("names must be a list of tool names, not one string")
    chosen = list(dict.fromkeys(names))
    unknown = [name for name in chosen if name not in registry]
    if unknown:
        raise InvalidArgumentError(f"unknown tools {unknown}; the tools are {list(registry)}")
    return tuple(registry[name] for name in chosen)


def openai_tools(names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The tools in OpenAI's function-calling format (``tools=`` of chat completions).

    ``[{"type": "function", "function": {"name", "description", "parameters"}}, ...]``
    """
    return [
        {
            "type": "function",
            "function": {"name": tool.name, "description": tool.description, "parameters": tool.input_schema},
        }
        for tool in tool_definitions(names)
    ]


def anthropic_tools(names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The tools in Anthropic's Messages API format: ``[{"name", "description", "input_schema"}, ...]``."""
    return [
        {"name": tool.name, "description": tool.description, "input_schema": tool.input_schema}
        for tool in tool_definitions(names)
    ]


def mcp_tools(names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The tools as an MCP ``tools/list`` result lists them: ``name``, ``title``, ``description``,
    ``inputSchema`` and ``annotations`` (read-only, idempotent, destructive and open-world hints)."""
    return [
        {
            "name": tool.name,
            "title": tool.title,
            "description": tool.description,
            "inputSchema": tool.input_schema,
            "annotations": {
                "title": tool.title,
                "readOnlyHint": tool.read_only,
                "destructiveHint": False,
                "idempotentHint": tool.idempotent,
                "openWorldHint": True,
            },
        }
        for tool in tool_definitions(names)
    ]


# --- checking arguments (the subset of JSON Schema the tools use) --------------------------------


def _type_matches(expected: str, value: object) -> bool:
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "null":
        return value is None
    if expected == "object":
        return isinstance(value, Mapping)
    if expected == "array":
        return isinstance(value, (list, tuple))
    if isinstance(value, bool):
        return False
    if expected == "number":
        if isinstance(value, Decimal):
            return value.is_finite()
        return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    if expected == "integer":
        if isinstance(value, int):
            return True
        if isinstance(value, float):
            return math.isfinite(value) and value.is_integer()
        return isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value()
    return False


def _json_type(value: object) -> str:
    for name in ("null", "boolean", "string", "integer", "number", "object", "array"):
        if _type_matches(name, value):
            return name
    return type(value).__name__


def _check(schema: Mapping[str, Any], value: object, where: str, problems: list[str]) -> None:
    expected = schema.get("type")
    if expected is not None:
        allowed = [expected] if isinstance(expected, str) else list(expected)
        if not any(_type_matches(t, value) for t in allowed):
            problems.append(f"{where}: expected {' or '.join(allowed)}, got {_json_type(value)}")
            return
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: must be one of {', '.join(json.dumps(v) for v in schema['enum'])}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(f"{where}: must not be empty" if schema["minLength"] == 1 else f"{where}: too short")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{where}: at most {schema['maxLength']} characters, got {len(value)}")
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            problems.append(f"{where}: {json.dumps(value)} does not match {schema['pattern']}")
    elif isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        for keyword, fails, text in (
            ("minimum", operator.lt, "at least"),
            ("maximum", operator.gt, "at most"),
            ("exclusiveMinimum", operator.le, "more than"),
            ("exclusiveMaximum", operator.ge, "less than"),
        ):
            if keyword in schema and fails(value, schema[keyword]):
                problems.append(f"{where}: must be {text} {schema[keyword]}, got {value}")
    elif isinstance(value, (list, tuple)) and "items" in schema:
        for index, item in enumerate(value):
            _check(schema["items"], item, f"{where}[{index}]", problems)
    elif isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            problems.append(f"{where}: keys must be strings")
            return
        properties: Mapping[str, Any] = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                problems.append(f"{_join(where, name)}: required")
        if schema.get("additionalProperties") is False:
            for name in value:
                if name not in properties:
                    problems.append(f"{_join(where, name)}: unexpected argument (known: {', '.join(properties)})")
        for name, item in value.items():
            if name in properties:
                _check(properties[name], item, _join(where, name), problems)


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _without_nulls(tool: ToolDefinition, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A null for an optional argument means "not given" (models often send them)."""
    optional = {p.name for p in tool._params if not p.required}
    return {k: v for k, v in arguments.items() if not (v is None and k in optional)}


def validate_arguments(name: str, arguments: Mapping[str, Any]) -> list[str]:
    """Every problem with `arguments` for tool `name`, as short sentences (empty when valid).

    A null given for an optional argument counts as absent. No request is made.
    """
    tool = _registry().get(name)
    if tool is None:
        return [f"unknown tool {name!r}; the tools are: {', '.join(_registry())}"]
    return _problems(tool, arguments)


def _problems(tool: ToolDefinition, arguments: object) -> list[str]:
    if not isinstance(arguments, Mapping):
        return [f"arguments must be a JSON object, got {_json_type(arguments)}"]
    problems: list[str] = []
    _check(tool._schema, _without_nulls(tool, arguments), "", problems)
    return problems


def _exact_amount(value: object) -> object:
    """A JSON number for money, made exact before the SDK's checks (which refuse floats).

    Numbers in JSON text are read as Decimals already (``0.1`` → ``Decimal("0.1")``); a float a
    host parsed itself is taken at its shortest repr, the digits the JSON text had
    (``0.1`` → ``Decimal("0.1")``, never ``0.1000000000000000055...``). Anything else is
    left to the SDK's own check.
    """
    if isinstance(value, float) and math.isfinite(value):
        return Decimal(repr(value))
    return value


def _python_arguments(tool: ToolDefinition, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Checked JSON values → the SDK's argument types (money stays exact)."""
    kinds = {p.name: p.kind for p in tool._params}
    out: dict[str, Any] = {}
    for name, value in arguments.items():
        kind = kinds[name]
        if kind == "money":
            value = _exact_amount(value)
        elif kind == "integer":
            value = int(value)
        elif kind == "number":
            value = float(value)
        elif kind == "object":
            value = dict(value)
        elif kind == "array":
            value = list(value)
        out[name] = value
    return out


def _parse(arguments: object) -> tuple[object, str | None]:
    """Arguments as given: a mapping, JSON text (OpenAI sends a string), or None for none."""
    if arguments is None:
        return {}, None
    if isinstance(arguments, (bytes, bytearray)):
        try:
            arguments = bytes(arguments).decode("utf-8")
        except UnicodeDecodeError:
            return None, "arguments must be UTF-8 JSON text"
    if isinstance(arguments, str):
        if not arguments.strip():
            return {}, None
        try:
            return _codec.decode(arguments), None
        except ValueError as error:
            return None, f"arguments are not valid JSON: {error}"
    return arguments, None


# --- results ------------------------------------------------------------------------------------

_NEXT_STEP: Mapping[ErrorAction, str] = {
    ErrorAction.FIX_INPUT: (
        "The request was refused because of its arguments: correct them as the message says, then call again. "
        "Do not repeat the same call unchanged."
    ),
    ErrorAction.RETRY: (
        "A temporary failure: call the tool again with exactly the same arguments (the same reference_id); "
        "it is never counted twice."
    ),
    ErrorAction.WAIT_AND_RETRY: (
        "Wait retry_after seconds (a few seconds if it is null), then call the tool again with exactly the "
        "same arguments (the same reference_id)."
    ),
    ErrorAction.ALERT_OPERATOR: (
        "Stop and tell a human operator: the API key, its permissions or the set-up must be fixed. "
        "Retrying will not help."
    ),
}

_CONFLICT_STEP = (
    "This reference_id (or idempotency key) was already used with different arguments. If you are retrying, "
    "send exactly the original arguments; if this is a new event, use a new reference_id."
)

_ERROR_EXTRAS = ("customer_id", "record_id", "last_status", "key_id", "method", "path")


def error_result(error: PacSpaceError) -> dict[str, Any]:
    """A `PacSpaceError` as the structured, JSON-safe result a tool call returns.

    ``{"ok": false, "error": {"class", "action", "retryable", "retry_after", "message", "status",
    "code", "idempotency_key", "request_id", "next_step", ...}}``. Never a secret: messages are
    redacted by the SDK and the response body is left out.
    """
    action = error.action
    details: dict[str, Any] = {
        "class": type(error).__name__,
        "action": action.value,
        "retryable": error.retryable,
        "retry_after": _float_or_none(getattr(error, "retry_after", None)),
        "message": error.message,
        "status": getattr(error, "status", None),
        "code": getattr(error, "code", None),
        "idempotency_key": error.idempotency_key,
        "request_id": getattr(error, "request_id", None),
        "next_step": _CONFLICT_STEP if isinstance(error, ConflictError) else _NEXT_STEP.get(action, ""),
    }
    for name in _ERROR_EXTRAS:
        value = getattr(error, name, None)
        if isinstance(value, str):
            details[name] = value
    return {"ok": False, "error": details}


def _float_or_none(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _refusal(message: str, code: str, problems: list[str] | None = None) -> dict[str, Any]:
    result = error_result(InvalidArgumentError(message))
    result["error"]["code"] = code
    if problems is not None:
        result["error"]["errors"] = problems
    return result


def _instant(value: datetime) -> str:
    if value.tzinfo is not None and value.utcoffset() == timezone.utc.utcoffset(None):
        return value.replace(tzinfo=None).isoformat() + "Z"
    return value.isoformat()


def to_jsonable(value: Any) -> Any:
    """SDK results as plain JSON values: attrs models become dicts of their fields and public
    properties (``raw`` left out), Decimal a string, datetime ISO 8601, enums their value."""
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return _instant(value)
    if isinstance(value, date):
        return value.isoformat()
    if attrs.has(type(value)):
        out = {f.name: to_jsonable(getattr(value, f.name)) for f in attrs.fields(type(value)) if f.name != "raw"}
        for klass in type(value).__mro__:
            for name, member in vars(klass).items():
                if isinstance(member, property) and not name.startswith("_") and name not in out:
                    out[name] = to_jsonable(getattr(value, name))
        return out
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(item) for item in value]
    return str(value)


# --- calling ------------------------------------------------------------------------------------


async def call_tool(
    pac: AsyncPacSpace,
    name: str,
    arguments: Mapping[str, Any] | str | bytes | None = None,
) -> dict[str, Any]:
    """Run tool `name` with the model's `arguments` (a mapping, or the JSON text of one).

    Returns ``{"ok": true, "result": {...}}`` or ``{"ok": false, "error": {...}}`` — JSON-safe,
    ready to hand back to the model. Bad arguments and unknown tools come back as ``fix_input``
    errors without any request being sent; every `PacSpaceError` of the call comes back with its
    ``action`` (and ``retry_after`` on a 429). Anything else (a closed client, a bug) raises.

    >>> result = await call_tool(pac, "pacspace_delta_status", {"record_id": "rec_1"})
    """
    tool = _registry().get(name) if isinstance(name, str) else None
    if tool is None:
        return _refusal(f"unknown tool {name!r}; the tools are: {', '.join(_registry())}", "UNKNOWN_TOOL")
    parsed, problem = _parse(arguments)
    if problem is not None:
        return _refusal(f"{name}: {problem}", "INVALID_ARGUMENTS", [problem])
    problems = _problems(tool, parsed)
    if problems or not isinstance(parsed, Mapping):
        return _refusal(f"{name}: invalid arguments: {'; '.join(problems)}", "INVALID_ARGUMENTS", problems)
    kwargs = _python_arguments(tool, _without_nulls(tool, parsed))
    method: Any = pac
    for attribute in tool.method.split("."):
        method = getattr(method, attribute)
    try:
        result = await method(**kwargs)
    except PacSpaceError as error:
        return error_result(error)
    return {"ok": True, "result": to_jsonable(result)}
