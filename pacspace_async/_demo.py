"""``pacspace demo``: an agent's whole day against the bundled emulator, offline, in seconds.

Everything goes through the public SDK over real sockets; the emulator injects faults, and
each step checks what a payments agent cares about: nothing double-counted, nothing lost,
proofs that verify without a key, errors that say what to do.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO, TypeVar

import attrs
from aiohttp import web

from ._client import PROBE_PATH, AsyncPacSpace
from ._credentials import NO_KEY, KeyProvider
from ._environments import Environment
from ._errors import APIStatusError, AuthenticationError, PacSpaceError, PermissionDeniedError, RateLimitError
from ._logging import logger
from .models.balance import DeltaRecord
from .webhooks import InMemoryReplayCache, WebhookVerifier

__all__ = ["MAX_EMITS", "MAX_FAULT_RATE", "run_demo"]

T = TypeVar("T")

CUSTOMERS = tuple(f"agent-cust-{n:02d}" for n in range(10))
MAX_EMITS = 5000
"""More would only make the demo longer: every check is already shown at the default 500."""
MAX_FAULT_RATE = 0.5
"""Above this, a run is mostly the SDK's backoff waits (a fault-free attempt gets rare)."""
RESENDS = 5
"""How often the agent sends a call again after the SDK's own retries ran out."""
RATE_LIMIT, STORM = 10, 12
"""The 429 step: requests per second the emulator allows, and concurrent emits sent at it."""
DRILL_AGENTS, DRILL_CALLS = 8, 40
"""The rotation drill: tasks emitting all along, and the calls each phase waits for."""


@attrs.define
class Outcome:
    """One line of the closing table."""

    step: str
    result: str
    ok: bool


