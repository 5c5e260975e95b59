"""`pacspace_sync.tools`: generated from `pacspace_async.tools`; the same tools, blocking."""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest

import pacspace_async
import pacspace_async.tools as async_tools
import pacspace_sync.tools as sync_tools
from pacspace_async.testing import Emulator
from pacspace_sync import PacSpace

REPO = Path(__file__).resolve().parents[2]
EMIT = {"customer_id": "cust_sync", "delta": "-1.25", "reason": "usage", "reference_id": "sync-ref-1"}


def test_the_sync_module_exports_the_same_names() -> None:
    assert sync_tools.__all__ == async_tools.__all__
    for name in async_tools.__all__:
        if name == "call_tool":
            assert getattr(sync_tools, name) is not getattr(async_tools, name)
        else:
            assert getattr(sync_tools, name) is getattr(async_tools, name), name  # the very same objects


def test_the_sync_call_tool_mirrors_the_async_signature() -> None:
    assert not inspect.iscoroutinefunction(sync_tools.call_tool)
    expected = inspect.signature(async_tools.call_tool)
    actual = inspect.signature(sync_tools.call_tool)
    assert list(expected.parameters) == list(actual.parameters)
    for name, param in expected.parameters.items():
        twin = actual.parameters[name]
        assert (param.kind, param.default) == (twin.kind, twin.default)
        if name == "pac":
            assert (param.annotation, twin.annotation) == ("AsyncPacSpace", "PacSpace")
        else:
            assert param.annotation == twin.annotation
    assert expected.return_annotation == actual.return_annotation
    assert sync_tools.call_tool.__doc__
    assert "await" not in sync_tools.call_tool.__doc__
    assert sync_tools.__doc__
    assert "pacspace_sync.tools import" in sync_tools.__doc__


@pytest.mark.pacspace_emulator(verify_delay=0.02)
def test_sync_call_tool_round_trips_and_replays_once(
    pacspace_sync_client: PacSpace, pacspace_emulator_thread: Emulator
) -> None:
    first = sync_tools.call_tool(pacspace_sync_client, "pacspace_emit_delta", EMIT)
    assert first["ok"] is True, first
    for _ in range(2):
        again = sync_tools.call_tool(pacspace_sync_client, "pacspace_emit_delta", json.dumps(EMIT))
        assert again["result"]["record_id"] == first["result"]["record_id"]
    assert len(pacspace_emulator_thread.deltas("cust_sync")) == 1
    record_id = first["result"]["record_id"]
    final = sync_tools.call_tool(
        pacspace_sync_client, "pacspace_wait_for_verified", {"record_id": record_id, "poll_interval": 0.02}
    )
    assert final["result"]["status"] == "VERIFIED"
    balance = sync_tools.call_tool(pacspace_sync_client, "pacspace_derive_balance", {"customer_id": "cust_sync"})
    assert balance["result"]["computed_balance"] == "-1.25"
    assert Decimal(balance["result"]["computed_balance"]) == Decimal(EMIT["delta"])


@pytest.mark.pacspace_emulator(verify_delay=0.02)
def test_sync_call_tool_returns_actions(pacspace_sync_client: PacSpace, pacspace_emulator_thread: Emulator) -> None:
    bad = sync_tools.call_tool(pacspace_sync_client, "pacspace_emit_delta", {**EMIT, "delta": "one"})
    assert bad["error"]["action"] == "fix_input"
    assert pacspace_emulator_thread.requests == []
    key = pacspace_emulator_thread.create_key()
    with PacSpace(key, base_urls=pacspace_emulator_thread.base_urls) as pac:
        pacspace_emulator_thread.revoke_key(key)
        refused = sync_tools.call_tool(pac, "pacspace_delta_status", {"record_id": "rec_1"})
    assert refused["error"]["action"] == "alert_operator"
    assert refused["error"]["status"] == 401


@pytest.mark.pacspace_emulator(verify_delay=0.02, rate_limit=0.5)
def test_sync_call_tool_returns_wait_and_retry_on_a_429(
    pacspace_sync_client: PacSpace, pacspace_emulator_thread: Emulator
) -> None:
    pac = pacspace_sync_client.with_options(max_retries=0)  # a copy sharing the loop thread
    assert sync_tools.call_tool(pac, "pacspace_emit_delta", EMIT)["ok"] is True
    limited = sync_tools.call_tool(pac, "pacspace_emit_delta", EMIT)
    assert limited["error"]["action"] == "wait_and_retry"
    assert limited["error"]["retry_after"] > 0


# --- the generator ---------------------------------------------------------------------------------


def _generator() -> ModuleType:
    name = "pacspace_generate_sync_under_test"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, REPO / "tools" / "generate_sync.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


def test_the_generator_finds_the_tools_module_by_introspection() -> None:
    generator = _generator()
    assert generator.function_modules() == ["pacspace_async.tools"]
    files = generator.generate()
    assert files["tools.py"] == (REPO / "pacspace_sync" / "tools.py").read_text(encoding="utf-8")


def test_the_generator_refuses_to_export_the_async_tools_module_from_the_top(monkeypatch: pytest.MonkeyPatch) -> None:
    generator = _generator()
    monkeypatch.setattr(pacspace_async, "tools", async_tools, raising=False)
    monkeypatch.setattr(pacspace_async, "__all__", [*pacspace_async.__all__, "tools"])
    with pytest.raises(generator.GeneratorError, match="import it as a submodule"):
        generator.generate()
    monkeypatch.setattr(pacspace_async, "__all__", [*pacspace_async.__all__[:-1], "call_tool"])
    monkeypatch.setattr(pacspace_async, "call_tool", async_tools.call_tool, raising=False)
    with pytest.raises(generator.GeneratorError, match="has no sync twin"):
        generator.generate()
