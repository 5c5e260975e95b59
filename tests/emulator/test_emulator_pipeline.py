"""The emulator's HTTP pipeline as a client sees it on the wire, and the seams behind it.

Raw HTTP (no SDK) so the headers and the request log are seen exactly: which answers say
``Idempotent-Replayed``, what the catch-all 404 skips, how an emulator bug is answered. Then
the read queries as plain functions over a ledger, and the rule that the emulator's checks
never come from the SDK.
"""

from __future__ import annotations

import ast
import asyncio
import logging
import re
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

import pacspace_async.testing
from pacspace_async import Environment
from pacspace_async.testing import Emulator
from pacspace_async.testing._deliveries import Dispatcher

DELTA = "/api/v1/balance/delta"
REQUEST_ID = re.compile(r"req_[0-9a-f]{16}")


async def _post(
    session: aiohttp.ClientSession, url: str, key: str, body: dict[str, Any], idempotency_key: str | None = None
) -> tuple[int, CIMultiDict[str], Any]:
    headers = {"X-Api-Key": key}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    async with session.post(url, json=body, headers=headers) as response:
        # Case-insensitive, as HTTP header names are (multidict 7 hands back "X-Request-ID").
        return response.status, CIMultiDict(response.headers), await response.json()


async def test_idempotent_replayed_says_where_each_answer_came_from() -> None:
    body = {"customerId": "c1", "delta": -1, "reason": "usage"}
    async with Emulator(verify_delay=None, idempotency_pending_seconds=0.25) as emu, aiohttp.ClientSession() as s:
        key, url = emu.create_key(), emu.sandbox_url + DELTA
        first = await _post(s, url, key, body, "k1")
        replay = await _post(s, url, key, body, "k1")
        other_body = await _post(s, url, key, {**body, "delta": -2}, "k1")
        unkeyed = await _post(s, url, key, {**body, "customerId": "c2"})
        emu.inject("slow", path=DELTA, seconds=0.6)
        slow = asyncio.ensure_future(_post(s, url, key, {**body, "customerId": "c3"}, "k2"))
        await asyncio.sleep(0.15)  # the first request holds the key, inside its slow fault
        pending = await _post(s, url, key, {**body, "customerId": "c3"}, "k2")
        await slow
        log = emu.requests
    assert (first[0], first[1]["Idempotent-Replayed"]) == (201, "false")
    assert (replay[0], replay[1]["Idempotent-Replayed"]) == (201, "true")
    assert replay[2] == first[2]  # the stored answer, byte for byte the same JSON
    assert other_body[0] == 409
    assert other_body[2]["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert "Idempotent-Replayed" not in other_body[1]  # an error says nothing about replays
    assert unkeyed[0] == 201
    assert "Idempotent-Replayed" not in unkeyed[1]  # no key, no idempotency memory
    assert (pending[0], pending[1]["Idempotent-Replayed"]) == (202, "false")
    assert pending[1]["Retry-After"] == "1"
    assert pending[1]["retry-after-ms"] == "250"
    assert pending[2]["code"] == "IDEMPOTENCY_PENDING"
    for _, headers, _ in (first, replay, other_body, unkeyed, pending):
        assert REQUEST_ID.fullmatch(headers["X-Request-Id"])
    assert first[1]["X-Request-Id"] != replay[1]["X-Request-Id"]  # a replay is a new request
    assert [(r.status, r.replayed, r.fault) for r in log] == [
        (201, False, None),
        (201, True, None),
        (409, False, None),
        (201, False, None),
        (202, False, None),
        (201, False, "slow"),
    ]


async def test_an_unknown_route_is_404_draws_no_fault_and_is_logged_without_a_key() -> None:
    async with Emulator(verify_delay=None) as emu, aiohttp.ClientSession() as s:
        key = emu.create_key()
        emu.inject("503")  # the next request of a real route, whatever its path
        async with s.get(emu.sandbox_url + "/api/v1/nowhere", headers={"X-Api-Key": key}) as missing:
            assert missing.status == 404
            assert (await missing.json())["error"] == {
                "code": "NOT_FOUND",
                "message": "no route GET /api/v1/nowhere",
            }
            assert REQUEST_ID.fullmatch(missing.headers["X-Request-Id"])
        async with s.get(emu.sandbox_url + DELTA, headers={"X-Api-Key": key}) as wrong_method:
            assert wrong_method.status == 404  # a known path with another method is no route either
        status, _, _ = await _post(s, emu.sandbox_url + DELTA, key, {"customerId": "c1", "delta": 1, "reason": "x"})
        assert status == 503  # the injected fault waited for a real route
        log = emu.requests
    assert [(r.path, r.status, r.key_id, r.fault) for r in log] == [
        ("/api/v1/nowhere", 404, None, None),
        (DELTA, 404, None, None),
        (DELTA, 503, key.split(".")[0], "503"),
    ]


async def test_an_emulator_bug_is_answered_500_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(Dispatcher, "listing", broken)
    async with Emulator() as emu, aiohttp.ClientSession() as s:
        headers = {"X-Api-Key": emu.create_key()}
        with caplog.at_level(logging.ERROR, logger="pacspace.emulator"):
            async with s.get(emu.sandbox_url + "/api/v1/balance/webhooks", headers=headers) as answer:
                assert answer.status == 500
                assert (await answer.json())["error"] == {
                    "code": "EMULATOR_ERROR",
                    "message": "emulator error: RuntimeError: boom",
                }
        assert [r.status for r in emu.requests] == [500]
    assert [r.getMessage() for r in caplog.records if r.name == "pacspace.emulator"] == [
        "emulator error on GET /api/v1/balance/webhooks"
    ]


def test_the_read_queries_are_functions_over_a_ledger() -> None:
    from pacspace_async.testing._ids import Ids
    from pacspace_async.testing._inputs import DeltaItem
    from pacspace_async.testing._ledger import Ledger
    from pacspace_async.testing._queries import derive, gaps

    ledger = Ledger(Environment.SANDBOX, Ids(0))
    now = datetime(2026, 2, 11, 10, 30, tzinfo=timezone.utc)
    items = [DeltaItem.parse({"customerId": "c1", "delta": amount, "reason": "usage"}) for amount in (10, -3, -2)]
    first, second, third = ledger.record(items, now, None)
    ledger.mark_verified(first, now)
    ledger.mark_failed(second, now, "refused")
    derived = derive(ledger, "c1", {}, now)
    assert derived["computedBalance"] == Decimal(8)  # the FAILED delta does not count
    assert derived["pendingCount"] == 1  # the third is still QUEUED
    assert [(g["fromSequence"], g["toSequence"], g["reason"]) for g in gaps(ledger, "c1", {})["gaps"]] == [
        (2, 3, "MIXED")
    ]
    assert third.status == "QUEUED"


def _sdk_imports(path: Path) -> set[str]:
    """The SDK modules a module of pacspace_async.testing imports (relative ``..`` imports)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom):
            continue
        module = node.module or ""
        if node.level >= 2:
            found.add(module)
        elif module.startswith("pacspace_async.") and not module.startswith("pacspace_async.testing"):
            found.add(module.removeprefix("pacspace_async."))
    return found


def test_the_emulator_never_borrows_the_sdks_checks() -> None:
    # A fake that shared the client's argument checks, key parser or codec would agree with
    # every client bug. What the emulator may take from the SDK: the environments (their
    # names, prefixes and chain ids), the webhook signer (pinned by the published vectors),
    # and the client class that `Emulator.client()` returns.
    allowed = {"_environments", "webhooks", "_client"}
    package = Path(pacspace_async.testing.__file__).parent
    borrowed = {path.name: _sdk_imports(path) - allowed for path in sorted(package.glob("*.py"))}
    assert {name: modules for name, modules in borrowed.items() if modules} == {}
