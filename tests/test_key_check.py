"""`pacspace key check`: one probe with the key, its verdict as an exit code, never the secret."""

from __future__ import annotations

import io
import socket
import sys
from collections.abc import Iterator

import pytest

from pacspace_async import Environment
from pacspace_async.cli import main
from pacspace_async.testing import Emulator

PROBE = "/api/v1/balance/usage"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(verify_delay=None) as emulator:
        yield emulator


def check(
    monkeypatch: pytest.MonkeyPatch, key: str, *extra: str, stdin: bool = False
) -> tuple[int, dict[str, str], str]:
    """Run `pacspace key check` with `key` (from the variable, or stdin); the fields it printed."""
    if stdin:
        monkeypatch.setattr(sys, "stdin", io.StringIO(key + "\n"))
    else:
        monkeypatch.setenv("PACSPACE_API_KEY", key)
    out, err = io.StringIO(), io.StringIO()
    code = main(["key", "check", *extra, *(["--stdin"] if stdin else [])], out=out, err=err)
    fields = dict(line.split(": ", 1) for line in out.getvalue().splitlines())
    secret = key.split(".", 1)[-1]
    assert secret not in out.getvalue() + err.getvalue()
    return code, fields, err.getvalue()


def use_emulator(monkeypatch: pytest.MonkeyPatch, emu: Emulator) -> None:
    monkeypatch.setenv("PACSPACE_SANDBOX_URL", emu.sandbox_url)
    monkeypatch.setenv("PACSPACE_PRODUCTION_URL", emu.production_url)


def probes(emu: Emulator, key: str) -> list[int | None]:
    key_id = key.split(".", 1)[0]
    return [r.status for r in emu.requests if r.key_id == key_id and r.path == PROBE]


def test_an_accepted_key_exits_zero_with_its_identity_and_request_id(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_emulator(monkeypatch, emu)
    key = emu.create_key(Environment.PRODUCTION)
    code, fields, err = check(monkeypatch, key)
    assert code == 0, err
    assert fields["environment"] == "production"
    assert fields["key_id"] == key.split(".")[0]
    assert fields["base_url"] == emu.production_url
    assert fields["accepted"] == "yes"
    assert fields["request_id"] not in ("", "-")
    assert err == ""
    assert probes(emu, key) == [200]


def test_a_key_read_from_stdin_like_a_mounted_secret_file(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    use_emulator(monkeypatch, emu)
    monkeypatch.setenv("PACSPACE_API_KEY", emu.create_key())  # --stdin wins over the variable
    key = emu.create_key()
    code, fields, _ = check(monkeypatch, key, stdin=True)
    assert code == 0
    assert fields["key_id"] == key.split(".")[0]
    assert fields["environment"] == "sandbox"


def test_a_revoked_key_exits_one_once_probed(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    use_emulator(monkeypatch, emu)
    key = emu.create_key()
    emu.revoke_key(key)
    code, fields, err = check(monkeypatch, key)
    assert code == 1
    assert fields["accepted"] == "no (401 API_KEY_REVOKED)"
    assert fields["request_id"] not in ("", "-")
    assert err.startswith("pacspace: 401 GET /api/v1/balance/usage: PacSpace refused the key ")
    assert err.count("\n") == 1
    assert probes(emu, key) == [401]  # never retried


def test_a_key_without_the_permission_exits_one(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    use_emulator(monkeypatch, emu)
    key = emu.create_key(permissions={"balance:write"})
    code, fields, _ = check(monkeypatch, key)
    assert code == 1
    assert fields["accepted"] == "no (403 PERMISSION_DENIED)"


def test_a_key_sent_to_the_other_environments_api_exits_one(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    # A production key with the production URL set to the sandbox API: the server refuses it.
    key = emu.create_key(Environment.PRODUCTION)
    code, fields, err = check(monkeypatch, key, "--base-url", emu.sandbox_url)
    assert code == 1
    assert fields["accepted"] == "no (401 WRONG_ENVIRONMENT)"
    assert "production key" in err


def test_a_sandbox_key_aimed_at_the_production_only_host_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACSPACE_SANDBOX_URL", "https://api.pacspace.io")
    code, fields, err = check(monkeypatch, "pk_test_pubSbx.sbxSECRETvalue123")
    assert code == 2
    assert fields == {}
    assert "serves production only" in err


def test_an_unreachable_api_exits_three(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the check: nothing listens there
    url = f"http://127.0.0.1:{port}"
    code, fields, err = check(monkeypatch, "pk_test_pubSbx.sbxSECRETvalue123", "--base-url", url, "--timeout", "2")
    assert code == 3
    assert fields["accepted"] == "unknown (no answer)"
    assert fields["request_id"] == "-"
    assert err.startswith("pacspace: could not check the key: ")


def test_a_malformed_key_exits_one_without_sending(monkeypatch: pytest.MonkeyPatch) -> None:
    code, fields, err = check(monkeypatch, "pk_test_pubSbx.sbx SECRET")
    assert code == 1
    assert fields == {}
    assert "invalid API key from PACSPACE_API_KEY" in err


@pytest.mark.parametrize("argv", [["--timeout", "0"], ["--timeout", "soon"], ["--what"]])
def test_bad_arguments_exit_two(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["key", "check", *argv], out=io.StringIO(), err=io.StringIO())
    assert info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_key_inspect_still_works_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACSPACE_API_KEY", "pk_live_pubCli.verySECRETpart42")
    out = io.StringIO()
    assert main(["key", "inspect"], out=out, err=io.StringIO()) == 0
    assert out.getvalue() == "environment: production\nkey_id: pk_live_pubCli\nredacted: pk_live_pubCli.****\n"
