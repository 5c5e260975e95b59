"""The benchmark run: scenarios in interleaved rounds, the soak, the storms, the outbox, telemetry.

Each scenario is one transport variant (HTTP, TLS with the test CA, TLS with the system trust
store on loopback; HTTP and TLS behind the latency proxy at each RTT) and one mode (sequential;
8, 32 or 128 in flight for the async clients; 8 threads for the blocking ones). Its participants
are built once, warmed up and calibrated (each gets a call count that takes about ``budget``
seconds), then measured in rounds: A, B, C, A, B, C, ...
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
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from .clients import CLIENTS, Participant, Variant, make_participants
from .fixtures import ServerProcess, TLSMaterial, cert_env
from .machine import describe_machine
from .network import NETWORK_MODES, RTTS_MS, ProxyProcess, network_variants, start_proxies, variant_key
from .outbox import OUTBOX_STORES, run_outbox
from .storm import run_storm
from .targets import evaluate_targets
from .telemetry import run_telemetry

__all__ = ["Config", "run"]

MODES = ("sequential", "inflight32", "inflight128", "threads")


@dataclass
class Config:
    quick: bool
    rounds: int
    budget: float
    soak_calls: int
    soak_warmup: int
    # Behind the latency proxy a call takes milliseconds: fewer rounds, shorter measurements.
    net_rounds: int = 5
    net_budget: float = 0.5
    outbox_entries: int = 2_000
    outbox_rounds: int = 5
    telemetry_rounds: int = 7
    telemetry_budget: float = 1.0
    soak_in_flight: int = 128
    threads: int = 8
    only: list[str] = field(default_factory=list)

    @classmethod
    def make(cls, *, quick: bool, only: list[str] | None = None) -> Config:
        if quick:
            return cls(
                quick=True,
                rounds=3,
                budget=0.2,
                soak_calls=20_000,
                soak_warmup=2_000,
                net_rounds=3,
                net_budget=0.1,
                outbox_entries=300,
                outbox_rounds=3,
                telemetry_rounds=3,
                telemetry_budget=0.2,
                only=only or [],
            )
        return cls(quick=False, rounds=7, budget=1.0, soak_calls=100_000, soak_warmup=5_000, only=only or [])

    def selected(self, key: str) -> bool:
        """Whether `--only` lets this scenario (``http/sequential``, ``outbox/sqlite``, ``soak`` ...) run."""
        return not self.only or any(key.startswith(prefix) for prefix in self.only)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- one scenario ---------------------------------------------------------------------------------


def _calibrate(participant: Participant, budget: float, floor_units: int) -> int:
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
    floor = floor_units * unit if participant.concurrency > 1 else 5
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
    loop: asyncio.AbstractEventLoop,
    variant: Variant,
    mode: str,
    config: Config,
    server: ServerProcess,
    *,
    network: bool = False,
) -> dict[str, Any]:
    budget, repeat = (config.net_budget, config.net_rounds) if network else (config.budget, config.rounds)
    floor_units = 2 if network else 20
    participants = list(make_participants(loop, variant, mode, threads=config.threads))
    try:
        counts = {participant.client: _calibrate(participant, budget, floor_units) for participant in participants}
        rounds: dict[str, list[dict[str, float]]] = {participant.client: [] for participant in participants}
        for _ in range(repeat):
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


class _Clock:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    def log(self, message: str) -> None:
        _log(f"[{time.perf_counter() - self.started:6.1f}s] {message}")


def _scenarios(
    loop: asyncio.AbstractEventLoop,
    variants: list[Variant],
    modes: tuple[str, ...],
    config: Config,
    server: ServerProcess,
    clock: _Clock,
    *,
    network: bool = False,
) -> dict[str, Any]:
    scenarios: dict[str, Any] = {}
    for variant in variants:
        for mode in modes:
            key = f"{variant.key}/{mode}"
            if not config.selected(key):
                continue
            began = time.perf_counter()
            scenarios[key] = run_scenario(loop, variant, mode, config, server, network=network)
            summary = ", ".join(f"{client} {entry['median_us']:.0f} µs" for client, entry in scenarios[key].items())
            clock.log(f"{key} ({time.perf_counter() - began:.1f}s): {summary}")
    return scenarios


def _network_rtts(config: Config) -> list[float]:
    return [
        rtt
        for rtt in RTTS_MS
        if any(
            config.selected(f"{variant_key(rtt, transport)}/{mode}")
            for transport in ("http", "tls")
            for mode in NETWORK_MODES
        )
    ]


def _storms(clock: _Clock) -> list[dict[str, Any]]:
    clock.log("429 storms against the emulator")
    storms = run_storm()
    for storm in storms:
        summary = ", ".join(
            f"{client} {entry['succeeded']}/{storm['calls']} ok, {entry['requests']} requests"
            for client, entry in storm["clients"].items()
        )
        clock.log(f"storm at {storm['rate']:g}/s: {summary}")
    return storms


def run(config: Config) -> dict[str, Any]:
    clock = _Clock()
    load_at_start = _load()
    tls = TLSMaterial()
    server = ServerProcess(tls)
    loop = asyncio.new_event_loop()
    variants = _variants(tls, server)
    proxies: dict[float, ProxyProcess] = {}
    soak = storms = outbox = telemetry = None
    try:
        scenarios = _scenarios(loop, variants, MODES, config, server, clock)
        rtts = _network_rtts(config)
        if rtts:
            proxies = start_proxies(server, rtts)
            behind = network_variants(tls, proxies)
            variants += behind
            scenarios.update(_scenarios(loop, behind, NETWORK_MODES, config, server, clock, network=True))
        if config.selected("soak"):
            clock.log(f"soak: {config.soak_calls:,} emits on one AsyncPacSpace")
            soak = run_soak(server, config)
            clock.log(
                f"soak: RSS {soak['rss_growth_kib'] / 1024:+.2f} MB, peak connections {soak['server_peak_connections']}"
            )
        if config.selected("storm"):
            storms = _storms(clock)
        stores = [store for store in OUTBOX_STORES if config.selected(f"outbox/{store}")]
        if stores:
            clock.log(f"outbox: {config.outbox_entries:,} entries a round, {', '.join(stores)}")
            outbox = run_outbox(
                loop, server, stores, entries=config.outbox_entries, rounds=config.outbox_rounds, log=clock.log
            )
        if config.selected("telemetry"):
            clock.log("telemetry: sequential emits under each OpenTelemetry set-up")
            telemetry = run_telemetry(
                server.http_url, rounds=config.telemetry_rounds, budget=config.telemetry_budget, log=clock.log
            )
        server_total = server.stats()
    finally:
        for proxy in proxies.values():
            proxy.close()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        server.close()
        tls.close()
    targets = evaluate_targets(scenarios, soak, storms, outbox, telemetry)
    return {
        "machine": describe_machine(),
        "config": {
            "quick": config.quick,
            "rounds": config.rounds,
            "seconds_per_measurement": config.budget,
            "network_rounds": config.net_rounds,
            "network_seconds_per_measurement": config.net_budget,
            "rtts_ms": list(proxies),
            "soak_calls": config.soak_calls,
            "soak_warmup": config.soak_warmup,
            "soak_in_flight": config.soak_in_flight,
            "threads": config.threads,
            "only": config.only,
        },
        "variants": {variant.key: {"title": variant.title, "setup": variant.setup} for variant in variants},
        "clients": list(CLIENTS),
        "scenarios": scenarios,
        "soak": soak,
        "storms": storms,
        "outbox": outbox,
        "telemetry": telemetry,
        "server_total": server_total,
        "targets": [target.as_dict() for target in targets],
        "load_average": {"start": load_at_start, "end": _load()},
        "elapsed_s": time.perf_counter() - clock.started,
        "finished_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
