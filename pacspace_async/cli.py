"""The ``pacspace`` command: the demo, the emulator, public verification, key and webhook checks.

Exit codes: 0 done; 1 checked and found wanting (not verified, invalid or refused key, bad signature);
2 usage; 3 PacSpace could not be reached or answered with an error. Every error is one line.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, TextIO
from urllib.parse import urlsplit

import attrs

from . import _key_command, _mcp_command, _outbox_command
from ._credentials import API_KEY_VARIABLE, NO_KEY
from ._environments import Environment
from ._errors import ConfigurationError, InvalidArgumentError, PacSpaceError, WebhookVerificationError
from ._version import __version__
from .webhooks import SECRET_ENV_VAR

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_API = 0, 1, 2, 3

EXIT_CODES = """exit codes:
  0  done (demo: every check held; verify: verified; key valid (check: accepted), delivery valid;
     emulator: stopped by Ctrl-C)
  1  checked and found wanting (a demo check failed, not verified, invalid or refused key, delivery rejected)
  2  usage: a bad argument or setting, or a missing extra (one line on stderr)
  3  PacSpace could not be reached, or answered with an error"""


def _fail(message: str, code: int, err: TextIO) -> int:
    err.write(f"pacspace: {' '.join(message.split())}\n")
    return code


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


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
    variable = args.secret_env or SECRET_ENV_VAR
    if not os.environ.get(variable, "").strip():
        # Said for a shell prompt: the verifier's own message speaks to Python code.
        named = " (named by --secret-env)" if args.secret_env else ""
        return _fail(
            f"no webhook signing secret: {variable}{named} is not set; run `export {variable}=whsec_...` "
            "with the secret shown once when the webhook was created"
            + ("" if args.secret_env else ", or name another variable with --secret-env NAME"),
            EXIT_USAGE,
            err,
        )
    try:
        headers = parse_headers(str(_read(args.headers, binary=False)))
        body = _read(args.body, binary=True)
        event = WebhookVerifier(os.environ[args.secret_env] if args.secret_env else None).verify(headers, body)
    except (OSError, json.JSONDecodeError) as error:
        return _fail(f"cannot read input: {error}", EXIT_USAGE, err)
    except WebhookVerificationError as error:
        return _fail(f"rejected: {error}", EXIT_FAILED, err)
    out.write(f"verified: {event.type} id={event.id} created_at={event.created_at}\n")
    return EXIT_OK


# --- argument types: a bad value is a one-line usage error (exit 2) --------------------------


def _whole(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {value}")
        return value

    return parse


def _number(low: float, high: float = math.inf, *, above_low: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        too_low = value <= low if above_low else value < low
        if math.isnan(value) or too_low or value > high:
            if high == math.inf:
                bound = f"above {low:g}" if above_low else f"at least {low:g}"
            else:
                bound = f"above {low:g} and at most {high:g}" if above_low else f"from {low:g} to {high:g}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    return parse


def _fault_kinds(text: str) -> tuple[str, ...]:
    from .testing import FAULT_KINDS

    kinds = tuple(kind.strip() for kind in text.split(",") if kind.strip())
    unknown = [kind for kind in kinds if kind not in FAULT_KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"unknown fault kind {unknown or text!r}; known: {','.join(FAULT_KINDS)}")
    return kinds


def _webhook_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected an http:// or https:// URL, got {text!r}")
    return text


# --- emulator and demo ----------------------------------------------------------------------


def emulator_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `Emulator` keyword arguments that `pacspace emulator`'s options ask for."""
    from .testing import Faults

    options: dict[str, Any] = {
        "host": args.host,
        "seed": args.seed,
        "verify_delay": args.verify_delay,
        "rate_limit": args.rate_limit,
        "ports": {Environment.SANDBOX: args.sandbox_port, Environment.PRODUCTION: args.production_port},
    }
    if args.faults:
        chosen = {"kinds": args.fault_kinds, "slow_seconds": args.slow_seconds}
        options["faults"] = Faults(rate=args.faults, **{k: v for k, v in chosen.items() if v is not None})
    return options


