"""``pacspace outbox``: look into a durable outbox, drain it, and handle its dead letters.

    pacspace outbox status --store sqlite:///var/lib/agent/pacspace-outbox.sqlite3
    pacspace outbox dead-letters --store sqlite:///pacspace-outbox.sqlite3
    pacspace outbox requeue obx_0123... --store sqlite:///pacspace-outbox.sqlite3
    PACSPACE_API_KEY=... pacspace outbox drain --store sqlite:///pacspace-outbox.sqlite3 --timeout 60

Only ``drain`` sends anything, with the key from ``PACSPACE_API_KEY`` (the store never holds one).
A store URL's password is never printed: every line shows the URL with it masked.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from ._cli_args import seconds
from ._credentials import API_KEY_VARIABLE, NO_KEY
from ._environments import Environment
from ._errors import ConfigurationError, InvalidArgumentError, PacSpaceError
from ._redact import REDACTED, redact

if TYPE_CHECKING:
    from .outbox import Outbox, OutboxEntry

__all__ = ["add_parser", "display_url", "run"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_API = 0, 1, 2, 3
DEFAULT_DRAIN_TIMEOUT = 60.0

_SQLITE = "sqlite:///"
_POSTGRES_SCHEMES = ("postgresql", "postgres")
_HELP = "look into a durable outbox, drain it, list and requeue its dead letters"
_STORE_HELP = "the outbox: sqlite:///relative/path, sqlite:////absolute/path or postgresql://..."
_EPILOG = """environment (drain only):
  PACSPACE_API_KEY          the key the entries are sent with (the store never holds one)
  PACSPACE_SANDBOX_URL      base URLs (optional), e.g. the emulator's
  PACSPACE_PRODUCTION_URL

exit codes:
  0  done (drain: nothing left pending and no new dead letter)
  1  found wanting: entries still pending after drain, new dead letters, an entry not requeued
  2  usage: a bad argument or setting, or a store that cannot be opened (one line on stderr)
  3  PacSpace could not be reached or refused the key"""


# --- the store URL: checked before anything opens it, shown without its password -------------


def display_url(url: str) -> str:
    """`url` with its password masked, safe to print or log."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url.split("://", 1)[0] + "://" + REDACTED if "://" in url else REDACTED
    if not password:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{REDACTED}@{netloc}"))


