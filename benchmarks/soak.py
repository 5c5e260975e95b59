"""The soak: many emits on one `AsyncPacSpace`, in a process of its own.

Run by the benchmark as ``python -m benchmarks.soak URL CALLS IN_FLIGHT WARMUP``; prints one JSON
line. A fresh process, so its resident memory is the client's and the loop's alone. After a
warm-up (the pool is full, every code path has run once, caches are filled) and a
``gc.collect()``, the resident set size is read from ``/proc/self/status`` (``VmRSS``), then
sampled after every tenth of the run, and read again after a final ``gc.collect()``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from typing import Any

from pacspace_async import AsyncPacSpace

from .clients import API_KEY, CUSTOMER, DELTA, REASON


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def soak(url: str, calls: int, in_flight: int, warmup: int) -> dict[str, Any]:
    pac = AsyncPacSpace(API_KEY, base_urls={"sandbox": url})
    emit = pac.balance.emit
    failures = 0

    async def run(count: int) -> None:
        nonlocal failures
        remaining = count

        async def worker() -> None:
            nonlocal remaining, failures
            while remaining > 0:
                remaining -= 1
                record = await emit(customer_id=CUSTOMER, delta=DELTA, reason=REASON)
                if record.record_id != "rec_1":
                    failures += 1

        await asyncio.gather(*(worker() for _ in range(in_flight)))

    await run(warmup)
    gc.collect()
    before = rss_kib()
    samples = []
    slices = 10
    started = time.perf_counter()
    for index in range(slices):
        await run(calls // slices + (1 if index < calls % slices else 0))
        samples.append(rss_kib())
    elapsed = time.perf_counter() - started
    gc.collect()
    after = rss_kib()
    transport = pac._requester.transport
    client_side = 0
    for session in transport._sessions.values():
        connector = session.connector
        if connector is not None:
            client_side += sum(len(conns) for conns in connector._conns.values())  # type: ignore[attr-defined,unused-ignore]
            client_side += len(connector._acquired)  # type: ignore[attr-defined,unused-ignore]
    pool_limit = transport.pool_limit
    await pac.aclose()
    return {
        "calls": calls,
        "warmup": warmup,
        "in_flight": in_flight,
        "pool_limit": pool_limit,
        "seconds": elapsed,
        "calls_per_second": calls / elapsed,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "rss_growth_kib": after - before,
        "rss_samples_kib": samples,
        "client_side_connections_at_end": client_side,
        "failures": failures,
    }


def main(argv: list[str]) -> int:
    url, calls, in_flight, warmup = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    result = asyncio.run(soak(url, calls, in_flight, warmup))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
