"""The performance targets, each a ratio between two clients measured in the same run.

Fixed multiples depend on the machine; a ratio to the floor (raw aiohttp doing the same calls)
or to the peer (the official SDK) measured side by side does not. Differences in µs are shown
beside them for context, never judged. A target whose `limit` is None is reported, not judged
(the outbox's and telemetry's costs are figures to know, not thresholds).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .clients import OFFICIAL, OURS_ASYNC, OURS_SYNC, RAW

__all__ = ["Target", "evaluate_targets", "network_keys"]


@dataclass
class Target:
    id: str
    description: str
    measure: str
    value: float | None
    limit: float | None
    unit: str
    higher_is_better: bool
    binding: bool = True  # False: shown for context, never fails a run

    @property
    def passed(self) -> bool | None:
        if self.value is None or self.limit is None:
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
            "binding": self.binding and self.limit is not None,
        }


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


class _Compare:
    """The three ways two clients of one scenario are compared."""

    def __init__(self, scenarios: dict[str, Any]) -> None:
        self.scenarios = scenarios

    def speed(self, key: str, ours: str, other: str) -> float | None:
        """other's µs per call ÷ ours (above 1: ours is faster)."""
        return _paired(self.scenarios, key, other, ours, "wall_us", lambda x, y: x / y)

    def over(self, key: str, ours: str, other: str) -> float | None:
        """ours' µs per call - other's."""
        return _paired(self.scenarios, key, ours, other, "wall_us", lambda x, y: x - y)

    def throughput(self, key: str, ours: str, other: str) -> float | None:
        """ours' calls/s ÷ other's."""
        return _paired(self.scenarios, key, ours, other, "calls_per_s", lambda x, y: x / y)

    def medians(self, key: str, ours: str, other_key: str, other: str) -> float | None:
        """ours' median calls/s ÷ another scenario's client's (no pairing across scenarios)."""
        mine = self.scenarios.get(key, {}).get(ours)
        theirs = self.scenarios.get(other_key, {}).get(other)
        if mine is None or theirs is None or not theirs["median_calls_per_s"]:
            return None
        return float(mine["median_calls_per_s"]) / float(theirs["median_calls_per_s"])


def _x(id: str, description: str, value: float | None, limit: float | None, *, binding: bool = True) -> Target:
    return Target(id, description, "ratio", value, limit, "x", True, binding)


def _loopback(c: _Compare) -> list[Target]:
    return [
        _x(
            "async-sequential-vs-raw",
            "HTTP, sequential: AsyncPacSpace's speed ÷ raw aiohttp's (the floor)",
            c.speed("http/sequential", OURS_ASYNC, RAW),
            0.90,
        ),
        _x(
            "async-32-vs-raw",
            "HTTP, 32 in flight: AsyncPacSpace's throughput ÷ raw aiohttp's",
            c.throughput("http/inflight32", OURS_ASYNC, RAW),
            0.85,
        ),
        _x(
            "tls-async-sequential-vs-raw",
            "TLS (test CA), sequential: AsyncPacSpace's speed ÷ raw aiohttp's",
            c.speed("tls/sequential", OURS_ASYNC, RAW),
            0.85,
        ),
        _x(
            "tls-async-32-vs-raw",
            "TLS (test CA), 32 in flight: AsyncPacSpace's throughput ÷ raw aiohttp's",
            c.throughput("tls/inflight32", OURS_ASYNC, RAW),
            0.85,
        ),
        _x(
            "sync-vs-async",
            "HTTP, sequential: PacSpace (sync)'s speed ÷ AsyncPacSpace's",
            c.speed("http/sequential", OURS_SYNC, OURS_ASYNC),
            0.85,
        ),
        Target(
            "async-over-raw-us",
            "HTTP, sequential: AsyncPacSpace's µs per call over raw aiohttp's",
            "µs - µs",
            c.over("http/sequential", OURS_ASYNC, RAW),
            None,
            "µs",
            False,
        ),
        Target(
            "sync-over-async-us",
            "HTTP, sequential: PacSpace (sync)'s µs per call over AsyncPacSpace's",
            "µs - µs",
            c.over("http/sequential", OURS_SYNC, OURS_ASYNC),
            None,
            "µs",
            False,
        ),
        _x(
            "http-async-vs-official",
            "HTTP, sequential: AsyncPacSpace's speed ÷ the official SDK's",
            c.speed("http/sequential", OURS_ASYNC, OFFICIAL),
            1.0,
        ),
        _x(
            "http-sync-vs-official",
            "HTTP, sequential: PacSpace (sync)'s speed ÷ the official SDK's",
            c.speed("http/sequential", OURS_SYNC, OFFICIAL),
            1.0,
        ),
        _x(
            "http-threads-vs-official",
            "HTTP, 8 threads: PacSpace (sync)'s throughput ÷ the official SDK's",
            c.throughput("http/threads", OURS_SYNC, OFFICIAL),
            1.5,
        ),
        _x(
            "tls-system-async-vs-official",
            "TLS, system trust store, sequential: AsyncPacSpace's speed ÷ the official SDK's",
            c.speed("tls-system/sequential", OURS_ASYNC, OFFICIAL),
            50.0,
        ),
        _x(
            "tls-system-sync-vs-official",
            "TLS, system trust store, sequential: PacSpace (sync)'s speed ÷ the official SDK's",
            c.speed("tls-system/sequential", OURS_SYNC, OFFICIAL),
            50.0,
        ),
        _x(
            "tls-ca-async-vs-official",
            "TLS, test CA (the official SDK's cheapest context), sequential: AsyncPacSpace ÷ official",
            c.speed("tls/sequential", OURS_ASYNC, OFFICIAL),
            None,
        ),
        _x(
            "async-32-vs-official-8-threads",
            "HTTP: AsyncPacSpace 32 in flight throughput ÷ the official SDK with 8 threads",
            c.medians("http/inflight32", OURS_ASYNC, "http/threads", OFFICIAL),
            None,
        ),
    ]


