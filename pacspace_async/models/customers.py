"""Customers as the Balance API sees them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from .._models import raw_field

__all__ = ["CustomerListItem", "Customer", "CustomersSummary"]


@attrs.frozen
class CustomerListItem:
    customer_id: str
    ledger_identifier: str | None = None
    total_deltas: int | None = None
    first_delta_at: datetime | None = None
    last_delta_at: datetime | None = None
    raw: Mapping[str, Any] = raw_field()


@attrs.frozen
class Customer:
    """One customer with its balance and a page of recent activity."""

    customer_id: str
    customer_reference: str | None = None
    customer_partition: str | None = None
    total_deltas: int | None = None
    computed_balance: Decimal | None = None
    latest_checkpoint: Mapping[str, Any] | None = None
    recent_activity: Mapping[str, Any] | None = None
    raw: Mapping[str, Any] = raw_field()


@attrs.frozen
class CustomersSummary:
    """Aggregate counts across customers (fields undocumented: everything is in raw)."""

    total_customers: int | None = None
    total_deltas: int | None = None
    raw: Mapping[str, Any] = raw_field()
