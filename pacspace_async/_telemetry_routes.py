"""Which public call a request path belongs to, and its route template: pure, no OpenTelemetry.

Telemetry names spans after the call (``pacspace balance.emit``) and the HTTP attempt after its
route template (``POST /api/v1/balance/delta``), never after the concrete path: a customer id in a
span name or a metric attribute would make one time series per customer. The requester knows
only the concrete path, so the template is looked up here. The table lists every path the
resources send; a test drives each public call and checks none falls back to the generic name.
"""

from __future__ import annotations

import attrs

__all__ = ["Route", "UNKNOWN_ROUTE", "route_of"]


@attrs.frozen
class Route:
    """A call's name (``balance.emit``) and its route template (None when unknown)."""

    operation: str
    template: str | None


#: A path that is not in the table (a newer endpoint, a hand-made request): named by method only.
UNKNOWN_ROUTE = Route("request", None)

_TABLE: tuple[tuple[str, str, str], ...] = (
    ("POST", "/api/v1/balance/delta", "balance.emit"),
    ("POST", "/api/v1/balance/delta/batch", "balance.emit_batch"),
    ("GET", "/api/v1/balance/delta/{recordId}", "balance.status"),
    ("GET", "/api/v1/balance/derive/{customerId}", "balance.derive"),
    ("POST", "/api/v1/balance/compare", "balance.compare"),
    ("GET", "/api/v1/balance/receipt/{customerId}", "balance.receipt"),
    ("GET", "/api/v1/balance/invoice-proof/{customerId}", "balance.invoice_proof"),
    ("GET", "/api/v1/balance/usage", "balance.usage"),
    ("GET", "/api/v1/balance/gaps/{customerId}", "balance.gaps"),
    ("GET", "/api/v1/balance/limits", "balance.limits"),
    ("POST", "/api/v1/balance/checkpoint", "checkpoints.create"),
    ("GET", "/api/v1/balance/checkpoints", "checkpoints.list"),
    ("GET", "/api/v1/balance/customers", "customers.list"),
    ("GET", "/api/v1/balance/customers/summary", "customers.summary"),
    ("GET", "/api/v1/balance/customers/{customerId}", "customers.get"),
    ("GET", "/api/v1/balance/webhooks", "webhook_deliveries.list"),
    ("POST", "/api/v1/balance/webhooks/{eventId}/retry", "webhook_deliveries.retry"),
    ("GET", "/api/v1/verify/{proofRoot}", "verify"),
)


def _segments(template: str) -> tuple[str | None, ...]:
    """A template's segments, a parameter as None (it matches any one non-empty segment)."""
    return tuple(None if part.startswith("{") else part for part in template.split("/"))


def _index() -> dict[tuple[str, int], list[tuple[tuple[str | None, ...], Route]]]:
    index: dict[tuple[str, int], list[tuple[tuple[str | None, ...], Route]]] = {}
    for method, template, operation in _TABLE:
        segments = _segments(template)
        index.setdefault((method, len(segments)), []).append((segments, Route(operation, template)))
    for candidates in index.values():
        # A literal segment beats a parameter: ``customers/summary`` is not customer "summary".
        candidates.sort(key=lambda item: sum(part is None for part in item[0]))
    return index


_INDEX = _index()


def route_of(method: str, path: str) -> Route:
    """The route a request of `method` to `path` (no query) belongs to, or `UNKNOWN_ROUTE`.

    >>> route_of("GET", "/api/v1/balance/derive/cust_1").template
    '/api/v1/balance/derive/{customerId}'
    """
    parts = path.split("/")
    for segments, route in _INDEX.get((method, len(parts)), ()):
        pairs = zip(parts, segments, strict=True)
        if all(part == expected if expected is not None else part != "" for part, expected in pairs):
            return route
    return UNKNOWN_ROUTE
