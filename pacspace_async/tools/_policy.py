"""`ToolPolicy`: what an agent may do with the client it was handed, decided before anything is sent.

A policy holds an allow list (tool names and the groups ``"read"``, ``"write"``, ``"*"``; read-only
by default), a bound on each emit's ``|delta|``, a bound on the running total of ``|delta|`` it has
let through (sent or in flight), the customers a call may name (exact ids or globs), and who
approves a write. A call must pass every one of them. The rules are pure functions over the
call; the only state is the running total, guarded by a lock so that one policy can serve a sync
client's threads and several event loops at once.
"""

from __future__ import annotations

import fnmatch
import threading
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, Literal

import attrs

from .._errors import ErrorAction, InvalidArgumentError, PacSpaceError
from ..resources._args import amount_arg
from ._registry import ToolDefinition, registry

__all__ = ["Approver", "AuditHook", "GROUPS", "ToolCall", "ToolCallRecord", "ToolPolicy", "ToolPolicyError"]

GROUPS = frozenset({"read", "write", "*"})


@attrs.frozen
class ToolCall:
    """A call an approver is asked about: the tool and its arguments as the SDK will receive them."""

    name: str
    arguments: Mapping[str, Any]
    read_only: bool


@attrs.frozen
class Reservation:
    """What one write counted against a policy's `max_total`: its size and its business event."""

    size: Decimal
    event: tuple[str, str, str] | None


@attrs.frozen
class ToolCallRecord:
    """The audit record of one tool call: allowed, refused or failed, exactly one per call.

    `outcome` is ``"ok"`` (answered), ``"refused"`` (stopped before sending: bad arguments or the
    policy) or ``"failed"`` (sent, or tried, and PacSpace or the network said no). `approved_by`
    is ``"policy"`` (the `approve` callable), ``"host"`` (the framework's own approval) or None.
    """

    tool: str
    arguments: Mapping[str, Any]
    outcome: Literal["ok", "refused", "failed"]
    code: str | None
    action: str | None
    idempotency_key: str | None
    request_id: str | None
    duration_s: float
    approved_by: Literal["policy", "host"] | None = None
    replayed: bool | None = None


Approver = Callable[[ToolCall], "bool | Awaitable[bool]"]
AuditHook = Callable[[ToolCallRecord], "Awaitable[None] | None"]


class ToolPolicyError(PacSpaceError):
    """A tool call the policy refused; nothing was sent. `code` says which rule (``POLICY_...``)."""

    default_action = ErrorAction.ALERT_OPERATOR

    def __init__(self, message: str, *, code: str, action: ErrorAction | None = None) -> None:
        super().__init__(message, action=action)
        self.code = code


def _limit(name: str, value: object) -> Decimal | None:
    if value is None:
        return None
    amount = amount_arg(name, value)
    if amount <= 0:
        raise InvalidArgumentError(f"{name} must be more than 0, got {amount}")
    return amount


def _max_abs_delta(value: object) -> Decimal | None:
    return _limit("max_abs_delta", value)


def _max_total(value: object) -> Decimal | None:
    return _limit("max_total", value)


def _allow_list(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, Iterable) or not all(isinstance(item, str) for item in value):
        raise InvalidArgumentError('allow must be tool names and groups ("read", "write", "*")')
    items = tuple(value)
    unknown = [item for item in items if item not in GROUPS and item not in registry()]
    if unknown:
        raise InvalidArgumentError(
            f"allow names unknown tools {unknown}; tools: {list(registry())}, groups: read, write, *"
        )
    return items


def _patterns(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, Iterable) or not all(isinstance(item, str) and item for item in value):
        raise InvalidArgumentError("customers must be customer ids or glob patterns such as 'cust_*'")
    return tuple(value)


def _approver(value: object) -> Approver | Literal[True] | None:
    if value is None or value is False:
        return None
    if value is True:
        return True
    if callable(value):
        return typing.cast(Approver, value)
    raise InvalidArgumentError("approve must be None, True (the host approves) or a callable taking a ToolCall")


