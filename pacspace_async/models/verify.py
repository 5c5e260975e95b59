"""Public proof verification results."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from .._models import raw_field

__all__ = ["ProofVerification", "VerificationSummary"]


@attrs.frozen
class VerificationSummary:
    record_count: int | None = None
    net_change: Decimal | None = None
    starting_balance: Decimal | None = None
    ending_balance: Decimal | None = None
    first_record_at: datetime | None = None
    last_record_at: datetime | None = None
    raw: Mapping[str, Any] = raw_field()


@attrs.frozen
class ProofVerification:
    """What ``GET /api/v1/verify/{proofRoot}`` says about a proof root. Needs no key."""

    verified: bool
    proof_root: str | None = None
    recorded_at: datetime | None = None
    summary: VerificationSummary | None = None
    records: tuple[Mapping[str, Any], ...] = ()
    verification: Mapping[str, Any] | None = None
    message: str | None = None
    raw: Mapping[str, Any] = raw_field()