class RetryCounter(logging.Handler):
    """Counts the SDK's retry lines (one INFO line per retry) and keeps its warnings, printing
    neither."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.retries = 0
        self.warnings: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.warnings.append(record.getMessage())
        elif "retry" in record.getMessage():
            self.retries += 1


@attrs.define
class Resender:
    """What an agent does with an error whose action says retry, once the SDK's own retries ran
    out: send the very same call again. For an emit that is safe because its reference id
    names the business event: the server answers the same record, never a second one."""

    resent: int = 0

    async def __call__(self, call: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(RESENDS + 1):
            try:
                return await call()
            except PacSpaceError as error:
                if not error.retryable or attempt == RESENDS:
                    raise
                self.resent += 1
        raise AssertionError("unreachable")  # the loop returns or raises


@contextmanager
def _counting_retries() -> Iterator[RetryCounter]:
    counter = RetryCounter()
    old_level = logger.level
    logger.addHandler(counter)
    logger.setLevel(logging.INFO)
    try:
        yield counter
    finally:
        logger.removeHandler(counter)
        logger.setLevel(old_level)


class Screen:
    """Progress and lines: rich on a terminal, plain lines when piped."""

    def __init__(self, out: TextIO, plain: bool) -> None:
        self.out = out
        self.rich: Any = None
        if not plain and out.isatty():
            try:
                from rich.console import Console

                self.rich = Console(file=out)
            except ImportError:
                self.rich = None

    def say(self, text: str, *, markup: bool = False) -> None:
        if self.rich is not None:
            self.rich.print(text, highlight=False, markup=markup)
        else:
            self.out.write(f"{text}\n")
            self.out.flush()

    def step(self, title: str) -> None:
        self.say(f"\n[bold]▸ {title}[/bold]" if self.rich is not None else f"\n== {title}", markup=True)

    @contextmanager
    def progress(self, total: int, label: str) -> Iterator[Callable[[int, int], None]]:
        """Yields update(done, retries)."""
        if self.rich is not None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=self.rich) as bar:
                task = bar.add_task(label, total=total)

                def update(done: int, retries: int) -> None:
                    bar.update(task, completed=done, description=f"{label} (retries so far: {retries})")

                yield update
            return
        marks = {total * k // 5 for k in range(1, 6)}

        def update_plain(done: int, retries: int) -> None:
            if done in marks:
                self.say(f"  {label}: {done}/{total} done, {retries} retries so far")

        yield update_plain

    def table(self, outcomes: list[Outcome], elapsed: float) -> None:
        if self.rich is not None:
            from rich.table import Table

            table = Table(title=f"pacspace demo — {elapsed:.1f}s, no network, no account")
            table.add_column("step")
            table.add_column("result")
            table.add_column("ok")
            for outcome in outcomes:
                table.add_row(outcome.step, outcome.result, "[green]yes[/green]" if outcome.ok else "[red]NO[/red]")
            self.rich.print(table)
            return
        width = max(len(o.step) for o in outcomes)
        self.say(f"\n== Summary ({elapsed:.1f}s, no network, no account)")
        for outcome in outcomes:
            self.say(f"  {outcome.step.ljust(width)}  {'ok' if outcome.ok else 'FAILED'}  {outcome.result}")


class WebhookInbox:
    """A receiver on 127.0.0.1 that verifies every delivery, as an agent's endpoint would."""

    def __init__(self, secret: str) -> None:
        self.verifier = WebhookVerifier(secret, replay_cache=InMemoryReplayCache())
        self.accepted: Counter[str] = Counter()
        self.rejected = 0
        self.sample: tuple[dict[str, str], bytes] | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        try:
            event = self.verifier.verify(headers, body)
        except PacSpaceError:
            self.rejected += 1
            return web.Response(status=400)
        self.accepted[event.type] += 1
        self.sample = self.sample or (headers, body)
        return web.Response(status=200)

    async def start(self) -> None:
        from .testing._serverlog import server_logger

        app = web.Application()
        app.router.add_post("/webhooks/pacspace", self._receive)
        self._runner = web.AppRunner(app, access_log=None, logger=server_logger())
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/webhooks/pacspace"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def _day(screen: Screen, emits: int, fault_rate: float) -> list[Outcome]:
    from .testing import Emulator, Faults

    outcomes: list[Outcome] = []
    customers = CUSTOMERS[: min(emits, len(CUSTOMERS))]  # each one gets at least one emit
    agent = Resender()
    rng = random.Random(2026)
    inbox = WebhookInbox("whsec_demo_agent_inbox")
    await inbox.start()
    async with Emulator(faults=Faults(rate=fault_rate, seed=11, slow_seconds=0.05), verify_delay=0.2) as emu:
        emu.register_webhook(inbox.url, "whsec_demo_agent_inbox")
        key = emu.create_key(Environment.SANDBOX)
        screen.say(f"Emulator up: sandbox {emu.sandbox_url}, production {emu.production_url}")
        screen.say(f"Agent key {key.split('.')[0]}.**** — {fault_rate:.0%} of requests will fail or drop")
        async with AsyncPacSpace(key, base_urls=emu.base_urls, max_retries=8) as pac:
            # 1. a burst of usage, each event with its business reference
            screen.step(f"{emits} concurrent emits, each with a reference id")
            sent: dict[str, Decimal] = {}
            plan = []
            for n in range(emits):
                customer = customers[n % len(customers)]
                amount = Decimal(rng.randint(-5000, 2000)) / 100 or Decimal("-0.01")
                plan.append((customer, amount, f"usage-2026-11-28-{n:04d}"))
                sent[customer] = sent.get(customer, Decimal(0)) + amount
            records: list[DeltaRecord] = []
            with _counting_retries() as counter, screen.progress(emits, "emitting") as update:

                async def one(customer: str, amount: Decimal, reference: str) -> None:
                    record = await agent(
                        lambda: pac.balance.emit(
                            customer_id=customer, delta=amount, reason="api_usage", reference_id=reference
                        )
                    )
                    records.append(record)
                    update(len(records), counter.retries)

                await asyncio.gather(*(one(*item) for item in plan))
                retries = counter.retries
            stored = emu.deltas(environment=Environment.SANDBOX)
            faults_hit = sum(1 for r in emu.requests if r.fault)
            resent = f", {agent.resent} sent again by the agent" if agent.resent else ""
            outcomes.append(
                Outcome(
                    "emits under faults",
                    f"{len(records)} sent, {faults_hit} faults injected, {retries} retries by the SDK{resent}",
                    len(records) == emits,
                )
            )

            # 2. nothing double-counted, nothing lost
            screen.step("Comparing the emulator's ledger with what was sent")
            references = Counter(d.reference_id for d in stored)
            duplicates = sum(count - 1 for count in references.values() if count > 1)
            ledger = {c: sum((d.delta for d in stored if d.customer_id == c), Decimal(0)) for c in customers}
            exact = ledger == sent and len(stored) == emits
            screen.say(f"  {len(stored)} deltas stored for {emits} sent, {duplicates} duplicates; sums equal: {exact}")
            outcomes.append(Outcome("no double counting", f"{len(stored)} stored, {duplicates} duplicates", exact))

            # 3. verification
            screen.step("Waiting for verification")
            gate = asyncio.Semaphore(50)

            async def settled(record: DeltaRecord) -> DeltaRecord:
                async with gate:
                    return await agent(
                        lambda: pac.balance.wait_for_verified(record.record_id, timeout=20, poll_interval=0.1)
                    )

            finals = await asyncio.gather(*(settled(r) for r in records))
            verified = sum(1 for f in finals if f.status == "VERIFIED")
            screen.say(f"  {verified}/{emits} VERIFIED")
            outcomes.append(Outcome("verification", f"{verified}/{emits} VERIFIED", verified == emits))

            # 4. balances derived by PacSpace match the agent's own books
            screen.step("Deriving balances")
            derived = await asyncio.gather(
                *(agent(functools.partial(pac.balance.derive_current_month, c)) for c in customers)
            )
            matches = sum(1 for c, d in zip(customers, derived, strict=True) if d.computed_balance == sent[c])
            for customer, balance in list(zip(customers, derived, strict=True))[:3]:
                screen.say(f"  {customer}: {balance.computed_balance} over {balance.deltas_count} deltas")
            outcomes.append(
                Outcome(
                    "derived balances", f"{matches}/{len(customers)} match the agent's books", matches == len(customers)
                )
            )

            # 5. checkpoint, receipt, and a keyless verification of its proof root
            screen.step("Checkpoint, receipt, public verification")
            emu.faults = Faults(rate=0.0)
            checkpoint = await pac.checkpoints.create(customer_id=CUSTOMERS[0])
            for _ in range(100):  # a checkpoint is committed to the ledger shortly after it is made
                listed = [c async for c in pac.checkpoints.list(customer_id=CUSTOMERS[0])]
                checkpoint = next((c for c in listed if c.checkpoint_id == checkpoint.checkpoint_id), checkpoint)
                if checkpoint.status == "VERIFIED":
                    break
                await asyncio.sleep(0.05)
            receipt = await pac.balance.receipt(CUSTOMERS[0])
            async with AsyncPacSpace(NO_KEY, environment=Environment.SANDBOX, base_urls=emu.base_urls) as keyless:
                proof = await keyless.verify(receipt.proof_root or "0x")
            screen.say(f"  checkpoint {checkpoint.checkpoint_id} ({checkpoint.status})")
            screen.say(f"  receipt root {receipt.proof_root}")
            screen.say(f"  verified by a client with no key at all: {proof.verified} ({proof.message})")
            outcomes.append(
                Outcome(
                    "checkpoint", f"{checkpoint.checkpoint_id} {checkpoint.status}", checkpoint.status == "VERIFIED"
                )
            )
            outcomes.append(Outcome("receipt proof, no key", f"verified={proof.verified}", proof.verified))

            # 6. signed webhooks
            screen.step("Receiving signed webhooks")
            await emu.wait_for_deliveries(timeout=10)
            tampered_rejected = False
            if inbox.sample is not None:
                headers, body = inbox.sample
                try:
                    WebhookVerifier("whsec_demo_agent_inbox").verify(headers, body.replace(b"0", b"1", 1))
                except PacSpaceError:
                    tampered_rejected = True
            total = sum(inbox.accepted.values())
            screen.say(
                f"  {total} deliveries verified ({dict(inbox.accepted)}), tampered copy rejected: {tampered_rejected}"
            )
            outcomes.append(
                Outcome("webhooks", f"{total} verified, tampered rejected", total > 0 and tampered_rejected)
            )

        outcomes.append(await rotation_drill(screen, emu))
        outcomes.extend(await _errors(screen, emu))
    await inbox.stop()
    return outcomes


