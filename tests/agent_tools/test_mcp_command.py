"""``pacspace mcp``: a real MCP client drives the command over stdio and streamable HTTP.

The emulator runs on its own thread; the command gets its key and base URLs from the environment,
as a host's configuration would give them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.session import ClientRequestContext
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from pacspace_async import AsyncPacSpace, ConfigurationError
from pacspace_async import _mcp_command as command
from pacspace_async.testing import Emulator
from pacspace_async.tools import tool_definitions
from pacspace_async.tools.mcp import TOKEN_VARIABLE, create_server, serve_http, transport_security

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok3n-for-the-tests-0123456789"
EMIT = {"customer_id": "cust_cli", "delta": "-12.50", "reason": "usage", "reference_id": "inv_cli_1"}
EMIT_PATH = "/api/v1/balance/delta"
READS = [tool.name for tool in tool_definitions() if tool.read_only]
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
}
POST_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@functools.cache
def registered() -> bool:
    """Whether the ``pacspace`` command knows ``mcp`` (else the module runs on its own)."""
    from pacspace_async.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(["mcp", "--help"])
        except SystemExit as done:
            return done.code == 0
    return False


def argv(*flags: str) -> list[str]:
    module = "pacspace_async" if registered() else "pacspace_async._mcp_command"
    return [sys.executable, "-m", module, "mcp", *flags]


def cli(*flags: str) -> tuple[int, str]:
    """Run ``pacspace mcp FLAGS`` in-process up to where it would serve; the exit code and stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            if registered():
                from pacspace_async.cli import main

                code = main(["mcp", *flags], err=err)
            else:
                code = command.main(["mcp", *flags], err=err)
        except SystemExit as done:
            code = int(done.code or 0)
    return code, err.getvalue()


def environment(emu: Emulator, **extra: str) -> dict[str, str]:
    return {
        "PACSPACE_API_KEY": emu.create_key("sandbox"),
        "PACSPACE_SANDBOX_URL": emu.sandbox_url,
        "PACSPACE_PRODUCTION_URL": emu.production_url,
        **extra,
    }


def emits(emu: Emulator) -> int:
    return sum(1 for r in emu.requests if r.method == "POST" and r.path == EMIT_PATH)


@contextlib.asynccontextmanager
async def over_stdio(env: dict[str, str], *flags: str, **options: Any) -> AsyncIterator[tuple[Client, io.StringIO]]:
    """An MCP client session with ``pacspace mcp FLAGS`` as a subprocess; yields it and (after) its stderr."""
    process_argv = argv(*flags)
    params = StdioServerParameters(command=process_argv[0], args=process_argv[1:], env=env, cwd=ROOT)
    stderr = io.StringIO()
    with tempfile.TemporaryFile("w+") as errlog:
        try:
            async with Client(stdio_client(params, errlog=errlog), **options) as client:
                yield client, stderr
        finally:
            errlog.seek(0)
            stderr.write(errlog.read())


def payload(result: types.CallToolResult) -> dict[str, Any]:
    assert isinstance(result.structured_content, dict)
    return result.structured_content


# --- stdio ----------------------------------------------------------------------------------


async def test_stdio_serves_read_tools_only_by_default(pacspace_emulator_thread: Emulator) -> None:
    env = environment(pacspace_emulator_thread)
    async with over_stdio(env) as (client, stderr):
        listed = [tool.name for tool in (await client.list_tools()).tools]
        emit = await client.call_tool("pacspace_emit_delta", EMIT)
        read = await client.call_tool("pacspace_derive_balance", {"customer_id": "cust_cli"})
    assert listed == READS
    assert emit.is_error
    assert payload(emit)["error"]["code"] == "POLICY_TOOL_NOT_ALLOWED"
    assert payload(read)["error"]["code"] == "CUSTOMER_NOT_FOUND"  # sent, and answered by the emulator
    assert emits(pacspace_emulator_thread) == 0
    secret = env["PACSPACE_API_KEY"].split(".", 1)[1]
    banner = stderr.getvalue()
    assert "pacspace mcp: sandbox key pk_test_" in banner
    assert "serving over stdio" in banner
    assert secret not in banner


