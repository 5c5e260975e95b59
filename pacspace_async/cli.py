"""The ``pacspace`` command: the demo, the emulator, public verification, key and webhook checks.

Exit codes: 0 done; 1 checked and found wanting (not verified, invalid key, bad signature);
2 usage; 3 PacSpace could not be reached or answered with an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from ._credentials import API_KEY_VARIABLE, NO_KEY, ApiKey
from ._environments import Environment
from ._errors import ConfigurationError, InvalidArgumentError, PacSpaceError, WebhookVerificationError
from ._version import __version__

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_API = 0, 1, 2, 3


def _fail(message: str, code: int, err: TextIO) -> int:
    err.write(f"pacspace: {' '.join(message.split())}\n")
    return code


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# --- key inspect ----------------------------------------------------------------------------


def _key_inspect(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.stdin or API_KEY_VARIABLE not in os.environ:
        text, source = sys.stdin.readline().strip(), "stdin"
    else:
        text, source = os.environ[API_KEY_VARIABLE], API_KEY_VARIABLE
    try:
        key = ApiKey.parse(text, source=source)
    except ConfigurationError as error:
        return _fail(str(error), EXIT_FAILED, err)
    out.write(f"environment: {key.environment.value}\nkey_id: {key.key_id}\nredacted: {key.redacted}\n")
    return EXIT_OK


# --- verify ---------------------------------------------------------------------------------


async def _verify(args: argparse.Namespace, out: TextIO) -> int:
    from ._client import AsyncPacSpace

    environment = Environment.coerce(args.environment)
    base_urls = {environment: args.base_url} if args.base_url else None
    async with AsyncPacSpace(api_key=NO_KEY, environment=environment, base_urls=base_urls) as pac:
        result = await pac.verify(args.proof_root, source=args.source)
    out.write(json.dumps(_jsonable(dict(result.raw)), indent=2, sort_keys=True) + "\n")
    return EXIT_OK if result.verified else EXIT_FAILED


# --- webhook verify -------------------------------------------------------------------------


def _read(path: str, binary: bool) -> bytes | str:
    if path == "-":
        return sys.stdin.buffer.read() if binary else sys.stdin.read()
    with open(path, "rb" if binary else "r") as handle:
        data: bytes | str = handle.read()
        return data


def parse_headers(text: str) -> dict[str, str]:
    """Headers as a JSON object, or as ``Name: value`` lines (an HTTP dump)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        loaded = json.loads(stripped)
        if not isinstance(loaded, Mapping):
            raise InvalidArgumentError("the headers file must hold a JSON object or 'Name: value' lines")
        return {str(k): str(v) for k, v in loaded.items()}
    headers: dict[str, str] = {}
    for line in stripped.splitlines():
        if ":" in line and not line.upper().startswith(("POST ", "HTTP/")):
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
    return headers


def _webhook_verify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .webhooks import WebhookVerifier

    if args.headers == "-" and args.body == "-":
        return _fail("headers and body cannot both come from stdin", EXIT_USAGE, err)
    try:
        headers = parse_headers(str(_read(args.headers, binary=False)))
        body = _read(args.body, binary=True)
        if args.secret_env and not os.environ.get(args.secret_env):
            return _fail(f"the variable {args.secret_env} named by --secret-env is not set", EXIT_USAGE, err)
        verifier = WebhookVerifier(os.environ[args.secret_env] if args.secret_env else None)
        event = verifier.verify(headers, body)
    except (OSError, json.JSONDecodeError) as error:
        return _fail(f"cannot read input: {error}", EXIT_USAGE, err)
    except WebhookVerificationError as error:
        return _fail(f"rejected: {error}", EXIT_FAILED, err)
    out.write(f"verified: {event.type} id={event.id} created_at={event.created_at}\n")
    return EXIT_OK


# --- emulator and demo ----------------------------------------------------------------------


def _emulator(args: argparse.Namespace, out: TextIO) -> int:
    from .testing import Emulator

    async def serve() -> None:
        async with Emulator(host=args.host) as emu:
            sandbox = emu.create_key(Environment.SANDBOX)
            production = emu.create_key(Environment.PRODUCTION)
            out.write(
                "PacSpace emulator running (Ctrl-C to stop)\n"
                f"  sandbox:    {emu.sandbox_url}   key {sandbox}\n"
                f"  production: {emu.production_url}   key {production}\n"
                f"  export PACSPACE_SANDBOX_URL={emu.sandbox_url} PACSPACE_PRODUCTION_URL={emu.production_url}\n"
            )
            out.flush()
            await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from ._demo import run_demo

    return run_demo(out, emits=args.emits, fault_rate=args.faults, plain=args.plain)


# --- wiring ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pacspace", description="The PacSpace Balance API from the command line.")
    parser.add_argument("--version", action="version", version=f"pacspace {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run an agent's whole day against the bundled emulator (offline)")
    demo.add_argument("--emits", type=int, default=500, help="concurrent emits to send (default 500)")
    demo.add_argument("--faults", type=float, default=0.2, help="share of requests that fail (default 0.2)")
    demo.add_argument("--plain", action="store_true", help="plain lines, no progress bar")

    emulator = commands.add_parser("emulator", help="serve the emulator and print a key per environment")
    emulator.add_argument("--host", default="127.0.0.1")

    verify = commands.add_parser("verify", help="verify a proof root publicly (no key needed)")
    verify.add_argument("proof_root")
    verify.add_argument("--source", choices=("db", "chain", "both"))
    verify.add_argument("--environment", choices=("sandbox", "production"), default="production")
    verify.add_argument("--base-url", help="the environment's base URL (e.g. the emulator's)")

    key = commands.add_parser("key", help="API key tools")
    key_commands = key.add_subparsers(dest="key_command", required=True)
    inspect = key_commands.add_parser(
        "inspect", help=f"show a key's environment and id (reads {API_KEY_VARIABLE} or stdin)"
    )
    inspect.add_argument(
        "--stdin", action="store_true", help=f"read the key from stdin even if {API_KEY_VARIABLE} is set"
    )

    webhook = commands.add_parser("webhook", help="webhook tools")
    webhook_commands = webhook.add_subparsers(dest="webhook_command", required=True)
    check = webhook_commands.add_parser("verify", help="verify a delivery's signature and timestamp")
    check.add_argument(
        "--headers", required=True, help="file with the headers (JSON or 'Name: value' lines), - for stdin"
    )
    check.add_argument("--body", required=True, help="file with the raw body, - for stdin")
    check.add_argument(
        "--secret-env", default=None, help="variable holding the secret (default PACSPACE_WEBHOOK_SECRET)"
    )
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the command; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        if args.command == "key":
            return _key_inspect(args, out, err)
        if args.command == "webhook":
            return _webhook_verify(args, out, err)
        if args.command == "verify":
            return asyncio.run(_verify(args, out))
        if args.command == "emulator":
            return _emulator(args, out)
        return _demo(args, out)
    except (ConfigurationError, InvalidArgumentError) as error:
        return _fail(str(error), EXIT_USAGE, err)
    except PacSpaceError as error:
        return _fail(str(error), EXIT_API, err)
    except ImportError as error:
        return _fail(f"{error}; install the extra: pip install 'pacspace[emulator]'", EXIT_USAGE, err)


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
