"""End to end over real sockets: dedupe after a dropped write, pools, redirects, rotation, logs."""

from __future__ import annotations

import asyncio
import gc
import logging
import traceback
import warnings
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from conftest import PRODUCTION_KEY, SANDBOX_KEY, SECRETS, FakeClock, LoopbackServer, delta_record, ok

from pacspace_async import (
    APIStatusError,
    AsyncPacSpace,
    AuthenticationError,
    EnvironmentMismatchError,
    InvalidApiKeyError,
    KeyProvider,
    PacSpaceError,
    PermissionDeniedError,
    RateLimitError,
)

DELTA = "/api/v1/balance/delta"
EMIT = {"customer_id": "cust_1", "delta": Decimal("-5"), "reason": "usage"}
Make = Callable[[], LoopbackServer]


class Ledger:
    """A tiny idempotent delta store, like the real API's: one delta per Idempotency-Key."""

    def __init__(self) -> None:
        self.deltas: dict[str, dict[str, Any]] = {}
        self.drop_after_write = 0

    async def emit(self, request: web.Request) -> web.StreamResponse:
        key = request.headers["Idempotency-Key"]
        if key not in self.deltas:
            self.deltas[key] = {"recordId": f"rec_{len(self.deltas) + 1}", **(await request.json())}
        if self.drop_after_write:
            self.drop_after_write -= 1
            assert request.transport is not None
            request.transport.abort()  # written, but the client never hears back
            return web.Response()
        return ok(delta_record(self.deltas[key]["recordId"]), status=201)


async def test_dropped_connection_after_the_write_leaves_exactly_one_delta(loopback: Make) -> None:
    server = loopback()
    ledger = Ledger()
    ledger.drop_after_write = 1
    server.route("POST", DELTA, ledger.emit)
    await server.start()
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url}) as pac:
        fast = pac._with_clock(FakeClock().clock())
        record = await fast.balance.emit(**EMIT, reference_id="inv_1")
    assert len(server.requests) == 2
    assert len(ledger.deltas) == 1
    assert record.record_id == "rec_1"
    assert list(ledger.deltas) == [record.idempotency_key]


async def test_dropped_connection_without_reference_still_dedupes_on_the_auto_key(loopback: Make) -> None:
    server = loopback()
    ledger = Ledger()
    ledger.drop_after_write = 2
    server.route("POST", DELTA, ledger.emit)
    await server.start()
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url}) as pac:
        record = await pac._with_clock(FakeClock().clock()).balance.emit(**EMIT)
    assert len(server.requests) == 3
    assert len(ledger.deltas) == 1
    assert record.record_id == "rec_1"


async def test_sequential_calls_reuse_one_connection(loopback: Make) -> None:
    server = loopback()
    server.route("POST", DELTA, Ledger().emit)
    await server.start()
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url}) as pac:
        copy = pac.with_options(timeout=10)
        for index in range(100):
            await (copy if index % 2 else pac).balance.emit(**EMIT)
    assert len(server.requests) == 100
    assert server.connections == 1


async def test_each_environment_has_its_own_connections(loopback: Make) -> None:
    server = loopback()
    server.route("POST", DELTA, Ledger().emit)

    async def verify(request: web.Request) -> web.Response:
        return ok({"verified": True, "proofRoot": request.match_info["root"]})

    server.route("GET", "/api/v1/verify/{root}", verify)
    url = await server.start()
    async with AsyncPacSpace(PRODUCTION_KEY, base_urls={"sandbox": url, "production": url}) as pac:
        for _ in range(3):
            await pac.balance.emit(**EMIT)
            await pac.verify("0xroot", environment="sandbox")
    by_chain: dict[str, set[Any]] = {}
    for request, transport in zip(server.requests, server.request_transports, strict=True):
        by_chain.setdefault(request.headers["X-Chain-Id"], set()).add(transport)
    assert set(by_chain) == {"295", "296"}
    assert len(by_chain["295"]) == len(by_chain["296"]) == 1
    assert by_chain["295"].isdisjoint(by_chain["296"])