async def test_stdio_with_allow_limits_and_approval(pacspace_emulator_thread: Emulator) -> None:
    shown: list[str] = []

    async def approve(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        shown.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": True})

    flags = ("--allow", "pacspace_emit_delta", "--max-delta", "50", "--customer", "cust_c*", "--require-approval")
    async with over_stdio(environment(pacspace_emulator_thread), *flags, elicitation_callback=approve) as (client, _):
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        first = await client.call_tool("pacspace_emit_delta", EMIT)
        again = await client.call_tool("pacspace_emit_delta", EMIT)  # a retried call: the same arguments
        too_large = await client.call_tool("pacspace_emit_delta", {**EMIT, "delta": "-50.01", "reference_id": "x"})
        elsewhere = await client.call_tool("pacspace_emit_delta", {**EMIT, "customer_id": "acme", "reference_id": "y"})
    assert set(listed) == {"pacspace_emit_delta", *READS}
    assert listed["pacspace_emit_delta"].annotations is not None
    assert listed["pacspace_emit_delta"].annotations.idempotent_hint is True
    assert payload(first)["ok"] is True
    assert payload(again)["result"]["replayed"] is True
    assert payload(too_large)["error"]["code"] == "POLICY_DELTA_TOO_LARGE"
    assert payload(elsewhere)["error"]["code"] == "POLICY_CUSTOMER_NOT_ALLOWED"
    assert len(shown) == 2  # each delivery of the emit was approved; the refused ones were not asked about
    assert [d.delta for d in pacspace_emulator_thread.deltas()] == [Decimal("-12.50")]
    assert emits(pacspace_emulator_thread) == 2


# --- flags and settings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--allow", "pacspace_refund"], "unknown tools"),
        (["--max-delta", "abc"], "--max-delta"),
        (["--max-delta", "0"], "more than 0"),
        (["--max-total", "1.5e400"], "--max-total"),
        (["--customer", ""], "customer id"),
        (["--transport", "ftp"], "invalid choice"),
        (["--port", "70000"], "65535"),
        (["--host", "0.0.0.0"], "--transport http"),
        (["--port", "8000"], "--transport http"),
    ],
)
def test_bad_flags_are_a_one_line_usage_error(flags: list[str], said: str) -> None:
    code, err = cli(*flags)
    assert code == 2
    assert err.count("\n") == 1, err
    assert said in err


def test_without_a_key_it_refuses_to_start() -> None:
    code, err = cli()
    assert code == 2
    assert err.count("\n") == 1
    assert "PACSPACE_API_KEY" in err


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "127.0.0.1"])
def test_http_refuses_to_start_without_a_token(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    monkeypatch.setenv("PACSPACE_API_KEY", "pk_test_pubMcp.sEcReT1234567890")
    code, err = cli("--transport", "http", "--host", host)
    assert code == 2
    assert err.count("\n") == 1
    assert TOKEN_VARIABLE in err
    assert "refusing" in err
    assert ("not a loopback host" in err) is (host != "127.0.0.1")
    monkeypatch.setenv(TOKEN_VARIABLE, "short")
    code, err = cli("--transport", "http", "--host", host)
    assert code == 2
    assert "at least 16 characters" in err
    assert "short" not in err  # never echoed


def command_args(*flags: str) -> Any:
    parser = command._Parser(prog="pacspace")
    command.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["mcp", *flags])


def test_the_flags_make_the_policy() -> None:
    default = command.policy_from(command_args())
    assert default.allow == ("read",)
    assert default.approve is None
    assert default.customers is None
    flags = ["--allow", "write", "--allow", "write", "--max-delta", "50", "--max-total", "500.5"]
    flags += ["--customer", "cust_*", "--customer", "vip", "--require-approval"]
    policy = command.policy_from(command_args(*flags))
    assert policy.allow == ("read", "write")
    assert (policy.max_abs_delta, policy.max_total) == (Decimal("50"), Decimal("500.5"))
    assert policy.customers == ("cust_*", "vip")
    assert policy.approve is True


# --- streamable HTTP ------------------------------------------------------------------------


@pytest.fixture
async def http_url(pacspace_emulator: Emulator) -> AsyncIterator[str]:
    """`serve_http` on a free port of 127.0.0.1, token required; stopped (gracefully) after."""
    async with pacspace_emulator.client() as pac:
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        serving = asyncio.create_task(
            serve_http(create_server(pac), token=TOKEN, host="127.0.0.1", port=0, on_ready=ready.set_result)
        )
        try:
            yield await asyncio.wait_for(ready, 10)
        finally:
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving


WRONG_CREDENTIALS = [
    {},
    {"Authorization": "Bearer wrong-token-0123456789"},
    {"Authorization": TOKEN},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
    {"Authorization": f"Basic {TOKEN}"},
]


