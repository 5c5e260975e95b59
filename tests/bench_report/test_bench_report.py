"""The benchmark's pure parts: targets from a results JSON, the report's tables, the proxy's schedule.

The fixture is a trimmed quick run (`python -m benchmarks --quick`): loopback, 1 ms and 20 ms RTT
scenarios, the storms, the soak, the outbox and telemetry, three rounds each.
"""

from __future__ import annotations

import copy
import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from benchmarks.clients import OFFICIAL, OURS_ASYNC, OURS_SYNC, RAW
from benchmarks.proxy import forward_at
from benchmarks.report import markdown, target_summary, targets_table
from benchmarks.report_sections import network_header, network_rows, network_table, outbox_table, telemetry_table
from benchmarks.runner import Config
from benchmarks.targets import Target, evaluate_targets, network_keys

FIXTURE = Path(__file__).with_name("results_fixture.json")


@pytest.fixture
def results() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text())
    return data


def _targets(results: dict[str, Any]) -> dict[str, Target]:
    found = evaluate_targets(
        results["scenarios"], results["soak"], results["storms"], results["outbox"], results["telemetry"]
    )
    return {target.id: target for target in found}


def _with_targets(results: dict[str, Any]) -> dict[str, Any]:
    results["targets"] = [target.as_dict() for target in _targets(results).values()]
    return results


def _rounds(results: dict[str, Any], key: str, client: str, what: str) -> list[float]:
    return [float(r[what]) for r in results["scenarios"][key][client]["rounds"]]


def test_a_speed_target_is_the_median_of_per_round_ratios(results: dict[str, Any]) -> None:
    official = _rounds(results, "http/sequential", OFFICIAL, "wall_us")
    sync = _rounds(results, "http/sequential", OURS_SYNC, "wall_us")
    target = _targets(results)["http-sync-vs-official"]
    assert target.value == pytest.approx(statistics.median(o / s for o, s in zip(official, sync, strict=True)))
    assert target.limit == 1.0
    assert target.higher_is_better


def test_the_restated_targets_are_ratios_to_the_floor_or_the_peer(results: dict[str, Any]) -> None:
    targets = _targets(results)
    limits = {
        "async-sequential-vs-raw": 0.90,
        "async-32-vs-raw": 0.85,
        "sync-vs-async": 0.85,
        "http-async-vs-official": 1.0,
        "http-sync-vs-official": 1.0,
        "http-threads-vs-official": 1.5,
        "tls-system-async-vs-official": 50.0,
        "tls-system-sync-vs-official": 50.0,
        "storm-5-async-requests": 2.0,
        "storm-50-sync-requests": 2.0,
        "soak-rss": 10.0,
    }
    for target_id, limit in limits.items():
        assert targets[target_id].limit == limit, target_id
        assert targets[target_id].value is not None, target_id
    # Microseconds of overhead scale with the machine: reported, never judged.
    assert targets["async-over-raw-us"].limit is None
    assert targets["async-over-raw-us"].as_dict()["binding"] is False


def test_every_proxied_variant_gets_the_same_comparisons(results: dict[str, Any]) -> None:
    assert network_keys(results["scenarios"]) == ["rtt1-http", "rtt20-tls"]
    targets = _targets(results)
    throughput = _rounds(results, "rtt1-http/threads", OURS_SYNC, "calls_per_s")
    official = _rounds(results, "rtt1-http/threads", OFFICIAL, "calls_per_s")
    assert targets["rtt1-http-threads-vs-official"].value == pytest.approx(
        statistics.median(s / o for s, o in zip(throughput, official, strict=True))
    )
    assert targets["rtt1-http-threads-vs-official"].limit == 1.5
    assert targets["rtt1-http-async-vs-raw"].limit == 0.90
    assert targets["rtt20-tls-async-vs-raw"].limit == 0.85  # the TLS floor
    assert targets["rtt20-tls-sync-vs-official"].limit == 1.0
    # Not run in the fixture: no value, so no verdict.
    assert targets["rtt20-tls-async-8-vs-raw"].passed is None


def test_outbox_and_telemetry_rows_are_reported_except_the_api_only_cost(results: dict[str, Any]) -> None:
    targets = _targets(results)
    for store in ("sqlite", "postgres"):
        for what in ("enqueue-rate", "enqueue-cost", "drain-vs-direct"):
            target = targets[f"outbox-{store}-{what}"]
            assert target.value is not None
            assert target.passed is None
    sqlite = results["outbox"]["stores"]["sqlite"]
    assert targets["outbox-sqlite-enqueue-cost"].value == sqlite["enqueue_cost_ratio"]
    api_only = targets["telemetry-api-only"]
    assert api_only.value == results["telemetry"]["setups"]["api-only"]["cpu_vs_absent"]
    assert api_only.limit == results["telemetry"]["api_only_limit"]
    assert targets["telemetry-in-memory"].limit is None
    assert "telemetry-absent" not in targets