def _scrub(text: str, url: str) -> str:
    """`text` without the URL's password (a driver's message may quote the URL) or any key secret."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        text = text.replace(url, display_url(url)).replace(password, REDACTED)
    return redact(text)


def _store_url(text: str) -> str:
    """An argparse type: only ArgumentTypeError, whose message argparse prints without the value."""
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme == "memory":
        raise argparse.ArgumentTypeError(
            "memory:// lives only inside one process, so there is nothing to look at from here; "
            "give the sqlite:///path or postgresql://... URL the agent's Outbox uses"
        )
    if scheme == "sqlite":
        path = text[len(_SQLITE) :] if text.startswith(_SQLITE) else ""
        if path in ("", ":memory:"):
            raise argparse.ArgumentTypeError(
                "expected sqlite:///relative/path or sqlite:////absolute/path to the outbox file"
            )
        return text
    if scheme in _POSTGRES_SCHEMES:
        return text
    raise argparse.ArgumentTypeError(
        f"unsupported store URL scheme {scheme!r}: expected sqlite:///path/to/file.sqlite3 or postgresql://..."
    )


def _entry_id(text: str) -> str:
    if not text.strip() or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"expected an entry id such as obx_..., got {text!r}")
    return text


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``outbox`` command to `commands` (the ``add_subparsers()`` of the ``pacspace`` parser)."""
    formatter = argparse.RawDescriptionHelpFormatter
    sub: argparse.ArgumentParser = commands.add_parser(
        "outbox", help=_HELP, description=_HELP, epilog=_EPILOG, formatter_class=formatter
    )
    actions = sub.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")

    def action(name: str, help: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(
            name, help=help, description=help, epilog=_EPILOG, formatter_class=formatter
        )
        parser.add_argument("--store", required=True, type=_store_url, metavar="URL", help=_STORE_HELP)
        return parser

    action("status", "entries pending, dead and in flight, and the age of the oldest pending one")
    drain = action("drain", f"send what is pending with the key in {API_KEY_VARIABLE}, until none is or --timeout")
    drain.add_argument(
        "--timeout",
        type=seconds,
        default=DEFAULT_DRAIN_TIMEOUT,
        metavar="SECONDS",
        help=f"stop after this long; what is left stays stored (default {DEFAULT_DRAIN_TIMEOUT:g})",
    )
    action("dead-letters", "list the entries given up on, with the error that stopped each")
    requeue = action("requeue", "send a dead letter again (after fixing what refused it), with its own key")
    requeue.add_argument("id", type=_entry_id, metavar="ID", help="the entry's id (obx_...), as dead-letters shows it")
    return sub


# --- running --------------------------------------------------------------------------------


def _fail(message: str, code: int, err: TextIO) -> int:
    err.write(f"pacspace: {' '.join(message.split())}\n")
    return code


def _check_exists(url: str) -> None:
    """Reading or draining a file that is not there would only make an empty outbox."""
    if url.startswith(_SQLITE):
        path = Path(url[len(_SQLITE) :])
        if not path.is_file():
            raise ConfigurationError(
                f"no outbox file at {str(path)!r}: check --store (the agent's Outbox makes the file on its first emit)"
            )


def age(seconds: float | None) -> str:
    """An age for people: '-', '42 s', '12 min', '3.5 h'."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


async def _status(outbox: Outbox, args: argparse.Namespace, out: TextIO) -> int:
    now = time.time()
    stats = await outbox.store.stats(now=now)
    oldest = None if stats.oldest_pending_at is None else max(0.0, now - stats.oldest_pending_at)
    # Each environment's entries are drained only with a key of that environment: say how many.
    split = [(env.value, (await outbox.store.stats(now=now, environment=env.value)).pending) for env in Environment]
    by_environment = ", ".join(f"{name} {count}" for name, count in split if count)
    out.write(
        f"store: {display_url(args.store)}\n"
        f"pending: {stats.pending}{f' ({by_environment})' if by_environment else ''}\n"
        f"in flight: {stats.in_flight}\n"
        f"dead: {stats.dead}\n"
        f"oldest pending: {age(oldest)}\n"
    )
    return EXIT_OK


def _dead_line(entry: OutboxEntry) -> str:
    fields = (
        entry.id,
        entry.customer_id,
        str(entry.delta),
        entry.reference_id or "-",
        entry.error_code or "-",
        "yes" if entry.needs_reconciliation else "no",
        " ".join((entry.error or "-").split()),
    )
    return "\t".join(fields)


async def _dead_letters(outbox: Outbox, args: argparse.Namespace, out: TextIO) -> int:
    entries = await outbox.dead_letters()
    if not entries:
        out.write("no dead letters\n")
        return EXIT_OK
    out.write("id\tcustomer\tdelta\treference\terror_code\tneeds_reconciliation\tmessage\n")
    out.writelines(redact(_dead_line(entry)) + "\n" for entry in entries)
    return EXIT_OK


async def _requeue(outbox: Outbox, args: argparse.Namespace, out: TextIO) -> int:
    entry = await outbox.get(args.id)
    if entry is None:
        raise _Wanting(f"no entry {args.id} in {display_url(args.store)}: see `pacspace outbox dead-letters`")
    if entry.needs_reconciliation:
        # The drain never resends an entry older than max_age: requeued, it would only die again.
        raise _Wanting(
            f"entry {entry.id} is too old to resend safely (PacSpace may have forgotten its idempotency key "
            f"{entry.idempotency_key}): check whether customer {entry.customer_id} has it recorded, "
            "and emit it anew only if not"
        )
    if not await outbox.requeue(entry.id):
        raise _Wanting(f"entry {entry.id} is {entry.state.value}, not a dead letter: nothing to requeue")
    out.write(f"requeued {entry.id}: the next drain sends it with idempotency key {entry.idempotency_key}\n")
    return EXIT_OK


class _Wanting(Exception):
    """Checked and found wanting: exit 1 with this message."""


class _Refused(Exception):
    """PacSpace refused the key while draining: exit 3."""


async def _drain(args: argparse.Namespace, out: TextIO) -> int:
    from ._client import AsyncPacSpace
    from .outbox import Outbox

    if not os.environ.get(API_KEY_VARIABLE, "").strip():
        raise ConfigurationError(f"pacspace outbox drain needs the API key to send with in {API_KEY_VARIABLE}")
    refused: list[PacSpaceError] = []
    key_refused = asyncio.Event()

    def on_auth_error(error: PacSpaceError) -> None:
        # The outbox would pause and wait for another key: from a shell, say so at once instead.
        refused.append(error)
        key_refused.set()

    started = time.monotonic()
    async with AsyncPacSpace(on_auth_error=on_auth_error) as pac:
        outbox = Outbox(pac, args.store)
        try:
            before = await outbox.stats()
            outbox.start()
            flushed = asyncio.ensure_future(outbox.flush(args.timeout))
            stopped = asyncio.ensure_future(key_refused.wait())
            await asyncio.wait({flushed, stopped}, return_when=asyncio.FIRST_COMPLETED)
            for task in (flushed, stopped):
                task.cancel()
            await asyncio.gather(flushed, stopped, return_exceptions=True)
            after = await outbox.stats()  # before closing: a closed store may not answer
        finally:
            await outbox.aclose(timeout=0)  # what is left stays stored for the next drain
    out.write(
        f"drained {display_url(args.store)} for {age(time.monotonic() - started)} with key {pac.key_id}: "
        f"pending {before.pending} -> {after.pending}, dead {before.dead} -> {after.dead}\n"
    )
    if refused:
        raise _Refused(
            f"PacSpace refused key {pac.key_id} ({refused[0]}); {after.pending} entries stay pending: "
            f"set a working key in {API_KEY_VARIABLE} and drain again"
        )
    if after.other_environment:
        out.write(
            f"{after.other_environment} pending entries belong to the other environment: drain them with a key "
            "of theirs\n"
        )
    if after.pending:
        raise _Wanting(
            f"{after.pending} entries still pending after {args.timeout:g} s (PacSpace unreachable, or "
            "entries waiting for their next attempt); they stay stored: drain again later"
        )
    if after.dead > before.dead:
        raise _Wanting(
            f"{after.dead - before.dead} new dead letters: see `pacspace outbox dead-letters --store "
            f"{display_url(args.store)}`"
        )
    return EXIT_OK


_Action = Callable[["Outbox", argparse.Namespace, TextIO], Awaitable[int]]
_READERS: dict[str, _Action] = {"status": _status, "dead-letters": _dead_letters, "requeue": _requeue}


async def _read(args: argparse.Namespace, out: TextIO) -> int:
    from ._client import AsyncPacSpace
    from .outbox import Outbox

    # Looking sends nothing: no key is needed (the environment only names keys of new emits).
    async with AsyncPacSpace(api_key=NO_KEY, environment=Environment.SANDBOX) as pac:
        outbox = Outbox(pac, args.store)
        try:
            return await _READERS[args.outbox_command](outbox, args, out)
        finally:
            await outbox.aclose()


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``pacspace outbox ACTION``; returns the exit code. Every error is one line on `err`."""
    url: str = args.store
    try:
        _check_exists(url)
        if args.outbox_command == "drain":
            return asyncio.run(_drain(args, out))
        return asyncio.run(_read(args, out))
    except _Wanting as error:
        return _fail(_scrub(str(error), url), EXIT_FAILED, err)
    except _Refused as error:
        return _fail(_scrub(str(error), url), EXIT_API, err)
    except (ConfigurationError, InvalidArgumentError) as error:
        return _fail(_scrub(str(error), url), EXIT_USAGE, err)
    except PacSpaceError as error:
        return _fail(_scrub(str(error), url), EXIT_API, err)
    except (OSError, sqlite3.Error) as error:
        return _fail(_scrub(f"cannot use the outbox store {display_url(url)}: {error}", url), EXIT_USAGE, err)
    except Exception as error:  # a database driver's own errors, whose message may quote the URL
        what = f"{type(error).__name__}: {error}"
        return _fail(_scrub(f"cannot use the outbox store {display_url(url)}: {what}", url), EXIT_USAGE, err)
