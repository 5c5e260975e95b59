"""The per-call options: every public call takes them as keywords, and each one takes effect.

Inside the SDK they travel bundled (`CallOptions`); these tests hold every public method to
its signature and check, against a real loopback server, that each option reaches the request.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import attrs
import pytest
from aiohttp import web
from conftest import SANDBOX_KEY, FakeClock, LoopbackServer, delta_record, ok

from pacspace_async import AsyncPacSpace, InvalidArgumentError, ServiceUnavailableError
from pacspace_async.resources import AsyncBalance, AsyncCheckpoints, AsyncCustomers, AsyncWebhookDeliveries
from pacspace_async.resources._base import NO_OPTIONS, CallOptions

Call = Callable[..., Awaitable[Any]]
OPTIONS = ("timeout", "max_retries", "extra_headers")

# Every public call that sends, with the options it is given; `True` when it is a POST.
CALLS: dict[str, tuple[Call, bool]] = {
    "balance.emit": (lambda pac, **o: pac.balance.emit(customer_id="c", delta=Decimal(-1), reason="r", **o), True),
    "balance.emit_batch": (
        lambda pac, **o: pac.balance.emit_batch([{"customer_id": "c", "delta": -1, "reason": "r"}], **o),
        True,
    ),
    "balance.emit_and_wait": (
        lambda pac, **o: pac.balance.emit_and_wait(customer_id="c", delta=-1, reason="r", **o),
        True,
    ),
    "balance.status": (lambda pac, **o: pac.balance.status("rec_1", **o), False),
    "balance.wait_for_verified": (lambda pac, **o: pac.balance.wait_for_verified("rec_1", **o), False),
    "balance.derive": (lambda pac, **o: pac.balance.derive("c", period="2026-01", **o), False),
    "balance.derive_current_month": (lambda pac, **o: pac.balance.derive_current_month("c", **o), False),
    "balance.derive_for_period": (lambda pac, **o: pac.balance.derive_for_period("c", "2026-01", **o), False),
    "balance.derive_months_back": (lambda pac, **o: pac.balance.derive_months_back("c", 2, **o), False),
    "balance.derive_days_back": (lambda pac, **o: pac.balance.derive_days_back("c", 7, **o), False),
    "balance.compare": (lambda pac, **o: pac.balance.compare("c", your_balance=1, their_balance=2, **o), True),
    "balance.receipt": (lambda pac, **o: pac.balance.receipt("c", **o), False),
    "balance.invoice_proof": (lambda pac, **o: pac.balance.invoice_proof("c", **o), False),
    "balance.usage": (lambda pac, **o: pac.balance.usage(**o), False),
    "balance.gaps": (lambda pac, **o: pac.balance.gaps("c", **o), False),
    "balance.limits": (lambda pac, **o: pac.balance.limits(**o), False),
    "checkpoints.create": (lambda pac, **o: pac.checkpoints.create(customer_id="c", **o), True),
    "checkpoints.list": (lambda pac, **o: pac.checkpoints.list(**o).first_page(), False),
    "customers.list": (lambda pac, **o: pac.customers.list(**o).first_page(), False),
    "customers.get": (lambda pac, **o: pac.customers.get("c", **o), False),
    "customers.summary": (lambda pac, **o: pac.customers.summary(**o), False),
    "webhook_deliveries.list": (lambda pac, **o: pac.webhook_deliveries.list(**o).first_page(), False),
    "webhook_deliveries.retry": (lambda pac, **o: pac.webhook_deliveries.retry("evt_1", **o), True),
    "verify": (lambda pac, **o: pac.verify("0xab", **o), False),
}
RESOURCES = {
    "balance": AsyncBalance,
    "checkpoints": AsyncCheckpoints,
    "customers": AsyncCustomers,
    "webhook_deliveries": AsyncWebhookDeliveries,
}


def public_methods() -> dict[str, Callable[..., Any]]:
    found = {
        f"{name}.{attribute}": method
        for name, cls in RESOURCES.items()
        for attribute, method in vars(cls).items()
        if not attribute.startswith("_") and callable(method)
    }
    return {**found, "verify": AsyncPacSpace.verify}


def test_every_public_call_is_in_the_table() -> None:
    assert sorted(public_methods()) == sorted(CALLS)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_public_call_takes_the_options_as_keywords(name: str) -> None:
    parameters = inspect.signature(public_methods()[name]).parameters
    expected = (*OPTIONS, "idempotency_key") if CALLS[name][1] else OPTIONS
    for option in expected:
        assert parameters[option].kind is inspect.Parameter.KEYWORD_ONLY, option
        assert parameters[option].default is not inspect.Parameter.empty, option


def test_call_options_bundle_and_check() -> None:
    options = CallOptions(5, 0, {"X-Trace": "t"}, "job-1")
    assert (options.timeout, options.max_retries, options.extra_headers, options.idempotency_key) == (
        5,
        0,
        {"X-Trace": "t"},
        "job-1",
    )
    assert options.checked() is options
    assert CallOptions(None, None, None, None) == NO_OPTIONS
    for bad, named in (
        (CallOptions(timeout=0), "timeout"),
        (CallOptions(max_retries=-1), "max_retries"),
        (CallOptions(extra_headers={"Idempotency-Key": "x"}), "Idempotency-Key"),
    ):
        with pytest.raises(InvalidArgumentError, match=named):
            bad.checked()


# --- on the wire ------------------------------------------------------------------------------

ANSWER = {
    "customerId": "c",
    "computedBalance": 0,
    "neutralBalance": 0,
    "checkpointId": "chk_1",
    "eventId": "evt_1",
    "results": [],
    "verified": True,
}


@attrs.define
class Served:
    pac: AsyncPacSpace
    server: LoopbackServer
    failing: bool = False  # answer 503 to everything


@pytest.fixture
async def served(loopback: Callable[[], LoopbackServer]) -> AsyncIterator[Served]:
    """A client on a fake clock, aimed at a server that answers every call."""
    server = loopback()

    async def anything(request: web.Request) -> web.StreamResponse:
        if state.failing:
            return web.json_response({"error": {"code": "DOWN", "message": "down"}}, status=503)
        if request.path.startswith("/api/v1/balance/delta/"):
            return ok(delta_record(status="VERIFIED"))  # a poll: final at once
        if request.path == "/api/v1/balance/delta":
            return ok(delta_record(), status=201)
        return ok(ANSWER)

    server.route("*", "/{tail:.*}", anything)
    url = await server.start()
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": url}) as client:
        state = Served(client._with_clock(FakeClock().clock()), server)
        yield state


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_extra_headers_reach_every_request(served: Served, name: str) -> None:
    await CALLS[name][0](served.pac, extra_headers={"X-Trace": "trace-1"})
    requests = served.server.requests
    assert requests
    assert [request.headers.get("X-Trace") for request in requests] == ["trace-1"] * len(requests)


@pytest.mark.parametrize("name", sorted(name for name, (_, post) in CALLS.items() if post))
async def test_the_idempotency_key_reaches_every_post(served: Served, name: str) -> None:
    await CALLS[name][0](served.pac, idempotency_key="job-7")
    posts = [request for request in served.server.requests if request.method == "POST"]
    assert [request.headers["Idempotency-Key"] for request in posts] == ["sandbox:job-7"]


@pytest.mark.parametrize("retries", [0, 2])
@pytest.mark.parametrize("name", sorted(CALLS))
async def test_max_retries_bounds_every_call(served: Served, name: str, retries: int) -> None:
    served.failing = True
    with pytest.raises(ServiceUnavailableError):
        await CALLS[name][0](served.pac, max_retries=retries)
    assert len(served.server.requests) == 1 + retries


@pytest.mark.parametrize(
    "option", [{"timeout": -1}, {"max_retries": -1}, {"extra_headers": {"X-Api-Key": "x"}}], ids=str
)
@pytest.mark.parametrize("name", sorted(CALLS))
async def test_a_bad_option_is_refused_before_sending(served: Served, name: str, option: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        await CALLS[name][0](served.pac, **option)
    assert served.server.requests == []