def test_the_summary_names_the_missed_targets(results: dict[str, Any]) -> None:
    slow = copy.deepcopy(results)
    for sample in slow["scenarios"]["http/sequential"][OURS_SYNC]["rounds"]:
        sample["wall_us"] *= 100
    summary = target_summary(_with_targets(slow))
    assert "missed:" in summary
    assert "http-sync-vs-official" in summary
    assert "sync-vs-async" in summary
    table = targets_table(slow)
    assert "**MISSED**" in table
    assert "reported" in table


def test_a_partial_run_leaves_unmeasured_targets_out_of_the_table(results: dict[str, Any]) -> None:
    del results["scenarios"]["http/inflight32"]
    results["config"]["only"] = ["http/sequential"]
    _with_targets(results)
    assert "32 in flight: AsyncPacSpace's throughput" not in targets_table(results)
    assert "not measured (--only http/sequential)" in target_summary(results)


def test_the_network_table_puts_each_client_at_loopback_1_ms_and_20_ms(results: dict[str, Any]) -> None:
    header = network_header(results)
    assert header[2:5] == ["ms/call, loopback", "ms/call, 1 ms RTT", "ms/call, 20 ms RTT"]
    rows = {(row[0], row[1]): row for row in network_rows(results)}
    sync = rows[("HTTP, sequential", OURS_SYNC)]
    loopback_ms = results["scenarios"]["http/sequential"][OURS_SYNC]["median_us"] / 1000
    one_ms = results["scenarios"]["rtt1-http/sequential"][OURS_SYNC]["median_us"] / 1000
    assert sync[2] == f"{loopback_ms:.2f}"
    assert sync[3] == f"{one_ms:.2f}"
    assert sync[4] == "—"  # HTTP was not run at 20 ms in the fixture
    ratio = (
        results["scenarios"]["rtt1-http/sequential"][OURS_SYNC]["median_calls_per_s"]
        / results["scenarios"]["rtt1-http/sequential"][OFFICIAL]["median_calls_per_s"]
    )
    assert sync[6] == f"{ratio:.2f}x"
    assert rows[("HTTP, sequential", OFFICIAL)][6] == "—"
    assert ("HTTP, 8 at once", f"{OURS_ASYNC}, 8 in flight") in rows
    assert ("TLS, sequential", RAW) in rows
    assert network_table(results).startswith("| scenario | client |")


def test_the_outbox_and_telemetry_tables(results: dict[str, Any]) -> None:
    outbox = outbox_table(results)
    assert "SQLite" in outbox
    assert "Postgres" in outbox
    results["outbox"]["stores"].pop("postgres")
    results["outbox"]["skipped"] = {"postgres": "the pgserver package is not installed"}
    assert "postgres: not measured: the pgserver package is not installed" in outbox_table(results)
    telemetry = telemetry_table(results)
    assert telemetry.count("\n| ") == 1 + len(results["telemetry"]["setups"])
    assert "CPU: absent ÷ this" in telemetry
    results["outbox"] = None
    results["telemetry"] = None
    assert outbox_table(results) == "_not run_"
    assert telemetry_table(results) == "_not run_"


def test_markdown_has_every_section(results: dict[str, Any]) -> None:
    text = markdown(_with_targets(results), "python -m benchmarks --quick")
    for section in ("## Performance targets", "## A real network", "## Outbox", "## Telemetry", "## 429 storms"):
        assert section in text
    assert "HTTP, 1 ms RTT, sequential" in text  # the proxied rows sit in the ratio table too


def test_markdown_reads_a_results_file_from_before_the_new_sections(results: dict[str, Any]) -> None:
    _with_targets(results)
    for key in ("outbox", "telemetry", "storms"):
        del results[key]
    results["scenarios"] = {k: v for k, v in results["scenarios"].items() if not k.startswith("rtt")}
    text = markdown(results, "python -m benchmarks")
    assert "## Outbox\n\n" in text
    assert "_not run_" in text


def test_the_proxy_holds_a_new_connections_first_bytes_for_the_handshake() -> None:
    rtt = 0.020
    assert forward_at(0.0, 0.0, rtt, upstream=True) == pytest.approx(0.030)  # handshake + half a trip
    assert forward_at(0.050, 0.0, rtt, upstream=True) == pytest.approx(0.060)  # later bytes: half a trip
    assert forward_at(0.001, 0.0, rtt, upstream=False) == pytest.approx(0.011)
    assert forward_at(5.0, 0.0, 0.0, upstream=True) == 5.0


@pytest.mark.parametrize(
    ("only", "key", "selected"),
    [
        ([], "rtt20-tls/threads", True),
        (["rtt"], "rtt1-http/sequential", True),
        (["rtt"], "http/sequential", False),
        (["http/"], "rtt1-http/sequential", False),
        (["outbox"], "outbox/postgres", True),
        (["outbox/sqlite"], "outbox/postgres", False),
        (["telemetry"], "telemetry", True),
    ],
)
def test_only_selects_scenarios_by_key_prefix(only: list[str], key: str, selected: bool) -> None:
    assert Config.make(quick=True, only=only).selected(key) is selected
