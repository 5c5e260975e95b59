"""`call_tool`: one model tool call, from its JSON arguments to a JSON-safe result, through the policy.

There is one validation gate: the arguments are bound to the SDK method's signature (unknown,
missing) and then checked by the method itself, before it sends anything — the same checks and
the same errors as a direct call. The policy's rules run in between, on the bound arguments, so a
refused call is never sent. Every call, allowed, refused or failed, yields one audit record.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from .. import _codec
from .._errors import ConfigurationError, InvalidArgumentError, PacSpaceError
from .._logging import logger
from ._policy import Reservation, ToolCall, ToolCallRecord, ToolPolicy, ToolPolicyError
from ._registry import ToolDefinition, registry
from ._results import error_result, refusal, to_jsonable

if TYPE_CHECKING:
    from .._client import AsyncPacSpace

__all__ = ["call_tool", "parse_arguments"]


def parse_arguments(arguments: object) -> tuple[object, str | None]:
    """Arguments as given: a mapping, JSON text (OpenAI sends a string), or None for none.

    JSON numbers are read as Decimals, so money stays exact.
    """
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


def _exact_amount(value: object) -> object:
    """Money made exact before the SDK's checks (which refuse floats): a float a host parsed
    itself is taken at its shortest repr, the digits its JSON text had (0.1 → Decimal("0.1"))."""
    if isinstance(value, float) and math.isfinite(value):
        return Decimal(repr(value))
    return value


def _integral(value: float | Decimal) -> bool:
    if isinstance(value, Decimal):
        return value.is_finite() and value == value.to_integral_value()
    return math.isfinite(value) and value.is_integer()


def _json_to_python(kind: str, value: object) -> object:
    """A JSON value → the SDK argument's type where JSON cannot say it (no validation here)."""
    if kind == "money":
        return _exact_amount(value)
    # JSON has one number type: 5.0 is the integer 5, as JSON Schema's "integer" says.
    if kind == "integer" and isinstance(value, (float, Decimal)) and _integral(value):
        return int(value)
    if kind == "number" and isinstance(value, Decimal) and value.is_finite():
        return float(value)
    return value


def bind(tool: ToolDefinition, arguments: object) -> tuple[dict[str, Any] | None, list[str]]:
    """The method's keyword arguments, or the problems that make them unbindable.

    A null for an optional argument means "not given" (strict schemas make models send them).
    Types and values are the method's own checks' business, not this function's.
    """
    if not isinstance(arguments, Mapping):
        return None, [f"arguments must be a JSON object, got {type(arguments).__name__}"]
    if not all(isinstance(key, str) for key in arguments):
        return None, ["argument names must be strings"]
    params = {param.name: param for param in tool.params}
    problems = [f"{name}: unexpected argument (known: {', '.join(params)})" for name in arguments if name not in params]
    given = {name: value for name, value in arguments.items() if name in params}
    problems += [f"{param.name}: required" for param in tool.params if param.required and given.get(param.name) is None]
    if problems:
        return None, problems
    kwargs = {name: _json_to_python(params[name].kind, value) for name, value in given.items() if value is not None}
    return kwargs, []


def _method(pac: AsyncPacSpace, tool: ToolDefinition) -> Any:
    method: Any = pac
    for attribute in tool.method.split("."):
        method = getattr(method, attribute)
    return method


async def _approved(policy: ToolPolicy, call: ToolCall, approved: bool | None) -> Approval:
    """Who approved this write (None: nobody needed to). Raises ToolPolicyError when refused."""
    if approved is True:
        return "host"
    if approved is False:
        raise ToolPolicyError(f"{call.name} was declined by the person asked; nothing was sent", code="APPROVAL_DENIED")
    if policy.approve is None:
        return None
    if policy.approve is True:
        raise ToolPolicyError(
            f"{call.name} needs a human's approval, and this host has no way to ask for it; nothing was sent",
            code="APPROVAL_REQUIRED",
        )
    approve = policy.approve
    if inspect.iscoroutinefunction(approve):
        answer = await approve(call)
    else:
        # A person may be answering it (input(), a chat prompt): in a worker thread it holds back
        # no other call on this event loop.
        answer = await asyncio.to_thread(approve, call)
        if inspect.isawaitable(answer):
            answer = await answer
    if answer is not True:
        raise ToolPolicyError(f"{call.name} was not approved; nothing was sent", code="APPROVAL_DENIED")
    return "policy"


def _local(error: PacSpaceError) -> bool:
    """Raised before anything was sent: the SDK's own checks, its set-up, or the policy."""
    return isinstance(error, (InvalidArgumentError, ConfigurationError, ToolPolicyError))


def _not_recorded(error: PacSpaceError) -> bool:
    """True when a write that was sent and raised certainly recorded nothing.

    A 4xx to the first attempt says so; a 4xx to a retry does not (an earlier attempt may have
    been recorded and its answer lost).
    """
    status = getattr(error, "status", None)
    return isinstance(status, int) and 400 <= status < 500 and getattr(error, "retries_taken", 0) == 0


Outcome = Literal["ok", "refused", "failed"]
Approval = Literal["policy", "host"] | None


