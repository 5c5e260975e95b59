"""Small helpers shared by the policy tests."""

from __future__ import annotations

from typing import Any

from pacspace_async.testing import Emulator

DELTA_PATH = "/api/v1/balance/delta"
VERIFY = {"proof_root": "0x" + "00" * 32}  # a read that answers on an empty ledger
POLICY_CODES = frozenset(
    {
        "POLICY_TOOL_NOT_ALLOWED",
        "POLICY_CUSTOMER_NOT_ALLOWED",
        "POLICY_DELTA_TOO_LARGE",
        "POLICY_TOTAL_EXCEEDED",
        "APPROVAL_DENIED",
        "APPROVAL_REQUIRED",
    }
)


def emit(reference: str, delta: str = "-10", customer: str = "cust_1") -> dict[str, Any]:
    """The arguments of one emit."""
    return {"customer_id": customer, "delta": delta, "reason": "usage", "reference_id": reference}


def code(result: dict[str, Any]) -> str | None:
    """The error code of a tool result (None when it succeeded)."""
    return None if result["ok"] else str(result["error"]["code"])


def emits_sent(emu: Emulator) -> int:
    """Emit requests that reached the emulator."""
    return sum(1 for r in emu.requests if r.method == "POST" and r.path == DELTA_PATH)
