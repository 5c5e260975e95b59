"""The benchmark run: scenarios in interleaved rounds, the soak, the targets, the report.

Each scenario is one transport variant (HTTP, TLS with the test CA, TLS with the system trust
store) and one mode (sequential; 32 or 128 in flight for the async clients; 8 threads for the
blocking ones). Its participants are built once, warmed up and calibrated (each gets a call
count that takes about ``budget`` seconds), then measured in rounds: A, B, C, A, B, C, ...
Every number reported is the median over the rounds.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from .clients import (
    CLIENTS,
    OFFICIAL,
    OURS_ASYNC,
    OURS_SYNC,
    RAW,
    Participant,
    Variant,
    make_participants,
)
from .fixtures import ServerProcess, TLSMaterial, cert_env
from .machine import describe_machine
from .storm import run_storm

__all__ = ["Config", "run"]

MODES = ("sequential", "inflight32", "inflight128", "threads")
MODE_TITLES = {
    "sequential": "sequential",
    "inflight32": "32 in flight",
    "inflight128": "128 in flight",
    "threads": "8 threads",
}


@dataclass
class Config:
    quick: bool
    rounds: int
    budget: float
    soak_calls: int
    soak_warmup: int
    soak_in_flight: int = 128
    threads: int = 8
    only: list[str] = field(default_factory=list)

    @classmethod
    def make(cls, *, quick: bool, only: list[str] | None = None) -> Config:
        if quick:
            return cls(quick=True, rounds=3, budget=0.2, soak_calls=20_000, soak_warmup=2_000, only=only or [])
        return cls(quick=False, rounds=7, budget=1.0, soak_calls=100_000, soak_warmup=5_000, only=only or [])


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- one scenario ---------------------------------------------------------------------------------


def _calibrate(participant: Participant, budget: float) -> int:
    """Warm the participant up and find a call count that takes about `budget` seconds."""
    unit = max(participant.concurrency, 1)
    calls = unit
    while True:
        started = time.perf_counter()
        participant.run(calls)
        elapsed = time.perf_counter() - started
        if elapsed >= 0.05 or calls >= 100_000:
            break
        calls *= 4
    per_call = elapsed / calls
    wanted = int(budget / per_call) if per_call > 0 else calls
    floor = 20 * unit if participant.concurrency > 1 else 5
    wanted = max(wanted, floor)
    return max(unit, wanted // unit * unit)


def _measure(participant: Participant, calls: int, server: ServerProcess) -> dict[str, float]:
    gc.collect()
    before = server.stats()
    cpu = time.process_time()
    started = time.perf_counter()
    participant.run(calls)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    after = server.stats()
    answered = after["requests"] - before["requests"]
    if answered != calls or after["refused"] != before["refused"]:
        raise RuntimeError(f"{participant.label}: {calls} calls but the server answered {answered}")
    return {
        "wall_us": wall / calls * 1e6,
        "calls_per_s": calls / wall,
        "client_cpu_us": cpu / calls * 1e6,
        "server_cpu_us": (after["cpu"] - before["cpu"]) / calls * 1e6,
        "connections_opened": after["accepted"] - before["accepted"],
    }


def run_scenario(
    loop: asyncio.AbstractEventLoop, variant: Variant, mode: str, config: Config, server: ServerProcess
) -> dict[str, Any]:
    participants = list(make_participants(loop, variant, mode, threads=config.threads))
    try:
        counts = {participant.client: _calibrate(participant, config.budget) for participant in participants}
        rounds: dict[str, list[dict[str, float]]] = {participant.client: [] for participant in participants}
        for _ in range(config.rounds):
            for participant in participants:
                rounds[participant.client].append(_measure(participant, counts[participant.client], server))
    finally:
        for participant in participants:
            participant.close()
    results: dict[str, Any] = {}
    for participant in participants:
        samples = rounds[participant.client]
        results[participant.client] = {
            "mode": participant.mode,
            "calls_per_round": counts[participant.client],
            "median_us": statistics.median(s["wall_us"] for s in samples),
            "median_calls_per_s": statistics.median(s["calls_per_s"] for s in samples),
            "median_client_cpu_us": statistics.median(s["client_cpu_us"] for s in samples),
            "median_server_cpu_us": statistics.median(s["server_cpu_us"] for s in samples),
            "connections_opened_per_round": statistics.median(s["connections_opened"] for s in samples),
            "rounds": samples,
        }
    return results


# --- the soak -----------------------------------------------------------------------------------


def run_soak(server: ServerProcess, config: Config) -> dict[str, Any]:
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    before = server.reset_peak()
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.soak",
            server.http_url,
            str(config.soak_calls),
            str(config.soak_in_flight),
            str(config.soak_warmup),
        ],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the soak failed:\n{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    after = server.stats()
    result["server_peak_connections"] = after["peak"]
    result["server_connections_opened"] = after["accepted"] - before["accepted"]
    result["server_live_connections_after_close"] = after["live"]
    result["server_requests"] = after["requests"] - before["requests"]
    result["server_cpu_s"] = after["cpu"] - before["cpu"]
    return result


# --- the performance targets --------------------------------------------------------------------


@dataclass
class Target:
    id: str
    description: str
    measure: str
    value: float | None
    limit: float
    unit: str
    higher_is_better: bool
    binding: bool = True  # False: shown for context (the sync facade's own bound is sync-over-async)

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "measure": self.measure,
            "value": self.value,
            "limit": self.limit,
            "unit": self.unit,
            "comparison": ">=" if self.higher_is_better else "<=",
            "passed": self.passed,
            "binding": self.binding,
        }


def _get(scenarios: dict[str, Any], key: str, client: str, what: str) -> float | None:
    entry = scenarios.get(key, {}).get(client)
    return None if entry is None else float(entry[what])


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return None if top is None or bottom is None or bottom == 0 else top / bottom


def _paired(
    scenarios: dict[str, Any], key: str, a: str, b: str, what: str, combine: Callable[[float, float], float]
) -> float | None:
    """Median over the rounds of combine(a's round, b's round): two clients measured side by side.

    Round r of every client of a scenario was measured back to back, so pairing by round
    cancels the slow drifts of a shared machine better than comparing two medians.
    """
    first = scenarios.get(key, {}).get(a)
    second = scenarios.get(key, {}).get(b)
    if first is None or second is None:
        return None
    return statistics.median(combine(x[what], y[what]) for x, y in zip(first["rounds"], second["rounds"], strict=True))


def _storm_targets(storms: list[dict[str, Any]]) -> list[Target]:
    targets = []
    for storm in storms:
        mine = storm["clients"]["AsyncPacSpace"]
        where = f"{storm['callers']} callers, {storm['calls']} calls at {storm['rate']:g}/s"
        targets.append(
            Target(
                f"storm-{storm['rate']:g}-succeeded",
                f"429 storm, {where}: AsyncPacSpace calls that succeeded (default options)",
                "of all calls",
                float(mine["succeeded"]),
                float(storm["calls"]),
                "",
                True,
            )
        )
        targets.append(
            Target(
                f"storm-{storm['rate']:g}-requests",
                f"429 storm, {where}: AsyncPacSpace requests sent per successful call",
                "requests ÷ successes",
                mine["requests_per_success"],
                2.0,
                "x",
                False,
            )
        )
    return targets


def evaluate_targets(
    scenarios: dict[str, Any], soak: dict[str, Any] | None, storms: list[dict[str, Any]] | None = None
) -> list[Target]:
    rps = partial(_get, scenarios, what="median_calls_per_s")

    def faster(key: str, ours: str, other: str) -> float | None:
        """other's µs per call ÷ ours, paired by round."""
        return _paired(scenarios, key, other, ours, "wall_us", lambda x, y: x / y)

    def over(key: str, ours: str, other: str) -> float | None:
        """ours' µs per call - other's, paired by round."""
        return _paired(scenarios, key, ours, other, "wall_us", lambda x, y: x - y)

    def throughput(key: str, ours: str, other: str) -> float | None:
        """ours' calls/s ÷ other's, paired by round."""
        return _paired(scenarios, key, ours, other, "calls_per_s", lambda x, y: x / y)

    targets = [
        Target(
            "async-32-vs-raw",
            "AsyncPacSpace, 32 in flight, HTTP: throughput ÷ raw aiohttp's",
            "calls/s ÷ calls/s",
            throughput("http/inflight32", OURS_ASYNC, RAW),
            0.80,
            "x",
            True,
        ),
        Target(
            "sequential-over-raw",
            "AsyncPacSpace, sequential, HTTP: µs per call over raw aiohttp",
            "µs - µs",
            over("http/sequential", OURS_ASYNC, RAW),
            30.0,
            "µs",
            False,
        ),
        Target(
            "sync-over-async",
            "PacSpace (sync), sequential, HTTP: µs per call over AsyncPacSpace",
            "µs - µs",
            over("http/sequential", OURS_SYNC, OURS_ASYNC),
            200.0,
            "µs",
            False,
        ),
        Target(
            "http-async-vs-official",
            "HTTP, sequential: official µs per call ÷ AsyncPacSpace's (never slower)",
            "speed-up",
            faster("http/sequential", OURS_ASYNC, OFFICIAL),
            1.0,
            "x",
            True,
        ),
        Target(
            "http-sync-vs-official",
            "HTTP, sequential: official µs per call ÷ PacSpace (sync)'s (never slower)",
            "speed-up",
            faster("http/sequential", OURS_SYNC, OFFICIAL),
            1.0,
            "x",
            True,
            False,
        ),
        Target(
            "http-threads-vs-official",
            "HTTP, 8 threads: PacSpace (sync) throughput ÷ official's (never slower)",
            "calls/s ÷ calls/s",
            throughput("http/threads", OURS_SYNC, OFFICIAL),
            1.0,
            "x",
            True,
            False,
        ),
        Target(
            "tls-ca-async-vs-official",
            "TLS, test CA, sequential: official µs per call ÷ AsyncPacSpace's",
            "speed-up",
            faster("tls/sequential", OURS_ASYNC, OFFICIAL),
            8.0,
            "x",
            True,
        ),
        Target(
            "tls-ca-raw-vs-official",
            "TLS, test CA, sequential: official µs per call ÷ raw aiohttp's (the floor, for reference)",
            "speed-up",
            faster("tls/sequential", RAW, OFFICIAL),
            8.0,
            "x",
            True,
            False,
        ),
        Target(
            "tls-ca-sync-vs-official",
            "TLS, test CA, sequential: official µs per call ÷ PacSpace (sync)'s",
            "speed-up",
            faster("tls/sequential", OURS_SYNC, OFFICIAL),
            8.0,
            "x",
            True,
            False,
        ),
        Target(
            "tls-system-async-vs-official",
            "TLS, system trust store, sequential: official µs per call ÷ AsyncPacSpace's",
            "speed-up",
            faster("tls-system/sequential", OURS_ASYNC, OFFICIAL),
            50.0,
            "x",
            True,
        ),
        Target(
            "tls-system-sync-vs-official",
            "TLS, system trust store, sequential: official µs per call ÷ PacSpace (sync)'s",
            "speed-up",
            faster("tls-system/sequential", OURS_SYNC, OFFICIAL),
            50.0,
            "x",
            True,
            False,
        ),
        Target(
            "async-32-vs-official-8-threads",
            "HTTP: AsyncPacSpace 32 in flight throughput ÷ official with 8 threads",
            "calls/s ÷ calls/s",
            _ratio(rps("http/inflight32", OURS_ASYNC), rps("http/threads", OFFICIAL)),
            1.8,
            "x",
            True,
        ),
    ]
    targets += _storm_targets(storms or [])
    if soak is not None:
        targets.append(
            Target(
                "soak-rss",
                f"{soak['calls']:,} emits on one AsyncPacSpace: resident memory growth",
                "VmRSS after - before",
                soak["rss_growth_kib"] / 1024,
                10.0,
                "MB",
                False,
            )
        )
        targets.append(
            Target(
                "soak-connections",
                f"{soak['calls']:,} emits, {soak['in_flight']} in flight: peak open connections (server side)",
                f"≤ pool limit {soak['pool_limit']}",
                float(soak["server_peak_connections"]),
                float(soak["pool_limit"]),
                "",
                False,
            )
        )
    return targets


