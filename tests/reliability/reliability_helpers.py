"""Helpers of the reliability suite (a module of its own: `conftest` names clash across folders).

The load tests describe each emit as a `Call` (what was sent, and what came back: a record or a
typed error), then hold the emulator's ledger against the calls with `check_ledger`: zero
duplicates, zero lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from decimal import Decimal
from typing import TypeVar

import attrs

from pacspace_async import AsyncPacSpace, PacSpaceError
from pacspace_async._requester import Clock
from pacspace_async.models import DeltaRecord
from pacspace_async.testing import EmulatedDelta, Faults, RequestRecord

T = TypeVar("T")

DELTA_PATH = "/api/v1/balance/delta"

# Backoff waits run 20 times faster than the SDK asks, but they are real waits: the emulator's
# 202 IDEMPOTENCY_PENDING path (a slow first attempt still running) needs real time to pass.
TIME_SCALE = 20.0

# The fault mix of the load tests: 30 % of requests get a 5xx, a dropped connection (before or
# after the write) or an answer 0.3 s late; the clients' per-attempt timeout is 0.2 s, so every
# slow answer really times out on the client side while the emulator still carries it out.
SLOW_SECONDS = 0.3
ATTEMPT_TIMEOUT = 0.2
LOAD_FAULTS = Faults(rate=0.3, slow_seconds=SLOW_SECONDS)
# What a 202 IDEMPOTENCY_PENDING asks the client to wait (scaled down like every other wait).
PENDING_SECONDS = 0.5
# Enough that a call essentially never runs out of retries at a 30 % fault rate (0.3**21).
LOAD_RETRIES = 20
LOAD_DEADLINE = 60.0


def scaled_clock(scale: float = TIME_SCALE, record: Callable[[float], None] | None = None) -> Clock:
    """A clock whose sleeps are real but `scale` times shorter; `record` sees the asked-for wait."""

    async def sleep(seconds: float) -> None:
        if record is not None:
            record(seconds)
        await asyncio.sleep(seconds / scale)

    return Clock(sleep=sleep)


def fast(client: AsyncPacSpace, scale: float = TIME_SCALE) -> AsyncPacSpace:
    """The same client (same pools, key and settings) with waits `scale` times shorter."""
    return client._with_clock(scaled_clock(scale))


@attrs.define
class Call:
    """One emit of a load test: what was sent and what came back."""

    index: int
    customer_id: str
    delta: Decimal
    reference_id: str | None
    record: DeltaRecord | None = None
    error: PacSpaceError | None = None

    @property
    def idempotency_key(self) -> str | None:
        if self.record is not None:
            return self.record.idempotency_key
        return None if self.error is None else self.error.idempotency_key

    def kwargs(self) -> dict[str, object]:
        return {
            "customer_id": self.customer_id,
            "delta": self.delta,
            "reason": "usage",
            "reference_id": self.reference_id,
        }


def plan_calls(count: int, *, tag: str, references: Callable[[int], bool]) -> list[Call]:
    """`count` emits, each with a unique amount (so a delta can be traced back to its call)."""
    return [
        Call(
            index=index,
            customer_id=f"cust_{index % 16}",
            delta=Decimal(-(index + 1)) / 100,
            reference_id=f"{tag}-{index}" if references(index) else None,
        )
        for index in range(count)
    ]


async def run_calls(pac: AsyncPacSpace, calls: Sequence[Call], *, in_flight: int) -> None:
    """Emit every call, at most `in_flight` at a time. Typed errors are kept; anything else fails."""
    gate = asyncio.Semaphore(in_flight)

    async def one(call: Call) -> None:
        async with gate:
            try:
                call.record = await pac.balance.emit(**call.kwargs())  # type: ignore[arg-type]
            except PacSpaceError as error:
                call.error = error

    await asyncio.gather(*(one(call) for call in calls))


def emit_sync(pac: object, call: Call) -> None:
    """The same as one call of `run_calls`, through a `pacspace_sync.PacSpace`."""
    try:
        call.record = pac.balance.emit(**call.kwargs())  # type: ignore[attr-defined]
    except PacSpaceError as error:
        call.error = error


def check_ledger(calls: Sequence[Call], deltas: Sequence[EmulatedDelta]) -> None:
    """Zero duplicates, zero lost: the emulator's ledger holds exactly what the callers were told.

    For every call: either it returned a record and the emulator holds that record exactly once
    (with the call's customer, amount, reference and idempotency key), or it raised a typed
    `PacSpaceError` and the emulator holds no delta of it (by reference id, idempotency key or
    amount). And the emulator holds nothing else.
    """
    problems: list[str] = []
    counts = Counter(delta.record_id for delta in deltas)
    held = {delta.record_id: delta for delta in deltas}
    by_amount = Counter((delta.customer_id, delta.delta) for delta in deltas)
    repeated = sorted(str(amount) for (_, amount), n in by_amount.items() if n > 1)
    if repeated:
        problems.append(
            f"DUPLICATES: {len(repeated)} emits were recorded more than once "
            f"({sum(by_amount[k] for k in by_amount if by_amount[k] > 1)} deltas), e.g. amounts {repeated[:5]}"
        )
    doubled = [record_id for record_id, n in counts.items() if n > 1]
    if doubled:
        problems.append(f"record ids held more than once: {doubled[:5]}")
    succeeded = [call for call in calls if call.record is not None]
    failed = [call for call in calls if call.record is None]
    lost = []
    for call in succeeded:
        assert call.record is not None
        delta = held.get(call.record.record_id)
        if delta is None:
            lost.append(call.index)
            continue
        sent = (call.customer_id, call.delta, call.reference_id, call.record.idempotency_key)
        stored = (delta.customer_id, delta.delta, delta.reference_id, delta.idempotency_key)
        if sent != stored:
            problems.append(f"call {call.index} returned {call.record.record_id}, which holds {stored}, not {sent}")
    if lost:
        problems.append(f"LOST: {len(lost)} calls returned a record the emulator does not hold, e.g. {lost[:5]}")
    for call in failed:
        if not isinstance(call.error, PacSpaceError):
            problems.append(f"call {call.index} neither returned a record nor raised a PacSpaceError")
            continue
        key = call.error.idempotency_key
        found = [
            delta
            for delta in deltas
            if (call.reference_id is not None and delta.reference_id == call.reference_id)
            or (key is not None and delta.idempotency_key == key)
            or (delta.customer_id, delta.delta) == (call.customer_id, call.delta)
        ]
        if found:
            problems.append(
                f"call {call.index} raised {type(call.error).__name__} but the emulator holds "
                f"{[d.record_id for d in found]} for it"
            )
    if len(deltas) != len(succeeded):
        problems.append(f"the emulator holds {len(deltas)} deltas for {len(succeeded)} successful calls")
    assert not problems, "\n".join(problems)


def delta_requests(requests: Iterable[RequestRecord]) -> list[RequestRecord]:
    return [r for r in requests if r.method == "POST" and r.path == DELTA_PATH]


def check_faults_were_real(calls: Sequence[Call], requests: Sequence[RequestRecord]) -> Counter[str | None]:
    """The faults really happened, and the clients healed them the way the design says.

    - every fault kind was drawn, drops after the write included, and replays healed them;
    - every call sent one idempotency key on all its attempts;
    - every slow answer that carried out a write came after the client gave up on it (a later
      attempt with the same key exists): "slow answers past the timeout" really timed out.
    """
    posts = delta_requests(requests)
    faults = Counter(r.fault for r in posts)
    assert set(faults) >= {"500", "502", "503", "drop_before_write", "drop_after_write", "slow"}, faults
    assert faults["drop_after_write"] >= 20, faults
    assert sum(1 for r in posts if r.replayed) >= faults["drop_after_write"] // 2
    keys = {call.idempotency_key for call in calls}
    assert None not in keys
    assert {r.idempotency_key for r in posts} == keys  # one key per call, reused on every attempt
    positions: dict[str | None, list[int]] = {}
    for position, request in enumerate(posts):
        positions.setdefault(request.idempotency_key, []).append(position)
    slow_writes = [
        r
        for r in posts
        if r.fault == "slow" and r.status is not None and r.status < 300 and not r.replayed and r.status != 202
    ]
    assert slow_writes, "no slow answer carried out a write"
    for request in slow_writes:
        # The request is logged when its (late) answer is written: the retry came before it.
        assert len(positions[request.idempotency_key]) > 1, f"the slow answer to {request.idempotency_key} was awaited"
    return faults


class Everything(logging.Handler):
    """Keeps every log line (with its traceback, if any) of every logger, at every level."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


CAPTURED_LOGGERS = ("", "pacspace", "pacspace.emulator", "aiohttp", "aiohttp.client", "aiohttp.server", "asyncio")


class DebugLogs:
    """Every logger at DEBUG into one `Everything` handler for the duration of a `with` block."""

    def __init__(self) -> None:
        self.handler = Everything()
        self._saved: list[tuple[logging.Logger, int]] = []

    def __enter__(self) -> Everything:
        for name in CAPTURED_LOGGERS:
            lg = logging.getLogger(name)
            self._saved.append((lg, lg.level))
            lg.setLevel(logging.DEBUG)
        logging.getLogger().addHandler(self.handler)
        return self.handler

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self.handler)
        for lg, level in self._saved:
            lg.setLevel(level)


def outcome(
    work: Callable[[], T], errors: type[BaseException] | tuple[type[BaseException], ...]
) -> tuple[T | None, BaseException | None]:
    """`work()`'s result, or the error of type `errors` it raised (for fuzz tests: "a result or X")."""
    try:
        return work(), None
    except errors as error:
        return None, error


async def gather_limited(jobs: Iterable[Callable[[], Awaitable[None]]], in_flight: int) -> None:
    gate = asyncio.Semaphore(in_flight)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            await job()

    await asyncio.gather(*(one(job) for job in jobs))