class _CannotServe(Exception):
    """The emulator could not listen where it was asked to."""


@attrs.frozen
class _Webhook:
    url: str
    secret: str = attrs.field(repr=False)
    variable: str  # where the secret came from, or where to put the one the emulator made
    generated: bool


def _banner(emu: Any, sandbox_key: str, production_key: str, webhook: _Webhook | None) -> str:
    """What `pacspace emulator` prints: where it listens, its keys, and lines to paste elsewhere."""
    faults = emu.faults
    lines = [
        "PacSpace emulator running (Ctrl-C to stop)",
        f"  sandbox:    {emu.sandbox_url}   key {sandbox_key}",
        f"  production: {emu.production_url}   key {production_key}",
    ]
    if faults is not None:
        lines.append(f"  faults:     {faults.rate:.0%} of requests ({', '.join(faults.kinds)}), seed {emu.seed}")
    if webhook is not None:
        source = "a secret made for this run (below)" if webhook.generated else f"the secret in ${webhook.variable}"
        lines.append(f"  webhooks:   POST {webhook.url}, signed with {source}")
    lines += [
        "These keys were made by this emulator for this run and work only against it (not on PacSpace).",
        "In another terminal:",
        f"  export PACSPACE_SANDBOX_URL={shlex.quote(emu.sandbox_url)} "
        f"PACSPACE_PRODUCTION_URL={shlex.quote(emu.production_url)}",
        f"  export {API_KEY_VARIABLE}={shlex.quote(sandbox_key)}",
    ]
    if webhook is not None and webhook.generated:
        lines.append(f"  export {webhook.variable}={shlex.quote(webhook.secret)}")
    return "\n".join(lines) + "\n"


