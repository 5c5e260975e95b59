"""examples/openai_agents_tools.py runs as its docstring says, against the emulator, with the real SDK."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "openai_agents_tools.py"

EXPECTED = [
    'approve? pacspace_emit_delta {"customer_id":"cust_acme"',  # the run stopped at the write ...
    "(0 requests sent): yes",  # ... before anything was sent
    'tool: {"ok":true,"result":{"record_id":"rec_',  # approved: the emit ran once
    '"computed_balance":"-42.5"',  # and the model read the ledger
    "model: Billed cust_acme 42.50",
    "ledger: 1 delta",
]


def test_the_openai_agents_example_runs_against_the_emulator_and_exits_0() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACSPACE_", "OPENAI_"))}
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
    assert "Traceback" not in done.stderr, done.stderr
    assert len(EXAMPLE.read_text().splitlines()) <= 40
