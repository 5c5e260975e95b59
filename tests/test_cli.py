"""The `pacspace` command: demo, verify, key inspect, webhook verify — exit codes and output."""

from __future__ import annotations

import http.server
import io
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from pacspace_async import Environment
from pacspace_async.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, build_parser, emulator_options, main, parse_headers
from pacspace_async.testing import Emulator
from pacspace_async.webhooks import signature_header

SECRET = "verySECRETpart42"
KEY = f"pk_live_pubCli.{SECRET}"


def run(argv: list[str], stdin: str = "", monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    if monkeypatch is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(argv, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_key_inspect_shows_identity_never_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACSPACE_API_KEY", KEY)
    code, out, err = run(["key", "inspect"])
    assert code == EXIT_OK
    assert "environment: production" in out
    assert "key_id: pk_live_pubCli" in out
    assert SECRET not in out + err


def test_key_inspect_reads_stdin_and_refuses_a_bad_key_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = run(["key", "inspect"], stdin=f"pk_live_pubCli.{SECRET}.extra\n", monkeypatch=monkeypatch)
    assert code == EXIT_FAILED
    assert out == ""
    assert "exactly one '.'" in err
    assert SECRET not in err
    assert err.count("\n") == 1  # one line a person can act on


def test_key_inspect_from_stdin_with_a_trailing_newline(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run(["key", "inspect", "--stdin"], stdin="pk_test_abc.def\n", monkeypatch=monkeypatch)
    assert code == EXIT_OK
    assert "environment: sandbox" in out


def test_verify_against_the_emulator_exit_codes() -> None:
    from decimal import Decimal

    from pacspace_sync import PacSpace

    with Emulator(verify_delay=0.01) as emu:
        with PacSpace(emu.create_key("sandbox"), base_urls=emu.base_urls) as pac:
            record = pac.balance.emit(customer_id="cust_cli", delta=Decimal("-1"), reason="usage")
            pac.balance.wait_for_verified(record.record_id, timeout=10, poll_interval=0.02)
        assert record.receipt_id
        known = run(["verify", record.receipt_id, "--environment", "sandbox", "--base-url", emu.sandbox_url])
        assert known[0] == EXIT_OK
        assert json.loads(known[1])["verified"] is True
        unknown = run(["verify", "0x" + "00" * 32, "--environment", "sandbox", "--base-url", emu.sandbox_url])
        assert unknown[0] == EXIT_FAILED
        assert json.loads(unknown[1])["verified"] is False


def test_verify_usage_error_exits_two() -> None:
    with pytest.raises(SystemExit) as info:
        main(["verify", "0xabc", "--source", "nope"], out=io.StringIO(), err=io.StringIO())
    assert info.value.code == EXIT_USAGE


def test_webhook_verify_accepts_a_signed_delivery_and_rejects_a_tampered_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "whsec_cli_test"
    monkeypatch.setenv("PACSPACE_WEBHOOK_SECRET", secret)
    body = b'{"id":"evt_1","event":"delta.verified","data":{"recordId":"rec_1"}}'
    stamp = str(int(time.time()))
    headers = {"X-PacSpace-Timestamp": stamp, "X-PacSpace-Signature": signature_header(secret, stamp, body)}
    (tmp_path / "headers.json").write_text(json.dumps(headers))
    (tmp_path / "body").write_bytes(body)
    code, out, _ = run(
        ["webhook", "verify", "--headers", str(tmp_path / "headers.json"), "--body", str(tmp_path / "body")]
    )
    assert code == EXIT_OK
    assert "delta.verified" in out

    (tmp_path / "body").write_bytes(body.replace(b"rec_1", b"rec_2"))
    code, out, err = run(
        ["webhook", "verify", "--headers", str(tmp_path / "headers.json"), "--body", str(tmp_path / "body")]
    )
    assert code == EXIT_FAILED
    assert "rejected" in err
    assert secret not in err


def test_headers_parse_from_an_http_dump() -> None:
    dump = "POST /hook HTTP/1.1\nX-PacSpace-Timestamp: 1\nX-PacSpace-Signature: v1=ab\n"
    assert parse_headers(dump) == {"X-PacSpace-Timestamp": "1", "X-PacSpace-Signature": "v1=ab"}


def test_sync_client_runs_the_flow_against_the_emulator_thread() -> None:
    from decimal import Decimal

    from pacspace_sync import PacSpace

    with Emulator(verify_delay=0.01) as emu, PacSpace(emu.create_key("sandbox"), base_urls=emu.base_urls) as pac:
        record = pac.balance.emit(customer_id="cust_sync", delta=Decimal("-2.50"), reason="usage", reference_id="s1")
        again = pac.balance.emit(customer_id="cust_sync", delta=Decimal("-2.50"), reason="usage", reference_id="s1")
        assert again.record_id == record.record_id
        final = pac.balance.wait_for_verified(record.record_id, timeout=10, poll_interval=0.02)
        assert final.status == "VERIFIED"
        assert pac.balance.derive_current_month("cust_sync").computed_balance == Decimal("-2.50")
        checkpoint = pac.checkpoints.create(customer_id="cust_sync")
        assert checkpoint.checkpoint_id
        receipt = pac.balance.receipt("cust_sync")
        with PacSpace(environment=Environment.SANDBOX, base_urls=emu.base_urls) as keyless:
            assert keyless.verify(receipt.proof_root or "").raw["proofRoot"] == receipt.proof_root
        assert len(emu.deltas("cust_sync")) == 1


# --- demo arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--faults", "2"], "--faults"),
        (["--faults", "0.9"], "--faults"),
        (["--faults", "-0.1"], "--faults"),
        (["--faults", "nan"], "--faults"),
        (["--emits", "0"], "--emits"),
        (["--emits", "-5"], "--emits"),
        (["--emits", "1000000"], "--emits"),
        (["--emits", "ten"], "--emits"),
    ],
)
def test_a_bad_demo_argument_is_one_line_and_exit_two(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", *argv], out=io.StringIO(), err=io.StringIO())
    assert info.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"pacspace demo: argument {named}: ")
    assert "Traceback" not in err


def test_the_demo_exits_zero_as_a_subprocess_including_at_the_edges_of_what_it_accepts() -> None:
    # Side by side: a usual run; one emit with no faults (once a 404: nine of ten customers had
    # no delta to derive); a few emits at the highest fault rate (once a retry budget ran out).
    runs = {
        (emits, faults): subprocess.Popen(
            [sys.executable, "-m", "pacspace_async.cli", "demo", "--plain", "--emits", emits, "--faults", faults],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PACSPACE_API_KEY": KEY},
        )
        for emits, faults in (("200", "0.2"), ("1", "0"), ("5", "0.5"))
    }
    for (emits, faults), process in runs.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, (emits, faults, out[-2000:], err[-2000:])
        assert "no double counting" in out
        assert " 0 duplicates" in out
        assert f"{emits}/{emits} VERIFIED" in out
        assert "key rotation drill" in out
        assert ", 0 failed;" in out  # the drill's cut-over under load
        assert "FAILED" not in out
        assert err == ""
        assert SECRET not in out + err


def test_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["demo", "--help"], ["emulator", "--help"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == EXIT_OK
        text = capsys.readouterr().out
        assert "exit codes:" in text
        assert "2  usage" in text
        assert "3  PacSpace could not be reached" in text


def test_the_install_hint_is_printed_once() -> None:
    # pycryptodome missing: the emulator's ImportError already says how to install it.
    code = "import sys; sys.modules['Crypto'] = None\nfrom pacspace_async.cli import main\nsys.exit(main(['demo']))\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == EXIT_USAGE
    assert done.stderr.count("pip install") == 1, done.stderr
    assert done.stderr.count("\n") == 1


# --- emulator -------------------------------------------------------------------------------


def emulator_args(*argv: str) -> Any:
    return build_parser().parse_args(["emulator", *argv])


def test_emulator_options_become_the_emulators_settings() -> None:
    from pacspace_async.testing import Faults

    options = emulator_options(
        emulator_args(
            "--faults", "0.3", "--fault-kinds", "503,slow", "--slow-seconds", "0.2", "--seed", "7",
            "--verify-delay", "0", "--rate-limit", "5", "--sandbox-port", "8787", "--production-port", "8788",
        )
    )  # fmt: skip
    assert options == {
        "host": "127.0.0.1",
        "seed": 7,
        "verify_delay": 0.0,
        "rate_limit": 5.0,
        "ports": {Environment.SANDBOX: 8787, Environment.PRODUCTION: 8788},
        "faults": Faults(rate=0.3, kinds=("503", "slow"), slow_seconds=0.2),
    }
    assert "faults" not in emulator_options(emulator_args())


def test_emulator_faults_from_the_command_line_reach_the_client() -> None:
    from decimal import Decimal

    from pacspace_sync import PacSpace, ServiceUnavailableError

    options = emulator_options(emulator_args("--faults", "1", "--fault-kinds", "503", "--verify-delay", "0"))
    with Emulator(**options) as emu, PacSpace(emu.create_key(), base_urls=emu.base_urls, max_retries=0) as pac:
        with pytest.raises(ServiceUnavailableError):
            pac.balance.emit(customer_id="c1", delta=Decimal(1), reason="usage")
        assert [request.fault for request in emu.requests] == ["503"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--sandbox-port", "70000"],
        ["--production-port", "-1"],
        ["--faults", "1.5"],
        ["--faults", "0.2", "--fault-kinds", "404"],
        ["--fault-kinds", "503"],  # no --faults: it would do nothing
        ["--verify-delay", "-1"],
        ["--rate-limit", "0"],
        ["--webhook-url", "ftp://example.com/hook"],
        ["--sandbox-port", "8787", "--production-port", "8787"],
    ],
)
def test_a_bad_emulator_argument_is_one_line_and_exit_two(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["emulator", *argv], out=io.StringIO(), err=io.StringIO())
    assert info.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("pacspace emulator: ")


def test_emulator_on_a_port_in_use_is_one_line_and_exit_two() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run(["emulator", "--sandbox-port", str(port)])
    assert code == EXIT_USAGE
    assert out == ""
    assert err.count("\n") == 1
    assert f"cannot serve on 127.0.0.1 (ports {port} and 0)" in err


class Receiver(http.server.BaseHTTPRequestHandler):
    deliveries: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.deliveries.append((dict(self.headers.items()), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_pacspace_emulator_serves_and_prints_what_a_second_terminal_pastes(monkeypatch: pytest.MonkeyPatch) -> None:
    from decimal import Decimal

    from pacspace_async import ApiKey
    from pacspace_async.webhooks import WebhookVerifier
    from pacspace_sync import PacSpace

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    sandbox_port, production_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PACSPACE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "pacspace_async.cli", "emulator", "--verify-delay", "0", "--webhook-url", hook,
         "--sandbox-port", str(sandbox_port), "--production-port", str(production_port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    watchdog = threading.Timer(60, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        banner: list[str] = []
        while not any(line.strip().startswith("export PACSPACE_WEBHOOK_SECRET=") for line in banner):
            line = process.stdout.readline()
            assert line, "".join(banner) + (process.stderr.read() if process.stderr else "")
            banner.append(line)
        text = "".join(banner)
        assert "made by this emulator" in text
        exports: dict[str, str] = {}
        for line in banner:
            if line.strip().startswith("export "):
                for word in shlex.split(line)[1:]:
                    name, _, value = word.partition("=")
                    exports[name] = value
        assert exports["PACSPACE_SANDBOX_URL"] == f"http://127.0.0.1:{sandbox_port}"
        assert exports["PACSPACE_PRODUCTION_URL"] == f"http://127.0.0.1:{production_port}"
        assert ApiKey.parse(exports["PACSPACE_API_KEY"]).environment is Environment.SANDBOX
        for name, value in exports.items():
            monkeypatch.setenv(name, value)
        with PacSpace() as pac:  # configured by the pasted lines alone
            record = pac.balance.emit(customer_id="cust_cli_emu", delta=Decimal("-1"), reason="usage")
            assert pac.balance.wait_for_verified(record.record_id, timeout=10, poll_interval=0.02).status == "VERIFIED"
        for _ in range(500):
            if Receiver.deliveries:
                break
            threading.Event().wait(0.01)
        headers, body = Receiver.deliveries[0]
        event = WebhookVerifier(exports["PACSPACE_WEBHOOK_SECRET"]).verify(headers, body)
        assert event.type == "delta.verified"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        assert process.returncode == EXIT_OK
        assert err == ""
    finally:
        watchdog.cancel()
        process.kill()
        receiver.shutdown()


# --- webhook verify without a secret ------------------------------------------------------


def test_webhook_verify_without_a_secret_gives_shell_advice(tmp_path: Path) -> None:
    (tmp_path / "headers.json").write_text("{}")
    (tmp_path / "body").write_bytes(b"{}")
    files = ["--headers", str(tmp_path / "headers.json"), "--body", str(tmp_path / "body")]
    code, _, err = run(["webhook", "verify", *files])
    assert code == EXIT_USAGE
    assert "export PACSPACE_WEBHOOK_SECRET=whsec_" in err
    assert "--secret-env" in err
    assert "WebhookVerifier" not in err
    assert "pass " not in err
    assert err.count("\n") == 1
    code, _, err = run(["webhook", "verify", *files, "--secret-env", "MY_HOOK_SECRET"])
    assert code == EXIT_USAGE
    assert "export MY_HOOK_SECRET=whsec_" in err
