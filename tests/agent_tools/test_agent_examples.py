"""Every example runs as its README says (``python examples/<name>.py``), against the emulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HERE = Path(__file__).resolve().parent

EXPECTED = {
    "agent_loop.py": [
        "-> pacspace_emit_delta",
        "fix_input: InvalidArgumentError INVALID_ARGUMENTS",  # the missing argument the model then gives
        "retry: APIConnectionError",  # the lost answer, sent again with the same reference_id
        "-> pacspace_verify_proof",
        "verified: True",
        "alert_operator: ToolPolicyError POLICY_DELTA_TOO_LARGE",  # over the policy's bound: not sent
        "needs a human operator (POLICY_DELTA_TOO_LARGE)",
        "ledger: 1 delta for acme-usage-2026-11-28 after 2 emit requests",
        "ok, 2 refused",  # one audit record per call
    ],
    "threaded_worker.py": [
        "billed 60/60 events",
        "ledger: 60 deltas for 60 events",
        "none counted twice",
        "tool calls, one per call",  # one audit record per tool call
    ],
    "webhook_receiver.py": [
        "pacspace_delta_status says VERIFIED",
        "forged delivery: HTTP 400",
        "3 deliveries verified and acknowledged, 1 refused",
    ],
}


def test_every_example_is_tested() -> None:
    # The framework examples have their own modules (test_<framework>_example.py), with their extras.
    elsewhere = {
        path.name
        for path in EXAMPLES.glob("*.py")
        if any(f'"{path.name}"' in test.read_text(encoding="utf-8") for test in HERE.glob("test_*_example.py"))
    }
    assert {path.name for path in EXAMPLES.glob("*.py")} - elsewhere == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_example_runs_against_the_emulator_and_exits_0(name: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACSPACE_")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=EXAMPLES.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    for line in EXPECTED[name]:
        assert line in done.stdout, f"{name} did not print {line!r}:\n{done.stdout}"
    assert "Traceback" not in done.stderr, done.stderr
