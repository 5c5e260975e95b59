"""``pacspace key``: what a key is (``inspect``, offline) and whether PacSpace accepts it (``check``).

    PACSPACE_API_KEY=pk_live_... pacspace key inspect
    pacspace key check --stdin < /run/secrets/pacspace-api-key

``check`` sends the probe ``rotate_key(verify=True)`` sends: one ``GET /api/v1/balance/usage``
with the key, to the key's own environment, never retried. The secret is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any, TextIO

from ._cli_args import seconds
from ._credentials import API_KEY_VARIABLE, ApiKey
from ._errors import (
    APIStatusError,
    AuthenticationError,
    ConfigurationError,
    InvalidArgumentError,
    PacSpaceError,
    PermissionDeniedError,
)

__all__ = ["add_parser", "run"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_API = 0, 1, 2, 3
DEFAULT_TIMEOUT = 10.0

_HELP = "API key tools: inspect a key offline, or check that PacSpace accepts it"
_EPILOG = f"""the key is read from {API_KEY_VARIABLE}, or from stdin when it is unset or with --stdin
(pacspace key check --stdin < /run/secrets/pacspace-api-key); the secret is never printed.

environment (check only):
  PACSPACE_SANDBOX_URL      base URLs (optional), e.g. the emulator's; --base-url wins
  PACSPACE_PRODUCTION_URL

exit codes:
  0  inspect: a well-formed key; check: PacSpace accepted the key
  1  the key is malformed, or PacSpace refused it (401 invalid, revoked or of the other
     environment; 403 the key may not read /api/v1/balance/usage)
  2  usage: a bad argument or setting (one line on stderr)
  3  check: PacSpace could not be reached, or answered with another error"""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``key`` command to `commands` (the ``add_subparsers()`` of the ``pacspace`` parser)."""
    formatter = argparse.RawDescriptionHelpFormatter
    sub: argparse.ArgumentParser = commands.add_parser(
        "key", help=_HELP, description=_HELP, epilog=_EPILOG, formatter_class=formatter
    )
    actions = sub.add_subparsers(dest="key_command", required=True)

    def action(name: str, help: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(
            name, help=help, description=help, epilog=_EPILOG, formatter_class=formatter
        )
        parser.add_argument(
            "--stdin", action="store_true", help=f"read the key from stdin even if {API_KEY_VARIABLE} is set"
        )
        return parser

    action("inspect", f"show a key's environment and id, offline (reads {API_KEY_VARIABLE} or stdin)")
    check = action("check", "ask PacSpace whether it accepts the key: environment, key id, accepted, request id")
    check.add_argument("--base-url", metavar="URL", help="the key's environment's base URL (e.g. the emulator's)")
    check.add_argument(
        "--timeout",
        type=seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for the answer (default {DEFAULT_TIMEOUT:g})",
    )
    return sub


def _fail(message: str, code: int, err: TextIO) -> int:
    err.write(f"pacspace: {' '.join(message.split())}\n")
    return code


def _read_key(args: argparse.Namespace) -> ApiKey:
    if args.stdin or API_KEY_VARIABLE not in os.environ:
        text, source = sys.stdin.readline().strip(), "stdin"
    else:
        text, source = os.environ[API_KEY_VARIABLE], API_KEY_VARIABLE
    return ApiKey.parse(text, source=source)


def _answer(error: APIStatusError) -> str:
    return f"{error.status} {error.code}" if error.code else str(error.status)


async def _check(key: ApiKey, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ._client import AsyncPacSpace

    base_urls = {key.environment: args.base_url} if args.base_url else None
    async with AsyncPacSpace(key, base_urls=base_urls, timeout=args.timeout) as pac:
        out.write(f"environment: {key.environment.value}\nkey_id: {key.key_id}\nbase_url: {pac.base_url}\n")
        try:
            response = await pac._probe_key(key)
        except (AuthenticationError, PermissionDeniedError) as error:
            out.write(f"accepted: no ({_answer(error)})\nrequest_id: {error.request_id or '-'}\n")
            return _fail(str(error), EXIT_FAILED, err)
        except (ConfigurationError, InvalidArgumentError):
            raise
        except PacSpaceError as error:
            answer = _answer(error) if isinstance(error, APIStatusError) else "no answer"
            request_id = error.request_id if isinstance(error, APIStatusError) else None
            out.write(f"accepted: unknown ({answer})\nrequest_id: {request_id or '-'}\n")
            return _fail(f"could not check the key: {error}", EXIT_API, err)
    out.write(f"accepted: yes\nrequest_id: {response.request_id or '-'}\n")
    return EXIT_OK


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``pacspace key ACTION``; returns the exit code. Every error is one line on `err`."""
    try:
        key = _read_key(args)
    except ConfigurationError as error:  # a malformed key is found wanting, as inspect has always said
        return _fail(str(error), EXIT_FAILED, err)
    if args.key_command == "inspect":
        out.write(f"environment: {key.environment.value}\nkey_id: {key.key_id}\nredacted: {key.redacted}\n")
        return EXIT_OK
    return asyncio.run(_check(key, args, out, err))