@attrs.frozen
class ToolPolicy:
    """What a model may do through the tools. Read-only by default.

    >>> policy = ToolPolicy(allow=("read", "pacspace_emit_delta"), max_abs_delta=Decimal("50"),
    ...                     max_total=Decimal("500"), customers=("cust_*",))

    `approve`: None (writes need no approval), a callable ``(ToolCall) -> bool`` (or awaitable)
    asked before every write, or True: every write needs the host's own approval (OpenAI Agents'
    ``needs_approval``, MCP elicitation); where the host has none, writes are refused.
    `on_tool_call` receives one `ToolCallRecord` per call (sync or async).
    """

    allow: tuple[str, ...] = attrs.field(default=("read",), converter=_allow_list)
    max_abs_delta: Decimal | None = attrs.field(default=None, converter=_max_abs_delta)
    max_total: Decimal | None = attrs.field(default=None, converter=_max_total)
    customers: tuple[str, ...] | None = attrs.field(default=None, converter=_patterns)
    approve: Approver | Literal[True] | None = attrs.field(default=None, converter=_approver)
    on_tool_call: AuditHook | None = attrs.field(default=None)
    _spent: list[Decimal] = attrs.field(factory=lambda: [Decimal(0)], init=False, repr=False, eq=False)
    _events: set[tuple[str, str, str]] = attrs.field(factory=set, init=False, repr=False, eq=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.on_tool_call is not None and not callable(self.on_tool_call):
            raise InvalidArgumentError("on_tool_call must be a callable taking a ToolCallRecord")

    # --- what a model sees ------------------------------------------------------------------

    def allows(self, name: str) -> bool:
        """True when tool `name` may be listed and called under this policy."""
        tool = registry().get(name)
        if tool is None:
            return False
        group = "read" if tool.read_only else "write"
        return "*" in self.allow or group in self.allow or name in self.allow

    def tools(self) -> tuple[ToolDefinition, ...]:
        """The tools this policy exposes, in the registry's order."""
        return tuple(tool for name, tool in registry().items() if self.allows(name))

    def needs_host_approval(self, name: str) -> bool:
        """True when a call of `name` needs the host's approval before `call_tool(..., approved=True)`."""
        tool = registry().get(name)
        return self.approve is True and tool is not None and not tool.read_only

    @property
    def total(self) -> Decimal:
        """``|delta|`` let through so far: sent, or in flight."""
        return self._spent[0]

    # --- the rules (no I/O) -----------------------------------------------------------------

    def refusal(self, tool: ToolDefinition, arguments: Mapping[str, Any]) -> ToolPolicyError | None:
        """Why this call may not be sent, or None. Arguments are the SDK's (already bound)."""
        if not self.allows(tool.name):
            allowed = ", ".join(self.allow)
            return ToolPolicyError(
                f"{tool.name} is not allowed for this agent (allowed: {allowed}); an operator can allow it",
                code="POLICY_TOOL_NOT_ALLOWED",
            )
        if self.customers is not None and "customer_id" in tool.parameters:
            customer = arguments.get("customer_id")
            if not isinstance(customer, str) or not any(
                fnmatch.fnmatchcase(customer, pattern) for pattern in self.customers
            ):
                named = "every customer" if customer is None else f"customer {customer!r}"
                return ToolPolicyError(
                    f"{tool.name} on {named} is not allowed for this agent (allowed customers: "
                    f"{', '.join(self.customers)})",
                    code="POLICY_CUSTOMER_NOT_ALLOWED",
                )
        if "delta" in arguments and self.max_abs_delta is not None:
            size = abs(amount_arg("delta", arguments["delta"]))
            if size > self.max_abs_delta:
                return ToolPolicyError(
                    f"|delta| {size} is above this agent's limit of {self.max_abs_delta} per delta; "
                    "a human operator must record it (do not split it into smaller deltas)",
                    code="POLICY_DELTA_TOO_LARGE",
                )
        return None

    def reserve(self, arguments: Mapping[str, Any], *, scope: str = "") -> Reservation | None:
        """Count this call's ``|delta|`` against `max_total` (None: nothing new to count).

        A call repeating a ``(customer_id, reference_id)`` this policy already let through counts
        nothing again: it is a retry of the same event and records at most once, so a resumed
        run near its limit is not refused for it. `scope` (the client's environment) keeps a
        sandbox event apart from a production one. Raises `ToolPolicyError` when the total would
        pass `max_total`; the caller gives the reservation back with `release` when the delta
        was certainly not recorded, or had been recorded before.
        """
        if "delta" not in arguments:
            return None
        size = abs(amount_arg("delta", arguments["delta"]))
        reference = arguments.get("reference_id")
        event = None if reference is None else (scope, str(arguments.get("customer_id")), str(reference))
        with self._lock:
            if event is not None and event in self._events:
                return None
            after = self._spent[0] + size
            if self.max_total is not None and after > self.max_total:
                raise ToolPolicyError(
                    f"this delta would take the agent's running total to {after}, above its limit of "
                    f"{self.max_total}; a human operator must raise the limit",
                    code="POLICY_TOTAL_EXCEEDED",
                )
            self._spent[0] = after
            if event is not None:
                self._events.add(event)
        return Reservation(size, event)

    def release(self, reservation: Reservation) -> None:
        with self._lock:
            self._spent[0] -= reservation.size
            if reservation.event is not None:
                self._events.discard(reservation.event)
