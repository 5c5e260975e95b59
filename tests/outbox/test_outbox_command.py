"""`pacspace outbox`: status, drain, dead-letters and requeue on a SQLite outbox, against the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from pacspace_async import AsyncPacSpace
from pacspace_async._outbox_command import age, display_url
from pacspace_async.cli import EXIT_API, EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from pacspace_async.outbox import Outbox, OutboxEntry, SqliteStore
from pacspace_async.testing import Emulator


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    emulator = Emulator(verify_delay=None).start_in_thread()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def key(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> str:
    made = emu.create_key("sandbox")
    monkeypatch.setenv("PACSPACE_API_KEY", made)
    monkeypatch.setenv("PACSPACE_SANDBOX_URL", emu.sandbox_url)
    monkeypatch.setenv("PACSPACE_PRODUCTION_URL", emu.production_url)
    emu.reset()
    emu.allowance = None
    return made


def store_of(path: Path) -> str:
    return f"sqlite:///{path}"


def fill(emu: Emulator, key: str, path: Path, *refs: str, customer: str = "cust_cmd") -> list[OutboxEntry]:
    """Entries stored by an agent that stopped before its drain sent them."""

    async def emit() -> list[OutboxEntry]:
        async with AsyncPacSpace(key, base_urls=emu.base_urls) as pac:
            outbox = Outbox(pac, path)
            try:
                return [
                    await outbox.emit(customer_id=customer, delta=Decimal("-1.25"), reason="usage", reference_id=ref)
                    for ref in refs
                ]
            finally:
                await outbox.aclose()

    return asyncio.run(emit())


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["outbox", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_status_then_drain_sends_each_entry_once(
    emu: Emulator, key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "outbox.sqlite3"
    fill(emu, key, path, "inv_1", "inv_2", "inv_3")

    code, out, err = run(capsys, "status", "--store", store_of(path))
    assert (code, err) == (EXIT_OK, "")
    assert "pending: 3 (sandbox 3)\n" in out
    assert "dead: 0\n" in out
    assert "in flight: 0\n" in out
    assert "oldest pending: " in out
    assert "oldest pending: -" not in out

    code, out, err = run(capsys, "drain", "--store", store_of(path), "--timeout", "30")
    assert (code, err) == (EXIT_OK, "")
    assert "pending 3 -> 0, dead 0 -> 0" in out
    assert key.split(".")[0] in out  # the key id, never its secret
    assert key.split(".")[1] not in out
    assert [d.reference_id for d in emu.deltas("cust_cmd")] == ["inv_1", "inv_2", "inv_3"]

    code, out, _ = run(capsys, "status", "--store", store_of(path))
    assert "pending: 0\n" in out
    assert "oldest pending: -\n" in out
    code, _, _ = run(capsys, "drain", "--store", store_of(path), "--timeout", "5")
    assert code == EXIT_OK
    assert len(emu.deltas("cust_cmd")) == 3


def test_a_refusal_is_listed_then_requeued_and_drained(
    emu: Emulator, key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "outbox.sqlite3"
    [entry] = fill(emu, key, path, "inv_9")
    emu.allowance = 0

    code, out, err = run(capsys, "drain", "--store", store_of(path), "--timeout", "30")
    assert code == EXIT_FAILED
    assert "dead 0 -> 1" in out
    assert err.count("\n") == 1
    assert "1 new dead letters" in err

    code, out, err = run(capsys, "dead-letters", "--store", store_of(path))
    assert (code, err) == (EXIT_OK, "")
    header, line = out.splitlines()
    assert header.split("\t") == [
        "id",
        "customer",
        "delta",
        "reference",
        "error_code",
        "needs_reconciliation",
        "message",
    ]
    fields = line.split("\t")
    assert fields[:6] == [entry.id, "cust_cmd", "-1.25", "inv_9", "INSUFFICIENT_CREDITS", "no"]
    assert "allowance" in fields[6]

    emu.allowance = None  # the fix
    code, out, err = run(capsys, "requeue", entry.id, "--store", store_of(path))
    assert (code, err) == (EXIT_OK, "")
    assert entry.idempotency_key in out
    code, _, err = run(capsys, "requeue", entry.id, "--store", store_of(path))
    assert code == EXIT_FAILED
    assert "not a dead letter" in err

    code, _, _ = run(capsys, "drain", "--store", store_of(path), "--timeout", "30")
    assert code == EXIT_OK
    assert [d.reference_id for d in emu.deltas("cust_cmd")] == ["inv_9"]
    code, out, _ = run(capsys, "dead-letters", "--store", store_of(path))
    assert (code, out) == (EXIT_OK, "no dead letters\n")


def test_requeue_refuses_an_unknown_id_and_an_entry_that_needs_reconciling(
    emu: Emulator, key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "outbox.sqlite3"
    [entry] = fill(emu, key, path, "inv_old")

    async def too_old() -> None:
        store = SqliteStore(path)
        await store.mark_dead(entry.id, error="too old", error_code="OUTBOX_MAX_AGE", needs_reconciliation=True)
        await store.aclose()

    asyncio.run(too_old())
    code, out, _ = run(capsys, "dead-letters", "--store", store_of(path))
    assert out.splitlines()[1].split("\t")[4:6] == ["OUTBOX_MAX_AGE", "yes"]

    code, _, err = run(capsys, "requeue", entry.id, "--store", store_of(path))
    assert code == EXIT_FAILED
    assert "too old to resend" in err
    assert entry.idempotency_key in err

    code, _, err = run(capsys, "requeue", "obx_nope", "--store", store_of(path))
    assert code == EXIT_FAILED
    assert "no entry obx_nope" in err


def test_a_refused_key_stops_the_drain_with_exit_three(
    emu: Emulator, key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "outbox.sqlite3"
    fill(emu, key, path, "inv_a", "inv_b")
    emu.revoke_key(key)

    code, out, err = run(capsys, "drain", "--store", store_of(path), "--timeout", "30")
    assert code == EXIT_API
    assert "pending 2 -> 2" in out
    assert "refused key" in err
    assert key.split(".")[1] not in out + err
    assert emu.deltas("cust_cmd") == []
    assert "dead: 0\n" in run(capsys, "status", "--store", store_of(path))[1]


def test_entries_left_pending_after_the_timeout_exit_one(
    emu: Emulator, key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "outbox.sqlite3"
    fill(emu, key, path, "inv_x")
    monkeypatch.setenv("PACSPACE_SANDBOX_URL", "http://127.0.0.1:9")  # nothing listens: an outage

    code, out, err = run(capsys, "drain", "--store", store_of(path), "--timeout", "0.3")
    assert code == EXIT_FAILED
    assert "pending 1 -> 1" in out
    assert "still pending" in err
    assert "pending: 1 (sandbox 1)\n" in run(capsys, "status", "--store", store_of(path))[1]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["status", "--store", "memory://"], "memory:// lives only inside one process"),
        (["status", "--store", "redis://u:hunter2pw@h/0"], "unsupported store URL scheme 'redis'"),
        (["status", "--store", "sqlite://"], "sqlite:///relative/path"),
        (["status", "--store", "sqlite:///:memory:"], "sqlite:///relative/path"),
        (["status"], "--store"),
        (["drain", "--store", "sqlite:///x.sqlite3", "--timeout", "0"], "above 0"),
        (["drain", "--store", "sqlite:///x.sqlite3", "--timeout", "soon"], "seconds"),
        (["requeue", "--store", "sqlite:///x.sqlite3"], "ID"),
        (["flush", "--store", "sqlite:///x.sqlite3"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line_and_exit_two(argv: list[str], said: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["outbox", *argv])
    err = capsys.readouterr().err
    assert exited.value.code == EXIT_USAGE
    assert said in err
    assert err.count("\n") == 1
    assert "hunter2pw" not in err


def test_a_missing_file_or_key_is_one_line_and_exit_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere.sqlite3"
    code, _, err = run(capsys, "status", "--store", store_of(missing))
    assert code == EXIT_USAGE
    assert "no outbox file" in err
    assert not missing.exists()  # looking made no empty outbox

    path = tmp_path / "outbox.sqlite3"
    path.write_bytes(b"")
    monkeypatch.delenv("PACSPACE_API_KEY", raising=False)
    code, _, err = run(capsys, "drain", "--store", store_of(path))
    assert code == EXIT_USAGE
    assert "PACSPACE_API_KEY" in err

    path.write_bytes(b"not a database at all, just some bytes" * 100)
    code, _, err = run(capsys, "status", "--store", store_of(path))
    assert code == EXIT_USAGE
    assert "is not a database" in err
    assert err.count("\n") == 1


def test_a_postgres_url_never_shows_its_password(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://agent:s3cr3t-pw@127.0.0.1:9/outbox?connect_timeout=1"
    code, out, err = run(capsys, "status", "--store", url)
    assert code != EXIT_OK
    assert err.count("\n") == 1
    assert "s3cr3t-pw" not in out + err


def test_display_url_masks_only_the_password() -> None:
    assert display_url("postgresql://agent:pw@db:5432/o") == "postgresql://agent:****@db:5432/o"
    assert display_url("postgresql://agent@db/o") == "postgresql://agent@db/o"
    assert display_url("sqlite:///var/o.sqlite3") == "sqlite:///var/o.sqlite3"
    assert "pw" not in display_url("postgresql://a:pw@[bad/o")


def test_ages_read_as_people_say_them() -> None:
    assert [age(None), age(42.4), age(720), age(3 * 3600 + 1800)] == ["-", "42 s", "12 min", "3.5 h"]


def test_status_and_drain_name_each_environments_entries(
    emu: Emulator, key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "outbox.sqlite3"
    fill(emu, key, path, "inv_1", "inv_2")
    production_key = emu.create_key("production")
    fill(emu, production_key, path, "inv_3")

    code, out, _ = run(capsys, "status", "--store", store_of(path))
    assert "pending: 3 (sandbox 2, production 1)\n" in out

    monkeypatch.setenv("PACSPACE_API_KEY", production_key)
    code, out, err = run(capsys, "drain", "--store", store_of(path), "--timeout", "30")
    assert (code, err) == (EXIT_OK, "")
    assert "pending 1 -> 0, dead 0 -> 0" in out
    assert "2 pending entries belong to the other environment" in out
    assert [d.reference_id for d in emu.deltas("cust_cmd")] == ["inv_3"]