def network_keys(scenarios: dict[str, Any]) -> list[str]:
    """The variants behind the latency proxy (``rtt<ms>-http``, ``rtt<ms>-tls``), in run order."""
    seen: dict[str, None] = {}
    for key in scenarios:
        variant = key.split("/")[0]
        if variant.startswith("rtt"):
            seen[variant] = None
    return list(seen)


def _network(c: _Compare, variant: str) -> Iterator[Target]:
    rtt, transport = variant.removeprefix("rtt").split("-", 1)
    where = f"{'HTTP' if transport == 'http' else 'TLS (test CA)'} at {rtt} ms RTT"
    floor = 0.90 if transport == "http" else 0.85
    yield _x(
        f"{variant}-async-vs-raw",
        f"{where}, sequential: AsyncPacSpace ÷ raw aiohttp",
        c.speed(f"{variant}/sequential", OURS_ASYNC, RAW),
        floor,
    )
    yield _x(
        f"{variant}-async-8-vs-raw",
        f"{where}, 8 in flight: AsyncPacSpace ÷ raw aiohttp",
        c.throughput(f"{variant}/inflight8", OURS_ASYNC, RAW),
        0.85,
    )
    yield _x(
        f"{variant}-sync-vs-async",
        f"{where}, sequential: PacSpace (sync) ÷ AsyncPacSpace",
        c.speed(f"{variant}/sequential", OURS_SYNC, OURS_ASYNC),
        0.85,
    )
    for ours, name in ((OURS_ASYNC, "async"), (OURS_SYNC, "sync")):
        yield _x(
            f"{variant}-{name}-vs-official",
            f"{where}, sequential: {ours} ÷ the official SDK",
            c.speed(f"{variant}/sequential", ours, OFFICIAL),
            1.0,
        )
    yield _x(
        f"{variant}-threads-vs-official",
        f"{where}, 8 threads: PacSpace (sync) ÷ the official SDK",
        c.throughput(f"{variant}/threads", OURS_SYNC, OFFICIAL),
        1.5,
    )


def _storms(storms: list[dict[str, Any]]) -> Iterator[Target]:
    for storm in storms:
        where = f"{storm['callers']} callers, {storm['calls']} calls at {storm['rate']:g}/s"
        for client, name in ((OURS_ASYNC, "async"), (OURS_SYNC, "sync")):
            mine = storm["clients"].get(client)
            if mine is None:
                continue
            yield Target(
                f"storm-{storm['rate']:g}-{name}-succeeded",
                f"429 storm, {where}: {client} calls that succeeded",
                "of all calls",
                float(mine["succeeded"]),
                float(storm["calls"]),
                "",
                True,
            )
            yield Target(
                f"storm-{storm['rate']:g}-{name}-requests",
                f"429 storm, {where}: {client} requests sent per successful call",
                "requests ÷ successes",
                mine["requests_per_success"],
                2.0,
                "x",
                False,
            )


def _soak(soak: dict[str, Any]) -> list[Target]:
    return [
        Target(
            "soak-rss",
            f"{soak['calls']:,} emits on one AsyncPacSpace: resident memory growth",
            "VmRSS after - before",
            soak["rss_growth_kib"] / 1024,
            10.0,
            "MB",
            False,
        ),
        Target(
            "soak-connections",
            f"{soak['calls']:,} emits, {soak['in_flight']} in flight: peak open connections (server side)",
            f"≤ pool limit {soak['pool_limit']}",
            float(soak["server_peak_connections"]),
            float(soak["pool_limit"]),
            "",
            False,
        ),
    ]


def _outbox(outbox: dict[str, Any]) -> Iterator[Target]:
    for store, entry in outbox.get("stores", {}).items():
        yield Target(
            f"outbox-{store}-enqueue-rate",
            f"Outbox ({entry['title']}): durable emits per second, one caller",
            "entries/s",
            entry["enqueue_per_s"],
            None,
            "/s",
            True,
        )
        yield _x(
            f"outbox-{store}-enqueue-cost",
            f"Outbox ({entry['title']}): µs per durable emit ÷ µs per direct emit, one caller",
            entry["enqueue_cost_ratio"],
            None,
        )
        yield _x(
            f"outbox-{store}-drain-vs-direct",
            f"Outbox ({entry['title']}): drain throughput ÷ direct emits, {outbox['concurrency']} at once",
            entry["drain_vs_direct"],
            None,
        )


def _telemetry(telemetry: dict[str, Any]) -> Iterator[Target]:
    setups = telemetry.get("setups", {})
    for name, entry in setups.items():
        if name == "absent":
            continue
        binding = name == "api-only"
        yield _x(
            f"telemetry-{name}",
            f"Telemetry, {entry['title']}: client CPU per call, absent's ÷ this one's",
            entry.get("cpu_vs_absent"),
            telemetry["api_only_limit"] if binding else None,
        )


def evaluate_targets(
    scenarios: dict[str, Any],
    soak: dict[str, Any] | None = None,
    storms: list[dict[str, Any]] | None = None,
    outbox: dict[str, Any] | None = None,
    telemetry: dict[str, Any] | None = None,
) -> list[Target]:
    compare = _Compare(scenarios)
    targets = _loopback(compare)
    for variant in network_keys(scenarios):
        targets += _network(compare, variant)
    targets += _storms(storms or [])
    if soak is not None:
        targets += _soak(soak)
    if outbox is not None:
        targets += _outbox(outbox)
    if telemetry is not None:
        targets += _telemetry(telemetry)
    return targets
