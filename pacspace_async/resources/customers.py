"""``pac.customers``: the customers PacSpace holds deltas for."""

from __future__ import annotations

from collections.abc import Mapping

from .._models import structure
from ..models.customers import Customer, CustomerListItem, CustomersSummary
from ..pagination import AsyncPaginator, PageCursor
from ._args import count_arg, customer_segment, text_arg
from ._base import AsyncAPIResource, call_options
from ._scope import PeriodLike, period_text

__all__ = ["AsyncCustomers"]


class AsyncCustomers(AsyncAPIResource):
    def list(
        self,
        *,
        search: str | None = None,
        limit: int = 25,
        page: int = 1,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> AsyncPaginator[CustomerListItem]:
        """Customers, optionally filtered by id (``GET /api/v1/balance/customers``).

        >>> async for customer in pac.customers.list(search="acme"):
        ...     print(customer.customer_id, customer.total_deltas)
        """
        return self._paginate(
            "/api/v1/balance/customers",
            call_options(timeout, max_retries, extra_headers),
            query={"search": None if search is None else text_arg("search", search)},
            first=PageCursor(
                limit=count_arg("limit", limit, positive=True, maximum=100), page=count_arg("page", page, positive=True)
            ),
            item_keys=("customers", "items"),
            model=CustomerListItem,
        )

    async def get(
        self,
        customer_id: str,
        *,
        delta_page: int | None = None,
        delta_limit: int | None = None,
        period: PeriodLike | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Customer:
        """One customer with balance and recent activity (``GET /api/v1/balance/customers/{id}``)."""
        query = {
            "deltaPage": None if delta_page is None else count_arg("delta_page", delta_page, positive=True),
            "deltaLimit": None if delta_limit is None else count_arg("delta_limit", delta_limit, positive=True),
            "period": None if period is None else period_text(period),
        }
        path = f"/api/v1/balance/customers/{customer_segment(customer_id)}"
        response = await self._get(path, call_options(timeout, max_retries, extra_headers), query=query)
        return structure(response.data, Customer, of=response)

    async def summary(
        self,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> CustomersSummary:
        """Aggregate counts across customers (``GET /api/v1/balance/customers/summary``)."""
        response = await self._get(
            "/api/v1/balance/customers/summary", call_options(timeout, max_retries, extra_headers)
        )
        return structure(response.data, CustomersSummary, of=response)
