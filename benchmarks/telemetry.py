"""Telemetry's cost per call: sequential AsyncPacSpace emits under each OpenTelemetry set-up.

Each set-up runs in a process of its own (a global provider cannot be unset), all started
together and measured in interleaved rounds (A, B, C, ..., A, B, C, ...) against the loopback
benchmark server:

- ``absent``: ``sys.modules["opentelemetry"] = None`` before pacspace_async is imported, as if
  the API were not installed;
- ``absent-again``: the same, a second time: the noise floor of the comparison;
- ``api-only``: the API installed, no SDK configured (the global providers are no-ops);
- ``noop-sdk``: the SDK's ``TracerProvider`` and ``MeterProvider`` with no span processor and
  no metric reader;
- ``in-memory``: the SDK with an ``InMemorySpanExporter`` behind a ``SimpleSpanProcessor`` and an
  ``InMemoryMetricReader`` (collected and cleared after every round).

Run by the benchmark as ``python -m benchmarks.telemetry SETUP URL WARMUP``: the child warms up,
prints ``{"ready": ...}``, then answers each ``run CALLS`` line on stdin with one JSON line
(wall and CPU µs per call, spans and metric points seen per call) until ``quit``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["SETUPS", "run_telemetry", "API_ONLY_LIMIT"]

SETUPS = {
    "absent": "OpenTelemetry absent",
    "absent-again": "OpenTelemetry absent, a second process (the noise floor)",
    "api-only": "API installed, no SDK configured",
    "noop-sdk": "SDK providers, no processor or reader",
    "in-memory": "SDK, in-memory span exporter and metric reader",
}
# With the API installed and no SDK, a call must cost what it costs without telemetry. Judged on
# the client's CPU time per call (absent's ÷ this set-up's): the cost telemetry adds is CPU work,
# and wall time also carries the shared machine's and the server's noise.
API_ONLY_LIMIT = 0.97


# --- the child process ----------------------------------------------------------------------------


class _Collector:
    """What the in-memory set-up gathered since the last look (nothing for the other set-ups)."""

    def __init__(self, setup: str) -> None:
        self.spans: Callable[[], int] = lambda: 0
        self.points: Callable[[], int] = lambda: 0
        if setup == "absent" or setup == "absent-again":
            sys.modules["opentelemetry"] = None  # type: ignore[assignment]
        elif setup in ("noop-sdk", "in-memory"):
            self._configure(setup == "in-memory")
        elif setup != "api-only":
            raise SystemExit(f"unknown telemetry set-up {setup!r}")

    def _configure(self, in_memory: bool) -> None:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        tracer_provider = TracerProvider()
        if not in_memory:
            trace.set_tracer_provider(tracer_provider)
            metrics.set_meter_provider(MeterProvider())
            return
        exporter = InMemorySpanExporter()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        reader = InMemoryMetricReader()
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

        def spans() -> int:
            count = len(exporter.get_finished_spans())
            exporter.clear()
            return count

        def points() -> int:
            data = reader.get_metrics_data()
            if data is None:
                return 0
            return sum(
                len(metric.data.data_points)
                for resource in data.resource_metrics
                for scope in resource.scope_metrics
                for metric in scope.metrics
            )

        self.spans = spans
        self.points = points


def _child(setup: str, url: str, warmup: int) -> int:
    collector = _Collector(setup)  # before pacspace_async is imported: "absent" must hide the API

    from pacspace_async import AsyncPacSpace

    from .clients import API_KEY, CUSTOMER, DELTA, REASON

    loop = asyncio.new_event_loop()
    pac = AsyncPacSpace(API_KEY, base_urls={"sandbox": url})
    emit = pac.balance.emit

    async def calls(count: int) -> None:
        for _ in range(count):
            await emit(customer_id=CUSTOMER, delta=DELTA, reason=REASON)

    loop.run_until_complete(calls(warmup))
    collector.spans()
    enabled = "opentelemetry" in sys.modules and sys.modules["opentelemetry"] is not None
    print(json.dumps({"ready": setup, "opentelemetry_imported": enabled}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        count = int(words[1])
        cpu = time.process_time()
        started = time.perf_counter()
        loop.run_until_complete(calls(count))
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        reply = {
            "wall_us": wall / count * 1e6,
            "cpu_us": cpu / count * 1e6,
            "spans_per_call": collector.spans() / count,
            "metric_points": collector.points(),
        }
        print(json.dumps(reply), flush=True)
    loop.run_until_complete(pac.aclose())
    loop.close()
    return 0


# --- the parent ------------------------------------------------------------------------------------


class _Child:
    def __init__(self, setup: str, url: str, warmup: int) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        # One string hashing for all: with random seeds, two identical processes differ by several
        # µs per call in their dictionaries alone.
        env["PYTHONHASHSEED"] = "0"
        self.setup = setup
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.telemetry", setup, url, str(warmup)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=root,
            env=env,
            text=True,
        )

    def read(self) -> dict[str, Any]:
        stdout: IO[str] | None = self._process.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"telemetry set-up {self.setup!r} exited (code {self._process.wait()})")
        message: dict[str, Any] = json.loads(line)
        return message

    def send(self, command: str) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        stdin.write(command + "\n")
        stdin.flush()

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                self.send("quit")
                self._process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()


def _available(setup: str) -> str | None:
    """Why a set-up cannot run here, or None."""
    needs = {"api-only": "opentelemetry", "noop-sdk": "opentelemetry.sdk", "in-memory": "opentelemetry.sdk"}
    module = needs.get(setup)
    if module is None:
        return None
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    return None if found else f"{module} is not installed"


def _calls_for(budget: float, wall_us: float) -> int:
    return max(50, int(budget / (wall_us / 1e6)))


def run_telemetry(
    url: str, *, rounds: int, budget: float, warmup: int = 500, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Every set-up that can run here, measured in interleaved rounds; speeds paired by round."""
    skipped = {setup: reason for setup in SETUPS if (reason := _available(setup)) is not None}
    for setup, reason in skipped.items():
        log(f"telemetry: {setup} skipped: {reason}")
    children = [_Child(setup, url, warmup) for setup in SETUPS if setup not in skipped]
    samples: dict[str, list[dict[str, float]]] = {child.setup: [] for child in children}
    imported: dict[str, bool] = {}
    try:
        for child in children:
            imported[child.setup] = bool(child.read()["opentelemetry_imported"])
        probe = children[0]
        probe.send("run 200")
        # Three short rounds for each one asked, each starting with another set-up: a burst of
        # other work on a shared machine then lands on one short round of every set-up alike.
        calls = _calls_for(budget / 3, probe.read()["wall_us"])
        for index in range(rounds * 3):
            start = index % len(children)
            for child in children[start:] + children[:start]:
                child.send(f"run {calls}")
                samples[child.setup].append(child.read())
    finally:
        for child in children:
            child.close()
    setups: dict[str, Any] = {}
    base = samples.get("absent")
    for setup, rows in samples.items():
        entry: dict[str, Any] = {
            "title": SETUPS[setup],
            "opentelemetry_imported": imported[setup],
            "median_us": statistics.median(r["wall_us"] for r in rows),
            "median_cpu_us": statistics.median(r["cpu_us"] for r in rows),
            "spans_per_call": statistics.median(r["spans_per_call"] for r in rows),
            "metric_points": max(r["metric_points"] for r in rows),
            "rounds": rows,
        }
        if base is not None:
            pairs = list(zip(base, rows, strict=True))
            entry["speed_vs_absent"] = statistics.median(b["wall_us"] / r["wall_us"] for b, r in pairs)
            entry["cpu_vs_absent"] = statistics.median(b["cpu_us"] / r["cpu_us"] for b, r in pairs)
            entry["cpu_over_absent_us"] = statistics.median(r["cpu_us"] - b["cpu_us"] for b, r in pairs)
        setups[setup] = entry
    return {
        "calls_per_round": calls,
        "rounds": rounds * 3,
        "setups": setups,
        "skipped": skipped,
        "api_only_limit": API_ONLY_LIMIT,
    }


if __name__ == "__main__":
    raise SystemExit(_child(sys.argv[1], sys.argv[2], int(sys.argv[3])))