async def test_a_redirect_never_carries_the_key_to_another_origin(loopback: Make) -> None:
    elsewhere = loopback()

    async def collect(request: web.Request) -> web.Response:
        return ok(delta_record())

    elsewhere.route("POST", DELTA, collect)
    other = await elsewhere.start()

    origin = loopback()

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(other + DELTA)

    origin.route("POST", DELTA, redirect)
    await origin.start()
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": origin.url}) as pac:
        with pytest.raises(APIStatusError) as info:
            await pac.balance.emit(**EMIT)
    assert info.value.status == 307
    assert "redirect" in str(info.value)
    assert elsewhere.requests == []
    assert len(origin.requests) == 1


async def test_rotate_key_applies_to_the_next_request_and_refuses_the_other_environment(loopback: Make) -> None:
    server = loopback()
    server.route("POST", DELTA, Ledger().emit)
    await server.start()
    new_key = "pk_test_pubNew.rotatedSECRET789"
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url}) as pac:
        await pac.balance.emit(**EMIT)
        await pac.rotate_key(new_key)
        assert pac.key_id == "pk_test_pubNew"
        await pac.balance.emit(**EMIT)
        with pytest.raises(EnvironmentMismatchError):
            await pac.rotate_key(PRODUCTION_KEY)
        assert pac.key_id == "pk_test_pubNew"
        await pac.balance.emit(**EMIT)
    sent = [request.headers["X-Api-Key"] for request in server.requests]
    assert sent == [SANDBOX_KEY, new_key, new_key]


async def test_requests_in_flight_finish_with_the_old_key(loopback: Make) -> None:
    server = loopback()
    release = asyncio.Event()
    arrived = asyncio.Event()
    ledger = Ledger()

    async def slow(request: web.Request) -> web.StreamResponse:
        arrived.set()
        await release.wait()
        return await ledger.emit(request)

    server.route("POST", DELTA, slow)
    await server.start()
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url}) as pac:
        in_flight = asyncio.ensure_future(pac.balance.emit(**EMIT))
        await arrived.wait()
        await pac.rotate_key("pk_test_pubNew.rotatedSECRET789")
        release.set()
        await in_flight
        await pac.balance.emit(**EMIT)
    assert [r.headers["X-Api-Key"] for r in server.requests] == [SANDBOX_KEY, "pk_test_pubNew.rotatedSECRET789"]


async def test_file_provider_is_read_again_after_a_401(loopback: Make, tmp_path: Path) -> None:
    server = loopback()
    ledger = Ledger()
    new_key = "pk_test_pubNew.fromFileSECRET"

    async def only_new_key(request: web.Request) -> web.StreamResponse:
        if request.headers["X-Api-Key"] != new_key:
            return web.json_response({"error": {"code": "INVALID_API_KEY", "message": "revoked"}}, status=401)
        return await ledger.emit(request)

    server.route("POST", DELTA, only_new_key)
    await server.start()
    key_file = tmp_path / "key"
    key_file.write_text(SANDBOX_KEY + "\n")
    provider = KeyProvider.from_file(key_file, check_interval=3600)
    async with AsyncPacSpace(provider, base_urls={"sandbox": server.url}) as pac:
        with pytest.raises(AuthenticationError):
            await pac.balance.emit(**EMIT)
        key_file.write_text(new_key + "\n")
        await pac.balance.emit(**EMIT)
    assert [r.headers["X-Api-Key"] for r in server.requests] == [SANDBOX_KEY, new_key]


async def test_a_client_is_bound_to_its_first_loop(loopback: Make) -> None:
    server = loopback()
    server.route("POST", DELTA, Ledger().emit)
    await server.start()
    pac = AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url})
    await pac.balance.emit(**EMIT)

    def other_loop() -> BaseException | None:
        try:
            asyncio.run(pac.balance.emit(**EMIT))
        except BaseException as exc:
            return exc
        return None

    error = await asyncio.get_running_loop().run_in_executor(None, other_loop)
    await pac.aclose()
    assert isinstance(error, RuntimeError)
    assert "one client per event loop" in str(error)


