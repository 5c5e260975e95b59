"""The tools as written for a model: which SDK method each one calls and the sentences about it.

Types, required-ness and defaults are not written here: the registry derives them from the
method signatures (`_registry`). Only words, and the constraints the SDK checks anyway (so the
model learns them from the schema instead of from a refusal), live in this module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from ..resources._args import (
    CUSTOMER_ID_PATTERN,
    MAX_CUSTOMER_ID_LENGTH,
    MAX_DELTA,
    MAX_REASON_LENGTH,
    MAX_REFERENCE_ID_LENGTH,
)
from ..resources._scope import GRANULARITIES, PERIOD_PATTERN, TIME_PRESETS
from ..resources.balance import MAX_DERIVE_LIMIT, AsyncBalance
from ..resources.checkpoints import AsyncCheckpoints
from ..resources.verify import VERIFY_SOURCES, AsyncVerification

__all__ = [
    "CHOICES",
    "CONSTRAINTS",
    "MONEY_LIMIT",
    "MONEY_PATTERN",
    "NONZERO_MONEY_PATTERN",
    "PARAMETERS",
    "SPECS",
    "Spec",
    "TEXT_PATTERN",
    "TRANSPORT_OPTIONS",
]

TRANSPORT_OPTIONS = frozenset({"timeout", "max_retries", "extra_headers", "idempotency_key"})
"""Per-call options of every SDK method that are the host's business, never the model's."""

# The SDK refuses amounts beyond ±MAX_DELTA (and a zero delta): the patterns say so to the model.
# A JSON Schema for strict-mode hosts cannot use `not`, so the bounds are written into the regex.
# Written with [0-9], not \d: JSON Schema patterns are ECMA-262 regexes.
MONEY_LIMIT = int(MAX_DELTA)
_LIMIT_DIGITS = len(str(MONEY_LIMIT)) - 1  # 9: every number of up to 9 integer digits is within the limit
_AT_LIMIT = rf"{MONEY_LIMIT}(\.0+)?"
MONEY_PATTERN = rf"^[+-]?0*([0-9]{{1,{_LIMIT_DIGITS}}}(\.[0-9]+)?|{_AT_LIMIT})$"
NONZERO_MONEY_PATTERN = rf"^[+-]?0*([1-9][0-9]{{0,{_LIMIT_DIGITS - 1}}}(\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*|{_AT_LIMIT})$"

# Text the SDK takes must hold something besides whitespace (it strips before checking).
TEXT_PATTERN = r"\S"


@attrs.frozen
class Spec:
    """One tool: which SDK method it calls and the words a model reads about it."""

    name: str
    title: str
    target: tuple[str, ...]  # attribute path from the client: ("balance", "emit")
    function: Callable[..., Any]  # the async method whose signature defines the schema
    description: str
    read_only: bool
    idempotent: bool = True
    keep: frozenset[str] = frozenset()  # transport-named parameters that mean something else here
    drop: frozenset[str] = frozenset()  # parameters the model should not set
    require: frozenset[str] = frozenset()  # optional in Python, required of the model
    notes: Mapping[str, str] = attrs.field(factory=dict)  # per-tool parameter descriptions


_MONEY_NOTE = 'Send a decimal string such as "-42.50", not a float, so the amount stays exact.'

# Per-parameter sentences for the model, shared by every tool that has the parameter. Types,
# required-ness and defaults are not written here: they come from the method signatures.
PARAMETERS: Mapping[str, str] = {
    "customer_id": "The customer's id in your system: 1-128 letters, digits, '_', '-', '.' or ':'.",
    "delta": (
        "The amount of the change: negative for usage or a charge, positive for a credit or a top-up; "
        f"never zero. {_MONEY_NOTE}"
    ),
    "reason": 'Why the balance changes, e.g. "usage", "refund", "top_up" (at most 500 characters).',
    "reference_id": (
        "Your unique id for this business event (an invoice line, a usage event id). When you retry this "
        "call for any reason (an error, a timeout, no answer), send the SAME reference_id and the same "
        "arguments: the delta is then recorded once, however many times it is sent. Use a new "
        "reference_id for every new event."
    ),
    "metadata": 'Optional JSON object stored with the delta, e.g. {"plan": "growth"}. No secrets.',
    "adjusts": 'Optional link to the earlier delta this one corrects, e.g. {"referenceId": "inv_0"}.',
    "record_id": "The record_id returned by pacspace_emit_delta (it starts with rec_).",
    "timeout": "Seconds to wait in total before giving up; the delta stays recorded either way.",
    "poll_interval": "Seconds between the first status checks; the interval grows by half after each check.",
    "period": 'A UTC month as "YYYY-MM", e.g. "2026-11". Do not combine with time_preset, start_date or end_date.',
    "time_preset": '"current_month", or "custom" together with both start_date and end_date.',
    "start_date": 'Start of the window, ISO 8601 in UTC, e.g. "2026-11-01T00:00:00Z". Needs end_date.',
    "end_date": 'End of the window (exclusive), ISO 8601 in UTC, e.g. "2026-12-01T00:00:00Z". Needs start_date.',
    "granularity": "Size of the buckets of the breakdown: day, week or month.",
    "starting_balance": f"The balance before the window starts. {_MONEY_NOTE}",
    "starting_checkpoint": (
        "Start from this checkpoint's proof root instead of a window (then give no period, time_preset or dates)."
    ),
    "starting_checkpoint_type": 'What starting_checkpoint is, e.g. "proofRoot". Needs starting_checkpoint.',
    "limit": "At most this many deltas listed in the result.",
    "offset": "Skip this many deltas of the list (to page through a long one).",
    "your_balance": f"The balance according to your records. {_MONEY_NOTE}",
    "their_balance": f"The balance according to the counterparty. {_MONEY_NOTE}",
    "proof_root": (
        "The proof root to verify (0x followed by 64 hex digits): a receipt's or a checkpoint's proof_root, "
        "or a delta's receipt_id."
    ),
    "source": 'Where to check: "db", "chain" or "both".',
}

# Extra JSON Schema constraints, mirroring checks the SDK makes anyway (so the model learns them
# from the schema instead of from a refusal).
CONSTRAINTS: Mapping[str, Mapping[str, Any]] = {
    "customer_id": {"pattern": f"^{CUSTOMER_ID_PATTERN.pattern}$", "maxLength": MAX_CUSTOMER_ID_LENGTH},
    "delta": {"pattern": NONZERO_MONEY_PATTERN},
    "reason": {"maxLength": MAX_REASON_LENGTH},
    "reference_id": {"maxLength": MAX_REFERENCE_ID_LENGTH},
    "period": {"pattern": "^" + PERIOD_PATTERN.pattern.replace("\\d", "[0-9]") + "$"},
    "limit": {"minimum": 1, "maximum": MAX_DERIVE_LIMIT},
    "offset": {"minimum": 0},
    # No maximum: the SDK takes any wait; a schema bound the method does not check would be a
    # second, different gate.
    "timeout": {"exclusiveMinimum": 0},
    "poll_interval": {"exclusiveMinimum": 0},
}

# Parameters typed `str` whose values are one of the SDK's known choices.
CHOICES: Mapping[str, Sequence[str]] = {
    "time_preset": TIME_PRESETS,
    "granularity": GRANULARITIES,
    "source": VERIFY_SOURCES,
}

SPECS: tuple[Spec, ...] = (
    Spec(
        name="pacspace_emit_delta",
        title="Record a balance delta",
        target=("balance", "emit"),
        function=AsyncBalance.emit,
        description=(
            "Record a change to a customer's balance (a delta) in the PacSpace ledger: negative for usage or "
            "a charge, positive for a credit or a top-up. Returns the record_id and its status, QUEUED until "
            "PacSpace verifies it. Safe to retry: sending the same reference_id again never counts twice."
        ),
        read_only=False,
        require=frozenset({"reference_id"}),
    ),
    Spec(
        name="pacspace_delta_status",
        title="Check a delta's status",
        target=("balance", "status"),
        function=AsyncBalance.status,
        description=(
            "Look up the current status of a recorded delta by its record_id: QUEUED, PROCESSING, VERIFIED "
            "or FAILED. Returns at once; use pacspace_wait_for_verified to wait for the final status."
        ),
        read_only=True,
    ),
    Spec(
        name="pacspace_wait_for_verified",
        title="Wait until a delta is verified",
        target=("balance", "wait_for_verified"),
        function=AsyncBalance.wait_for_verified,
        description=(
            "Wait until a recorded delta is VERIFIED or FAILED and return it with its receipt_id (its proof). "
            "If the wait times out (action wait_and_retry), the delta is still recorded: call again later."
        ),
        read_only=True,
        keep=frozenset({"timeout"}),  # here it bounds the whole wait, not one request
        drop=frozenset({"max_poll_interval"}),
    ),
    Spec(
        name="pacspace_derive_balance",
        title="Derive a customer's balance",
        target=("balance", "derive"),
        function=AsyncBalance.derive,
        description=(
            "Recompute a customer's balance from the deltas recorded in PacSpace over a window (by default "
            "the current UTC month). Use it to state a balance from the ledger rather than from memory."
        ),
        read_only=True,
    ),
    Spec(
        name="pacspace_compare_balances",
        title="Compare two balances with the ledger",
        target=("balance", "compare"),
        function=AsyncBalance.compare,
        description=(
            "Compare your balance and a counterparty's balance for one customer with the neutral balance "
            "PacSpace computes from the ledger, and say which of the two matches. Use it to settle a dispute."
        ),
        read_only=True,
    ),
    Spec(
        name="pacspace_create_checkpoint",
        title="Create a checkpoint",
        target=("checkpoints", "create"),
        function=AsyncCheckpoints.create,
        description=(
            "Commit a checkpoint: one proof root over every verified delta of a window (by default the "
            "current UTC month), for one customer or, without customer_id, for all. The same window twice "
            "gives the same checkpoint. Use it when closing a period."
        ),
        read_only=False,
        drop=frozenset({"mode", "fingerprints"}),  # undocumented selection modes
    ),
    Spec(
        name="pacspace_get_receipt",
        title="Fetch a customer's receipt",
        target=("balance", "receipt"),
        function=AsyncBalance.receipt,
        description=(
            "Fetch a customer's receipt for a window (by default the current UTC month): final balance, "
            "number of deltas, proof root and the links a customer can use to verify it."
        ),
        read_only=True,
    ),
    Spec(
        name="pacspace_verify_proof",
        title="Verify a proof root",
        target=("verify",),
        function=AsyncVerification.verify,  # what AsyncPacSpace.verify forwards to
        description=(
            "Check publicly whether a proof root is verified: a receipt's or checkpoint's proof_root, or a "
            "delta's receipt_id. Needs no API key. Returns verified true/false with a summary of the records."
        ),
        read_only=True,
        drop=frozenset({"environment"}),  # the client's environment decides
    ),
)
