"""``python examples/langchain_tools.py`` runs as written, with langchain-core, against the emulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "langchain_tools.py"

EXPECTED = [
    "call_1 pacspace_emit_delta [success] {'record_id': 'rec_",
    "'replayed': True}",  # call_2: the same bill again is the same delta
    "call_3 pacspace_emit_delta [error] {'code': 'POLICY_DELTA_TOO_LARGE', 'action': ",
    "call_4 pacspace_derive_balance [success] {'computed_balance': '-42.5'}",
    "ledger: 1 delta; 3 requests for 4 calls",  # the refused call was never sent
]


def test_the_langchain_example_runs_against_the_emulator_and_exits_0() -> None:
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
    assert "Traceback" not in done.stderr, done.stderr
    assert len(EXAMPLE.read_text(encoding="utf-8").splitlines()) <= 40
