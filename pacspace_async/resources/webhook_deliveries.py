"""``pac.webhook_deliveries``: the deliveries PacSpace attempted, and re-sending one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._models import structure
from ..models.webhook_deliveries import WebhookDelivery
from ..pagination import AsyncPaginator, PageCursor
from ._args import count_arg, path_segment, text_arg
from ._base import AsyncAPIResource, call_options

__all__ = ["AsyncWebhookDeliveries"]


def _delivery(data: Any) -> Any:
    # The shape is undocumented; accept the names seen for the event id.
    if isinstance(data, Mapping) and "eventId" not in data:
        for alias in ("id", "deliveryId"):
            if isinstance(data.get(alias), str):
                return {**data, "eventId": data[alias]}
    return data


class AsyncWebhookDeliveries(AsyncAPIResource):
    def list(
        self,
        *,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> AsyncPaginator[WebhookDelivery]:
        """Webhook deliveries, optionally by status (``GET /api/v1/balance/webhooks``).

        >>> async for delivery in pac.webhook_deliveries.list(status="failed"):
        ...     await pac.webhook_deliveries.retry(delivery.event_id)
        """
        return self._paginate(
            "/api/v1/balance/webhooks",
            call_options(timeout, max_retries, extra_headers),
            query={"status": None if status is None else text_arg("status", status)},
            first=PageCursor(limit=count_arg("limit", limit, positive=True), offset=count_arg("offset", offset)),
            item_keys=("deliveries", "webhooks", "events", "items"),
            model=WebhookDelivery,
            prepare=_delivery,
        )

    async def retry(
        self,
        event_id: str,
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> WebhookDelivery:
        """Send a delivery again (``POST /api/v1/balance/webhooks/{eventId}/retry``)."""
        response = await self._post(
            f"/api/v1/balance/webhooks/{path_segment('event_id', event_id)}/retry",
            call_options(timeout, max_retries, extra_headers, idempotency_key),
            body={},
            operation="balance.webhooks.retry",
        )
        data = response.data if isinstance(response.data, Mapping) else {}
        return structure(_delivery({"eventId": event_id, **data}), WebhookDelivery, of=response)
