"""``pacspace mcp``: the PacSpace tools served to an MCP host (Claude Desktop, an IDE, any MCP client).

    pacspace mcp                                  # read-only tools over stdio
    pacspace mcp --allow pacspace_emit_delta --max-delta 50 --max-total 500 --customer 'cust_*'
    PACSPACE_MCP_TOKEN=... pacspace mcp --transport http --port 8765

The key comes from ``PACSPACE_API_KEY`` only (never from a tool argument or the model), the base
URLs from ``PACSPACE_SANDBOX_URL`` / ``PACSPACE_PRODUCTION_URL``. Over stdio, stdout carries the
protocol and nothing else; every other line goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from ._credentials import API_KEY_VARIABLE
from ._errors import ConfigurationError, InvalidArgumentError
from .resources._args import amount_arg

if TYPE_CHECKING:
    from .tools import ToolPolicy

__all__ = ["add_parser", "main", "run"]

EXIT_OK, EXIT_USAGE = 0, 2
DEFAULT_HTTP_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8765

_HELP = "serve the PacSpace tools to an MCP host (read-only unless --allow says otherwise)"
_EPILOG = """environment:
  PACSPACE_API_KEY          the API key (required; never taken from a flag or from the model)
  PACSPACE_SANDBOX_URL      base URLs (optional), e.g. the emulator's
  PACSPACE_PRODUCTION_URL
  PACSPACE_MCP_TOKEN        the bearer token HTTP clients must send (required with --transport http)

exit codes:
  0  the host closed the connection (stdio) or the server was stopped (http)
  2  usage: a bad flag, a missing or bad setting, or the [mcp] extra missing (one line on stderr)"""


# --- argument types: a bad value is a one-line usage error (exit 2) --------------------------


def _tool_or_group(text: str) -> str:
    from .tools import ToolPolicy

    try:
        ToolPolicy(allow=(text,))
    except InvalidArgumentError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _limit(flag: str) -> Any:
    def parse(text: str) -> Decimal:
        try:
            amount = amount_arg(flag, text)
        except InvalidArgumentError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        if amount <= 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
        return amount

    return parse


def _pattern(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a customer id or a glob such as 'cust_*', got an empty value")
    return text


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535, got {value}")
    return value


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``mcp`` command to `commands` (the ``add_subparsers()`` of the ``pacspace`` parser)."""
    sub: argparse.ArgumentParser = commands.add_parser(
        "mcp", help=_HELP, description=_HELP, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub.add_argument(
        "--allow",
        action="append",
        type=_tool_or_group,
        metavar="NAME_OR_GROUP",
        help="also allow this tool, or a group: read, write, * (repeatable; default: read only)",
    )
    sub.add_argument("--max-delta", type=_limit("--max-delta"), metavar="AMOUNT", help="largest |delta| of one emit")
    sub.add_argument(
        "--max-total", type=_limit("--max-total"), metavar="AMOUNT", help="largest sum of |delta| this server sends"
    )
    sub.add_argument(
        "--customer",
        action="append",
        type=_pattern,
        metavar="PATTERN",
        help="customers a call may name: an exact id or a glob such as 'cust_*' (repeatable; default: any)",
    )
    sub.add_argument(
        "--require-approval",
        action="store_true",
        help="every write asks the person at the host first (MCP elicitation); refused where it cannot ask",
    )
    sub.add_argument("--transport", choices=("stdio", "http"), default="stdio", help="default stdio")
    sub.add_argument("--host", help=f"with --transport http: address to listen on (default {DEFAULT_HTTP_HOST})")
    sub.add_argument(
        "--port",
        type=_port,
        help=f"with --transport http: port to listen on (default {DEFAULT_HTTP_PORT}; 0: a free one)",
    )
    sub.set_defaults(check=functools.partial(_check, sub))
    return sub


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What one option's type cannot see: options that contradict each other."""
    if args.transport == "stdio" and (args.host is not None or args.port is not None):
        parser.error("--host and --port need --transport http")


# --- running --------------------------------------------------------------------------------


def policy_from(args: argparse.Namespace) -> ToolPolicy:
    """The `ToolPolicy` the flags ask for: read tools, plus what ``--allow`` names."""
    from .tools import ToolPolicy

    allow = ("read", *dict.fromkeys(args.allow or ()))
    return ToolPolicy(
        allow=allow,
        max_abs_delta=args.max_delta,
        max_total=args.max_total,
        customers=tuple(args.customer) if args.customer else None,
        approve=True if args.require_approval else None,
    )


def _fail(message: str, err: TextIO) -> int:
    err.write(f"pacspace: {' '.join(message.split())}\n")
    return EXIT_USAGE


def run(args: argparse.Namespace, err: TextIO | None = None) -> int:
    """Serve until the host disconnects (stdio) or the process is stopped (http); returns the exit code."""
    err = err or sys.stderr
    try:
        from .tools import mcp as adapter
    except ImportError as error:
        return _fail(str(error), err)
    host = args.host if args.host is not None else DEFAULT_HTTP_HOST
    port = args.port if args.port is not None else DEFAULT_HTTP_PORT
    try:
        policy = policy_from(args)
        token = None
        if args.transport == "http":
            token = adapter.check_token(os.environ.get(adapter.TOKEN_VARIABLE), host)
        if not os.environ.get(API_KEY_VARIABLE, "").strip():
            raise ConfigurationError(
                f"pacspace mcp needs an API key in {API_KEY_VARIABLE} (the tools never take one from the model)"
            )
        asyncio.run(_serve(args.transport, policy, token, host, port, err))
    except KeyboardInterrupt:
        pass
    except (ConfigurationError, InvalidArgumentError) as error:
        return _fail(str(error), err)
    return EXIT_OK


async def _serve(transport: str, policy: ToolPolicy, token: str | None, host: str, port: int, err: TextIO) -> None:
    from ._client import AsyncPacSpace
    from .tools import mcp as adapter

    async with AsyncPacSpace() as pac:
        server = adapter.create_server(pac, policy)
        names = ", ".join(tool.name for tool in policy.tools())
        what = f"pacspace mcp: {pac.environment.value} key {pac.key_id}; tools: {names}"
        if transport == "stdio":
            err.write(f"{what}; serving over stdio\n")
            err.flush()
            await adapter.serve_stdio(server)
            return

        def ready(url: str) -> None:
            err.write(f"{what}; serving {url} (send Authorization: Bearer ${adapter.TOKEN_VARIABLE})\n")
            err.flush()

        await adapter.serve_http(server, token=token, host=host, port=port, on_ready=ready)


# --- on its own: python -m pacspace_async._mcp_command mcp ... -------------------------------


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (the usage itself is one `--help` away), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None, *, err: TextIO | None = None) -> int:
    parser = _Parser(prog="pacspace")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.check(args)
    return run(args, err)


if __name__ == "__main__":
    sys.exit(main())
