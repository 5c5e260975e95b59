"""Every ```python block of README.md, run as written against the bundled emulator.

Each block is one test, ``README.md:<line of its fence>``, run in a fresh namespace. The
tests share one emulator (on its own thread, ``verify_delay=0``) and run in README order, as a
reader trying the examples one after the other against one account would: two blocks that
reuse a ``reference_id`` with other content fail the second one. The environment points the
no-argument constructors at it: ``PACSPACE_API_KEY`` (a production key, as the README's
examples show ``production:`` idempotency keys), ``PACSPACE_SANDBOX_URL``,
``PACSPACE_PRODUCTION_URL`` and ``PACSPACE_WEBHOOK_SECRET``.

- A block with a top-level ``await`` / ``async for`` / ``async with`` runs in a fresh event
  loop, as ``asyncio.run`` would run it; any other block runs as a plain script.
- A block that uses ``pac`` without creating it gets one: an ``AsyncPacSpace()`` for an async
  block, a ``PacSpace()`` otherwise. Every client left in the namespace is closed afterwards.
- A block that does not start with an import continues the prose around it, so it also gets
  what the README has imported by then: ``asyncio``, ``json``, ``Decimal``, ``date`` and the
  public names of ``pacspace_async``, ``pacspace_async.tools`` and ``pacspace_async.testing``.
  A block that starts with an import is a whole program: it must import all it uses.

Directives are HTML comments (invisible on GitHub) on the lines just above a block's fence:

``<!-- readme-test: skip REASON -->``
    Not run, only compiled; the reason shows in ``pytest -ra``. For what the test environment
    cannot have (a web framework that is not installed, a real account).
``<!-- readme-test: context NAME -->``
    `CONTEXTS` [NAME] gives the block the names the reader's own code would (stand-ins such as
    ``handle`` or ``my_agent``) and then exercises what the block defined: a web handler gets
    real signed deliveries, the pytest example runs under pytest.
``<!-- readme-test: replace "LITERAL" NAME -->``
    The placeholder ``"LITERAL"`` (quotes included, e.g. ``"0x7f..."``) becomes the repr of a
    real value: ``PROOF_ROOT`` (a verified delta's proof hash), ``CHECKPOINT_ROOT``,
    ``RECORD_ID`` or ``KEY_FILE`` (a file holding a valid key).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from outbox.postgres_server import postgres_server, postgres_url  # noqa: F401  (fixtures, for one block)
from readme_blocks import (
    README,
    Block,
    compile_block,
    is_async,
    is_fragment,
    parse_blocks,
    run_block,
    source_of,
    uses_without_creating,
)

import pacspace_async
import pacspace_async.testing
import pacspace_async.tools
from pacspace_async import (
    AsyncPacSpace,
    PermissionDeniedError,
    WebhookVerificationError,
    WebhookVerifier,
    signature_header,
)
from pacspace_async.testing import Emulator
from pacspace_sync import PacSpace

pytest_plugins = ["pytester"]

BLOCKS = parse_blocks(README.read_text(encoding="utf-8"))
PYTHON_BLOCKS = [block for block in BLOCKS if block.language == "python"]
WEBHOOK_SECRET = "whsec_readme_test_secret"
VALUE_NAMES = ("PROOF_ROOT", "CHECKPOINT_ROOT", "RECORD_ID", "KEY_FILE")


def _prelude() -> dict[str, Any]:
    names: dict[str, Any] = {"asyncio": asyncio, "json": json, "Decimal": Decimal, "date": date}
    for module in (pacspace_async, pacspace_async.tools, pacspace_async.testing):
        names.update({name: getattr(module, name) for name in module.__all__})
    return names


@attrs.frozen
class Harness:
    """What a block's run may use: the emulator, its key, the real values, and pytest's helpers."""

    emulator: Emulator
    key: str
    values: dict[str, Any]
    monkeypatch: pytest.MonkeyPatch
    request: pytest.FixtureRequest


# --- the emulator and the values the placeholders stand for -----------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    emu = Emulator(verify_delay=0).start_in_thread()
    try:
        yield emu
    finally:
        emu.stop()


async def _seed(emu: Emulator, key: str) -> dict[str, Any]:
    """A verified delta and checkpoint of ``cust_1``, whose ids stand in for the placeholders."""
    async with AsyncPacSpace(key, base_urls=emu.base_urls) as pac:
        rec = await pac.balance.emit(customer_id="cust_1", delta=Decimal("-1"), reason="seed", reference_id="seed-1")
        rec = await pac.balance.wait_for_verified(rec.record_id, poll_interval=0.01)
        checkpoint = await pac.checkpoints.create(customer_id="cust_1", time_preset="current_month")
    return {"PROOF_ROOT": rec.receipt_id, "RECORD_ID": rec.record_id, "CHECKPOINT_ROOT": checkpoint.proof_root}


@pytest.fixture(scope="module")
def seeded(emulator: Emulator) -> tuple[str, dict[str, Any]]:
    key = emulator.create_key("production")
    return key, asyncio.run(_seed(emulator, key))


def _harness(
    emu: Emulator, key: str, values: dict[str, Any], monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Harness:
    monkeypatch.setenv("PACSPACE_API_KEY", key)
    monkeypatch.setenv("PACSPACE_SANDBOX_URL", emu.sandbox_url)
    monkeypatch.setenv("PACSPACE_PRODUCTION_URL", emu.production_url)
    monkeypatch.setenv("PACSPACE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    key_file = Path(request.getfixturevalue("tmp_path")) / "pacspace-key"
    key_file.write_text(key + "\n", encoding="utf-8")
    return Harness(emu, key, {**values, "KEY_FILE": str(key_file)}, monkeypatch, request)


@pytest.fixture
def harness(
    emulator: Emulator,
    seeded: tuple[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Harness:
    key, values = seeded
    return _harness(emulator, key, values, monkeypatch, request)


# --- contexts: the reader's own code around a block, and what exercises it --------------------


@attrs.frozen
class Context:
    """`give` adds names before the block runs; `check` exercises what it defined, after."""

    give: Callable[[Harness], dict[str, Any]] = lambda harness: {}
    check: Callable[[Harness, str, dict[str, Any]], None] = lambda harness, source, namespace: None


class _Recorder:
    """A stand-in for the reader's function: records what it is called with."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def __call__(self, value: Any) -> None:
        self.calls.append(value)