async def test_http_without_the_right_bearer_token_is_401(http_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for headers in WRONG_CREDENTIALS:
            async with http.post(http_url, json=INITIALIZE, headers={**POST_HEADERS, **headers}) as answer:
                assert answer.status == 401, headers
                assert answer.headers["WWW-Authenticate"].startswith("Bearer")
                assert TOKEN not in await answer.text()


REBINDING = [
    ({"Host": "attacker.example"}, 421),
    ({"Host": "attacker.example:8765"}, 421),
    ({"Origin": "http://attacker.example"}, 403),
    ({"Origin": "https://127.0.0.1.attacker.example"}, 403),
]


async def test_http_refuses_a_rebound_host_or_a_foreign_origin(http_url: str) -> None:
    """In both protocol eras (the 2026-07-28 requests take another path through the package)."""
    async with aiohttp.ClientSession() as http:
        for version in (None, "2026-07-28"):
            extra = {"MCP-Protocol-Version": version} if version else {}
            for headers, status in REBINDING:
                sent = {**POST_HEADERS, "Authorization": f"Bearer {TOKEN}", **extra, **headers}
                async with http.post(http_url, json=INITIALIZE, headers=sent) as answer:
                    assert answer.status == status, (version, headers)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_http_with_the_token_serves_the_tools(http_url: str, mode: str) -> None:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
        Client(streamable_http_client(http_url, http_client=http), mode=mode) as client,
    ):
        listed = [tool.name for tool in (await client.list_tools()).tools]
        verified = await client.call_tool("pacspace_verify_proof", {"proof_root": "0x" + "ab" * 32})
    assert listed == READS
    assert payload(verified)["ok"] is True


async def test_http_on_every_interface_with_a_token_still_checks_host_and_origin(
    pacspace_emulator: Emulator,
) -> None:
    async with pacspace_emulator.client() as pac:
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        serving = asyncio.create_task(
            serve_http(create_server(pac), token=TOKEN, host="0.0.0.0", port=0, on_ready=ready.set_result)
        )
        try:
            port = (await asyncio.wait_for(ready, 10)).rsplit(":", 1)[1].split("/")[0]
            url = f"http://127.0.0.1:{port}/mcp"
            auth = {**POST_HEADERS, "Authorization": f"Bearer {TOKEN}"}
            async with aiohttp.ClientSession() as http:
                async with http.post(url, json=INITIALIZE, headers=auth) as answer:
                    assert answer.status == 200
                async with http.post(url, json=INITIALIZE, headers={**auth, "Host": "attacker.example"}) as answer:
                    assert answer.status == 421
                async with http.post(url, json=INITIALIZE, headers=POST_HEADERS) as answer:
                    assert answer.status == 401
        finally:
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving


async def test_the_http_command_serves_a_client_with_the_token(pacspace_emulator_thread: Emulator) -> None:
    passed = {k: v for k, v in os.environ.items() if not k.startswith("PACSPACE_")}
    env = {**passed, **environment(pacspace_emulator_thread, **{TOKEN_VARIABLE: TOKEN})}
    process = await asyncio.create_subprocess_exec(
        *argv("--transport", "http", "--port", "0"),
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        banner = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
        assert "serving http://127.0.0.1:" in banner, banner
        url = banner.split("serving ", 1)[1].split()[0]
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            listed = [tool.name for tool in (await client.list_tools()).tools]
        assert listed == READS
        assert TOKEN not in banner
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


# --- the Host/Origin lists ------------------------------------------------------------------


def test_the_allowed_hosts_follow_the_bind_address() -> None:
    loopback = transport_security("127.0.0.1")
    assert loopback.enable_dns_rebinding_protection
    assert "127.0.0.1:*" in loopback.allowed_hosts
    assert "localhost:*" in loopback.allowed_hosts
    assert "http://localhost:*" in loopback.allowed_origins
    named = transport_security("mcp.internal.example")
    assert "mcp.internal.example:*" in named.allowed_hosts
    assert not any("attacker" in host for host in named.allowed_hosts)
    assert "[::1]:*" in transport_security("::1").allowed_hosts


def test_serve_http_refuses_a_port_it_cannot_listen_on(pacspace_emulator_thread: Emulator) -> None:
    async def attempt() -> None:
        async with pacspace_emulator_thread.client() as pac:
            await serve_http(create_server(pac), token=TOKEN, host="192.0.2.1", port=0)

    with pytest.raises(ConfigurationError, match="cannot listen"):
        asyncio.run(attempt())


@pytest.fixture(autouse=True)
def _no_token_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)


async def test_the_client_is_never_built_from_a_tool_argument(pacspace_emulator: Emulator) -> None:
    """The key is the process's own: no tool schema offers a key, a base URL or an environment."""
    async with pacspace_emulator.client() as pac:
        assert isinstance(pac, AsyncPacSpace)
        async with Client(create_server(pac, command.policy_from(command_args("--allow", "*")))) as client:
            listed = (await client.list_tools()).tools
    for tool in listed:
        assert not {"api_key", "key", "base_url", "environment"} & set(tool.input_schema["properties"])