async def test_close_is_idempotent_and_a_closed_client_says_so(loopback: Make) -> None:
    server = loopback()
    server.route("POST", DELTA, Ledger().emit)
    await server.start()
    pac = AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url})
    await pac.balance.emit(**EMIT)
    await pac.aclose()
    await pac.aclose()
    assert pac.is_closed
    with pytest.raises(RuntimeError, match="closed"):
        await pac.balance.emit(**EMIT)


async def test_an_unclosed_client_warns_and_schedules_nothing(loopback: Make) -> None:
    server = loopback()
    server.route("POST", DELTA, Ledger().emit)
    await server.start()
    pac = AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url})
    await pac.balance.emit(**EMIT)
    sessions = list(pac._requester.transport._sessions.values())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del pac
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) and "not closed" in str(w.message) for w in caught)
    for session in sessions:  # tidy up what the test deliberately leaked
        await session.close()


# --- no secret in any log line --------------------------------------------------------------


class Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_no_scenario_writes_the_secret_to_any_log(loopback: Make) -> None:
    server = loopback()
    ledger = Ledger()
    ledger.drop_after_write = 1
    state = {"n": 0}

    async def scripted(request: web.Request) -> web.StreamResponse:
        state["n"] += 1
        script = {
            1: web.json_response({"error": {"message": f"bad key {request.headers['X-Api-Key']}"}}, status=401),
            2: web.json_response({"error": {"message": "forbidden"}}, status=403),
            3: web.json_response({"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "0"}),
            4: web.json_response({"error": {"message": "boom"}}, status=500),
        }
        if state["n"] in script:
            return script[state["n"]]
        return await ledger.emit(request)

    server.route("POST", DELTA, scripted)
    await server.start()
    handler = Everything()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    loggers = [logging.getLogger(name) for name in ("pacspace", "aiohttp", "aiohttp.client", "asyncio")]
    old = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    texts: list[str] = []
    try:
        async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url}) as pac:
            fast = pac._with_clock(FakeClock().clock())
            texts += [repr(pac), str(pac), repr(pac._requester.credentials.key_id)]
            for expected in (AuthenticationError, PermissionDeniedError):
                with pytest.raises(expected) as info:
                    await fast.balance.emit(**EMIT)
                texts += [str(info.value), repr(info.value), "".join(traceback.format_exception(info.value))]
            await fast.balance.emit(**EMIT, max_retries=5)  # 429, 500, written-and-dropped, replay
            logging.getLogger("pacspace").debug("user says %s", SANDBOX_KEY)
            for bad in (SANDBOX_KEY + "\n", SANDBOX_KEY.replace(".", "..")):
                with pytest.raises(InvalidApiKeyError) as bad_info:
                    await pac.rotate_key(bad)
                texts += [str(bad_info.value), "".join(traceback.format_exception(bad_info.value))]
            with pytest.raises(PacSpaceError) as mismatch:
                await pac.rotate_key(PRODUCTION_KEY)
            texts.append("".join(traceback.format_exception(mismatch.value)))
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        for lg, level in zip(loggers, old, strict=True):
            lg.setLevel(level)
    assert any("retry" in line for line in handler.lines)  # the scenarios really logged
    assert any("-> 201" in line for line in handler.lines)
    everything = "\n".join(handler.lines + texts)
    for secret in SECRETS:
        assert secret not in everything


async def test_rate_limit_error_carries_retry_after_over_a_real_socket(loopback: Make) -> None:
    server = loopback()

    async def limited(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "slow"}}, status=429, headers={"Retry-After": "120"})

    server.route("POST", DELTA, limited)
    await server.start()
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url}) as pac:
        with pytest.raises(RateLimitError) as info:
            await pac.balance.emit(**EMIT)
    assert info.value.retry_after == 120
    assert len(server.requests) == 1


