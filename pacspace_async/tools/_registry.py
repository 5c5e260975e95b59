"""The registry: each tool's JSON Schema, derived from its SDK method's signature.

A schema and its method cannot drift apart: types, required-ness and defaults come from the
signature, choices and patterns from the SDK's own constants (`_specs`).
"""

from __future__ import annotations

import ast
import copy
import functools
import inspect
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, Union

import attrs

from .._errors import InvalidArgumentError
from ._specs import (
    CHOICES,
    CONSTRAINTS,
    MONEY_LIMIT,
    MONEY_PATTERN,
    PARAMETERS,
    SPECS,
    TEXT_PATTERN,
    TRANSPORT_OPTIONS,
    Spec,
)

__all__ = ["Param", "ToolDefinition", "registry", "tool_definitions"]


@attrs.frozen
class Param:
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
        money = {
            "type": ["string", "number"],
            "pattern": MONEY_PATTERN,
            "minimum": -MONEY_LIMIT,
            "maximum": MONEY_LIMIT,
        }
        return money, "money"
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
        if name in CHOICES:
            return {"type": "string", "enum": list(CHOICES[name])}, "string"
        return {"type": "string", "minLength": 1, "pattern": TEXT_PATTERN}, "string"
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


def _exposed_parameters(spec: Spec) -> list[inspect.Parameter]:
    """The method's parameters the model is offered, in signature order."""
    hidden = (TRANSPORT_OPTIONS - spec.keep) | spec.drop
    params = list(inspect.signature(spec.function).parameters.values())[1:]  # without self
    return [
        p
        for p in params
        if p.name not in hidden and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


def _build(spec: Spec) -> ToolDefinition:
    where = f"{spec.name} ({spec.function.__qualname__})"
    hints = typing.get_type_hints(spec.function)
    properties: dict[str, Any] = {}
    params: list[Param] = []
    for param in _exposed_parameters(spec):
        schema, kind = _schema_of(where, param.name, hints[param.name], param.annotation)
        schema.update(CONSTRAINTS.get(param.name, {}))
        description = spec.notes.get(param.name) or PARAMETERS.get(param.name)
        if description is None:  # a new parameter nobody described yet: still usable
            description = param.name.replace("_", " ").capitalize() + "."
        required = param.default is inspect.Parameter.empty or param.name in spec.require
        if not required and param.default is not None:
            default = _json_default(kind, param.default)
            if default is not None:
                schema["default"] = default
        properties[param.name] = {"description": description, **schema}
        params.append(Param(param.name, kind, required))
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
    _params: tuple[Param, ...] = attrs.field(repr=False)

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

    @property
    def params(self) -> tuple[Param, ...]:
        """Each parameter's name, kind (how a JSON value becomes the argument) and required-ness."""
        return self._params


@functools.cache
def registry() -> dict[str, ToolDefinition]:
    return {spec.name: _build(spec) for spec in SPECS}


def tool_definitions(names: Iterable[str] | None = None) -> tuple[ToolDefinition, ...]:
    """The tools, in a stable order; `names` picks some of them (an unknown name is a ValueError).

    >>> [tool.name for tool in tool_definitions()]
    ['pacspace_emit_delta', 'pacspace_delta_status', ...]
    """
    known = registry()
    if names is None:
        return tuple(known.values())
    if isinstance(names, str):
        raise InvalidArgumentError("names must be a list of tool names, not one string")
    chosen = list(dict.fromkeys(names))
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise InvalidArgumentError(f"unknown tools {unknown}; the tools are {list(known)}")
    return tuple(known[name] for name in chosen)