# --- the whole run ------------------------------------------------------------------------------


def _variants(tls: TLSMaterial, server: ServerProcess) -> list[Variant]:
    return [
        Variant(
            "http",
            "HTTP",
            server.http_url,
            setup="plain HTTP on 127.0.0.1; keep-alive clients reuse connections, the official SDK "
            "opens one per call (urllib sends `Connection: close`).",
        ),
        Variant(
            "tls",
            "TLS, test CA",
            server.https_url,
            context=tls.context(system_store=False),
            verify=tls.ca,
            official_env=partial(cert_env, tls.ca, tls.empty_dir),
            setup="HTTPS on 127.0.0.1 (TLS 1.3) with a certificate from a trustme CA made at run time "
            "(trustme's default key, ECDSA P-256). aiohttp, "
            "AsyncPacSpace and PacSpace get `ssl=ssl.create_default_context(cafile=test-ca.pem)`, made "
            "once; requests gets `verify=test-ca.pem`. The official SDK cannot be given a context: it "
            "runs with `SSL_CERT_FILE=test-ca.pem` and `SSL_CERT_DIR=<empty dir>`, so the default "
            "context urllib builds for every call holds the test CA and nothing else (the cheapest "
            "context it can have; leaving `SSL_CERT_DIR` at the system directory costs it under 5 % "
            "more).",
        ),
        Variant(
            "tls-system",
            "TLS, system trust store",
            server.https_url,
            context=tls.context(system_store=True),
            verify=tls.bundle,
            official_env=partial(cert_env, tls.bundle, None),
            setup=f"the same server. `bundle.pem` = the system trust store ({tls.system_store}, "
            f"{tls.system_store_certs} certificates) followed by the test CA. The official SDK runs with "
            "`SSL_CERT_FILE=bundle.pem` (and the default `SSL_CERT_DIR`), so every call builds a default "
            "context that loads the whole system store, as it does for its users, and then handshakes. "
            "aiohttp, AsyncPacSpace and PacSpace get `ssl.create_default_context(cafile=bundle.pem)` made "
            "once (what `ssl=None` gives them: aiohttp's default context, system store, made once); "
            "requests gets `verify=bundle.pem`.",
        ),
    ]


