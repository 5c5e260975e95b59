"""A worker process for the outbox tests: drains one outbox store until nothing is pending.

    PACSPACE_API_KEY=pk_test_... python outbox_worker.py STORE_URL SANDBOX_URL [options]

The key comes from the environment (never the command line, which other users can read).
On success it prints the outbox's final stats as one JSON line and exits 0; it exits 1 when
something is still pending after ``--timeout`` seconds. The tests start it with `spawn`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pacspace_async import AsyncPacSpace
from pacspace_async.outbox import Outbox, OutboxClock


def spawn(store: str, sandbox_url: str, key: str, *options: str) -> subprocess.Popen[str]:
    """This script in a process of its own, with the interpreter running the tests."""
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), store, sandbox_url, *options],
        env={**os.environ, "PACSPACE_API_KEY": key},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition: Callable[[], bool], workers: list[subprocess.Popen[str]], *, timeout: float = 60.0) -> None:
    """Poll `condition`; fail at once, with its output, if a worker ended, and after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        for worker in workers:
            if worker.poll() is not None:
                out, err = worker.communicate()
                raise AssertionError(f"a worker ended early ({worker.returncode}):\n{out}\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the condition did not come true within {timeout:g} s")
        time.sleep(0.01)


def finish(worker: subprocess.Popen[str], *, timeout: float = 120.0) -> dict[str, int]:
    """Wait for a worker to drain and exit; its final stats."""
    try:
        out, err = worker.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        worker.kill()
        out, err = worker.communicate()
        raise AssertionError(f"a worker did not finish within {timeout:g} s:\n{out}\n{err}") from None
    assert worker.returncode == 0, f"the worker failed ({worker.returncode}):\n{out}\n{err}"
    stats: dict[str, int] = json.loads(out.strip().splitlines()[-1])
    return stats


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("store", help="the outbox store URL (sqlite:///..., postgresql://...)")
    parser.add_argument("sandbox_url", help="the emulator's sandbox URL")
    parser.add_argument("--concurrency", type=int, default=8, help="the drain's concurrent sends")
    parser.add_argument(
        "--clock-offset",
        type=float,
        default=0.0,
        help="seconds this worker's wall clock runs ahead (to act after a dead worker's leases ran out)",
    )
    parser.add_argument("--short-waits", action="store_true", help="never wait more than 20 ms between looks")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to drain before giving up")
    return parser.parse_args(argv)


def clock(offset: float, short_waits: bool) -> OutboxClock:
    async def sleep(seconds: float) -> None:
        await asyncio.sleep(min(seconds, 0.02) if short_waits else seconds)

    return OutboxClock(wall=lambda: time.time() + offset, sleep=sleep)


async def drain(options: argparse.Namespace) -> bool:
    key = os.environ["PACSPACE_API_KEY"]
    async with (
        AsyncPacSpace(key, base_urls={"sandbox": options.sandbox_url}) as pac,
        Outbox(
            pac,
            options.store,
            drain_concurrency=options.concurrency,
            clock=clock(options.clock_offset, options.short_waits),
        ) as outbox,
    ):
        drained = await outbox.flush(timeout=options.timeout)
        stats = await outbox.stats()
        print(json.dumps({"pending": stats.pending, "dead": stats.dead, "in_flight": stats.in_flight}), flush=True)
        return drained


def main(argv: list[str]) -> int:
    return 0 if asyncio.run(drain(arguments(argv))) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