async def test_no_key_makes_a_public_only_client_whatever_the_environment_holds(
    loopback: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pacspace_async import NO_KEY, MissingApiKeyError

    server = loopback()

    async def verify(request: web.Request) -> web.Response:
        return ok({"verified": True, "proofRoot": request.match_info["root"]})

    server.route("GET", "/api/v1/verify/{root}", verify)
    await server.start()
    monkeypatch.setenv("PACSPACE_API_KEY", PRODUCTION_KEY)
    async with AsyncPacSpace(NO_KEY, environment="sandbox", base_urls={"sandbox": server.url}) as keyless:
        assert keyless.key_id is None
        assert (await keyless.verify("0xroot")).verified is True
        with pytest.raises(MissingApiKeyError):
            await keyless.balance.emit(**EMIT)
    assert "X-Api-Key" not in server.requests[0].headers
    assert len(server.requests) == 1


async def test_the_same_reference_for_two_customers_is_two_deltas(loopback: Make) -> None:
    # A server that replays by key alone would hand cust_B the record of cust_A if the key
    # came from the reference only: the key must carry the customer too.
    server = loopback()
    ledger = Ledger()
    server.route("POST", DELTA, ledger.emit)
    await server.start()
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url}) as pac:
        first = await pac.balance.emit(customer_id="cust_A", delta=Decimal("-1"), reason="usage", reference_id="inv_1")
        second = await pac.balance.emit(customer_id="cust_B", delta=Decimal("-1"), reason="usage", reference_id="inv_1")
        again = await pac.balance.emit(customer_id="cust_A", delta=Decimal("-1"), reason="usage", reference_id="inv_1")
    assert first.record_id != second.record_id
    assert again.record_id == first.record_id
    assert len(ledger.deltas) == 2
    assert {delta["customerId"] for delta in ledger.deltas.values()} == {"cust_A", "cust_B"}


async def test_a_proxy_from_the_environment_is_used(loopback: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    # The transport makes aiohttp's trust_env lookups itself (once per host, not per request):
    # a proxy named by http_proxy must still carry the request.
    proxy = loopback()

    async def forward(request: web.Request) -> web.Response:
        return ok(delta_record(), status=201)

    proxy.route("POST", "/{tail:.*}", forward)
    await proxy.start()
    for name in ("no_proxy", "NO_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": "http://pacspace.invalid"}) as pac:
        for _ in range(3):
            await pac.balance.emit(**EMIT)
    assert len(proxy.requests) == 3
    assert all(request.host == "pacspace.invalid" for request in proxy.requests)


async def test_no_key_in_traceback_locals_or_error_bodies(loopback: Make) -> None:
    server = loopback()

    async def echo_key(request: web.Request) -> web.Response:
        # A server that echoes the key back must not make the SDK keep it.
        return web.json_response({"error": {"message": f"bad key {request.headers['X-Api-Key']}"}}, status=401)

    server.route("POST", DELTA, echo_key)
    await server.start()
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url}) as pac:
        with pytest.raises(AuthenticationError) as info:
            await pac.balance.emit(**EMIT)
    error = info.value
    with_locals = "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format())
    assert "Idempotency-Key" in with_locals  # the request's headers were captured with the locals
    texts = [with_locals, repr(error.body), str(error), repr(error), repr(pickle_roundtrip(error).body)]
    for secret in SECRETS:
        assert all(secret not in text for text in texts)


def pickle_roundtrip(error: APIStatusError) -> APIStatusError:
    import pickle

    copy: APIStatusError = pickle.loads(pickle.dumps(error))
    return copy


async def test_a_zero_wait_pending_answer_does_not_loop_tightly(loopback: Make) -> None:
    server = loopback()

    async def pending(request: web.Request) -> web.Response:
        return web.json_response({"code": "IDEMPOTENCY_PENDING", "retryAfterSeconds": 0}, status=202)

    server.route("POST", DELTA, pending)
    await server.start()
    clock = FakeClock()
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": server.url}, deadline=10) as pac:
        with pytest.raises(PacSpaceError):
            await pac._with_clock(clock.clock()).balance.emit(**EMIT)
    assert all(wait >= 0.1 for wait in clock.sleeps)
    assert len(server.requests) < 20  # a floor that grows to 2 s: about a dozen tries in 10 s