def _emulator(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .testing import Emulator

    emu = Emulator(**emulator_options(args))

    async def serve() -> None:
        try:
            await emu.start()
        except OSError as error:
            raise _CannotServe(error.strerror or str(error)) from None
        try:
            webhook = None
            if args.webhook_url:
                given = os.environ.get(args.webhook_secret_env, "").strip() or None
                secret = emu.register_webhook(args.webhook_url, given)
                webhook = _Webhook(args.webhook_url, secret, args.webhook_secret_env, given is None)
            sandbox = emu.create_key(Environment.SANDBOX)
            production = emu.create_key(Environment.PRODUCTION)
            out.write(_banner(emu, sandbox, production, webhook))
            out.flush()
            await asyncio.Event().wait()
        finally:
            await emu.aclose()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    except _CannotServe as error:
        ports = f"{args.sandbox_port} and {args.production_port}"
        return _fail(
            f"cannot serve on {args.host} (ports {ports}): {error}; pick other ports (0 picks a free one) or --host",
            EXIT_USAGE,
            err,
        )
    return EXIT_OK


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from ._demo import run_demo

    return run_demo(out, emits=args.emits, fault_rate=args.faults, plain=args.plain)


# --- wiring ---------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (the usage itself is one `--help` away), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from ._demo import MAX_EMITS, MAX_FAULT_RATE

    parser = _Parser(
        prog="pacspace",
        description="The PacSpace Balance API from the command line.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pacspace {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(
            name, help=help, description=help, epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        return sub

    demo = command("demo", "run an agent's whole day against the bundled emulator (offline)")
    demo.add_argument(
        "--emits",
        type=_whole(1, MAX_EMITS),
        default=500,
        metavar="N",
        help=f"concurrent emits to send, 1 to {MAX_EMITS} (default 500)",
    )
    demo.add_argument(
        "--faults",
        type=_number(0.0, MAX_FAULT_RATE),
        default=0.2,
        metavar="RATE",
        help=f"share of requests that fail or drop, 0 to {MAX_FAULT_RATE:g} (default 0.2)",
    )
    demo.add_argument("--plain", action="store_true", help="plain lines, no progress bar")

    emulator = command("emulator", "serve the emulator and print a key per environment")
    emulator.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    for environment in ("sandbox", "production"):
        emulator.add_argument(
            f"--{environment}-port",
            type=_whole(0, 65535),
            default=0,
            metavar="PORT",
            help=f"port of the {environment} API (default 0: a free port)",
        )
    emulator.add_argument(
        "--faults", type=_number(0.0, 1.0), default=0.0, metavar="RATE", help="share of requests given a fault (0 to 1)"
    )
    emulator.add_argument(
        "--fault-kinds",
        type=_fault_kinds,
        metavar="KIND[,KIND]",
        help="which faults: 500,502,503,drop_before_write,drop_after_write,slow (default all)",
    )
    emulator.add_argument("--slow-seconds", type=_number(0.0), metavar="S", help="delay of a slow fault (default 0.05)")
    emulator.add_argument("--seed", type=int, default=0, help="makes ids and random faults reproducible (default 0)")
    emulator.add_argument(
        "--verify-delay",
        type=_number(0.0),
        default=0.05,
        metavar="S",
        help="seconds from QUEUED to VERIFIED (default 0.05)",
    )
    emulator.add_argument(
        "--rate-limit",
        type=_number(0.0, above_low=True),
        metavar="PER_SECOND",
        help="requests per second per key before 429 (default: no limit)",
    )
    emulator.add_argument(
        "--webhook-url", type=_webhook_url, metavar="URL", help="deliver signed webhook events here (both environments)"
    )
    emulator.add_argument(
        "--webhook-secret-env",
        default=SECRET_ENV_VAR,
        metavar="NAME",
        help=f"variable holding the signing secret (default {SECRET_ENV_VAR}); unset: one is made and printed",
    )
    emulator.set_defaults(check=functools.partial(_check_emulator_options, emulator))

    verify = command("verify", "verify a proof root publicly (no key needed)")
    verify.add_argument("proof_root")
    verify.add_argument("--source", choices=("db", "chain", "both"))
    verify.add_argument("--environment", choices=("sandbox", "production"), default="production")
    verify.add_argument("--base-url", help="the environment's base URL (e.g. the emulator's)")

    _key_command.add_parser(commands)

    webhook = command("webhook", "webhook tools")
    webhook_commands = webhook.add_subparsers(dest="webhook_command", required=True)
    check = webhook_commands.add_parser("verify", help="verify a delivery's signature and timestamp")
    check.add_argument(
        "--headers", required=True, help="file with the headers (JSON or 'Name: value' lines), - for stdin"
    )
    check.add_argument("--body", required=True, help="file with the raw body, - for stdin")
    check.add_argument("--secret-env", default=None, help=f"variable holding the secret (default {SECRET_ENV_VAR})")
    _mcp_command.add_parser(commands)
    _outbox_command.add_parser(commands)
    return parser


def _check_emulator_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What one option's type cannot see: options that contradict each other."""
    if args.sandbox_port and args.sandbox_port == args.production_port:
        parser.error("--sandbox-port and --production-port must differ (each environment has its own port)")
    if not args.faults and (args.fault_kinds is not None or args.slow_seconds is not None):
        parser.error("--fault-kinds and --slow-seconds need --faults RATE above 0")


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the command; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    check = getattr(args, "check", None)
    if check is not None:
        check(args)
    try:
        if args.command == "mcp":
            return _mcp_command.run(args, err)
        if args.command == "outbox":
            return _outbox_command.run(args, out, err)
        if args.command == "key":
            return _key_command.run(args, out, err)
        if args.command == "webhook":
            return _webhook_verify(args, out, err)
        if args.command == "verify":
            return asyncio.run(_verify(args, out))
        if args.command == "emulator":
            return _emulator(args, out, err)
        return _demo(args, out)
    except (ConfigurationError, InvalidArgumentError) as error:
        return _fail(str(error), EXIT_USAGE, err)
    except PacSpaceError as error:
        return _fail(str(error), EXIT_API, err)
    except ImportError as error:
        # The emulator's own ImportError already names the install line: say it once.
        hint = "" if "pip install" in str(error) else "; install the extra: pip install 'pacspace[emulator]'"
        return _fail(f"{error}{hint}", EXIT_USAGE, err)


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
