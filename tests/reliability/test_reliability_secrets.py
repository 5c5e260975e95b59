"""A secret scan: every failure path, with every logger at DEBUG, and the secret never shows.

Each path is driven for real (against the emulator where it involves the API). Everything a
person or a log pipeline could see is collected: every log line (tracebacks included) of every
logger, the ``PACSPACE_LOG`` handler's output, ``str``/``repr`` of every client, key, provider,
model and error, each error's attributes, exception chain, pickled copy and formatted traceback,
the CLI's output, the emulator's request log, and everything OpenTelemetry received: every span
(name, attributes, events, links, status) and metric point, and a console exporter's output. No
API key secret and no webhook secret may appear anywhere in it.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import pickle
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pacspace_async import (
    NO_KEY,
    APIConnectionError,
    ApiKey,
    APITimeoutError,
    AsyncPacSpace,
    AuthenticationError,
    CadenceLimitError,
    ConfigurationError,
    EnvironmentMismatchError,
    IdempotencyConflictError,
    InMemoryReplayCache,
    InsufficientCreditsError,
    InvalidApiKeyError,
    InvalidArgumentError,
    KeyProvider,
    MissingApiKeyError,
    NotFoundError,
    PacSpaceError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    VerificationTimeoutError,
    WebhookVerificationError,
    WebhookVerifier,
    _telemetry_setup,
)
from pacspace_async._telemetry import current_trace_parent, outbox_send_span, record_outbox_stats
from pacspace_async.cli import main as cli_main
from pacspace_async.testing import Emulator
from pacspace_async.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_header
from pacspace_sync import PacSpace

from .reliability_helpers import DebugLogs, fast

WEBHOOK_SECRET = "whsec_reliabilityWEBHOOKsecret0123456789"
OTHER_WEBHOOK_SECRET = "whsec_notTheRightOne"
DELTA = "/api/v1/balance/delta"


def secret_of(key: str) -> str:
    return key.split(".", 1)[1]


class Scan:
    """Everything a person could be shown, as text, each with where it came from.

    An error's exception chain is walked the way `traceback` shows it; contexts that a
    ``raise ... from None`` suppressed are still reachable (``error.__context__``), so they are
    scanned too, but kept apart (`hidden`) to tell the two kinds of leak apart.
    """

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []
        self.hidden: list[tuple[str, str]] = []
        self.errors: list[BaseException] = []

    def see(self, *objects: object, origin: str = "") -> None:
        for obj in objects:
            where = origin or type(obj).__name__
            self.texts += [(where, str(obj)), (where, repr(obj))]

    def error(self, error: BaseException) -> None:
        self.errors.append(error)
        origin = f"{type(error).__name__}: {error}"
        self.see(error, error.args, origin=origin)
        self.texts.append((origin, "".join(traceback.format_exception(error))))
        self.texts.append((origin, repr(vars(error))))
        if isinstance(error, PacSpaceError):
            self.see(pickle.loads(pickle.dumps(error)), origin=origin)
        seen: set[int] = {id(error)}
        link: BaseException | None = error
        hidden = False
        while link is not None:
            suppressed = link.__cause__ is None and link.__suppress_context__
            link = link.__cause__ or link.__context__
            hidden = hidden or suppressed
            if link is None or id(link) in seen:
                break
            seen.add(id(link))
            target = self.hidden if hidden else self.texts
            where = f"{origin} <- {type(link).__name__}"
            target += [(where, text) for text in (str(link), repr(link), repr(link.args))]
        # An application that logs the error with its traceback, on a logger of its own.
        logging.getLogger("agent").error("call failed: %s", error, exc_info=error)

    def note(self, origin: str, text: str) -> None:
        self.texts.append((origin, text))

    async def expect(self, kind: type[BaseException], work: Callable[[], Awaitable[Any]]) -> Any:
        try:
            result = await work()
        except kind as error:
            self.error(error)
            return error
        raise AssertionError(f"expected {kind.__name__}, got {result!r}")

    def expect_sync(self, kind: type[BaseException], work: Callable[[], Any]) -> Any:
        try:
            result = work()
        except kind as error:
            self.error(error)
            return error
        raise AssertionError(f"expected {kind.__name__}, got {result!r}")


def leaks(secrets: list[str], texts: list[tuple[str, str]]) -> list[str]:
    """Where each secret shows up, as "origin: ...context..." lines."""
    found = []
    for origin, text in texts:
        for secret in secrets:
            where = text.find(secret)
            if where >= 0:
                found.append(f"{origin[:120]}: ...{text[max(0, where - 80) : where + len(secret) + 10]!r}")
    return found


def _signed(secret: str, body: bytes, *, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    return {SIGNATURE_HEADER: signature_header(secret, timestamp, body), TIMESTAMP_HEADER: timestamp}


def webhook_failures(scan: Scan) -> None:
    body = b'{"id":"evt_1","event":"delta.verified","data":{"recordId":"rec_1","status":"VERIFIED"}}'
    verifier = WebhookVerifier(WEBHOOK_SECRET, replay_cache=InMemoryReplayCache())
    scan.see(verifier, verifier.verify(_signed(WEBHOOK_SECRET, body), body))
    good = _signed(WEBHOOK_SECRET, body)
    cases: list[tuple[dict[str, str], bytes | str]] = [
        (good, body),  # a replay: the cache has seen evt_1
        (_signed(OTHER_WEBHOOK_SECRET, body), body),
        ({TIMESTAMP_HEADER: good[TIMESTAMP_HEADER]}, body),
        ({SIGNATURE_HEADER: good[SIGNATURE_HEADER]}, body),
        (_signed(WEBHOOK_SECRET, body, at=time.time() - 3600), body),
        (_signed(WEBHOOK_SECRET, body, at=time.time() + 3600), body),
        ({**good, SIGNATURE_HEADER: f"v1={WEBHOOK_SECRET}"}, body),
        ({**good, SIGNATURE_HEADER: WEBHOOK_SECRET}, body),
        ({**good, TIMESTAMP_HEADER: WEBHOOK_SECRET}, body),
        (good, body + b" "),
        (_signed(WEBHOOK_SECRET, b"not json"), b"not json"),
        (_signed(WEBHOOK_SECRET, b"[1]"), b"[1]"),
        (_signed(WEBHOOK_SECRET, b"\xff\xfe"), b"\xff\xfe"),
        (_signed(WEBHOOK_SECRET, b"{}"), b"{}"),
    ]
    for headers, payload in cases:
        scan.expect_sync(WebhookVerificationError, lambda h=headers, p=payload: verifier.verify(h, p))
    for bad in (f"{WEBHOOK_SECRET}\n{OTHER_WEBHOOK_SECRET}", f"{WEBHOOK_SECRET},", "", [WEBHOOK_SECRET, 7]):
        scan.expect_sync(ConfigurationError, lambda b=bad: WebhookVerifier(b))  # type: ignore[arg-type]
    scan.expect_sync(InvalidArgumentError, lambda: WebhookVerifier(WEBHOOK_SECRET, tolerance=301))
    keyless = AsyncPacSpace(NO_KEY)
    scan.expect_sync(ConfigurationError, lambda: keyless.webhooks)
    with_secret = AsyncPacSpace(NO_KEY, webhook_secret=WEBHOOK_SECRET)
    scan.see(with_secret, with_secret.webhooks)


def cli_runs(scan: Scan, key: str, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def run(argv: list[str], stdin: str = "") -> int:
        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = cli_main(argv, out=out, err=err)
        scan.note(f"pacspace {' '.join(argv)}", f"exit {code}\n{out.getvalue()}\n{err.getvalue()}")
        return code

    assert run(["key", "inspect", "--stdin"], stdin=key + "\n") == 0
    for text in (f"{key}.more", f"{key} trailing", key.replace("pk_test_", "sk_test_"), f"pk_test_.{secret_of(key)}"):
        assert run(["key", "inspect", "--stdin"], stdin=text + "\n") == 1
    monkeypatch.setenv("PACSPACE_API_KEY", f"{key}\n")
    assert run(["key", "inspect"]) == 1
    monkeypatch.setenv("PACSPACE_API_KEY", key)
    assert run(["key", "inspect"]) == 0
    monkeypatch.delenv("PACSPACE_API_KEY")
    body = b'{"event":"delta.verified","data":{"recordId":"rec_1"}}'
    (tmp / "body.json").write_bytes(body)
    verify = ["webhook", "verify", "--headers", str(tmp / "headers.json"), "--body", str(tmp / "body.json")]
    monkeypatch.setenv("HOOK_SECRET", WEBHOOK_SECRET)
    for secret, expected in ((WEBHOOK_SECRET, 0), (OTHER_WEBHOOK_SECRET, 1)):
        (tmp / "headers.json").write_text(json.dumps(_signed(secret, body)))
        assert run([*verify, "--secret-env", "HOOK_SECRET"]) == expected
    monkeypatch.setenv("HOOK_SECRET", f"{WEBHOOK_SECRET}\n{OTHER_WEBHOOK_SECRET}")  # two joined by a newline
    assert run([*verify, "--secret-env", "HOOK_SECRET"]) == 2
    monkeypatch.setenv("PACSPACE_WEBHOOK_SECRET", f"{WEBHOOK_SECRET},")
    assert run(verify) == 2  # an empty secret in the rotation list


class Telemetry:
    """An OpenTelemetry SDK that keeps every span and metric, and prints spans as the console exporter does.

    Installed for one test as what the SDK takes for OpenTelemetry's global providers (which a
    process may set only once), so every client of the test reports here, sync ones included.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.spans = InMemorySpanExporter()
        self.console = io.StringIO()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=self.console)))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        monkeypatch.setattr(_telemetry_setup, "FAST_TRACER_PROVIDER", False)
        monkeypatch.setattr(_telemetry_setup, "FAST_METER_PROVIDER", False)
        monkeypatch.setattr(_telemetry_setup, "global_tracer_provider", lambda: self.tracer_provider)
        monkeypatch.setattr(_telemetry_setup, "global_meter_provider", lambda: self.meter_provider)

    def texts(self) -> list[tuple[str, str]]:
        """Every span and every metric point as JSON (names, attributes, events, links, status)."""
        shown = [(f"span {span.name}", span.to_json()) for span in self.spans.get_finished_spans()]
        data = self.reader.get_metrics_data()
        shown.append(("metrics", data.to_json() if data is not None else ""))
        shown.append(("console exporter", self.console.getvalue()))
        return shown

    def close(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


async def test_no_failure_path_shows_a_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACSPACE_LOG", "debug")
    telemetry = Telemetry(monkeypatch)
    package_logger = logging.getLogger("pacspace")
    handlers_before = list(package_logger.handlers)
    level_before = package_logger.level
    scan = Scan()
    secrets: list[str] = [WEBHOOK_SECRET]
    env_log = io.StringIO()
    with DebugLogs() as logs:
        try:
            async with Emulator(verify_delay=None) as emu:
                await drive_every_failure(
                    emu, scan, secrets, tmp_path, monkeypatch, env_log, handlers_before, telemetry
                )
                scan.see(emu, emu.requests, emu.deltas(), emu.checkpoints(), emu.deliveries)
        finally:
            telemetry.close()
            for handler in package_logger.handlers:
                if handler not in handlers_before:
                    package_logger.removeHandler(handler)
            package_logger.setLevel(level_before)

    # The scan is only worth something if the paths really ran and really logged.
    kinds = {type(error) for error in scan.errors}
    assert kinds >= {
        AuthenticationError,
        PermissionDeniedError,
        NotFoundError,
        IdempotencyConflictError,
        RateLimitError,
        CadenceLimitError,
        InsufficientCreditsError,
        ServiceUnavailableError,
        ServerError,
        APIConnectionError,
        APITimeoutError,
        MissingApiKeyError,
        InvalidApiKeyError,
        EnvironmentMismatchError,
        ConfigurationError,
        InvalidArgumentError,
        VerificationTimeoutError,
        WebhookVerificationError,
    }, kinds
    assert any("retry" in line for line in logs.lines)
    assert any("-> 401" in line for line in logs.lines)
    assert any("Traceback" in line for line in logs.lines)
    assert "-> 201" in env_log.getvalue()
    assert len(secrets) >= 10
    assert all(len(secret) >= 16 for secret in secrets)
    # The telemetry scan is only worth something if the failures reached it.
    spans = telemetry.spans.get_finished_spans()
    error_types = {(span.attributes or {}).get("error.type") for span in spans}
    assert {"API_KEY_REVOKED", "INVALID_API_KEY", "RATE_LIMITED", "APIConnectionError"} <= error_types, error_types
    assert any(span.links for span in spans)
    assert any(span.events for span in spans)
    assert "pacspace.key_id" in telemetry.console.getvalue()
    assert '"pacspace.client.retries"' in telemetry.texts()[-2][1]
    shown = [("log", line) for line in logs.lines] + [("PACSPACE_LOG", env_log.getvalue())] + scan.texts
    shown += telemetry.texts()
    assert leaks(secrets, shown) == []
    assert leaks(secrets, scan.hidden) == []


async def drive_every_failure(
    emu: Emulator,
    scan: Scan,
    secrets: list[str],
    tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    env_log: io.StringIO,
    handlers_before: list[logging.Handler],
    telemetry: Telemetry,
) -> None:
    def new_key(**options: Any) -> str:
        key = emu.create_key(**options)
        secrets.append(secret_of(key))
        return key

    key = new_key()
    urls = emu.base_urls
    async with AsyncPacSpace(key, base_urls=urls, max_retries=6, timeout=1.0) as client:
        # PACSPACE_LOG=debug attached its own handler when the client was built: capture it.
        for handler in logging.getLogger("pacspace").handlers:
            if handler not in handlers_before and isinstance(handler, logging.StreamHandler):
                handler.setStream(env_log)
        pac = fast(client)
        scan.see(client, pac, pac.with_options(timeout=5), ApiKey.parse(key), client.key_id)
        assert ApiKey.parse(key).header_value().endswith(secrets[-1])  # the scan looks for the right text

        # Success through every fault kind: retries, a replay after a drop, a timeout healed.
        for kind in ("503", "drop_before_write", "drop_after_write", "500"):
            emu.inject(kind, method="POST", path=DELTA)
        emu.inject("slow", method="POST", path=DELTA, seconds=0.3)
        record = await pac.balance.emit(customer_id="cust_1", delta=Decimal("-1.50"), reason="usage", timeout=0.1)
        emu.inject("slow", method="POST", path=DELTA, seconds=0.3)
        second = await pac.balance.emit(
            customer_id="cust_2", delta=2, reason="usage", reference_id="inv_2", timeout=0.1
        )
        emu.settle()
        scan.see(
            record,
            second,
            await pac.balance.status(record.record_id),
            await pac.balance.derive("cust_1"),
            await pac.balance.receipt("cust_1"),
            await pac.balance.usage(),
            await pac.balance.limits(),
            await pac.balance.emit_batch([{"customer_id": "cust_3", "delta": 1, "reason": "x", "reference_id": "b1"}]),
            await pac.checkpoints.create(customer_id="cust_1", period=record_period(emu)),
            await pac.customers.list(),
            await pac.customers.get("cust_1"),
        )

        # 404, 409, local refusals (a key offered as a header is refused without echoing it).
        await scan.expect(NotFoundError, lambda: pac.balance.status("rec_missing"))
        await pac.balance.emit(customer_id="cust_1", delta=1, reason="x", idempotency_key="conflict-1")
        await scan.expect(
            IdempotencyConflictError,
            lambda: pac.balance.emit(customer_id="cust_1", delta=2, reason="x", idempotency_key="conflict-1"),
        )
        await scan.expect(
            InvalidArgumentError,
            lambda: pac.balance.emit(customer_id="c", delta=1, reason="x", extra_headers={"X-Api-Key": key}),
        )
        await scan.expect(InvalidArgumentError, lambda: pac.balance.emit(customer_id="", delta=1, reason="x"))

        # Retries exhausted: 5xx, dropped connections (before and after the write), timeouts.
        emu.inject("503", count=3)
        await scan.expect(ServiceUnavailableError, lambda: pac.balance.usage(max_retries=2))
        emu.inject("500", count=2)
        await scan.expect(ServerError, lambda: pac.balance.emit(customer_id="c", delta=1, reason="x", max_retries=1))
        emu.inject("drop_before_write", count=2)
        await scan.expect(
            APIConnectionError, lambda: pac.balance.emit(customer_id="c", delta=1, reason="x", max_retries=1)
        )
        emu.inject("drop_after_write", count=2)
        await scan.expect(
            APIConnectionError, lambda: pac.balance.emit(customer_id="c", delta=3, reason="x", max_retries=1)
        )
        emu.inject("slow", count=1, seconds=0.3)
        await scan.expect(APITimeoutError, lambda: pac.balance.usage(timeout=0.05, max_retries=0))
        emu.inject("slow", count=3, seconds=0.3)
        await scan.expect(APITimeoutError, lambda: pac.with_options(deadline=0.15).balance.usage(timeout=0.1))
        await asyncio.sleep(0.3)  # let the slow answers finish before going on

        # 429 raised (a wait above max_retry_after), cadence limit, allowance used up.
        emu.rate_limit = 0.5
        limited = fast(AsyncPacSpace(new_key(), base_urls=urls, max_retry_after=0.1))
        await limited.balance.usage()
        await scan.expect(RateLimitError, lambda: limited.balance.usage())
        await limited.aclose()
        emu.rate_limit = None
        emu.cadence_seconds = 60
        await pac.balance.emit(customer_id="cust_cadence", delta=1, reason="x")
        await scan.expect(CadenceLimitError, lambda: pac.balance.emit(customer_id="cust_cadence", delta=1, reason="y"))
        emu.cadence_seconds = None
        emu.allowance = 0
        await scan.expect(InsufficientCreditsError, lambda: pac.balance.emit(customer_id="c", delta=9, reason="x"))
        emu.allowance = None

        # A delta that does not verify in time.
        pending = await pac.balance.emit(customer_id="cust_wait", delta=1, reason="x")
        await scan.expect(
            VerificationTimeoutError,
            lambda: pac.balance.wait_for_verified(pending.record_id, timeout=0.05, poll_interval=0.01),
        )

        # Rotation: the other environment's key, malformed keys, a provider of the wrong environment.
        production = new_key(environment="production")
        await scan.expect(EnvironmentMismatchError, lambda: client.rotate_key(production))
        for bad in (f"{key}\n", key.replace(".", ".."), f"{key}.x"):
            await scan.expect(InvalidApiKeyError, lambda b=bad: client.rotate_key(b))
        wrong_environment = KeyProvider.from_callable(lambda: production)
        await scan.expect(EnvironmentMismatchError, lambda: client.rotate_key(wrong_environment))
        rotated = new_key()
        await client.rotate_key(rotated)
        scan.see(client, await pac.balance.emit(customer_id="cust_1", delta=1, reason="after rotation"))

    # 401 (revoked, unknown, after a mid-life revocation), 403, each reported to the hook.
    hooked: list[BaseException] = []
    revoked = new_key()
    emu.revoke_key(revoked)
    unknown = f"pk_test_emuUnknown.{secrets[-1][::-1]}Zz"
    secrets.append(secret_of(unknown))
    read_only = new_key(permissions={"balance:read"})
    for refused_key, kind in (
        (revoked, AuthenticationError),
        (unknown, AuthenticationError),
        (read_only, PermissionDeniedError),
    ):
        async with AsyncPacSpace(refused_key, base_urls=urls, on_auth_error=hooked.append) as refused:
            scan.see(refused)
            await scan.expect(kind, lambda r=refused: r.balance.emit(customer_id="c", delta=1, reason="x"))
    assert len(hooked) == 3
    scan.see(*hooked)

    # No key at all, and every way a key can be malformed at construction.
    async with AsyncPacSpace(NO_KEY, environment="sandbox", base_urls=urls) as keyless:
        scan.see(keyless)
        await scan.expect(MissingApiKeyError, lambda: keyless.balance.usage())
    base = new_key()
    secret = secret_of(base)
    for bad in (
        f"{base}\n",
        f" {base}",
        f"{base}\t",
        base.replace(".", ".."),
        f"{base}.x",
        base.replace(".", ""),
        f"sk_live_pub.{secret}",
        f"pk_test_.{secret}",
        f"pk_test_pub.{secret}\u00e9",
        f"pk_test_pub.{secret}\x00",
        base.upper(),
        f"pk_test_pub .{secret}",
    ):
        scan.expect_sync(InvalidApiKeyError, lambda b=bad: AsyncPacSpace(b, base_urls=urls))
        scan.expect_sync(InvalidApiKeyError, lambda b=bad: ApiKey.parse(b))
    scan.expect_sync(ConfigurationError, lambda: AsyncPacSpace(base.encode(), base_urls=urls))  # type: ignore[arg-type]
    scan.expect_sync(InvalidApiKeyError, lambda: ApiKey.parse(base.encode()))  # type: ignore[arg-type]
    scan.expect_sync(EnvironmentMismatchError, lambda: AsyncPacSpace(base, environment="production"))
    scan.expect_sync(
        EnvironmentMismatchError, lambda: AsyncPacSpace(base, base_urls={"sandbox": "https://api.pacspace.io"})
    )
    monkeypatch.setenv("PACSPACE_API_KEY", f"{base}\n")
    scan.expect_sync(InvalidApiKeyError, lambda: AsyncPacSpace())
    monkeypatch.setenv("MY_AGENT_KEY", f"{base}.x")
    scan.expect_sync(InvalidApiKeyError, lambda: AsyncPacSpace(KeyProvider.from_env("MY_AGENT_KEY")))
    monkeypatch.delenv("PACSPACE_API_KEY")
    scan.expect_sync(InvalidApiKeyError, lambda: AsyncPacSpace(lambda: f"{base} ", base_urls=urls))

    async def async_bad_key() -> str:
        return f"{base}.again"

    async with AsyncPacSpace(async_bad_key, environment="sandbox", base_urls=urls) as lazy:
        scan.see(lazy)
        await scan.expect(InvalidApiKeyError, lambda: lazy.balance.usage())

    # Key files: missing, a directory, malformed, and one that goes bad while in use.
    key_file = tmp / "key"
    scan.expect_sync(ConfigurationError, lambda: AsyncPacSpace(KeyProvider.from_file(key_file)))
    scan.expect_sync(ConfigurationError, lambda: AsyncPacSpace(KeyProvider.from_file(tmp)))
    # (a key file that is not UTF-8: see the two tests at the end of this module)
    key_file.write_text(f"{base}.x\n")
    scan.expect_sync(InvalidApiKeyError, lambda: AsyncPacSpace(KeyProvider.from_file(key_file)))
    live = new_key()
    key_file.write_text(f"{live}\n")
    provider = KeyProvider.from_file(key_file, check_interval=0.0)
    async with AsyncPacSpace(provider, base_urls=urls) as from_file:
        scan.see(from_file, provider)
        await from_file.balance.usage()
        key_file.write_text(f"{live} {live}\n")
        os.utime(key_file, (time.time() + 5, time.time() + 5))
        await scan.expect(InvalidApiKeyError, lambda: from_file.balance.usage())
        key_file.write_text(f"{production}\n")
        os.utime(key_file, (time.time() + 10, time.time() + 10))
        await scan.expect(EnvironmentMismatchError, lambda: from_file.balance.usage())

    # The sync facade (from a worker thread, so this loop keeps serving the emulator).
    def sync_paths() -> None:
        with PacSpace(revoked, base_urls=urls) as sync_refused:
            scan.see(sync_refused)
            scan.expect_sync(
                AuthenticationError, lambda: sync_refused.balance.emit(customer_id="c", delta=1, reason="x")
            )
        with PacSpace(key, base_urls=urls, max_retries=0) as sync_client:
            scan.see(sync_client, sync_client.with_options(timeout=1))
            scan.expect_sync(NotFoundError, lambda: sync_client.balance.status("rec_missing"))
        scan.expect_sync(InvalidApiKeyError, lambda: PacSpace(f"{key}\n"))

    await asyncio.to_thread(sync_paths)

    # Somebody logs a key on the package logger: the filter redacts it.
    logging.getLogger("pacspace").info("agent configured with %s", key)
    logging.getLogger("pacspace").info(f"agent configured with {key}")

    await outbox_telemetry(emu, secrets, telemetry)
    webhook_failures(scan)
    cli_runs(scan, key, tmp, monkeypatch)


async def outbox_telemetry(emu: Emulator, secrets: list[str], telemetry: Telemetry) -> None:
    """What the outbox reports: a send linked to its enqueuer, and its gauges (a URL with a password)."""
    key = emu.create_key()
    secrets.append(secret_of(key))
    tracer = telemetry.tracer_provider.get_tracer("agent")
    async with AsyncPacSpace(key, base_urls=emu.base_urls) as pac:
        traced = pac._copy(pac._requester.with_settings(send_traceparent=True), None)
        with tracer.start_as_current_span("enqueue"):
            stored = current_trace_parent()
        with outbox_send_span(stored):
            await traced.balance.emit(customer_id="cust_outbox", delta=1, reason="x")
    record_outbox_stats(store=f"postgresql://app:{secrets[0]}@db/outbox", pending=1, oldest_age=3.0)


def record_period(emu: Emulator) -> str:
    return emu.deltas()[0].created_at.strftime("%Y-%m")


# --- a key file that is not UTF-8 ----------------------------------------------------------------

NOT_UTF8_SECRET = "notUtf8FileSECRETvalue42"


def _not_utf8_key_file_error(tmp_path: Path) -> Scan:
    key_file = tmp_path / "key"
    key_file.write_bytes(b"\xff" + f"pk_test_pubFile.{NOT_UTF8_SECRET}\n".encode())
    scan = Scan()
    scan.expect_sync(ConfigurationError, lambda: AsyncPacSpace(KeyProvider.from_file(key_file)))
    scan.expect_sync(ConfigurationError, lambda: KeyProvider.from_file(key_file).load_now())
    return scan


def test_a_key_file_that_is_not_utf8_is_refused_without_showing_the_key(tmp_path: Path) -> None:
    with DebugLogs() as logs:
        scan = _not_utf8_key_file_error(tmp_path)
    assert leaks([NOT_UTF8_SECRET], [("log", line) for line in logs.lines] + scan.texts) == []


def test_a_key_file_that_is_not_utf8_keeps_no_copy_of_the_key_on_the_error(tmp_path: Path) -> None:
    scan = _not_utf8_key_file_error(tmp_path)
    assert leaks([NOT_UTF8_SECRET], scan.hidden) == []
