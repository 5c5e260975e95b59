"""``python -m benchmarks [--quick] [--profile] [--out PATH] [--json PATH] [--strict] [--only PREFIX ...]``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark AsyncPacSpace and PacSpace against raw aiohttp, the official "
        "pacspace-sdk 0.7.0 and requests, on a loopback server in another process.",
    )
    parser.add_argument("--quick", action="store_true", help="a short run (3 rounds, 20,000-call soak)")
    parser.add_argument("--profile", action="store_true", help="cProfile sequential AsyncPacSpace emits instead")
    parser.add_argument("--calls", type=int, default=20_000, help="emits to profile (with --profile)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="markdown report (default: benchmarks/RESULTS.md; with --quick benchmarks/RESULTS.quick.md)",
    )
    parser.add_argument("--json", type=Path, default=None, help="JSON results (default: beside --out)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per scenario (default: 3 quick, 7 full)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per measurement (0.2 quick, 1.0 full)")
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        metavar="PATH",
        help="write the markdown report again from a results JSON (no benchmark runs)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a performance target is missed")
    parser.add_argument(
        "--only",
        nargs="*",
        default=[],
        metavar="PREFIX",
        help="run only scenarios whose key starts with one of these: http/, tls/, tls-system/ (loopback), "
        "rtt1-http/, rtt1-tls/, rtt20-http/, rtt20-tls/ (behind the latency proxy; rtt selects all), "
        "soak, storm, outbox/sqlite, outbox/postgres, telemetry; a key is VARIANT/MODE with MODE one of "
        "sequential, inflight8, inflight32, inflight128, threads",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The server is on 127.0.0.1: no proxy from the environment may come between.
    for name in ("no_proxy", "NO_PROXY"):
        hosts = [item for item in os.environ.get(name, "").split(",") if item]
        os.environ[name] = ",".join([*hosts, "127.0.0.1", "localhost"])
    if args.profile:
        from .profile import profile

        return profile(args.calls)

    from .report import markdown, ratio_table, storm_table, target_summary, targets_table
    from .report_sections import network_table, outbox_table, telemetry_table
    from .runner import Config, run

    if args.from_json is not None:
        from .targets import evaluate_targets

        results = json.loads(args.from_json.read_text())
        # Judged again by today's targets (a results file keeps every round).
        targets = evaluate_targets(
            results["scenarios"],
            results.get("soak"),
            results.get("storms"),
            results.get("outbox"),
            results.get("telemetry"),
        )
        results["targets"] = [target.as_dict() for target in targets]
        quick = bool(results["config"]["quick"])
        out_path: Path = args.out or HERE / ("RESULTS.quick.md" if quick else "RESULTS.md")
        out_path.write_text(markdown(results, "python -m benchmarks" + (" --quick" if quick else "")))
        print(f"wrote {out_path} from {args.from_json}")
        return 0

    config = Config.make(quick=args.quick, only=args.only)
    if args.rounds is not None:
        config.rounds = args.rounds
    if args.seconds is not None:
        config.budget = args.seconds
    out: Path = args.out or HERE / ("RESULTS.quick.md" if args.quick else "RESULTS.md")
    json_out: Path = args.json or (
        out.with_name("results.quick.json" if args.quick else "results.json")
        if out.name.startswith("RESULTS")
        else out.with_suffix(".json")
    )
    results = run(config)
    command = "python -m benchmarks" + (" --quick" if args.quick else "")
    out.write_text(markdown(results, command))
    json_out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(ratio_table(results))
    print()
    for title, text in (
        ("Real network", network_table(results)),
        ("429 storms", storm_table(results)),
        ("Outbox", outbox_table(results)),
        ("Telemetry", telemetry_table(results)),
        ("Targets", targets_table(results)),
    ):
        if text != "_not run_":
            print(f"{title}:\n{text}\n")
    print(target_summary(results))
    print(f"{results['elapsed_s']:.0f} s; wrote {out} and {json_out}")
    failed = [t["id"] for t in results["targets"] if t["passed"] is False and t.get("binding", True)]
    if failed:
        print(f"targets missed: {', '.join(failed)}", file=sys.stderr)
        return 1 if args.strict else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
