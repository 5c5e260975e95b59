"""The report's newer sections: the real-network view, the outbox and telemetry's cost.

Pure functions of a run's results (the JSON `python -m benchmarks` writes), like `report.py`.
"""

from __future__ import annotations

from typing import Any

from .clients import OFFICIAL, OURS_ASYNC, OURS_SYNC, RAW, REQUESTS
from .targets import network_keys

__all__ = [
    "NETWORK_NOTE",
    "OUTBOX_NOTE",
    "TELEMETRY_NOTE",
    "network_table",
    "outbox_table",
    "telemetry_table",
    "table",
    "times",
]


def table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" * len(header)
    marks = ["---:" if a == "r" else ":---:" if a == "c" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def times(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"


def _ms(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "—"
    value = float(entry["median_us"]) / 1000
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _rtts(results: dict[str, Any]) -> list[str]:
    """The RTTs measured, as their variant-key spelling ("1", "20"), in run order."""
    seen: dict[str, None] = {}
    for variant in network_keys(results["scenarios"]):
        seen[variant.removeprefix("rtt").split("-", 1)[0]] = None
    return list(seen)


# (block title, loopback variant, transport of the proxied variants, mode, clients with their mode)
_BLOCKS = (
    ("HTTP, sequential", "http", "http", [(c, "sequential") for c in (RAW, OURS_ASYNC, OURS_SYNC, OFFICIAL, REQUESTS)]),
    (
        "HTTP, 8 at once",
        "http",
        "http",
        [(OURS_ASYNC, "inflight8"), (OURS_SYNC, "threads"), (OFFICIAL, "threads"), (REQUESTS, "threads")],
    ),
    ("TLS, sequential", "tls", "tls", [(c, "sequential") for c in (RAW, OURS_ASYNC, OURS_SYNC, OFFICIAL, REQUESTS)]),
    (
        "TLS, 8 at once",
        "tls",
        "tls",
        [(OURS_ASYNC, "inflight8"), (OURS_SYNC, "threads"), (OFFICIAL, "threads"), (REQUESTS, "threads")],
    ),
)


def _client_label(client: str, mode: str) -> str:
    return {"inflight8": f"{client}, 8 in flight", "threads": f"{client}, 8 threads"}.get(mode, client)


def _vs_official(scenarios: dict[str, Any], variant: str, client: str, mode: str) -> str:
    mine = scenarios.get(f"{variant}/{mode}", {}).get(client)
    official_mode = "sequential" if mode == "sequential" else "threads"
    theirs = scenarios.get(f"{variant}/{official_mode}", {}).get(OFFICIAL)
    if mine is None or theirs is None or client == OFFICIAL:
        return "—"
    return times(float(mine["median_calls_per_s"]) / float(theirs["median_calls_per_s"]))


def network_rows(results: dict[str, Any]) -> list[list[str]]:
    """Per client: ms per call on loopback and at each RTT, and its speed ÷ the official SDK's."""
    scenarios: dict[str, Any] = results["scenarios"]
    rtts = _rtts(results)
    rows: list[list[str]] = []
    for title, loopback, transport, clients in _BLOCKS:
        variants = [loopback] + [f"rtt{rtt}-{transport}" for rtt in rtts]
        if not any(f"{variant}/{mode}" in scenarios for variant in variants[1:] for _, mode in clients):
            continue
        for client, mode in clients:
            cells = [_ms(scenarios.get(f"{variant}/{mode}", {}).get(client)) for variant in variants]
            ratios = [_vs_official(scenarios, variant, client, mode) for variant in variants]
            rows.append([title, _client_label(client, mode), *cells, *ratios])
    return rows


def network_header(results: dict[str, Any]) -> list[str]:
    rtts = _rtts(results)
    places = ["loopback"] + [f"{rtt} ms RTT" for rtt in rtts]
    return ["scenario", "client", *(f"ms/call, {p}" for p in places), *(f"÷ official, {p}" for p in places)]


def network_table(results: dict[str, Any]) -> str:
    rows = network_rows(results)
    if not rows:
        return "_not run_"
    header = network_header(results)
    return table(header, rows, "ll" + "r" * (len(header) - 2))


NETWORK_NOTE = (
    "The same emit behind the latency proxy (`benchmarks/proxy.py`, a process of its own): each "
    "direction delayed by half the round trip, in order, and a new connection's first byte held one "
    "more round trip, as the TCP handshake costs over a real network. TLS runs end to end through it "
    "with the test CA. ms/call is wall time per call (for 8 at once: the run's wall time ÷ calls); "
    "÷ official is the throughput ratio to the official SDK in the same place (sequential, or with 8 "
    "threads for the rows 8 at once). Keep-alive clients pay one round trip per call, the official "
    "SDK two (three over TLS), since it opens a connection per call."
)


def outbox_table(results: dict[str, Any]) -> str:
    outbox = results.get("outbox")
    if not outbox:
        return "_not run_"
    rows = []
    for entry in outbox["stores"].values():
        rows.append(
            [
                entry["title"],
                f"{entry['enqueue_per_s']:,.0f}",
                f"{entry['enqueue_us']:,.0f}",
                f"{entry['direct_us']:,.0f}",
                times(entry["enqueue_cost_ratio"]),
                f"{entry['drain_per_s']:,.0f}",
                f"{entry['direct_concurrent_per_s']:,.0f}",
                times(entry["drain_vs_direct"]),
            ]
        )
    header = [
        "store",
        "durable emits/s",
        "µs per durable emit",
        "µs per direct emit",
        "durable ÷ direct (cost)",
        "drain entries/s",
        f"direct emits/s, {outbox['concurrency']} at once",
        "drain ÷ direct",
    ]
    lines = [table(header, rows, "lrrrrrrr")]
    for store, reason in outbox.get("skipped", {}).items():
        lines.append(f"\n_{store}: not measured: {reason}_")
    return "\n".join(lines)


OUTBOX_NOTE = (
    "Each round: N sequential `await outbox.emit(...)` with no drain running (each returns once its "
    "entry is committed), N sequential direct `balance.emit` calls, then the drain started until "
    "`flush()` returns (the server must have answered exactly N requests), then N direct emits with "
    "the drain's concurrency. Entries cycle over many customers, since the drain sends one entry at "
    "a time per customer. Ratios are paired by round; medians over the rounds."
)


def telemetry_table(results: dict[str, Any]) -> str:
    telemetry = results.get("telemetry")
    if not telemetry:
        return "_not run_"
    rows = []
    for entry in telemetry["setups"].values():
        over = entry.get("cpu_over_absent_us")
        rows.append(
            [
                entry["title"],
                f"{entry['median_us']:,.1f}",
                f"{entry['median_cpu_us']:,.1f}",
                "—" if over is None else f"{over:+.1f}",
                times(entry.get("cpu_vs_absent")),
                times(entry.get("speed_vs_absent")),
                f"{entry['spans_per_call']:.2f}",
                "yes" if entry["opentelemetry_imported"] else "no",
            ]
        )
    header = [
        "set-up",
        "µs/call",
        "CPU µs/call",
        "CPU µs over absent",
        "CPU: absent ÷ this",
        "wall: absent ÷ this",
        "spans per call",
        "opentelemetry loaded",
    ]
    lines = [table(header, rows, "lrrrrrrc")]
    for setup, reason in telemetry.get("skipped", {}).items():
        lines.append(f"\n_{setup}: not measured: {reason}_")
    return "\n".join(lines)


TELEMETRY_NOTE = (
    "Sequential `AsyncPacSpace` emits over loopback HTTP, each set-up in a process of its own, the "
    "processes measured in interleaved rounds (`benchmarks/telemetry.py`). *Absent* hides the API "
    '(`sys.modules["opentelemetry"] = None` before the SDK is imported); the second absent process '
    "shows how much two identical processes differ here. The target is judged on the client's CPU "
    "time per call (paired by round): the cost telemetry adds is CPU work, while wall time also "
    "carries the noise of a shared machine and the server. *opentelemetry loaded* says whether the "
    "module was imported by the end of the warm-up (for *API installed, no SDK*: whether the SDK "
    "imported it itself); *spans per call* counts what the in-memory exporter received."
)
