"""PacSpace tools for LangChain: native `StructuredTool`s from the registry, through the policy.

>>> from pacspace_async.tools import ToolPolicy
>>> from pacspace_async.tools.langchain import structured_tools
>>> tools = structured_tools(pac, ToolPolicy(allow=("read", "pacspace_emit_delta")))
>>> model.bind_tools(tools)        # or create_agent(model, tools), a LangGraph ToolNode(tools), ...

Needs ``pip install 'pacspace[langchain]'`` (langchain-core). One `StructuredTool` per tool the
policy lists (read-only by default): name, description and JSON Schema (``args_schema``) are the
registry's, and every call goes through `call_tool` with the same policy object, so its rules, its
running total and its audit record apply to every call. LangChain does not validate a JSON Schema
``args_schema``; the SDK's own checks are the one validation gate, as for a direct call.

Which client, which path (none blocks a running event loop):

- `AsyncPacSpace`: ``await tool.ainvoke(...)`` awaits `call_tool` on the caller's loop
  (``coroutine=``). ``tool.invoke(...)`` from a thread with no running loop (a framework running
  tools in worker threads) hands the call to the loop the client lives on and waits for it there.
  On a thread that runs an event loop, ``invoke`` raises `RuntimeError` instead of blocking it.
- ``pacspace_sync.PacSpace``: ``tool.invoke(...)`` blocks (``func=``, the sync `call_tool`);
  ``await tool.ainvoke(...)`` runs that in LangChain's executor thread (its own default for a
  tool without a coroutine), so the loop keeps running.

Results: ``tool.invoke(arguments)`` returns the dict `call_tool` returns, ``{"ok": true,
"result": {...}}`` or ``{"ok": false, "error": {...}}``. Invoked with a tool call as an agent
passes it (``{"name", "args", "id", "type": "tool_call"}``), it returns a ``ToolMessage`` whose
content is that dict's JSON text (what the model reads), whose ``artifact`` is the dict itself
(for the host, never sent to the model), and whose ``status`` is ``"error"`` when ``ok`` is false
(chat model integrations pass that on, e.g. Anthropic's ``is_error``). A refusal or a failure is
never raised: the model reads its ``action`` and acts on it.

Approval: LangChain has no approval step of its own, so the policy's ``approve`` callable (asked
by `call_tool` before every write, sync or async) is what applies. With ``approve=True`` (the
host approves) every write is refused with ``APPROVAL_REQUIRED`` and nothing is sent: pass a
callable that asks your human instead.

``strict=True`` gives each tool `strict_schema` (every property required, optional ones
nullable) for ``model.bind_tools(tools, strict=True)``: LangChain's own strict conversion would
otherwise make every optional argument required and non-null, which the SDK then refuses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .._client import AsyncPacSpace
from .._errors import ConfigurationError
from . import ToolDefinition, ToolPolicy, call_tool, strict_schema

try:
    from langchain_core.messages import ToolMessage
    from langchain_core.tools import StructuredTool
except ImportError as missing:  # pragma: no cover - depends on the installation
    raise ImportError(
        "pacspace_async.tools.langchain needs langchain-core: pip install 'pacspace[langchain]'"
    ) from missing

if TYPE_CHECKING:
    from pacspace_sync import PacSpace

__all__ = ["structured_tools"]

# The result twice: LangChain's "content_and_artifact" format makes the first the ToolMessage's
# content (its JSON text is what the model reads) and keeps the second, untouched, as its artifact.
_Output = tuple[dict[str, Any], dict[str, Any]]
_Blocking = Callable[..., _Output]
_Async = Callable[..., Awaitable[_Output]]

_IN_A_LOOP = (
    "{name}: tool.invoke() was called on a thread that is running an event loop, and waiting for "
    "the AsyncPacSpace there would block that loop; use `await tool.ainvoke(...)` (or make the tools "
    "from a pacspace_sync.PacSpace for blocking code)"
)
_NO_LOOP = (
    "{name}: tool.invoke() needs the event loop this AsyncPacSpace runs on, and none is running; "
    "call `await tool.ainvoke(...)` from async code, or make the tools from a pacspace_sync.PacSpace "
    "for blocking code"
)


def structured_tools(
    pac: AsyncPacSpace | PacSpace, policy: ToolPolicy | None = None, *, strict: bool = False
) -> list[StructuredTool]:
    """The tools `policy` allows (read-only by default) as LangChain `StructuredTool`s.

    `pac` is an `AsyncPacSpace` (make the tools on the event loop it runs on) or a blocking
    ``pacspace_sync.PacSpace``. The same `policy` object serves every call, as its running total
    counts what it has let through. `strict` gives the strict-mode schemas (see the module).
    """
    policy = ToolPolicy() if policy is None else policy
    if not isinstance(policy, ToolPolicy):
        raise ConfigurationError(
            f"policy must be a pacspace_async.tools.ToolPolicy or None, got {type(policy).__name__}"
        )
    if not isinstance(strict, bool):
        raise ConfigurationError(f"strict must be True or False, got {strict!r}")
    make = _maker(pac, policy)
    return [
        make(definition, strict_schema(definition) if strict else definition.input_schema)
        for definition in policy.tools()
    ]


def _maker(pac: object, policy: ToolPolicy) -> Callable[[ToolDefinition, dict[str, Any]], StructuredTool]:
    """How a tool of this kind of client is made: which of ``func=`` / ``coroutine=`` it gets."""
    if isinstance(pac, AsyncPacSpace):
        client = pac
        made_on = _running_loop()

        def make_async(definition: ToolDefinition, schema: dict[str, Any]) -> StructuredTool:
            name = definition.name

            async def run(**arguments: Any) -> _Output:
                result = await call_tool(client, name, arguments, policy=policy)
                return result, result

            def run_blocking(**arguments: Any) -> _Output:
                result = _wait_in_home_loop(client, made_on, name, arguments, policy)
                return result, result

            return _tool(definition, schema, run_blocking, run)

        return make_async
    sync_client, sync_call_tool = _sync_api()
    if isinstance(pac, sync_client):
        blocking_client = pac

        def make_sync(definition: ToolDefinition, schema: dict[str, Any]) -> StructuredTool:
            name = definition.name

            def run(**arguments: Any) -> _Output:
                result = sync_call_tool(blocking_client, name, arguments, policy=policy)
                return result, result

            # No coroutine: LangChain's ainvoke then runs `run` in its executor thread, never on the loop.
            return _tool(definition, schema, run, None)

        return make_sync
    raise ConfigurationError(
        "structured_tools needs a client: a pacspace_async.AsyncPacSpace or a pacspace_sync.PacSpace, "
        f"got {type(pac).__name__}"
    )


def _sync_api() -> tuple[type[Any], Callable[..., dict[str, Any]]]:
    # Imported on first use: the blocking facade is built on this package, not the other way round.
    from pacspace_sync import PacSpace
    from pacspace_sync.tools import call_tool as sync_call_tool

    return PacSpace, sync_call_tool


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _wait_in_home_loop(
    pac: AsyncPacSpace,
    made_on: asyncio.AbstractEventLoop | None,
    name: str,
    arguments: dict[str, Any],
    policy: ToolPolicy,
) -> dict[str, Any]:
    """`call_tool` run on the client's own loop, waited for from this (loop-less) thread.

    The client's pools belong to the loop that first used it; before its first call, the loop
    the tools were made on stands for it. A new loop of our own would strand the client on it.
    """
    if _running_loop() is not None:
        raise RuntimeError(_IN_A_LOOP.format(name=name))
    home = pac._requester.transport._loop or made_on
    if home is None or home.is_closed() or not home.is_running():
        raise RuntimeError(_NO_LOOP.format(name=name))
    future = asyncio.run_coroutine_threadsafe(call_tool(pac, name, arguments, policy=policy), home)
    try:
        return future.result()
    except BaseException:
        future.cancel()  # an interrupted wait (Ctrl-C) must not leave the call running unseen
        raise


class _PacSpaceTool(StructuredTool):
    """A `StructuredTool` whose ToolMessage says ``status="error"`` when the result is not ok."""

    def run(self, *args: Any, **kwargs: Any) -> Any:
        return _marked(super().run(*args, **kwargs))

    async def arun(self, *args: Any, **kwargs: Any) -> Any:
        return _marked(await super().arun(*args, **kwargs))


def _marked(output: Any) -> Any:
    if isinstance(output, ToolMessage) and isinstance(output.artifact, dict) and output.artifact.get("ok") is False:
        return output.model_copy(update={"status": "error"})
    return output


def _tool(
    definition: ToolDefinition, schema: dict[str, Any], func: _Blocking, coroutine: _Async | None
) -> StructuredTool:
    return _PacSpaceTool(
        name=definition.name,
        description=definition.description,
        args_schema=schema,
        func=func,
        coroutine=coroutine,
        response_format="content_and_artifact",
        metadata={"pacspace_method": definition.method, "read_only": definition.read_only},
    )
