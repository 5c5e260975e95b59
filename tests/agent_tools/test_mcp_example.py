"""examples/mcp_server.py runs as its docstring says, against the emulator, with the real ``mcp`` package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mcp_server.py"

EXPECTED = [
    "tools: pacspace_emit_delta, pacspace_delta_status",  # read-only plus the one write allowed
    "emit sent: record rec_",
    "emit sent again (a retry): record rec_",
    "over the limit: isError True POLICY_DELTA_TOO_LARGE",
    "ledger: 1 delta for acme-2026-11-28",
]


def test_the_mcp_example_runs_against_the_emulator_and_exits_0() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACSPACE_")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=EXAMPLE.parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"the example failed:\n{done.stdout}\n{done.stderr}"
    for line in EXPECTED:
        assert line in done.stdout, f"the example did not print {line!r}:\n{done.stdout}"
    first, again = (line.rsplit(" ", 1)[1] for line in done.stdout.splitlines() if line.startswith("emit sent"))
    assert first == again  # the retry answered with the same record
    assert "Traceback" not in done.stderr, done.stderr
    assert len(EXAMPLE.read_text().splitlines()) <= 40
