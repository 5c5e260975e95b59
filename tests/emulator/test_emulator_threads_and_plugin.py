"""The emulator on its own thread (for sync code), the pytest fixtures, and the lazy keccak import."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from decimal import Decimal
from typing import Any

import pytest

from pacspace_async import AsyncPacSpace, Environment
from pacspace_async.testing import Emulator, _merkle


def call(url: str, key: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """A blocking request from a plain thread, as any non-async caller would make it."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"X-Api-Key": key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_threaded_emulator_serves_blocking_callers() -> None:
    with Emulator(verify_delay=0) as emu:
        key = emu.create_key()
        status, body = call(
            emu.sandbox_url + "/api/v1/balance/delta", key, {"customerId": "c", "delta": 3, "reason": "x"}
        )
        assert status == 201
        assert body["data"]["status"] == "QUEUED"
        record_id = body["data"]["recordId"]
        emu.settle()
        assert call(f"{emu.sandbox_url}/api/v1/balance/delta/{record_id}", key)[1]["data"]["status"] == "VERIFIED"
        # Inspection from this thread is carried out on the emulator's loop.
        assert [d.record_id for d in emu.deltas()] == [record_id]
        assert [r.status for r in emu.requests] == [201, 200]
        assert call(emu.production_url + "/api/v1/balance/usage", key)[0] == 401
        emu.reset()
        assert emu.deltas() == []
        assert call(emu.sandbox_url + "/api/v1/balance/usage", key)[0] == 200  # keys survive a reset
    assert not emu.running


def test_an_async_client_on_another_thread_works_with_a_threaded_emulator() -> None:
    emu = Emulator(verify_delay=0.01).start_in_thread()
    try:

        async def agent() -> str:
            async with emu.client() as pac:
                record = await pac.balance.emit_and_wait(
                    customer_id="cust_1", delta=Decimal("1.5"), reason="x", poll_interval=0.01
                )
                await emu.wait_for_deliveries()
                return record.status

        assert asyncio.run(agent()) == "VERIFIED"
        emu.wait_for_deliveries_sync()
        assert emu.deltas()[0].delta == Decimal("1.5")
        assert any(t.name == "pacspace-emulator" for t in threading.enumerate())
    finally:
        emu.stop()
    with pytest.raises(RuntimeError, match="not running"):
        _ = emu.base_urls


@pytest.mark.pacspace_emulator(verify_delay=0, seed=42)
async def test_fixtures_take_options_from_the_mark(pacspace_emulator: Emulator, pacspace_client: AsyncPacSpace) -> None:
    assert pacspace_emulator.verify_delay == 0
    assert pacspace_emulator.seed == 42
    assert pacspace_client.environment is Environment.SANDBOX
    assert pacspace_client.base_url == pacspace_emulator.sandbox_url
    record = await pacspace_client.balance.emit_and_wait(customer_id="c", delta=1, reason="x", poll_interval=0.01)
    assert record.is_final


def test_the_sync_client_fixture(pacspace_sync_client: Any, pacspace_emulator_thread: Emulator) -> None:
    record = pacspace_sync_client.balance.emit(customer_id="cust_1", delta=Decimal("-1"), reason="usage")
    assert [d.record_id for d in pacspace_emulator_thread.deltas()] == [record.record_id]


def test_without_pycryptodome_the_emulator_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> Any:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(_merkle, "_keccak_new", None)
    monkeypatch.setattr(_merkle.importlib, "import_module", missing)
    with pytest.raises(ImportError, match=r"pip install 'pacspace\[emulator\]'"):
        Emulator()


def test_importing_the_sdk_and_the_emulator_package_does_not_need_pycryptodome() -> None:
    code = (
        "import sys; sys.modules['Crypto'] = None\n"
        "import pacspace_async, pacspace_async.testing\n"
        "from pacspace_async.testing import pytest_plugin\n"
        "assert 'Crypto.Hash.keccak' not in sys.modules\n"
        "try:\n"
        "    pacspace_async.testing.Emulator()\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "pip install 'pacspace[emulator]'" in out.stdout


def test_keys_look_real_and_never_appear_in_the_request_log() -> None:
    with Emulator() as emu:
        key = emu.create_key(Environment.PRODUCTION, permissions={"usage:read"})
        assert key.startswith("pk_live_emu")
        public, secret = key.split(".")
        assert secret
        call(emu.production_url + "/api/v1/balance/usage", key)
        (logged,) = emu.requests
        assert logged.key_id == public
        assert secret not in repr(logged)