def _load() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def run(config: Config) -> dict[str, Any]:
    started = time.perf_counter()
    load_at_start = _load()
    tls = TLSMaterial()
    server = ServerProcess(tls)
    loop = asyncio.new_event_loop()
    scenarios: dict[str, Any] = {}
    variants = _variants(tls, server)
    try:
        for variant in variants:
            for mode in MODES:
                key = f"{variant.key}/{mode}"
                if config.only and not any(key.startswith(prefix) for prefix in config.only):
                    continue
                began = time.perf_counter()
                scenarios[key] = run_scenario(loop, variant, mode, config, server)
                summary = ", ".join(f"{client} {entry['median_us']:.0f} µs" for client, entry in scenarios[key].items())
                _log(f"[{time.perf_counter() - started:6.1f}s] {key} ({time.perf_counter() - began:.1f}s): {summary}")
        soak = None
        if not config.only or any("soak".startswith(prefix) for prefix in config.only):
            _log(f"[{time.perf_counter() - started:6.1f}s] soak: {config.soak_calls:,} emits on one AsyncPacSpace")
            soak = run_soak(server, config)
            _log(
                f"[{time.perf_counter() - started:6.1f}s] soak: RSS {soak['rss_growth_kib'] / 1024:+.2f} MB, "
                f"peak connections {soak['server_peak_connections']}"
            )
        storms = None
        if not config.only or any("storm".startswith(prefix) for prefix in config.only):
            _log(f"[{time.perf_counter() - started:6.1f}s] 429 storms against the emulator")
            storms = run_storm()
            for storm in storms:
                summary = ", ".join(
                    f"{client} {entry['succeeded']}/{storm['calls']} ok, {entry['requests']} requests"
                    for client, entry in storm["clients"].items()
                )
                _log(f"[{time.perf_counter() - started:6.1f}s] storm at {storm['rate']:g}/s: {summary}")
        server_total = server.stats()
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        server.close()
        tls.close()
    targets = evaluate_targets(scenarios, soak, storms)
    return {
        "machine": describe_machine(),
        "config": {
            "quick": config.quick,
            "rounds": config.rounds,
            "seconds_per_measurement": config.budget,
            "soak_calls": config.soak_calls,
            "soak_warmup": config.soak_warmup,
            "soak_in_flight": config.soak_in_flight,
            "threads": config.threads,
        },
        "variants": {variant.key: {"title": variant.title, "setup": variant.setup} for variant in variants},
        "clients": list(CLIENTS),
        "scenarios": scenarios,
        "soak": soak,
        "storms": storms,
        "server_total": server_total,
        "targets": [target.as_dict() for target in targets],
        "load_average": {"start": load_at_start, "end": _load()},
        "elapsed_s": time.perf_counter() - started,
        "finished_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
