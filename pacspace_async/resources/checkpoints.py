"""``pac.checkpoints``: commit one proof root over a scope's verified deltas, and list them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._models import structure
from ..models.checkpoints import Checkpoint
from ..pagination import AsyncPaginator, PageCursor
from ._args import count_arg, customer_id_arg, text_arg, text_list_arg
from ._base import AsyncAPIResource, call_options
from ._scope import DateLike, PeriodLike, Scope

__all__ = ["AsyncCheckpoints"]


def _checkpoint(data: Any) -> Any:
    # Older answers name the root merkleRoot or itemsRoot.
    if isinstance(data, Mapping) and "proofRoot" not in data:
        for alias in ("merkleRoot", "itemsRoot"):
            if alias in data:
                return {**data, "proofRoot": data[alias]}
    return data


class AsyncCheckpoints(AsyncAPIResource):
    async def create(
        self,
        *,
        customer_id: str | None = None,
        period: PeriodLike | None = None,
        time_preset: str | None = None,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        mode: str | None = None,
        fingerprints: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Checkpoint:
        """Commit a checkpoint (``POST /api/v1/balance/checkpoint``).

        Without `customer_id`, every active customer of the window; without a scope, the
        current month. The same scope twice gives the same checkpoint.

        >>> chk = await pac.checkpoints.create(customer_id="cust_1", period="2026-11")
        """
        scope = Scope.check(period=period, time_preset=time_preset, start_date=start_date, end_date=end_date)
        body: dict[str, Any] = dict(scope.wire())
        if customer_id is not None:
            body["customerId"] = customer_id_arg(customer_id)
        if mode is not None:
            body["mode"] = text_arg("mode", mode)
        if fingerprints is not None:
            body["fingerprints"] = text_list_arg("fingerprints", fingerprints)
        options = call_options(timeout, max_retries, extra_headers, idempotency_key)
        response = await self._post("/api/v1/balance/checkpoint", options, body=body, operation="balance.checkpoint")
        return structure(_checkpoint(response.data), Checkpoint, of=response)

    def list(
        self,
        *,
        customer_id: str | None = None,
        period: PeriodLike | None = None,
        time_preset: str | None = None,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        limit: int = 50,
        offset: int = 0,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> AsyncPaginator[Checkpoint]:
        """Checkpoints, newest first (``GET /api/v1/balance/checkpoints``).

        >>> async for chk in pac.checkpoints.list(customer_id="cust_1"):
        ...     print(chk.checkpoint_id, chk.proof_root)
        """
        scope = Scope.check(period=period, time_preset=time_preset, start_date=start_date, end_date=end_date)
        query: dict[str, object] = dict(scope.wire())
        if customer_id is not None:
            query["customerId"] = customer_id_arg(customer_id)
        return self._paginate(
            "/api/v1/balance/checkpoints",
            call_options(timeout, max_retries, extra_headers),
            query=query,
            first=PageCursor(limit=count_arg("limit", limit, positive=True), offset=count_arg("offset", offset)),
            item_keys=("checkpoints", "items"),
            model=Checkpoint,
            prepare=_checkpoint,
        )
