"""``python -m benchmarks --profile``: where AsyncPacSpace's per-call microseconds go.

Sequential emits over plain HTTP against the loopback server, under cProfile. Printed: the
unprofiled µs per call of raw aiohttp and of AsyncPacSpace (the overhead to explain), own time
per call grouped by package, the functions with the most own time, and the SDK's own functions
by cumulative time. ``PACSPACE_BENCH_PROFILE_OUT=path`` also saves the raw stats for snakeviz
or ``python -m pstats``.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import os
import pstats
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from .clients import Variant, async_pacspace, raw_aiohttp
from .fixtures import ServerProcess, TLSMaterial

__all__ = ["profile"]

GROUPS = (
    ("pacspace_async", "pacspace_async (the SDK)"),
    ("/cattrs/", "cattrs"),
    ("/attr/", "attrs"),
    ("/aiohttp/", "aiohttp"),
    ("/yarl/", "yarl"),
    ("/multidict/", "multidict"),
    ("/asyncio/", "asyncio"),
    ("/json/", "json"),
    ("/decimal", "decimal"),
    ("/uuid", "uuid"),
    ("/concurrent/", "concurrent.futures"),
    ("/urllib/", "urllib"),
)


def _group(filename: str, name: str) -> str:
    for needle, label in GROUPS:
        if needle in filename:
            return label
    if filename == "~":
        if "epoll" in name or "select" in name:
            return "waiting (epoll)"
        if "socket" in name:
            return "socket syscalls"
        return "builtins"
    return "other"


async def _sequential(call: Callable[[], Awaitable[Any]], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await call()
    return time.perf_counter() - started


def profile(calls: int) -> int:
    tls = TLSMaterial()
    server = ServerProcess(tls)
    loop = asyncio.new_event_loop()
    variant = Variant("http", "HTTP", server.http_url)
    try:
        raw_call, raw_close = raw_aiohttp(loop, variant)
        ours_call, ours_close = async_pacspace(loop, variant)
        timing = max(2_000, calls // 4)
        for call in (raw_call, ours_call):
            loop.run_until_complete(_sequential(call, 500))
        raw_runs, ours_runs = [], []
        for _ in range(3):
            raw_runs.append(loop.run_until_complete(_sequential(raw_call, timing)) / timing * 1e6)
            ours_runs.append(loop.run_until_complete(_sequential(ours_call, timing)) / timing * 1e6)
        raw_us, ours_us = sorted(raw_runs)[1], sorted(ours_runs)[1]

        profiler = cProfile.Profile()
        profiler.enable()
        loop.run_until_complete(_sequential(ours_call, calls))
        profiler.disable()
        loop.run_until_complete(raw_close())
        loop.run_until_complete(ours_close())
    finally:
        loop.close()
        server.close()
        tls.close()

    print(f"Sequential emits over HTTP on 127.0.0.1, unprofiled (median of 3 x {timing:,}):")
    print(f"  raw aiohttp    {raw_us:8.1f} µs/call")
    print(f"  AsyncPacSpace  {ours_us:8.1f} µs/call   (+{ours_us - raw_us:.1f} µs over raw aiohttp)")
    print()

    stats = pstats.Stats(profiler)
    raw_stats: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    by_group: dict[str, float] = defaultdict(float)
    total = 0.0
    for (filename, _line, name), (_cc, _nc, tottime, _cumtime, _callers) in raw_stats.items():
        by_group[_group(filename, name)] += tottime
        total += tottime
    per_call = total / calls * 1e6
    print(f"Profiled: {calls:,} emits, {total:.2f} s of profiled time ({per_call:.1f} µs/call under cProfile)")
    print("Own time per call, by package (cProfile inflates every Python call; compare shares):")
    for label, seconds in sorted(by_group.items(), key=lambda item: -item[1]):
        print(f"  {label:28s} {seconds / calls * 1e6:8.1f} µs  {seconds / total * 100:5.1f} %")
    print()

    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(25)
    print("Top functions by own time:")
    print(_trim(out.getvalue()))

    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats("pacspace_async", 25)
    print("The SDK's functions by cumulative time (a coroutine counts one call per resumption):")
    print(_trim(out.getvalue()))

    destination = os.environ.get("PACSPACE_BENCH_PROFILE_OUT")
    if destination:
        stats.dump_stats(destination)
        print(f"raw stats saved to {destination}")
    return 0


def _trim(text: str) -> str:
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.lstrip().startswith("ncalls"):
            return "\n".join(lines[index:]).rstrip()
    return text.rstrip()
