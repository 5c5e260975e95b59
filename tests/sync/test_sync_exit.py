"""A sync client left open at interpreter exit: one ResourceWarning, closed for its owner, no traceback.

Each case runs a script in a fresh interpreter (exit is what is tested) against an emulator
served from this process's thread.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from pacspace_async.testing import Emulator

NOT_CLOSED = "ResourceWarning: a PacSpace client (key pk_test_emu"
NOISE = ("RuntimeError", "Traceback", "Exception ignored", "Unclosed", "Non-thread-safe")

# A script that uses the client, pooled connection and all, and never closes it.
FORGETFUL = textwrap.dedent(
    """
    import os
    from decimal import Decimal
    from pacspace_sync import PacSpace

    pac = PacSpace()  # PACSPACE_API_KEY and PACSPACE_SANDBOX_URL
    record = pac.balance.emit(customer_id="cust_exit", delta=Decimal("-1"), reason="usage")
    pac.balance.wait_for_verified(record.record_id, timeout=10, poll_interval=0.01)
    print([customer.customer_id for customer in pac.customers.list(limit=10)])
    copy = pac.with_options(timeout=5)  # shares the client's loop: still one warning
    """
)


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(verify_delay=0.01) as emu:
        yield emu


def run_script(emu: Emulator, flags: list[str], script: str = FORGETFUL) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PACSPACE_API_KEY": emu.create_key("sandbox"),
        "PACSPACE_SANDBOX_URL": emu.sandbox_url,
        "PYTHONWARNINGS": "",
    }
    return subprocess.run(
        [sys.executable, *flags, "-c", script], capture_output=True, text=True, timeout=60, env=env, check=False
    )


@pytest.mark.parametrize("flags", [["-X", "dev"], ["-W", "default"]], ids=["dev-mode", "W-default"])
def test_an_unclosed_client_warns_once_at_exit_and_nothing_else(emulator: Emulator, flags: list[str]) -> None:
    done = run_script(emulator, flags)
    assert done.returncode == 0, done.stderr
    assert "cust_exit" in done.stdout
    assert done.stderr.count(NOT_CLOSED) == 1, done.stderr
    assert "was still open at exit" in done.stderr
    for noise in NOISE:
        assert noise not in done.stderr, done.stderr


def test_without_warning_flags_exit_is_silent(emulator: Emulator) -> None:
    done = run_script(emulator, [])
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # ResourceWarning is ignored by default, and the close leaves no noise


def test_a_closed_client_says_nothing_at_exit(emulator: Emulator) -> None:
    done = run_script(emulator, ["-X", "dev"], FORGETFUL + "pac.close()\n")
    assert done.returncode == 0, done.stderr
    assert "ResourceWarning" not in done.stderr
    for noise in NOISE:
        assert noise not in done.stderr, done.stderr


def test_a_call_still_in_flight_in_a_daemon_thread_does_not_hold_up_exit() -> None:
    script = textwrap.dedent(
        """
        import threading
        from decimal import Decimal
        from pacspace_sync import PacSpace

        pac = PacSpace(max_retries=0, timeout=300)
        worker = threading.Thread(
            target=pac.balance.emit, kwargs={"customer_id": "c", "delta": Decimal(1), "reason": "usage"}, daemon=True
        )
        worker.start()
        worker.join(0.3)  # the emit now waits for an answer that never comes
        print("leaving")
        """
    )
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        env = {
            **os.environ,
            "PACSPACE_API_KEY": "pk_test_pubExit.exitSECRET",
            "PACSPACE_SANDBOX_URL": f"http://127.0.0.1:{silent.getsockname()[1]}",
            "PYTHONWARNINGS": "",
        }
        done = subprocess.run(
            [sys.executable, "-W", "default", "-c", script],
            capture_output=True,
            text=True,
            timeout=30,  # far less than the call's own 300 s
            env=env,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "leaving"
    assert done.stderr.count("ResourceWarning: a PacSpace client (key pk_test_pubExit) was still open") == 1
    assert "exitSECRET" not in done.stderr
