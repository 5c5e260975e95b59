"""A 429 storm: the same calls against one rate-limited emulator, by this SDK and by the official one.

Two storms: `calls` emits from `callers` concurrent callers (tasks for AsyncPacSpace, threads for
the sync clients) against a token bucket of `rate` requests a second (as many at once), each
client with its default options and a key of its own (the bucket is per key, so each starts
full). Reported per client: calls that succeeded, requests the server received per successful
call, and the wall time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from pacspace_async import AsyncPacSpace, PacSpaceError
from pacspace_async.testing import Emulator

__all__ = ["run_storm", "STORM_CLIENTS"]

#: (rate per second, calls, concurrent callers)
STORMS = ((5.0, 20, 20), (50.0, 200, 32))
STORM_CLIENTS = ("AsyncPacSpace", "PacSpace (sync)", "pacspace-sdk 0.7.0")


def _emit_args(index: int) -> dict[str, Any]:
    return {"customer_id": f"cust_{index % 16}", "delta": Decimal("-1.25"), "reason": "storm"}


async def _async_storm(emu: Emulator, key: str, calls: int, callers: int) -> int:
    async with AsyncPacSpace(key, base_urls=emu.base_urls) as pac:
        slots = asyncio.Semaphore(callers)

        async def one(index: int) -> bool:
            async with slots:
                try:
                    await pac.balance.emit(**_emit_args(index))
                except PacSpaceError:
                    return False
                return True

        return sum(await asyncio.gather(*(one(index) for index in range(calls))))


def _threaded(call: Callable[[int], object], calls: int, callers: int) -> int:
    def one(index: int) -> bool:
        try:
            call(index)
        except Exception:  # each client's own error type: a failed call is what is counted
            return False
        return True

    with ThreadPoolExecutor(callers) as pool:
        return sum(pool.map(one, range(calls)))


def _sync_storm(emu: Emulator, key: str, calls: int, callers: int) -> int:
    from pacspace_sync import PacSpace

    with PacSpace(key, base_urls=emu.base_urls) as pac:
        return _threaded(lambda index: pac.balance.emit(**_emit_args(index)), calls, callers)


def _official_storm(emu: Emulator, key: str, calls: int, callers: int) -> int:
    from pacspace_sdk import PacSpace as OfficialPacSpace  # type: ignore[import-untyped]

    pac = OfficialPacSpace(key, base_url=emu.sandbox_url)
    try:
        return _threaded(lambda index: pac.balance.emit(f"cust_{index % 16}", -1.25, "storm"), calls, callers)
    finally:
        pac.close()


_RUNS: dict[str, Callable[[Emulator, str, int, int], int]] = {
    "AsyncPacSpace": lambda emu, key, calls, callers: asyncio.run(_async_storm(emu, key, calls, callers)),
    "PacSpace (sync)": _sync_storm,
    "pacspace-sdk 0.7.0": _official_storm,
}


def run_storm() -> list[dict[str, Any]]:
    """Every storm, every client on a key of its own: what each one cost."""
    storms = []
    for rate, calls, callers in STORMS:
        clients: dict[str, Any] = {}
        with Emulator(rate_limit=rate, verify_delay=None) as emu:
            for client, storm in _RUNS.items():
                key = emu.create_key()
                key_id = key.split(".")[0]
                started = time.perf_counter()
                succeeded = storm(emu, key, calls, callers)
                elapsed = time.perf_counter() - started
                sent = sum(1 for request in emu.requests if request.key_id == key_id)
                clients[client] = {
                    "succeeded": succeeded,
                    "requests": sent,
                    "requests_per_success": sent / succeeded if succeeded else None,
                    "wall_s": elapsed,
                }
        storms.append({"rate": rate, "calls": calls, "callers": callers, "clients": clients})
    return storms