class _AsyncRecorder(_Recorder):
    async def __call__(self, value: Any) -> None:  # type: ignore[override]
        self.calls.append(value)


def _signed_delivery(record_id: str, *, secret: str = WEBHOOK_SECRET) -> tuple[dict[str, str], bytes]:
    """A ``delta.verified`` delivery as PacSpace sends it: its headers and raw body."""
    event = {
        "id": "evt_readme_1",
        "event": "delta.verified",
        "tenantId": "ten_readme",
        "environment": "production",
        "createdAt": "2026-11-30T12:00:00Z",
        "data": {"recordId": record_id, "customerId": "cust_1", "delta": -1, "status": "verified"},
    }
    body = json.dumps(event).encode()
    timestamp = str(int(time.time()))
    headers = {
        "X-PacSpace-Signature": signature_header(secret, timestamp, body),
        "X-PacSpace-Timestamp": timestamp,
        "X-Event-ID": "evt_readme_1",
        "X-Webhook-Event": "delta.verified",
    }
    return headers, body


def _give_key_sources(harness: Harness) -> dict[str, Any]:
    harness.monkeypatch.setenv("MY_AGENT_KEY", harness.key)

    async def fetch_key_async() -> str:
        return harness.key

    return {"vault": SimpleNamespace(read=lambda name: harness.key), "fetch_key_async": fetch_key_async}


def _give_alerts(harness: Harness) -> dict[str, Any]:
    # The block's client gets a key without permissions: its first call is refused with a 403.
    harness.monkeypatch.setenv("PACSPACE_API_KEY", harness.emulator.create_key("production", permissions=()))
    return {"alerts": SimpleNamespace(send=_AsyncRecorder())}


def _check_alerts(harness: Harness, source: str, namespace: dict[str, Any]) -> None:
    async def refused() -> None:
        async with AsyncPacSpace(on_auth_error=namespace["page"]) as pac:
            with pytest.raises(PermissionDeniedError):
                await pac.balance.usage()

    asyncio.run(refused())
    [text] = namespace["alerts"].send.calls
    assert text.startswith("PacSpace refused pk_live_emu")


def _give_delivery(harness: Harness) -> dict[str, Any]:
    headers, raw_body = _signed_delivery(harness.values["RECORD_ID"])
    return {"headers": headers, "raw_body": raw_body}


def _check_delivery(harness: Harness, source: str, namespace: dict[str, Any]) -> None:
    event = namespace["event"]
    assert (event.type, event.data.record_id) == ("delta.verified", harness.values["RECORD_ID"])


