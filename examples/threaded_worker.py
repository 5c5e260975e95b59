"""A threaded worker: a pool of threads bills usage events through the blocking client's tools.

    python examples/threaded_worker.py

No network, no account: the emulator runs in a thread of this process, with 25 % of requests
failing on purpose (5xx answers, connections dropped before or after the write, slow answers).

One `pacspace_sync.PacSpace` is shared by every thread (it is thread-safe: all calls hop to its
own event-loop thread and share one connection pool). Each event is billed with
``pacspace_sync.tools.call_tool(pac, "pacspace_emit_delta", ..., policy=POLICY)``, the same tool
an agent uses (the policy lets it emit, at most 10 per event: without one the tools are
read-only), and the worker acts on the result's ``action`` the way an agent framework would: ``retry`` and
``wait_and_retry`` send the very same arguments again (same ``reference_id``), ``fix_input`` and
``alert_operator`` stop. Retries are safe because the reference id makes every emit idempotent:
at the end the ledger holds exactly one delta per event, and every customer's balance matches.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from pacspace_async.testing import Emulator, Faults
from pacspace_sync import PacSpace
from pacspace_sync.tools import ToolCallRecord, ToolPolicy, call_tool

CUSTOMERS = ("cust_north", "cust_south", "cust_east")
EVENTS: list[dict[str, Any]] = [
    {
        "customer_id": CUSTOMERS[n % len(CUSTOMERS)],
        "delta": str(-Decimal(n % 7 + 1) * Decimal("1.25")),
        "reason": "api_usage",
        "reference_id": f"usage-2026-11-28-{n:04d}",
        "metadata": {"worker_job": n},
    }
    for n in range(60)
]

attempts: Counter[str] = Counter()
audited: Counter[str] = Counter()
_lock = threading.Lock()


def audit(record: ToolCallRecord) -> None:
    """One audit record per tool call, allowed, refused or failed (here: counted)."""
    with _lock:
        audited[record.outcome] += 1


# One policy for the whole pool: it may emit (no single event above 10) and read, nothing else.
POLICY = ToolPolicy(allow=("read", "pacspace_emit_delta"), max_abs_delta=Decimal("10"), on_tool_call=audit)


def call_with_retries(pac: PacSpace, name: str, arguments: dict[str, Any], *, tries: int = 10) -> dict[str, Any]:
    """Run one tool call, acting on each failure's action; the arguments never change."""
    result: dict[str, Any] = {}
    for attempt in range(tries):
        result = call_tool(pac, name, arguments, policy=POLICY)
        with _lock:
            attempts["calls"] += 1
        if result["ok"]:
            return result
        error = result["error"]
        with _lock:
            attempts[error["action"]] += 1
        if error["action"] == "retry":
            time.sleep(min(0.5, 0.02 * 2**attempt))
        elif error["action"] == "wait_and_retry":
            time.sleep(error["retry_after"] or 1.0)
        else:  # fix_input, alert_operator: retrying the same call cannot help
            return result
    return result


def bill(pac: PacSpace, event: dict[str, Any]) -> dict[str, Any]:
    return call_with_retries(pac, "pacspace_emit_delta", event)


def main() -> int:
    faults = Faults(rate=0.25, seed=7, slow_seconds=0.02)
    with Emulator(faults=faults, verify_delay=0.05) as emu:  # served from its own thread
        key = emu.create_key("sandbox")
        # max_retries=0 hands every failure to the worker, to show what it does with each one;
        # in production keep the SDK's own retries (the default, 2) and this loop on top.
        with PacSpace(key, base_urls=emu.base_urls, max_retries=0) as pac:
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=4, thread_name_prefix="billing") as pool:
                results = list(pool.map(lambda event: bill(pac, event), EVENTS))
            elapsed = time.perf_counter() - started
            failed = [r for r in results if not r["ok"]]
            print(
                f"billed {len(EVENTS) - len(failed)}/{len(EVENTS)} events with 4 threads in {elapsed:.2f}s: "
                f"{attempts['calls']} tool calls, {attempts['retry']} retried after a fault"
                + (f", {attempts['wait_and_retry']} waited out" if attempts["wait_and_retry"] else "")
            )
            for result in failed:
                print(f"  not billed: {result['error']['action']}: {result['error']['message']}")

            emu.faults = None  # the faults were for the writes; read the balances plainly
            emu.settle()  # finish verification now instead of waiting for it
            mismatches = 0
            for customer in CUSTOMERS:
                sent = sum((Decimal(e["delta"]) for e in EVENTS if e["customer_id"] == customer), Decimal(0))
                derived = call_with_retries(pac, "pacspace_derive_balance", {"customer_id": customer})
                balance = Decimal(derived["result"]["computed_balance"])
                mismatches += balance != sent
                print(f"  {customer}: ledger {balance:.2f}, sent {sent:.2f}: {'ok' if balance == sent else 'MISMATCH'}")
        ledger = emu.deltas()
        drops = sum(1 for r in emu.requests if r.fault == "drop_after_write")
    references = Counter(d.reference_id for d in ledger)
    records = sum(audited.values())
    print(
        f"audit: {records} records for {attempts['calls']} tool calls"
        + (", one per call" if records == attempts["calls"] else "")
        + f" ({', '.join(f'{n} {outcome}' for outcome, n in sorted(audited.items()))})"
    )
    print(
        f"ledger: {len(ledger)} deltas for {len(EVENTS)} events, "
        f"{drops} writes whose answer was lost, none counted twice"
    )
    if (
        failed
        or mismatches
        or len(ledger) != len(EVENTS)
        or max(references.values()) != 1
        or records != attempts["calls"]
    ):
        print("FAILED: every event should be recorded exactly once", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
