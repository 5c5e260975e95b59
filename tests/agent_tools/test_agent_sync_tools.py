"""`pacspace_sync.tools`: the blocking twin of `pacspace_async.tools`, written by hand (a package the
sync generator does not mirror): the same objects, and a `call_tool` that blocks."""

from __future__ import annotations

import asyncio
import inspect
import json
from decimal import Decimal

import pytest

import pacspace_async.tools as async_tools
import pacspace_sync.tools as sync_tools
from pacspace_async.testing import Emulator
from pacspace_sync import PacSpace

EMIT = {"customer_id": "cust_sync", "delta": "-1.25", "reason": "usage", "reference_id": "sync-ref-1"}
EMITS = sync_tools.ToolPolicy(allow=("read", "pacspace_emit_delta"))


def test_the_sync_module_exports_the_same_names() -> None:
    assert sync_tools.__all__ == async_tools.__all__
    assert sorted(sync_tools.__all__) == sync_tools.__all__
    assert "call_tool" in sync_tools.__all__
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
    first = sync_tools.call_tool(pacspace_sync_client, "pacspace_emit_delta", EMIT, policy=EMITS)
    assert first["ok"] is True, first
    for _ in range(2):
        again = sync_tools.call_tool(pacspace_sync_client, "pacspace_emit_delta", json.dumps(EMIT), policy=EMITS)
        assert again["result"]["record_id"] == first["result"]["record_id"]
        assert again["result"]["replayed"] is True
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
    bad = sync_tools.call_tool(pacspace_sync_client, "pacspace_emit_delta", {**EMIT, "delta": "one"}, policy=EMITS)
    assert bad["error"]["action"] == "fix_input"
    assert bad["error"]["code"] == "INVALID_ARGUMENTS"
    # read-only without a policy: the write is refused before anything is sent
    refused_write = sync_tools.call_tool(pacspace_sync_client, "pacspace_emit_delta", EMIT)
    assert refused_write["error"]["code"] == "POLICY_TOOL_NOT_ALLOWED"
    assert refused_write["error"]["action"] == "alert_operator"
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
    assert sync_tools.call_tool(pac, "pacspace_emit_delta", EMIT, policy=EMITS)["ok"] is True
    limited = sync_tools.call_tool(pac, "pacspace_emit_delta", EMIT, policy=EMITS)
    assert limited["error"]["action"] == "wait_and_retry"
    assert limited["error"]["retry_after"] > 0


# --- parity with the async package -----------------------------------------------------------------


def test_every_public_name_of_the_async_package_has_its_twin() -> None:
    # A name added to pacspace_async.tools without its sync twin fails here, not in a user's import.
    public = {name for name in vars(async_tools) if not name.startswith("_") and name in async_tools.__all__}
    assert public == set(async_tools.__all__)
    assert set(sync_tools.__all__) == set(async_tools.__all__)
    for name in sync_tools.__all__:
        assert hasattr(sync_tools, name), name


def test_the_sync_call_tool_documents_the_same_arguments() -> None:
    doc = sync_tools.call_tool.__doc__ or ""
    assert "blocks" in doc
    assert "pacspace_async.tools.call_tool" in doc
    assert "policy=" in (sync_tools.__doc__ or "")


def test_the_sync_call_tool_passes_every_argument_through(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[object, ...]] = []

    async def fake(pac: object, name: str, arguments: object, *, policy: object, approved: bool) -> dict[str, object]:
        seen.append((pac, name, arguments, policy, approved))
        return {"ok": True, "result": None}

    class Portal:
        def call(self, work: object) -> object:
            assert callable(work)
            return asyncio.run(work())

    class Client:
        _portal = Portal()
        _wrapped = object()

    monkeypatch.setattr(async_tools, "call_tool", fake)
    policy = sync_tools.ToolPolicy(allow=("*",))
    client = Client()
    result = sync_tools.call_tool(client, "pacspace_emit_delta", '{"a": 1}', policy=policy, approved=True)  # type: ignore[arg-type]
    assert result == {"ok": True, "result": None}
    assert seen == [(Client._wrapped, "pacspace_emit_delta", '{"a": 1}', policy, True)]
