"""Webhook deliveries PacSpace attempted, as listed with an API key."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from .._models import raw_field

__all__ = ["WebhookDelivery"]


@attrs.frozen
class WebhookDelivery:
    """One delivery. The wire shape is undocumented: known names are typed, all is in raw."""

    event_id: str | None = None
    event: str | None = None
    status: str | None = None
    attempts: int | None = None
    url: str | None = None
    created_at: datetime | None = None
    last_attempt_at: datetime | None = None
    raw: Mapping[str, Any] = raw_field()
