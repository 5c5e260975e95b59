"""Scope rules: each bad combination is refused locally, before anything is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from conftest import SANDBOX_KEY, LoopbackServer, ok

from pacspace_async import AsyncPacSpace, InvalidArgumentError
from pacspace_async.resources._scope import Scope

Make = Callable[[], LoopbackServer]

JAN = "2026-01-01T00:00:00Z"
FEB = "2026-02-01T00:00:00Z"

# Each entry: (name, Scope.check keyword arguments, a fragment of the refusal).
BAD_SCOPES: list[tuple[str, dict[str, Any], str]] = [
    # 1. a checkpoint start excludes every window field
    ("checkpoint+period", {"starting_checkpoint": "0xc", "period": "2026-01"}, "starting_checkpoint"),
    ("checkpoint+preset", {"starting_checkpoint": "0xc", "time_preset": "current_month"}, "starting_checkpoint"),
    ("checkpoint+start", {"starting_checkpoint": "0xc", "start_date": JAN}, "starting_checkpoint"),
    ("checkpoint+end", {"starting_checkpoint": "0xc", "end_date": FEB}, "starting_checkpoint"),
    (
        "checkpoint+custom",
        {"starting_checkpoint": "0xc", "time_preset": "custom", "start_date": JAN, "end_date": FEB},
        "starting_checkpoint",
    ),
    ("checkpoint type alone", {"starting_checkpoint_type": "proofRoot"}, "starting_checkpoint"),
    ("empty checkpoint", {"starting_checkpoint": ""}, "starting_checkpoint"),
    # 2. period excludes preset and dates
    ("period+current_month", {"period": "2026-01", "time_preset": "current_month"}, "period"),
    ("period+custom", {"period": "2026-01", "time_preset": "custom", "start_date": JAN, "end_date": FEB}, "period"),
    ("period+start", {"period": "2026-01", "start_date": JAN}, "period"),
    ("period+end", {"period": "2026-01", "end_date": FEB}, "period"),
    ("period+dates", {"period": "2026-01", "start_date": JAN, "end_date": FEB}, "period"),
    # 3. current_month takes no dates
    ("current_month+start", {"time_preset": "current_month", "start_date": JAN}, "current_month"),
    ("current_month+end", {"time_preset": "current_month", "end_date": FEB}, "current_month"),
    ("current_month+dates", {"time_preset": "current_month", "start_date": JAN, "end_date": FEB}, "current_month"),
    # 4. custom needs both dates
    ("custom alone", {"time_preset": "custom"}, "both"),
    ("custom+start", {"time_preset": "custom", "start_date": JAN}, "both"),
    ("custom+end", {"time_preset": "custom", "end_date": FEB}, "both"),
    # 5. without a preset, dates come together
    ("start alone", {"start_date": JAN}, "together"),
    ("end alone", {"end_date": FEB}, "together"),
    # unknown choices
    ("unknown preset", {"time_preset": "last_month"}, "time_preset"),
    ("preset wrong case", {"time_preset": "CUSTOM", "start_date": JAN, "end_date": FEB}, "time_preset"),
    ("unknown granularity", {"granularity": "year"}, "granularity"),
    # the window must be forward
    ("start == end", {"start_date": JAN, "end_date": JAN}, "before"),
    ("start > end", {"time_preset": "custom", "start_date": FEB, "end_date": JAN}, "before"),
    ("date start > datetime end", {"start_date": date(2026, 2, 1), "end_date": datetime(2026, 1, 31, 23)}, "before"),
    (
        "same instant, other offsets",
        {"start_date": "2026-01-01T02:00:00+02:00", "end_date": "2026-01-01T00:00:00Z"},
        "before",
    ),
    # malformed dates
    ("date not ISO", {"start_date": "yesterday", "end_date": FEB}, "start_date"),
    ("date empty", {"start_date": JAN, "end_date": ""}, "end_date"),
    ("date bad month", {"start_date": "2026-13-01", "end_date": FEB}, "start_date"),
    ("date as int", {"start_date": 1767225600, "end_date": FEB}, "start_date"),
    # money
    ("NaN starting balance", {"starting_balance": float("nan")}, "starting_balance"),
    ("text starting balance", {"starting_balance": "ten"}, "starting_balance"),
]

BAD_PERIODS = ["2026-13", "2026-00", "2026-1", "26-01", "2026/01", "2026-01-01", " 2026-01", "2026-01 ", "", "202601"]


@pytest.mark.parametrize(("kwargs", "fragment"), [c[1:] for c in BAD_SCOPES], ids=[c[0] for c in BAD_SCOPES])
def test_bad_scope_is_refused(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidArgumentError, match=fragment) as info:
        Scope.check(**kwargs)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("period", [*BAD_PERIODS, 202601])
def test_bad_period_format_is_refused(period: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="YYYY-MM"):
        Scope.check(period=period)


@pytest.mark.parametrize(
    ("kwargs", "wire"),
    [
        ({}, {}),
        ({"period": "2026-12"}, {"period": "2026-12"}),
        ({"period": date(2026, 3, 31)}, {"period": "2026-03"}),
        ({"period": datetime(2026, 3, 1, 12)}, {"period": "2026-03"}),
        ({"time_preset": "current_month"}, {"timePreset": "current_month"}),
        (
            {"time_preset": "custom", "start_date": JAN, "end_date": FEB},
            {"timePreset": "custom", "startDate": JAN, "endDate": FEB},
        ),
        ({"start_date": JAN, "end_date": FEB}, {"startDate": JAN, "endDate": FEB}),
        ({"granularity": "day"}, {"granularity": "day"}),
        ({"period": "2026-01", "granularity": "week"}, {"period": "2026-01", "granularity": "week"}),
        ({"starting_balance": 0}, {"startingBalance": Decimal(0)}),
        (
            {"starting_checkpoint": "0xc", "starting_checkpoint_type": "recordId", "starting_balance": "12.5"},
            {"startingCheckpoint": "0xc", "startingCheckpointType": "recordId", "startingBalance": Decimal("12.5")},
        ),
        ({"starting_checkpoint": "0xc", "granularity": "month"}, {"startingCheckpoint": "0xc", "granularity": "month"}),
    ],
)
def test_good_scope_wire_names(kwargs: dict[str, Any], wire: dict[str, object]) -> None:
    assert Scope.check(**kwargs).wire() == wire


def test_wire_names_every_field() -> None:
    scope = Scope(
        period="p",
        time_preset="t",
        start_date="s",
        end_date="e",
        granularity="g",
        starting_balance=Decimal(1),
        starting_checkpoint="c",
        starting_checkpoint_type="ct",
    )
    assert scope.wire() == {
        "period": "p",
        "timePreset": "t",
        "startDate": "s",
        "endDate": "e",
        "granularity": "g",
        "startingBalance": Decimal(1),
        "startingCheckpoint": "c",
        "startingCheckpointType": "ct",
    }


PLUS_TWO = timezone(timedelta(hours=2))
MINUS_FIVE = timezone(timedelta(hours=-5))


@pytest.mark.parametrize(
    ("start", "end", "wire_start", "wire_end"),
    [
        (date(2026, 1, 1), date(2026, 2, 1), JAN, FEB),
        (datetime(2026, 1, 1, 2, tzinfo=PLUS_TWO), datetime(2026, 1, 31, 19, tzinfo=MINUS_FIVE), JAN, FEB),
        (datetime(2026, 1, 1), datetime(2026, 1, 1, 5, 30), JAN, "2026-01-01T05:30:00Z"),  # naive means UTC
        (
            datetime(2026, 1, 1, 0, 0, 0, 250000, tzinfo=timezone.utc),
            datetime(2026, 2, 1, tzinfo=timezone.utc),
            "2026-01-01T00:00:00.250000Z",
            FEB,
        ),
        # ISO strings are sent as given (their instants are still compared correctly)
        ("2026-01-01T01:00:00+02:00", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00+02:00", "2026-01-01T00:00:00Z"),
        ("2026-01-01", "2026-02-01", "2026-01-01", "2026-02-01"),
        ("2026-01-01T00:00:00.123Z", FEB, "2026-01-01T00:00:00.123Z", FEB),
    ],
)
def test_dates_become_utc_z_text(start: Any, end: Any, wire_start: str, wire_end: str) -> None:
    scope = Scope.check(time_preset="custom", start_date=start, end_date=end)
    assert (scope.start_date, scope.end_date) == (wire_start, wire_end)
    assert Scope.check(start_date=start, end_date=end).wire() == {"startDate": wire_start, "endDate": wire_end}


# --- on a real client: refused with zero requests sent ----------------------------------------


@pytest.fixture
async def recorded(loopback: Make) -> AsyncIterator[tuple[AsyncPacSpace, LoopbackServer]]:
    """A client aimed at a loopback server that answers (and records) every request."""
    server = loopback()

    async def anything(request: web.Request) -> web.StreamResponse:
        return ok({"customerId": "cust_1", "computedBalance": 0, "neutralBalance": 0})

    server.route("*", "/{tail:.*}", anything)
    url = await server.start()
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": url}) as pac:
        yield pac, server


async def scoped(pac: AsyncPacSpace, endpoint: str, **scope: Any) -> object:
    if endpoint == "derive":
        return await pac.balance.derive("cust_1", **scope)
    return await pac.balance.compare("cust_1", your_balance=1, their_balance=2, **scope)


async def test_the_recording_server_does_see_good_calls(recorded: tuple[AsyncPacSpace, LoopbackServer]) -> None:
    pac, server = recorded
    await pac.balance.derive("cust_1", period="2026-01")
    await pac.balance.compare("cust_1", your_balance=1, their_balance=1, period="2026-01")
    assert [(r.method, r.path) for r in server.requests] == [
        ("GET", "/api/v1/balance/derive/cust_1"),
        ("POST", "/api/v1/balance/compare"),
    ]


@pytest.mark.parametrize(
    "kwargs",
    [c[1] for c in BAD_SCOPES if "starting_balance" not in c[1]],
    ids=[c[0] for c in BAD_SCOPES if "starting_balance" not in c[1]],
)
@pytest.mark.parametrize("endpoint", ["derive", "compare"])
async def test_client_refuses_bad_scope_without_sending(
    recorded: tuple[AsyncPacSpace, LoopbackServer], endpoint: str, kwargs: dict[str, Any]
) -> None:
    pac, server = recorded
    with pytest.raises(InvalidArgumentError):
        await scoped(pac, endpoint, **kwargs)
    assert server.requests == []


@pytest.mark.parametrize("period", BAD_PERIODS)
@pytest.mark.parametrize("endpoint", ["derive", "compare"])
async def test_client_refuses_bad_period_without_sending(
    recorded: tuple[AsyncPacSpace, LoopbackServer], endpoint: str, period: str
) -> None:
    pac, server = recorded
    with pytest.raises(InvalidArgumentError, match="YYYY-MM"):
        await scoped(pac, endpoint, period=period)
    assert server.requests == []


@pytest.mark.parametrize(
    "call",
    [
        lambda pac: pac.balance.receipt("cust_1", period="2026-01", time_preset="current_month"),
        lambda pac: pac.balance.invoice_proof("cust_1", start_date=JAN),
        lambda pac: pac.checkpoints.create(time_preset="custom", start_date=JAN),
        lambda pac: pac.balance.derive_for_period("cust_1", "2026-13"),
    ],
    ids=["receipt", "invoice_proof", "checkpoint", "derive_for_period"],
)
async def test_other_scoped_calls_refuse_without_sending(
    recorded: tuple[AsyncPacSpace, LoopbackServer], call: Callable[[AsyncPacSpace], Any]
) -> None:
    pac, server = recorded
    with pytest.raises(InvalidArgumentError):
        await call(pac)
    assert server.requests == []


def test_checkpoints_list_refuses_at_call_time() -> None:
    pac = AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": "http://127.0.0.1:9"})
    with pytest.raises(InvalidArgumentError, match="period"):
        pac.checkpoints.list(period="2026-01", end_date=FEB)


# --- the windows of the derive_* helpers, as scopes -------------------------------------------


def test_the_helper_windows_are_plain_scopes() -> None:
    now = datetime(2026, 12, 15, 12, 30, tzinfo=timezone.utc)
    assert Scope.current_month().wire() == {"timePreset": "current_month"}
    assert Scope.month(date(2026, 4, 17)).wire() == {"period": "2026-04"}
    assert Scope.months_back(3, now=now) == Scope.check(
        time_preset="custom", start_date="2026-10-01T00:00:00Z", end_date="2027-01-01T00:00:00Z"
    )
    assert Scope.days_back(7, now=now).wire() == {
        "timePreset": "custom",
        "startDate": "2026-12-09T00:00:00Z",
        "endDate": "2026-12-16T00:00:00Z",
    }


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda: Scope.month(None), "derive_current_month"),  # type: ignore[arg-type]  # no month
        (lambda: Scope.month("2026-13"), "YYYY-MM"),
        (lambda: Scope.months_back(0, now=datetime.now(timezone.utc)), "months"),
        (lambda: Scope.months_back(1201, now=datetime.now(timezone.utc)), "months"),
        (lambda: Scope.days_back(0, now=datetime.now(timezone.utc)), "days"),
        (lambda: Scope.days_back(True, now=datetime.now(timezone.utc)), "days"),
    ],
    ids=["month None", "month 13", "0 months", "1201 months", "0 days", "days True"],
)
def test_a_bad_helper_window_is_refused(build: Callable[[], Scope], named: str) -> None:
    with pytest.raises(InvalidArgumentError, match=named):
        build()