async def _until(done: Callable[[], bool], seconds: float = 10.0) -> bool:
    for _ in range(int(seconds / 0.01)):
        if done():
            return True
        await asyncio.sleep(0.01)
    return done()


def _write_key(path: Path, key: str) -> None:
    """As a secret store updates a mounted file: a new file moved into place in one step."""
    staged = path.with_suffix(".new")
    staged.write_text(key + "\n")
    os.replace(staged, path)


async def rotation_drill(screen: Screen, emu: Any) -> Outcome:
    """The five rotation steps while agents emit: a new key in the key file (a mistyped one
    first), the client probes it and cuts over, the old key is revoked; no call may fail."""
    screen.step(f"Key rotation drill: a new key in the key file while {DRILL_AGENTS} agents emit")
    old, new = emu.create_key(Environment.SANDBOX), emu.create_key(Environment.SANDBOX)
    typo = new[:-1] + ("x" if new[-1] != "x" else "y")
    old_id, new_id = old.split(".")[0], new.split(".")[0]
    told: list[APIStatusError] = []
    done, failed, in_flight, phase = [0], [0], Counter[int](), 0
    with _counting_retries() as log, tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pacspace-api-key"
        _write_key(path, old)
        provider = KeyProvider.from_file(path, check_interval=0.02, verify=True)
        async with AsyncPacSpace(provider, base_urls=emu.base_urls, on_auth_error=told.append) as pac:
            stop = asyncio.Event()

            async def agent(n: int) -> None:
                sent = 0
                while not stop.is_set():
                    sent += 1
                    started_in = phase  # which phase's key this call may carry
                    in_flight[started_in] += 1
                    try:
                        await pac.balance.emit(
                            customer_id=f"drill-{n}",
                            delta=Decimal("-0.01"),
                            reason="api_usage",
                            reference_id=f"d{sent}",
                        )
                        done[0] += 1
                    except PacSpaceError:
                        failed[0] += 1
                    finally:
                        in_flight[started_in] -= 1

            agents = [asyncio.ensure_future(agent(n)) for n in range(DRILL_AGENTS)]
            held = await _until(lambda: done[0] >= DRILL_CALLS)
            screen.say(f"  agents emit with {old_id} from {path.name} (KeyProvider.from_file(verify=True))")
            _write_key(path, typo)  # steps 1-3, with a slip: the new key, mistyped, cut over to
            held &= await _until(lambda: bool(told))
            refused = f"{told[0].status} {told[0].code}" if told else "not refused"
            screen.say(
                f"  a mistyped key in the file: probe refused ({refused}), still on {pac.key_id}; "
                f"operator told {len(told)}x (on_auth_error) and {len(log.warnings)} warning logged"
            )
            before = done[0]
            _write_key(path, new)  # the key as the dashboard showed it
            held &= await _until(lambda: pac.key_id == new_id)
            screen.say(f"  the new key {new_id}: probed, accepted, cut over after {done[0] - before} more calls")
            phase = 1  # step 4, confirm: every call that may still carry the old key has finished
            held &= await _until(lambda: in_flight[0] == 0)
            emu.revoke_key(old)  # step 5
            revoked_at = done[0]
            held &= await _until(lambda: done[0] >= revoked_at + DRILL_CALLS)
            screen.say(f"  every call sent with {old_id} had finished; revoked it, agents went on")
            stop.set()
            await asyncio.gather(*agents)
    emits = [r for r in emu.requests if r.key_id in (old_id, new_id) and r.path != PROBE_PATH]
    by_key = Counter(r.key_id for r in emits)
    probes = Counter(r.status for r in emu.requests if r.key_id == new_id and r.path == PROBE_PATH)
    refusals = sum(1 for r in emits if r.status is None or r.status >= 400)
    carried = f"{old_id}: {by_key[old_id]}, {new_id}: {by_key[new_id]}"
    screen.say(
        f"  {len(emits)} calls, {failed[0]} failed; carried by {carried} "
        f"(+{sum(probes.values())} probes: {probes[401]} refused, {probes[200]} accepted)"
    )
    ok = held and failed[0] == 0 and refusals == 0 and len(told) == 1 and len(by_key) == 2
    return Outcome("key rotation drill", f"{len(emits)} calls, {failed[0]} failed; {carried}", ok)


