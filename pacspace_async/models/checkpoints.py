"""Checkpoints: one proof root over every verified delta of a scope."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from .._models import local_field, raw_field

__all__ = ["Checkpoint"]


@attrs.frozen
class Checkpoint:
    checkpoint_id: str
    status: str | None = None
    customer_id: str | None = None
    period: str | None = None
    proof_root: str | None = None
    created_at: datetime | None = None
    idempotency_key: str | None = local_field()
    raw: Mapping[str, Any] = raw_field()