async def _run(
    pac: AsyncPacSpace, tool: ToolDefinition, parsed: object, policy: ToolPolicy, approved: bool | None
) -> tuple[dict[str, Any], Outcome, Approval]:
    kwargs, problems = bind(tool, parsed)
    if kwargs is None:
        return (
            refusal(f"{tool.name}: invalid arguments: {'; '.join(problems)}", "INVALID_ARGUMENTS", problems),
            "refused",
            None,
        )
    reserved: Reservation | None = None
    approved_by: Approval = None
    sending = False  # from here on the write may reach PacSpace: only its answer can say it did not
    try:
        refused = policy.refusal(tool, kwargs)
        if refused is not None:
            raise refused
        if not tool.read_only:
            reserved = policy.reserve(kwargs, scope=pac.environment.value)
            approved_by = await _approved(policy, ToolCall(tool.name, dict(kwargs), tool.read_only), approved)
        sending = True
        answer = await _method(pac, tool)(**kwargs)
    except PacSpaceError as error:
        if reserved is not None and (not sending or _local(error) or _not_recorded(error)):
            policy.release(reserved)
        result = error_result(error)
        if isinstance(error, InvalidArgumentError):  # the method's own checks: as bind's refusals
            result["error"]["code"] = "INVALID_ARGUMENTS"
        return result, "refused" if _local(error) or not sending else "failed", approved_by
    except BaseException:
        if reserved is not None and not sending:
            policy.release(reserved)
        raise
    if reserved is not None and getattr(answer, "replayed", None) is True:
        policy.release(reserved)  # recorded before: it moves no money now
    return {"ok": True, "result": to_jsonable(answer)}, "ok", approved_by


async def call_tool(
    pac: AsyncPacSpace,
    name: str,
    arguments: Mapping[str, Any] | str | bytes | None = None,
    *,
    policy: ToolPolicy | None = None,
    approved: bool | None = None,
) -> dict[str, Any]:
    """Run tool `name` with the model's `arguments` (a mapping, or the JSON text of one).

    Returns ``{"ok": true, "result": {...}}`` or ``{"ok": false, "error": {...}}`` — JSON-safe,
    ready to hand back to the model. Unknown tools, bad arguments and calls the `policy` refuses
    (read-only by default) come back as errors without any request being sent; every
    `PacSpaceError` of the call comes back with its ``action``. `approved` is the host's own
    approval (OpenAI Agents' approvals, MCP elicitation) of this write: True approved (the
    policy's `approve` is not asked again), False declined (refused, nothing sent), None not asked.
    Anything else (a closed client, a bug, a cancellation) raises, after its audit record.

    >>> result = await call_tool(pac, "pacspace_delta_status", {"record_id": "rec_1"})
    """
    policy = policy or ToolPolicy()
    started = time.perf_counter()
    parsed, problem = parse_arguments(arguments)
    tool = registry().get(name) if isinstance(name, str) else None
    approved_by: Approval = None
    outcome: Outcome = "refused"
    if tool is None:
        known = ", ".join(tool.name for tool in policy.tools())
        result = refusal(f"unknown tool {name!r}; the tools are: {known}", "UNKNOWN_TOOL")
    elif problem is not None:
        result = refusal(f"{tool.name}: {problem}", "INVALID_ARGUMENTS", [problem])
    else:
        try:
            result, outcome, approved_by = await _run(pac, tool, parsed, policy, approved)
        except BaseException as exc:
            failure = {"ok": False, "error": {"code": type(exc).__name__, "action": None}}
            await _audit(policy, name, parsed, "failed", failure, None, time.perf_counter() - started)
            raise
    await _audit(policy, name, parsed, outcome, result, approved_by, time.perf_counter() - started)
    return result


async def _audit(
    policy: ToolPolicy,
    name: object,
    parsed: object,
    outcome: Outcome,
    result: Mapping[str, Any],
    approved_by: Approval,
    duration: float,
) -> None:
    arguments = to_jsonable(parsed) if isinstance(parsed, Mapping) else {}
    details: Mapping[str, Any] = result["result"] if result["ok"] else result["error"]
    if not isinstance(details, Mapping):
        details = {}
    record = ToolCallRecord(
        tool=str(name),
        arguments=arguments,
        outcome=outcome,
        code=None if result["ok"] else details.get("code"),
        action=None if result["ok"] else details.get("action"),
        idempotency_key=details.get("idempotency_key"),
        request_id=details.get("request_id"),
        duration_s=duration,
        approved_by=approved_by,
        replayed=details.get("replayed") if result["ok"] else None,
    )
    if logger.isEnabledFor(logging.INFO):
        logger.info(
            "tool %s %s (code=%s, idempotency_key=%s, request_id=%s, approved_by=%s, %.1f ms) arguments=%s",
            record.tool,
            record.outcome,
            record.code,
            record.idempotency_key,
            record.request_id,
            record.approved_by,
            duration * 1000,
            _codec.dumps(arguments).decode(),
        )
    hook = policy.on_tool_call
    if hook is None:
        return
    try:
        returned = hook(record)
        if inspect.isawaitable(returned):
            await returned
    except Exception as exc:  # an audit sink's failure must not change the call's result
        logger.warning("on_tool_call hook raised %s: %s", type(exc).__name__, exc)