async def _serve_and_deliver(handler: Callable[[web.Request], Any]) -> tuple[list[str], int]:
    """Serve `handler`, let a fresh emulator deliver it a real event, then post a forged one."""
    app = web.Application()
    app.router.add_post("/webhooks/pacspace", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/webhooks/pacspace"
        async with Emulator(verify_delay=0) as emu:
            emu.register_webhook(url, WEBHOOK_SECRET)
            async with emu.client("production") as pac:
                rec = await pac.balance.emit(customer_id="cust_1", delta=Decimal("-1"), reason="usage")
                await pac.balance.wait_for_verified(rec.record_id, poll_interval=0.01)
            await emu.wait_for_deliveries()
            statuses = [delivery.status for delivery in emu.deliveries]
        headers, body = _signed_delivery("rec_forged", secret="whsec_not_the_secret")
        async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as response:
            return statuses, response.status
    finally:
        await runner.cleanup()


def _check_aiohttp_handler(harness: Harness, source: str, namespace: dict[str, Any]) -> None:
    statuses, forged = asyncio.run(_serve_and_deliver(namespace["pacspace_webhook"]))
    handled = namespace["handle"].calls
    assert statuses == ["delivered"]
    assert [event.type for event in handled] == ["delta.verified"]
    assert forged == 400


class _FakeRedis:
    """redis-py's ``set(name, value, nx=True, ex=...)``: True when it set the key, None if it existed."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def set(self, name: str, value: Any, *, nx: bool = False, ex: int | None = None) -> bool | None:
        assert ex is not None
        assert ex >= 1
        if nx and name in self.values:
            return None
        self.values[name] = value
        return True


def _check_redis_cache(harness: Harness, source: str, namespace: dict[str, Any]) -> None:
    verifier = WebhookVerifier(WEBHOOK_SECRET, replay_cache=namespace["RedisReplayCache"](_FakeRedis()))
    headers, body = _signed_delivery(harness.values["RECORD_ID"])
    verifier.verify(headers, body)
    with pytest.raises(WebhookVerificationError):
        verifier.verify(headers, body)


def _give_tool_call(harness: Harness) -> dict[str, Any]:
    arguments = {"customer_id": "cust_9", "delta": "-0.30", "reason": "usage", "reference_id": "tool-call-1"}
    call = SimpleNamespace(name="pacspace_emit_delta", arguments=json.dumps(arguments))  # as OpenAI sends it
    return {"call": call, "reply_to_model": _Recorder()}


def _check_tool_call(harness: Harness, source: str, namespace: dict[str, Any]) -> None:
    [reply] = namespace["reply_to_model"].calls
    result = json.loads(reply)
    assert result["ok"] is True, result
    assert result["result"]["delta"] == "-0.3"  # exact: the JSON text was read as Decimal


def _check_tool_result(harness: Harness, source: str, namespace: dict[str, Any]) -> None:
    # call_tool reports a refusal in its result instead of raising: the block must not hide one.
    assert namespace["result"]["ok"] is True, namespace["result"]


# The agent the pytest example tests: it bills each call once, retrying what may be retried.
_MY_AGENT = """
import asyncio
from decimal import Decimal

from pacspace_async import PacSpaceError


async def handle_calls(pac, calls):
    async def bill(n):
        while True:
            try:
                return await pac.balance.emit(
                    customer_id="cust_1", delta=Decimal("-1"), reason="usage", reference_id=f"call-{n}"
                )
            except PacSpaceError as error:
                if not error.retryable:
                    raise

    await asyncio.gather(*(bill(n) for n in range(calls)))
"""


def _check_pytest_example(harness: Harness, source: str, namespace: dict[str, Any]) -> None:
    """Run the example under pytest, with the README's own ``asyncio_mode`` setting."""
    pytester: pytest.Pytester = harness.request.getfixturevalue("pytester")
    [toml] = [block.code for block in BLOCKS if block.language == "toml" and "asyncio_mode" in block.code]
    pytester.makepyprojecttoml(toml)
    pytester.makepyfile(my_agent=_MY_AGENT, test_readme_example="import my_agent\n\n" + source)
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1, warnings=0)


