"""PacSpace tools as an MCP server, on the official ``mcp`` package (``pip install 'pacspace[mcp]'``).

>>> from pacspace_async.tools import ToolPolicy
>>> from pacspace_async.tools.mcp import create_server, serve_stdio
>>> async with AsyncPacSpace() as pac:
...     await serve_stdio(create_server(pac, ToolPolicy(allow=("read", "pacspace_emit_delta"))))

The tools and their schemas come from the registry, filtered by the policy (read-only without
one). Their annotations tell the truth: reads are ``readOnlyHint``; emit is ``idempotentHint``
(its idempotency key is derived from ``reference_id``); nothing is destructive; PacSpace is an
open world. Every call goes through `call_tool`: its result is the structured content, and a
refusal or a failure is an ``isError`` result carrying the structured error (never a traceback,
never a secret), which the model reads and acts on.

With ``ToolPolicy(approve=True)`` every write asks the person at the host first, through MCP
elicitation: on the 2026-07-28 protocol the call answers ``input_required`` and resumes when the
client retries with the answer (the state it echoes is sealed and bound to the same tool and
arguments); on earlier versions the server asks in the middle of the call. Declined, cancelled,
or a client that cannot ask: the write is refused and nothing is sent.

`serve_stdio` serves one host over stdin/stdout; `serve_http` serves streamable HTTP behind a
bearer token, with the ``Host`` and ``Origin`` checks against DNS rebinding.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import socket
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Literal

from .._client import AsyncPacSpace
from .._errors import ConfigurationError, ErrorAction, PacSpaceError
from .._logging import logger as _logger
from .._version import __version__
from . import ToolDefinition, ToolPolicy, call_tool, error_result, mcp_tools

try:
    import mcp_types as types
    import uvicorn
    from mcp.server import Server, ServerRequestContext
    from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
    from mcp.server.stdio import stdio_server
    from mcp.server.transport_security import TransportSecuritySettings
    from mcp.shared.exceptions import MCPError, NoBackChannelError
    from mcp_types.version import is_version_at_least
    from starlette.types import ASGIApp, Receive, Scope, Send
except ImportError as missing:  # pragma: no cover - depends on the installation
    raise ImportError("pacspace_async.tools.mcp needs the MCP SDK: pip install 'pacspace[mcp]'") from missing

__all__ = [
    "MIN_TOKEN_LENGTH",
    "TOKEN_VARIABLE",
    "check_token",
    "create_server",
    "http_app",
    "serve_http",
    "serve_stdio",
    "transport_security",
]

TOKEN_VARIABLE = "PACSPACE_MCP_TOKEN"
MIN_TOKEN_LENGTH = 16

_INSTRUCTIONS = (
    "PacSpace: a neutral ledger of customer balance changes (deltas), with verifiable proofs. "
    "Send amounts as decimal strings. Give every emit a reference_id of its business event and send the "
    "same one when retrying: it is then recorded once. A result with ok=false carries an error whose "
    "'action' and 'next_step' say what to do."
)

# The protocol revision from which a server asks the client inside the result (input_required)
# rather than with a request of its own in the middle of the call.
_INPUT_REQUIRED_VERSION = "2026-07-28"
_APPROVAL_KEY = "pacspace_approval"
_APPROVAL_STATE = "pacspace-approval-asked"
_APPROVAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approve": {
            "type": "boolean",
            "title": "Approve this call",
            "description": "Send it to PacSpace now.",
            "default": True,
        }
    },
    "required": ["approve"],
}
_MAX_SHOWN_ARGUMENTS = 2000

_GENERATE_TOKEN = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


# --- the server -----------------------------------------------------------------------------


def create_server(pac: AsyncPacSpace, policy: ToolPolicy | None = None, *, name: str = "pacspace") -> Server[Any]:
    """An MCP server (the ``mcp`` package's low-level `Server`) serving the tools `policy` allows.

    One `policy` object should serve every connection: its running total counts what it let
    through. Serve it with `serve_stdio`, `serve_http`, or any ``mcp`` transport
    (``mcp.Client(server)`` connects in-process).
    """
    if not isinstance(pac, AsyncPacSpace):
        raise ConfigurationError(f"create_server needs an AsyncPacSpace, not {type(pac).__name__}")
    policy = ToolPolicy() if policy is None else policy
    if not isinstance(policy, ToolPolicy):
        raise ConfigurationError(f"policy must be a pacspace_async.tools.ToolPolicy, not {type(policy).__name__}")
    listing = [types.Tool.model_validate(tool) for tool in mcp_tools(policy=policy)]
    writes = {tool.name: tool for tool in policy.tools() if policy.needs_host_approval(tool.name)}

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[tool.model_copy(deep=True) for tool in listing])

    async def call(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        arguments = params.arguments or {}
        approved: bool | None = None  # not asked: call_tool refuses the write (APPROVAL_REQUIRED)
        tool = writes.get(params.name)
        if tool is not None and not _refused_anyway(policy, tool, arguments):
            answer = await _host_approval(ctx, params, tool, arguments)
            if isinstance(answer, types.InputRequiredResult):
                return answer
            if answer in ("approved", "declined"):
                approved = answer == "approved"
        try:
            result = await call_tool(pac, params.name, arguments, policy=policy, approved=approved)
        except Exception as error:  # a bug or a closed client: the host gets a clean error, the log the cause
            result = _unexpected(params.name, error)
        return _tool_result(result)

    server: Server[Any] = Server(
        name,
        version=__version__,
        title="PacSpace",
        instructions=_INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call,
    )
    # The approval round trip hands the client a state to echo back: sealed under a key of this
    # process and bound to the same tool and arguments, so an answer cannot be moved to another call.
    server.middleware.append(RequestStateBoundary(RequestStateSecurity.ephemeral(), default_audience=name))
    return server


def _unexpected(name: str, error: Exception) -> dict[str, Any]:
    # Where and what, redacted by the logger's filter; not the traceback, whose text no filter sees.
    where = traceback.extract_tb(error.__traceback__)[-1]
    _logger.error(
        "tool %s failed unexpectedly at %s:%s: %s: %s", name, where.filename, where.lineno, type(error).__name__, error
    )
    return error_result(
        PacSpaceError(
            f"{name} failed inside the MCP server ({type(error).__name__}); nothing more is known here: "
            "the server's log has the details",
            action=ErrorAction.ALERT_OPERATOR,
        )
    )


def _tool_result(result: Mapping[str, Any]) -> types.CallToolResult:
    text = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
    return types.CallToolResult(
        content=[types.TextContent(text=text)],
        structured_content=dict(result),
        is_error=not result.get("ok", False),
    )


# --- approval by the person at the host -----------------------------------------------------


def _refused_anyway(policy: ToolPolicy, tool: ToolDefinition, arguments: Mapping[str, Any]) -> bool:
    """True when the policy refuses this call whatever the answer: nobody is asked about it."""
    try:
        return policy.refusal(tool, arguments) is not None
    except PacSpaceError:  # arguments the call itself will judge (and explain) once approved
        return False


def _approval_question(tool: ToolDefinition, arguments: Mapping[str, Any]) -> types.ElicitRequest:
    shown = json.dumps(arguments, ensure_ascii=False, sort_keys=True, default=str)
    if len(shown) > _MAX_SHOWN_ARGUMENTS:
        shown = shown[:_MAX_SHOWN_ARGUMENTS] + "…"
    message = f"An agent wants to {tool.title.lower()} in PacSpace ({tool.name}) with {shown}. Approve?"
    return types.ElicitRequest(params=types.ElicitRequestFormParams(message=message, requested_schema=_APPROVAL_SCHEMA))


def _client_can_elicit(ctx: ServerRequestContext[Any, Any]) -> bool:
    capabilities = ctx.session.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    # A bare ``elicitation: {}`` (from before modes existed) means forms; URL-only does not.
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


_Answer = Literal["approved", "declined", "not asked"]


def _answer(answer: object) -> _Answer:
    """Only an explicit accept with ``approve`` true approves; anything else declines."""
    if isinstance(answer, types.ElicitResult) and answer.action == "accept" and answer.content is not None:
        return "approved" if answer.content.get("approve") is True else "declined"
    return "declined"


async def _host_approval(
    ctx: ServerRequestContext[Any, Any],
    params: types.CallToolRequestParams,
    tool: ToolDefinition,
    arguments: Mapping[str, Any],
) -> _Answer | types.InputRequiredResult:
    """Ask the person at the host. On protocols that ask through the result, the first round's
    answer is the question itself (``input_required``)."""
    if not _client_can_elicit(ctx):
        return "not asked"
    question = _approval_question(tool, arguments)
    if is_version_at_least(ctx.protocol_version, _INPUT_REQUIRED_VERSION):
        answers = params.input_responses or {}
        # The state came back through the sealed boundary, so it is ours and bound to this call.
        if params.request_state == _APPROVAL_STATE and _APPROVAL_KEY in answers:
            return _answer(answers[_APPROVAL_KEY])
        return types.InputRequiredResult(input_requests={_APPROVAL_KEY: question}, request_state=_APPROVAL_STATE)
    try:
        answer = await ctx.session.elicit_form(
            question.params.message, _APPROVAL_SCHEMA, related_request_id=ctx.request_id
        )
    except NoBackChannelError:  # this connection cannot carry a question to the client
        return "not asked"
    except MCPError as error:  # the client could not ask, or would not answer: no approval
        _logger.info("approval for %s was not given: %s", params.name, error.error.message)
        return "declined"
    return _answer(answer)


# --- transports -----------------------------------------------------------------------------


async def serve_stdio(server: Server[Any]) -> None:
    """Serve one host over this process's stdin and stdout until it closes them.

    Nothing else may write to stdout meanwhile: the ``mcp`` package points it at stderr while serving.
    """
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def _is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    return host.strip("[]") in ("0.0.0.0", "::", "")


def _host_names(host: str) -> list[str]:
    """The names a client may put in ``Host`` to reach a server bound to `host`."""
    names = {"127.0.0.1", "localhost", "[::1]"}
    if _is_wildcard(host):
        # Every interface: the machine's own names and addresses (best effort).
        names.update({socket.gethostname(), socket.getfqdn()})
        try:
            names.update(str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None))
        except OSError:
            pass
    elif not _is_loopback(host):
        names.add(host)
    return sorted(f"[{name}]" if ":" in name and not name.startswith("[") else name for name in names)


def transport_security(host: str) -> TransportSecuritySettings:
    """``Host`` and ``Origin`` checks against DNS rebinding for a server bound to `host`.

    A page elsewhere that rebinds its own name to this address still sends its own name in
    ``Host`` and its own origin in ``Origin``: both are refused.
    """
    names = _host_names(host)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*names, *(f"{name}:*" for name in names)],
        allowed_origins=[
            f"{scheme}://{name}{port}" for scheme in ("http", "https") for name in names for port in ("", ":*")
        ],
    )


def check_token(token: str | None, host: str) -> str:
    """The bearer token, checked: a money-moving server is never open to whoever can reach it."""
    where = "on a loopback host" if _is_loopback(host) else f"on {host} (not a loopback host)"
    if token is None or not token.strip():
        raise ConfigurationError(
            f"refusing to serve MCP over HTTP {where} without a bearer token: set {TOKEN_VARIABLE} "
            f"(e.g. export {TOKEN_VARIABLE}=$({_GENERATE_TOKEN})) and have the host send "
            "'Authorization: Bearer <token>'"
        )
    token = token.strip()
    if len(token) < MIN_TOKEN_LENGTH or any(ch.isspace() for ch in token):
        raise ConfigurationError(
            f"{TOKEN_VARIABLE} must be at least {MIN_TOKEN_LENGTH} characters without spaces "
            f"(make one with {_GENERATE_TOKEN})"
        )
    return token


class _BearerAuth:
    """Refuses (401) every request without ``Authorization: Bearer <token>``, compared in constant time."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        given = next((value for key, value in scope["headers"] if key == b"authorization"), b"")
        if hmac.compare_digest(given, self._expected):
            await self._app(scope, receive, send)
            return
        body = json.dumps({"error": "unauthorized", "message": "send Authorization: Bearer <token>"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="pacspace-mcp"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def http_app(server: Server[Any], *, token: str | None, host: str = "127.0.0.1", path: str = "/mcp") -> ASGIApp:
    """The streamable-HTTP ASGI app of `server`: bearer token first, then the ``Host``/``Origin`` checks.

    Raises `ConfigurationError` without a usable token, whatever the host.
    """
    checked = check_token(token, host)
    app = server.streamable_http_app(streamable_http_path=path, transport_security=transport_security(host), host=host)
    return _BearerAuth(app, checked)


async def serve_http(
    server: Server[Any],
    *,
    token: str | None,
    host: str = "127.0.0.1",
    port: int = 8765,
    path: str = "/mcp",
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve streamable HTTP on `host`:`port` (0: a free port) until cancelled (or SIGINT/SIGTERM).

    `on_ready` receives the endpoint's URL once the socket listens (with the port resolved).
    Raises `ConfigurationError` without a usable token, or when the address cannot be listened on.
    """
    # In a thread: the host names of a wildcard address are looked up (DNS), which may block.
    app = await asyncio.to_thread(http_app, server, token=token, host=host, path=path)
    listening = _listen(host, port)
    try:
        config = uvicorn.Config(
            app, log_config=None, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5
        )
        web = uvicorn.Server(config)
        running = asyncio.ensure_future(web.serve(sockets=[listening]))
        if on_ready is not None:
            shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
            on_ready(f"http://{shown}:{listening.getsockname()[1]}{path}")
        try:
            await asyncio.shield(running)
        except asyncio.CancelledError:
            # Stop the way a signal would: open streams are closed and the session manager shut down.
            web.should_exit = True
            await running
            raise
    finally:
        listening.close()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host.strip("[]"), port), family=family)
    except OSError as error:
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {error.strerror or error}; pick another --port (0 picks a free one)"
        ) from None