async def _errors(screen: Screen, emu: Any) -> list[Outcome]:
    """What 401, 403 and 429 look like to an agent: the error, its action, the hook."""
    screen.step("What an agent sees on 401, 403 and 429")
    outcomes: list[Outcome] = []
    args: dict[str, Any] = {"customer_id": CUSTOMERS[0], "delta": Decimal("-1"), "reason": "api_usage"}

    async def refused(key: str, expected: type[APIStatusError], label: str) -> None:
        hooked: list[PacSpaceError] = []
        async with AsyncPacSpace(key, base_urls=emu.base_urls, on_auth_error=hooked.append) as pac:
            try:
                await pac.balance.emit(**args)
                error: APIStatusError | None = None
            except expected as caught:
                error = caught
        ok = error is not None and len(hooked) == 1
        if error is not None:
            screen.say(f"  {label}: {type(error).__name__}, action={error.action.name}, hook fired {len(hooked)}x")
            screen.say(f"    {error}")
        outcomes.append(Outcome(label, f"{type(error).__name__ if error else 'no error'}, hook {len(hooked)}x", ok))

    revoked = emu.create_key(Environment.SANDBOX)
    emu.revoke_key(revoked)
    await refused(revoked, AuthenticationError, "401 revoked key")
    await refused(
        emu.create_key(Environment.SANDBOX, permissions={"balance:read"}),
        PermissionDeniedError,
        "403 missing permission",
    )

    emu.rate_limit = float(RATE_LIMIT)  # a burst of RATE_LIMIT requests passes, the next one is refused
    limited = emu.create_key(Environment.SANDBOX)
    async with AsyncPacSpace(limited, base_urls=emu.base_urls, max_retries=0) as impatient:
        caught: RateLimitError | None = None
        for n in range(RATE_LIMIT + 2):
            try:
                await impatient.balance.emit(**args, reference_id=f"burst-{n}")
            except RateLimitError as error:
                caught = error
                break
    if caught is not None:
        wait = "" if caught.retry_after is None else f", retry_after={caught.retry_after:.2f}s"
        screen.say(f"  429 with max_retries=0: {type(caught).__name__}, action={caught.action.name}{wait}")
    # Counted from the emulator's side: what the server answered, whatever the SDK logs about it.
    key_id = limited.split(".", 1)[0]

    def answered_429() -> int:
        return sum(1 for request in emu.requests if request.key_id == key_id and request.status == 429)

    before = answered_429()
    async with AsyncPacSpace(limited, base_urls=emu.base_urls, max_retries=8) as patient:
        storm = await asyncio.gather(*(patient.balance.emit(**args, reference_id=f"storm-{n}") for n in range(STORM)))
    emu.rate_limit = None
    limited_answers = answered_429() - before
    screen.say(
        f"  429 with a client that waits (max_retries=8): {limited_answers} answers were 429, "
        f"waited out, {len(storm)}/{STORM} recorded"
    )
    outcomes.append(
        Outcome(
            "429 rate limit",
            f"RateLimitError, then {limited_answers} 429s waited out",
            caught is not None and len(storm) == STORM,
        )
    )
    return outcomes


def run_demo(out: TextIO, *, emits: int = 500, fault_rate: float = 0.2, plain: bool = False) -> int:
    """Run the demo; 0 when every check held."""
    screen = Screen(out, plain)
    screen.say("pacspace demo: an AI agent's day against the bundled PacSpace emulator")
    started = time.monotonic()
    outcomes = asyncio.run(_day(screen, emits, fault_rate))
    screen.table(outcomes, time.monotonic() - started)
    return 0 if all(outcome.ok for outcome in outcomes) else 1