def _give_otel(harness: Harness) -> dict[str, Any]:
    """The global tracer provider may be set once per process: set it for this block only, and
    keep a copy of its spans (the console exporter writes to the stdout of its first import)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    kept = InMemorySpanExporter()

    def set_for_this_block(provider: Any) -> None:
        provider.add_span_processor(SimpleSpanProcessor(kept))
        harness.monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)

    harness.monkeypatch.setattr(trace, "set_tracer_provider", set_for_this_block)
    harness.values["otel_spans"] = kept
    return {}


def _check_otel(harness: Harness, source: str, namespace: dict[str, Any]) -> None:
    spans = harness.values["otel_spans"].get_finished_spans()
    names = [span.to_json() for span in spans]
    assert [span.name for span in spans] == ["POST /api/v1/balance/delta", "pacspace balance.emit"]
    assert not any(harness.key.split(".")[1] in text for text in names)


def _give_rotation(harness: Harness) -> dict[str, Any]:
    environment = pacspace_async.ApiKey.parse(harness.key).environment
    return {"new_key": harness.emulator.create_key(environment), "page_the_operator": _Recorder()}


def _check_rotation(harness: Harness, source: str, namespace: dict[str, Any]) -> None:
    new_id = namespace["new_key"].split(".")[0]
    assert namespace["pac"].key_id == new_id  # accepted by the probe, then swapped
    assert any(r.key_id == new_id and r.path == "/api/v1/balance/usage" for r in harness.emulator.requests)


def _give_postgres_outbox(harness: Harness) -> dict[str, Any]:
    harness.monkeypatch.setenv("OUTBOX_DATABASE_URL", harness.request.getfixturevalue("postgres_url"))
    return {}


def _check_postgres_outbox(harness: Harness, source: str, namespace: dict[str, Any]) -> None:
    assert [d.reference_id for d in harness.emulator.deltas("cust_1") if d.reference_id == "run_8814"] == ["run_8814"]


CONTEXTS: dict[str, Context] = {
    "key-sources": Context(give=_give_key_sources),
    "alerts": Context(give=_give_alerts, check=_check_alerts),
    "delivery": Context(give=_give_delivery, check=_check_delivery),
    "aiohttp-handler": Context(give=lambda harness: {"handle": _AsyncRecorder()}, check=_check_aiohttp_handler),
    "redis": Context(check=_check_redis_cache),
    "tool-call": Context(give=_give_tool_call, check=_check_tool_call),
    "tool-result": Context(check=_check_tool_result),
    "pytest-example": Context(check=_check_pytest_example),
    "emulator": Context(give=lambda harness: {"emu": Emulator()}),
    "rotation": Context(give=_give_rotation, check=_check_rotation),
    "otel": Context(give=_give_otel, check=_check_otel),
    "postgres-outbox": Context(give=_give_postgres_outbox, check=_check_postgres_outbox),
}


# --- the tests ------------------------------------------------------------------------------


def _run(block: Block, harness: Harness) -> None:
    source = source_of(block, harness.values)
    code = compile_block(block, source)
    if block.skip is not None:
        pytest.skip(f"{block.id} ({block.section}): {block.skip}")
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    if is_fragment(source):
        namespace.update(_prelude())
    contexts = [CONTEXTS[name] for name in block.contexts]
    for context in contexts:
        namespace.update(context.give(harness))
    if uses_without_creating(source, "pac") and "pac" not in namespace:
        namespace["pac"] = AsyncPacSpace() if is_async(code) else PacSpace()
    run_block(code, namespace)
    for context in contexts:
        context.check(harness, source, namespace)


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[block.id for block in PYTHON_BLOCKS])
def test_readme_block(block: Block, harness: Harness) -> None:
    _run(block, harness)


def test_quickstart_then_sync_usage_on_one_emulator(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """A reader runs the Quickstart, then the Sync example, against one account: no conflict."""
    [quickstart] = [
        block for block in PYTHON_BLOCKS if block.section == "Quickstart (async)" and "asyncio.run" in block.code
    ]
    [sync_usage] = [block for block in PYTHON_BLOCKS if block.section == "Sync usage"]
    with Emulator(verify_delay=0) as emu:
        key = emu.create_key("production")
        harness = _harness(emu, key, asyncio.run(_seed(emu, key)), monkeypatch, request)
        _run(quickstart, harness)
        _run(sync_usage, harness)
        assert len(emu.deltas(customer_id="cust_1")) == 3  # the seed's, the Quickstart's, the Sync example's


def test_the_readme_blocks_are_found_and_most_of_them_run() -> None:
    """Guards the harness itself: a parser that finds nothing, or skips that pile up, fail here."""
    run = [block for block in PYTHON_BLOCKS if block.skip is None]
    assert len(PYTHON_BLOCKS) >= 25
    assert len(run) >= len(PYTHON_BLOCKS) - 4, [block.id for block in PYTHON_BLOCKS if block.skip]
    for block in PYTHON_BLOCKS:
        unknown = set(block.contexts) - set(CONTEXTS)
        assert not unknown, f"{block.id}: unknown readme-test context {sorted(unknown)}; known: {sorted(CONTEXTS)}"
        for replacement in block.replacements:
            assert replacement.name in VALUE_NAMES, f"{block.id}: unknown value {replacement.name}"
