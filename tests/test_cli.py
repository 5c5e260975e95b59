"""The `pacspace` command: demo, verify, key inspect, webhook verify — exit codes and output."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pacspace_async import Environment
from pacspace_async.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main, parse_headers
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


def test_demo_exits_zero_as_a_subprocess() -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pacspace_async.cli", "demo", "--emits", "200", "--plain"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PACSPACE_API_KEY": KEY},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "no double counting" in done.stdout
    assert "0 duplicates" in done.stdout
    assert "FAILED" not in done.stdout
    assert SECRET not in done.stdout + done.stderr
    assert time.monotonic() - started < 60


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
