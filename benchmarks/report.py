"""Turn a run's results into markdown (RESULTS.md) and the short table printed at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .clients import CLIENTS, OFFICIAL, OURS_ASYNC, OURS_SYNC, RAW, REQUESTS
from .report_sections import (
    NETWORK_NOTE,
    OUTBOX_NOTE,
    TELEMETRY_NOTE,
    network_table,
    outbox_table,
    telemetry_table,
)
from .report_sections import table as _table
from .report_sections import times as _times

__all__ = ["ratio_table", "storm_table", "targets_table", "target_summary", "markdown"]

HERE = Path(__file__).resolve().parent
CHANGES = HERE / "CHANGES.md"


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _entry(results: dict[str, Any], key: str, client: str) -> dict[str, Any] | None:
    entry: dict[str, Any] | None = results["scenarios"].get(key, {}).get(client)
    return entry


def _variant_title(results: dict[str, Any], key: str) -> str:
    variant, mode = key.split("/")
    if mode == "sequential":
        title = "sequential"
    elif mode.startswith("inflight"):
        title = f"{mode.removeprefix('inflight')} in flight"
    else:
        title = f"{results['config']['threads']} threads"
    return f"{results['variants'][variant]['title']}, {title}"


def ratio_rows(results: dict[str, Any]) -> list[list[str]]:
    """One row per (scenario, our client): µs per call and throughput ratios."""
    rows: list[list[str]] = []
    for key in results["scenarios"]:
        variant, mode = key.split("/")
        ours_list = {"sequential": [OURS_ASYNC, OURS_SYNC], "threads": [OURS_SYNC]}.get(mode, [OURS_ASYNC])
        for ours in ours_list:
            mine = _entry(results, key, ours)
            if mine is None:
                continue
            raw = _entry(results, key, RAW)
            if mode == "sequential" or mode == "threads":
                official = _entry(results, key, OFFICIAL)
                official_label = ""
            else:
                official = _entry(results, f"{variant}/threads", OFFICIAL)
                official_label = f" ({results['config']['threads']} threads)"
            requests = _entry(results, key, REQUESTS)

            def speed(other: dict[str, Any] | None, mine: dict[str, Any] = mine) -> float | None:
                if other is None:
                    return None
                return float(mine["median_calls_per_s"]) / float(other["median_calls_per_s"])

            rows.append(
                [
                    _variant_title(results, key),
                    ours,
                    _num(mine["median_us"], 1),
                    _num(raw["median_us"], 1) if raw else "—",
                    (_num(official["median_us"], 1) + official_label) if official else "—",
                    _times(speed(raw)),
                    _times(speed(official)),
                    _times(speed(requests)),
                ]
            )
    return rows


RATIO_HEADER = [
    "scenario",
    "ours",
    "ours µs/call",
    "raw aiohttp µs/call",
    "official µs/call",
    "ours ÷ raw aiohttp",
    "ours ÷ official",
    "ours ÷ requests",
]


def ratio_table(results: dict[str, Any]) -> str:
    return _table(RATIO_HEADER, ratio_rows(results), "llrrrrrr")


def _verdict(target: dict[str, Any]) -> str:
    passed = target["passed"]
    if target.get("limit") is None:
        return "reported"
    verdict = "n/a" if passed is None else "**met**" if passed else "**MISSED**"
    return verdict if target.get("binding", True) else verdict.replace("**", "") + " (info)"


def _with_unit(value: float, unit: str, digits: int) -> str:
    return f"{value:,.{digits}f}" + (unit if unit in ("x", "/s") else f" {unit}" if unit else "")


def targets_table(results: dict[str, Any]) -> str:
    rows = []
    partial = bool(results["config"].get("only"))
    for target in results["targets"]:
        value = target["value"]
        if value is None and partial:
            continue  # its scenario was left out with --only
        unit = target["unit"]
        digits = 2 if unit in ("x", "MB") else 0 if unit == "/s" else 1
        shown = "—" if value is None else _with_unit(value, unit, digits)
        limit = "—" if target.get("limit") is None else f"{target['comparison']} {_with_unit(target['limit'], unit, 2)}"
        rows.append([target["description"], shown, limit, _verdict(target)])
    return _table(["Performance target", "measured", "target", "result"], rows, "lrrc")


def target_summary(results: dict[str, Any]) -> str:
    """One sentence: how many targets were met, which were missed, how many figures are reported."""
    judged = [t for t in results["targets"] if t.get("binding", True) and t["passed"] is not None]
    missed = [t["id"] for t in judged if t["passed"] is False]
    unmeasured = [t["id"] for t in results["targets"] if t.get("binding", True) and t["passed"] is None]
    reported = sum(1 for t in results["targets"] if t.get("limit") is None)
    text = f"{len(judged) - len(missed)} of {len(judged)} targets met"
    text += f"; missed: {', '.join(missed)}." if missed else "."
    if unmeasured and results["config"].get("only"):
        text += f" {len(unmeasured)} not measured (--only {' '.join(results['config']['only'])})."
    elif unmeasured:
        text += f" Not measured in this run: {', '.join(unmeasured)}."
    return text + f" {reported} figures reported without a target."


TARGETS_NOTE = (
    "Every target is a ratio between two clients measured in the same run: to raw aiohttp doing the "
    "same calls (the floor) or to the official SDK (the peer); a speed ratio is the other's µs per "
    "call ÷ ours, a throughput ratio ours' calls/s ÷ the other's (above 1: ours is faster). Two "
    "clients of one scenario are compared round by round (they ran back to back in each round) and "
    "the median of the per-round ratios is shown. Rows *reported* are figures to know, not "
    "thresholds: µs of overhead (they scale with the machine), the outbox's costs, telemetry with an "
    "SDK. Behind the latency proxy the official SDK is trusted with the test CA alone (its cheapest "
    "context), so the TLS rows there compare against ≥ 1x rather than the ≥ 50x of the system store. "
    "`--strict` exits 1 when a target is missed."
)


def absolute_table(results: dict[str, Any]) -> str:
    rows = []
    for key, participants in results["scenarios"].items():
        for client in CLIENTS:
            entry = participants.get(client)
            if entry is None:
                continue
            rows.append(
                [
                    _variant_title(results, key),
                    client,
                    _num(entry["median_us"], 1),
                    _num(entry["median_calls_per_s"]),
                    _num(entry["median_client_cpu_us"], 1),
                    _num(entry["median_server_cpu_us"], 1),
                    _num(entry["connections_opened_per_round"]),
                    str(entry["calls_per_round"]),
                ]
            )
    header = [
        "scenario",
        "client",
        "µs/call (wall)",
        "calls/s",
        "client CPU µs/call",
        "server CPU µs/call",
        "connections opened per round",
        "calls per round",
    ]
    return _table(header, rows, "llrrrrrr")


def _machine(results: dict[str, Any]) -> str:
    machine = results["machine"]
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items() if version)
    rows = [
        ["CPU", f"{machine['cpu_model']} ({machine['cpu_mhz']} MHz)" if machine["cpu_mhz"] else machine["cpu_model"]],
        ["cores", f"{machine['logical_cpus']} logical, {machine['usable_cpus']} usable by the run"],
        ["memory", f"{machine['memory_gib']} GiB"],
        ["OS", machine["os"]],
        ["Python", machine["python_build"]],
        ["OpenSSL", machine["openssl"]],
        ["event loop", machine["event_loop"]],
        [
            "load average (1, 5, 15 min)",
            f"{_loads(results, 'start')} at the start, {_loads(results, 'end')} at the end "
            "(other work on the machine shows here; the run itself keeps about one core busy)",
        ],
        ["packages", packages],
    ]
    return _table(["", ""], rows)


def _loads(results: dict[str, Any], when: str) -> str:
    load = results.get("load_average", {}).get(when)
    return "n/a" if not load else ", ".join(f"{value:.2f}" for value in load)


def _soak(results: dict[str, Any]) -> str:
    soak = results.get("soak")
    if not soak:
        return "_not run_"
    samples = ", ".join(f"{(kib - soak['rss_before_kib']) / 1024:+.2f}" for kib in soak["rss_samples_kib"])
    return "\n".join(
        [
            f"- {soak['calls']:,} emits on one `AsyncPacSpace` (default pool limit {soak['pool_limit']}), "
            f"{soak['in_flight']} in flight, in a fresh process, after {soak['warmup']:,} warm-up emits and "
            f"`gc.collect()`: {soak['seconds']:.1f} s, {soak['calls_per_second']:,.0f} calls/s.",
            f"- Resident memory (VmRSS): {soak['rss_before_kib'] / 1024:.1f} MB before, "
            f"{soak['rss_after_kib'] / 1024:.1f} MB after: **{soak['rss_growth_kib'] / 1024:+.2f} MB**. "
            f"Growth after each tenth of the run (MB): {samples}.",
            f"- Open connections, counted by the server: peak **{soak['server_peak_connections']}** "
            f"(pool limit {soak['pool_limit']}); {soak['server_connections_opened']} connections opened for "
            f"{soak['server_requests']:,} requests (warm-up included); "
            f"{soak['server_live_connections_after_close']} still open after `aclose()`. "
            f"Client side at the end (connector, idle + in use): {soak['client_side_connections_at_end']}.",
            f"- Server CPU for the soak: {soak['server_cpu_s']:.1f} s. Failures: {soak['failures']}.",
        ]
    )


def storm_table(results: dict[str, Any]) -> str:
    storms = results.get("storms")
    if not storms:
        return "_not run_"
    rows = []
    for storm in storms:
        for client, entry in storm["clients"].items():
            per_call = entry["requests_per_success"]
            rows.append(
                [
                    f"{storm['callers']} callers, {storm['calls']} calls, {storm['rate']:g}/s",
                    client,
                    f"{entry['succeeded']}/{storm['calls']}",
                    str(entry["requests"]),
                    "—" if per_call is None else f"{per_call:.2f}",
                    f"{entry['wall_s']:.1f} s",
                ]
            )
    header = ["storm", "client", "succeeded", "requests", "requests per success", "wall time"]
    return _table(header, rows, "llrrrr")


STORM_NOTE = (
    "The emulator's token bucket (per key: that many requests a second, as many at once) against "
    "each client with its default options, on a key of its own; AsyncPacSpace's callers are tasks, "
    "the sync clients' are threads (`benchmarks/storm.py`)."
)


def markdown(results: dict[str, Any], command: str) -> str:
    config = results["config"]
    kind = "quick" if config["quick"] else "full"
    summary = target_summary(results)
    parts = [
        "# Benchmarks: results",
        "",
        f"A {kind} run (`{command}`), finished {results['finished_at']}, "
        f"{results['elapsed_s']:.0f} s in all. {summary} Generated by `python -m benchmarks`; "
        "the JSON beside this file has every round.",
        "",
        "## Machine",
        "",
        _machine(results),
        "",
        "## Performance targets",
        "",
        targets_table(results),
        "",
        TARGETS_NOTE,
        "",
        "## Ratios",
        "",
        "Medians over the rounds. µs/call is wall time per call (for N in flight or N threads: the "
        "run's wall time ÷ calls, i.e. 1 / throughput). The three ratio columns are throughput "
        "ratios (above 1: ours is faster). For the async rows with calls in flight, *official* is "
        f"the official SDK with {config['threads']} threads over the same transport.",
        "",
        ratio_table(results),
        "",
        "## A real network: loopback, 1 ms and 20 ms RTT",
        "",
        NETWORK_NOTE,
        "",
        network_table(results),
        "",
        "## Absolute numbers",
        "",
        "Client CPU is this process's CPU time (all threads) per call; server CPU is the server "
        "process's (`getrusage`) per call, measured around each round. The official SDK opens one "
        "connection per call, which also costs the server more.",
        "",
        absolute_table(results),
        "",
        f"Server process CPU for the whole run: {results['server_total']['cpu']:.1f} s "
        f"({results['server_total']['requests']:,} requests, "
        f"{results['server_total']['accepted']:,} connections).",
        "",
        "## Soak",
        "",
        _soak(results),
        "",
        "## 429 storms",
        "",
        STORM_NOTE,
        "",
        storm_table(results),
        "",
        "## Outbox",
        "",
        OUTBOX_NOTE,
        "",
        outbox_table(results),
        "",
        "## Telemetry",
        "",
        TELEMETRY_NOTE,
        "",
        telemetry_table(results),
        "",
        "## How it was measured",
        "",
        f"- One run, one server process, all clients side by side. Each scenario's clients are built "
        f"once, warmed up and calibrated (a call count taking about {config['seconds_per_measurement']} s), "
        f"then measured in {config['rounds']} interleaved rounds (A, B, C, A, B, C, ...); the table "
        "shows medians. The server's answer count is checked after every round.",
        f"- Behind the latency proxy a call takes milliseconds: {config.get('network_rounds', '—')} rounds of "
        f"about {config.get('network_seconds_per_measurement', '—')} s per client (at least 5 calls, or 2 per "
        "thread or task in flight).",
        "- The server (`benchmarks/server.py`) is a separate process: a raw asyncio protocol on "
        "127.0.0.1 answering `POST /api/v1/balance/delta` with a canned `201` "
        '`{"success":true,"data":{"recordId":"rec_1","status":"QUEUED",...}}`; it refuses other '
        "routes and requests without `X-Api-Key`.",
        "- The clients (`benchmarks/clients.py`) all send the same emit: AsyncPacSpace / PacSpace "
        '`balance.emit(customer_id="cust_bench", delta=Decimal("-42.50"), reason="bench")` (a fresh '
        "idempotency key each call, the answer structured into a `DeltaRecord`); raw aiohttp and "
        "requests send the same headers and a JSON body with a fresh idempotency key and decode the "
        'answer; the official SDK `pac.balance.emit("cust_bench", -42.5, "bench")`.',
        "",
    ]
    for key, variant in results["variants"].items():
        parts.append(f"- **{variant['title']}** (`{key}`): {variant['setup']}")
    parts += [
        "",
        "## What was changed",
        "",
        CHANGES.read_text().strip() if CHANGES.exists() else "_nothing_",
        "",
        "## How to run",
        "",
        "```",
        "nox -s bench                   # the full run: writes benchmarks/RESULTS.md and results.json",
        "nox -s bench -- --quick        # a short run: prints the tables, writes RESULTS.quick.md",
        "nox -s bench -- --strict       # exit 1 when a target is missed",
        "nox -s bench -- --quick --only rtt20 outbox/sqlite telemetry  # scenarios by key prefix",
        "python -m benchmarks --profile # where AsyncPacSpace's per-call microseconds go",
        "```",
        "",
    ]
    return "\n".join(parts)
