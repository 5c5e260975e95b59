"""The API's surface: each route's method, path template, the permission it needs, its handler."""

from __future__ import annotations

import attrs
from aiohttp import web

from . import _handlers as h

__all__ = ["ROUTES", "Route", "route_of"]


@attrs.frozen
class Route:
    method: str
    template: str
    permission: str | None  # None: a public route, no key needed
    handler: h.Handler

    @property
    def resource(self) -> str:
        return f"{self.method} {self.template}"


ROUTES: tuple[Route, ...] = (
    Route("POST", "/api/v1/balance/delta", "balance:write", h.emit),
    Route("POST", "/api/v1/balance/delta/batch", "balance:write", h.emit_batch),
    Route("GET", "/api/v1/balance/delta/{recordId}", "balance:read", h.status),
    Route("GET", "/api/v1/balance/derive/{customerId}", "balance:read", h.derive_balance),
    Route("POST", "/api/v1/balance/compare", "balance:read", h.compare_balances),
    Route("GET", "/api/v1/balance/gaps/{customerId}", "balance:read", h.find_gaps),
    Route("POST", "/api/v1/balance/checkpoint", "checkpoints:write", h.checkpoint),
    Route("GET", "/api/v1/balance/checkpoints", "checkpoints:read", h.checkpoints),
    Route("GET", "/api/v1/balance/receipt/{customerId}", "receipts:read", h.scoped_receipt),
    Route("GET", "/api/v1/balance/invoice-proof/{customerId}", "receipts:read", h.scoped_receipt),
    Route("GET", "/api/v1/balance/usage", "usage:read", h.plan_usage),
    Route("GET", "/api/v1/balance/limits", "usage:read", h.limits),
    Route("GET", "/api/v1/balance/customers", "customers:read", h.customer_list),
    Route("GET", "/api/v1/balance/customers/summary", "customers:read", h.customer_summary),
    Route("GET", "/api/v1/balance/customers/{customerId}", "customers:read", h.customer),
    Route("GET", "/api/v1/balance/webhooks", "webhooks:read", h.deliveries),
    Route("POST", "/api/v1/balance/webhooks/{eventId}/retry", "webhooks:write", h.retry_delivery),
    Route("GET", "/api/v1/verify/{proofRoot}", None, h.public_verify),
)

_BY_RESOURCE = {(route.method, route.template): route for route in ROUTES}


def route_of(request: web.Request) -> Route | None:
    """The API route aiohttp matched for `request`; None for the catch-all that answers 404."""
    resource = request.match_info.route.resource
    if resource is None:
        return None
    return _BY_RESOURCE.get((request.method, resource.canonical))
