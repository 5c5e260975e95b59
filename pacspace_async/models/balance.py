"""Balance deltas as PacSpace records them."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from .._models import local_field, raw_field

__all__ = ["DeltaRecord", "DeltaStatus"]


class DeltaStatus(str, enum.Enum):
    """The lifecycle of a delta. Models keep the server's string, known or not:
    compare with ``record.status == DeltaStatus.VERIFIED``."""

    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    VERIFIED = "VERIFIED"
    FAILED = "FAILED"


FINAL_STATUSES = frozenset({DeltaStatus.VERIFIED.value, DeltaStatus.FAILED.value})


@attrs.frozen
class DeltaRecord:
    """One recorded delta. `idempotency_key` is the key this SDK sent for it."""

    record_id: str
    status: str
    receipt_id: str | None = None
    customer_id: str | None = None
    delta: Decimal | None = None
    reason: str | None = None
    reference_id: str | None = None
    idempotency_key: str | None = local_field()
    raw: Mapping[str, Any] = raw_field()

    @property
    def is_final(self) -> bool:
        """VERIFIED or FAILED (case-insensitive): nothing more will happen to it."""
        return self.status.upper() in FINAL_STATUSES
