"""``pac.balance``: record balance deltas and follow them to verification."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from .._models import structure
from ..models.balance import DeltaRecord
from ._args import amount_arg, customer_id_arg, mapping_arg, text_arg
from ._base import AsyncAPIResource

__all__ = ["AsyncBalance"]


class AsyncBalance(AsyncAPIResource):
    async def emit(
        self,
        *,
        customer_id: str,
        delta: Decimal | int | str,
        reason: str,
        reference_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        adjusts: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> DeltaRecord:
        """Record a balance delta (``POST /api/v1/balance/delta``).

        With `reference_id`, the idempotency key is derived from it: emitting the same
        business event twice, even from a restarted process, records it once.

        >>> rec = await pac.balance.emit(customer_id="cust_1", delta=Decimal("-42.50"),
        ...                              reason="usage", reference_id="inv_1")
        """
        body: dict[str, Any] = {
            "customerId": customer_id_arg(customer_id),
            "delta": amount_arg("delta", delta, nonzero=True),
            "reason": text_arg("reason", reason, max_length=500),
        }
        if reference_id is not None:
            body["referenceId"] = text_arg("reference_id", reference_id)
        if metadata is not None:
            body["metadata"] = mapping_arg("metadata", metadata)
        if adjusts is not None:
            body["adjusts"] = mapping_arg("adjusts", adjusts)
        key = self._requester.idempotency_key_for(
            caller_key=idempotency_key, reference=reference_id, operation="balance.delta"
        )
        response = await self._requester.request(
            "POST",
            "/api/v1/balance/delta",
            json=body,
            idempotency_key=key,
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
        )
        return attrs.evolve(structure(response.data, DeltaRecord), idempotency_key=key)
