"""``pac.balance``: record balance deltas, follow them to verification, derive and prove balances."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import attrs

from .._errors import IdempotencyConflictError, InvalidArgumentError
from .._models import structure
from ..models.balance import (
    BalanceComparison,
    BatchResult,
    DeltaInput,
    DeltaRecord,
    DerivedBalance,
    Receipt,
    ScopeLimits,
    SequenceGaps,
    Usage,
)
from ._args import amount_arg, count_arg, customer_id_arg, customer_segment, ordered_args, path_segment, seconds_arg
from ._base import AsyncAPIResource, CallOptions, call_options
from ._batch import BATCH_LIMIT, batch_item, send_batch
from ._deltas import delta_body, reference_conflict
from ._polling import until_final
from ._scope import DateLike, PeriodLike, Scope

__all__ = ["AsyncBalance", "BATCH_LIMIT"]

MAX_DERIVE_LIMIT = 1000
_RECEIPT_LINKS = ("verifyUrl", "verificationApiUrl", "accessHint", "customerLinkUrl", "customerLinkHost")


class AsyncBalance(AsyncAPIResource):
    # --- writing ----------------------------------------------------------------------------

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

        With `reference_id`, the idempotency key is derived from it and the customer: emitting
        the same business event twice, even from a restarted process, records it once. The
        second answer is PacSpace's first one again, with ``rec.replayed`` True; its `status`
        is the first answer's (``await pac.balance.status(rec.record_id)`` gives today's).
        The same `reference_id` with other content raises `IdempotencyConflictError`.

        >>> rec = await pac.balance.emit(customer_id="cust_1", delta=Decimal("-42.50"),
        ...                              reason="usage", reference_id="inv_1")
        """
        body = delta_body(
            customer_id=customer_id,
            delta=delta,
            reason=reason,
            reference_id=reference_id,
            metadata=metadata,
            adjusts=adjusts,
        )
        # Not split into a helper shared with emit_and_wait: emit is the hot path, and every
        # frame in its await chain costs on each of its suspensions.
        options = call_options(timeout, max_retries, extra_headers, idempotency_key)
        try:
            response = await self._post(
                "/api/v1/balance/delta",
                options,
                body=body,
                operation="balance.delta",
                reference=reference_id,
                scope=body["customerId"],
            )
        except IdempotencyConflictError as error:
            if idempotency_key is not None or reference_id is None:
                raise  # the caller's own key: the server's words are about what the caller did
            raise reference_conflict(error, reference_id=reference_id, customer_id=body["customerId"]) from None
        return structure(response.data, DeltaRecord, of=response)

    async def emit_batch(
        self,
        items: Sequence[DeltaInput | Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> BatchResult:
        """Record many deltas, up to 100 per request (``POST /api/v1/balance/delta/batch``).

        Every item is checked before anything is sent. Results come back in your order
        (`results[i].index == i`); an item PacSpace answers from its idempotency memory (already
        recorded, or the same items sent again) has ``replayed`` True, and `result.replayed`
        counts them. A replayed item's `status` is the one first answered.
        If a request fails, earlier requests stay recorded and its error is raised as a
        `BatchError` too (still the same `RateLimitError`, `APIConnectionError`, ...), with
        `error.batch_progress`, the results confirmed so far: give every item a
        `reference_id` and call again with the same items to finish safely.

        >>> result = await pac.balance.emit_batch([
        ...     DeltaInput(customer_id="cust_1", delta=Decimal("-1"), reason="usage", reference_id="u1"),
        ... ])
        """
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Sequence) or not items:
            raise InvalidArgumentError("emit_batch needs a non-empty list of DeltaInput items")
        bodies = [batch_item(index, item) for index, item in enumerate(items)]
        options = call_options(timeout, max_retries, extra_headers, idempotency_key)
        return await send_batch(self._post, bodies, options)

    # --- following a delta ------------------------------------------------------------------

    async def status(
        self,
        record_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> DeltaRecord:
        """A delta's current status (``GET /api/v1/balance/delta/{recordId}``)."""
        return await self._status(record_id, call_options(timeout, max_retries, extra_headers))

    async def _status(self, record_id: str, options: CallOptions, deadline: float | None = None) -> DeltaRecord:
        response = await self._get(
            f"/api/v1/balance/delta/{path_segment('record_id', record_id)}", options, deadline=deadline
        )
        return structure(response.data, DeltaRecord, of=response)

    async def wait_for_verified(
        self,
        record_id: str,
        *,
        timeout: float = 60.0,
        poll_interval: float = 2.0,
        max_poll_interval: float = 15.0,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> DeltaRecord:
        """Poll until the delta is VERIFIED or FAILED; `timeout` bounds the whole wait.

        The interval starts at `poll_interval` and grows by half each poll up to
        `max_poll_interval`. Raises `VerificationTimeoutError` (the delta stays recorded).

        >>> final = await pac.balance.wait_for_verified(rec.record_id, timeout=60)
        """
        seconds_arg("timeout", timeout)
        seconds_arg("poll_interval", poll_interval)
        seconds_arg("max_poll_interval", max_poll_interval)
        # `timeout` is the whole wait's, not each poll's: the polls keep the client's.
        options = call_options(None, max_retries, extra_headers)

        def poll(deadline: float) -> Awaitable[DeltaRecord]:
            return self._status(record_id, options, deadline=deadline)

        clock = self._requester.settings.clock
        return await until_final(poll, record_id, clock, timeout, poll_interval, max_poll_interval)

    async def emit_and_wait(
        self,
        *,
        customer_id: str,
        delta: Decimal | int | str,
        reason: str,
        reference_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        adjusts: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        timeout: float = 60.0,
        poll_interval: float = 2.0,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> DeltaRecord:
        """Emit, then wait until VERIFIED or FAILED; `timeout` bounds the whole call.

        A replayed emit that is already final returns at once. If the emit itself does not
        finish within `timeout` (retries and 202 waits included), `APITimeoutError` carries the
        idempotency key to call again with: the delta may have been recorded.
        """
        seconds_arg("timeout", timeout)  # refused before the write, not after it
        seconds_arg("poll_interval", poll_interval)
        settings = self._requester.settings
        clock = settings.clock
        started = clock.monotonic()
        # The emit runs on a copy whose deadline is this call's `timeout` (as `with_options`
        # copies do): retries and 202 waits included, it cannot outlast the whole call.
        bounded = AsyncBalance(self._requester.with_settings(deadline=min(settings.deadline, timeout)))
        record = await bounded.emit(
            customer_id=customer_id,
            delta=delta,
            reason=reason,
            reference_id=reference_id,
            metadata=metadata,
            adjusts=adjusts,
            idempotency_key=idempotency_key,
            max_retries=max_retries,
            extra_headers=extra_headers,
        )
        if record.is_final:
            return record
        remaining = max(timeout - (clock.monotonic() - started), 1e-3)
        final = await self.wait_for_verified(
            record.record_id,
            timeout=remaining,
            poll_interval=poll_interval,
            max_retries=max_retries,
            extra_headers=extra_headers,
        )
        return attrs.evolve(final, idempotency_key=record.idempotency_key, replayed=record.replayed)

    # --- deriving and comparing -------------------------------------------------------------

    async def derive(
        self,
        customer_id: str,
        *,
        period: PeriodLike | None = None,
        time_preset: str | None = None,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        granularity: str | None = None,
        starting_balance: Decimal | int | str | None = None,
        starting_checkpoint: str | None = None,
        starting_checkpoint_type: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> DerivedBalance:
        """Recompute a balance from the recorded deltas (``GET /api/v1/balance/derive/{id}``).

        With no scope, PacSpace derives over the current UTC month.

        >>> await pac.balance.derive("cust_1", period="2026-11")
        """
        scope = Scope.check(
            period=period,
            time_preset=time_preset,
            start_date=start_date,
            end_date=end_date,
            granularity=granularity,
            starting_balance=starting_balance,
            starting_checkpoint=starting_checkpoint,
            starting_checkpoint_type=starting_checkpoint_type,
        )
        return await self._derive(customer_id, scope, limit, offset, call_options(timeout, max_retries, extra_headers))

    # The derive_* helpers only name a window: each builds its scope and derives over it.

    async def derive_current_month(
        self,
        customer_id: str,
        *,
        limit: int | None = None,
        offset: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> DerivedBalance:
        """`derive` over the current UTC month (``timePreset=current_month``)."""
        scope = Scope.current_month()
        return await self._derive(customer_id, scope, limit, offset, call_options(timeout, max_retries, extra_headers))

    async def derive_for_period(
        self,
        customer_id: str,
        period: PeriodLike,
        *,
        limit: int | None = None,
        offset: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> DerivedBalance:
        """`derive` over one month, ``"YYYY-MM"`` or a date in it (`derive_current_month` for this one)."""
        scope = Scope.month(period)
        return await self._derive(customer_id, scope, limit, offset, call_options(timeout, max_retries, extra_headers))

    async def derive_months_back(
        self,
        customer_id: str,
        months: int,
        *,
        limit: int | None = None,
        offset: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> DerivedBalance:
        """`derive` over the last `months` UTC months, the current one included.

        On 2026-12-15 with ``months=3``: 2026-10-01T00:00:00Z up to (not including) 2027-01-01.
        """
        scope = Scope.months_back(months, now=self._now())
        return await self._derive(customer_id, scope, limit, offset, call_options(timeout, max_retries, extra_headers))

    async def derive_days_back(
        self,
        customer_id: str,
        days: int,
        *,
        limit: int | None = None,
        offset: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> DerivedBalance:
        """`derive` over the last `days` UTC days, today included (end exclusive at tomorrow 00:00Z)."""
        scope = Scope.days_back(days, now=self._now())
        return await self._derive(customer_id, scope, limit, offset, call_options(timeout, max_retries, extra_headers))

    async def _derive(
        self, customer_id: str, scope: Scope, limit: int | None, offset: int | None, options: CallOptions
    ) -> DerivedBalance:
        query: dict[str, object] = dict(scope.wire())
        if limit is not None:
            query["limit"] = count_arg("limit", limit, maximum=MAX_DERIVE_LIMIT, positive=True)
        if offset is not None:
            query["offset"] = count_arg("offset", offset)
        response = await self._get(f"/api/v1/balance/derive/{customer_segment(customer_id)}", options, query=query)
        data = response.data
        if isinstance(data, Mapping) and "deltasCount" not in data and "deltaCount" in data:
            data = {**data, "deltasCount": data["deltaCount"]}
        return structure(data, DerivedBalance, of=response)

    async def compare(
        self,
        customer_id: str,
        *,
        your_balance: Decimal | int | str,
        their_balance: Decimal | int | str,
        starting_balance: Decimal | int | str = 0,
        period: PeriodLike | None = None,
        time_preset: str | None = None,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        granularity: str | None = None,
        starting_checkpoint: str | None = None,
        starting_checkpoint_type: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> BalanceComparison:
        """Compare your balance and your counterparty's with PacSpace's neutral one.

        >>> cmp = await pac.balance.compare("cust_1", your_balance=Decimal("950"), their_balance=Decimal("900"))
        """
        scope = Scope.check(
            period=period,
            time_preset=time_preset,
            start_date=start_date,
            end_date=end_date,
            granularity=granularity,
            starting_balance=starting_balance,
            starting_checkpoint=starting_checkpoint,
            starting_checkpoint_type=starting_checkpoint_type,
        )
        body = {
            "customerId": customer_id_arg(customer_id),
            "yourBalance": amount_arg("your_balance", your_balance),
            "theirBalance": amount_arg("their_balance", their_balance),
            **scope.wire(),
        }
        options = call_options(timeout, max_retries, extra_headers, idempotency_key)
        response = await self._post("/api/v1/balance/compare", options, body=body, operation="balance.compare")
        return structure(response.data, BalanceComparison, of=response)

    # --- proofs -----------------------------------------------------------------------------

    async def receipt(
        self,
        customer_id: str,
        *,
        period: PeriodLike | None = None,
        time_preset: str | None = None,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Receipt:
        """A customer's receipt, scoped (``GET /api/v1/balance/receipt/{id}?period=...``)."""
        scope = Scope.check(period=period, time_preset=time_preset, start_date=start_date, end_date=end_date)
        return await self._proof("receipt", customer_id, scope, call_options(timeout, max_retries, extra_headers))

    async def invoice_proof(
        self,
        customer_id: str,
        *,
        period: PeriodLike | None = None,
        time_preset: str | None = None,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Receipt:
        """The proof to put on an invoice (``GET /api/v1/balance/invoice-proof/{id}``).

        `verify_url`, `verification_api_url`, `access_hint`, `customer_link_url` and
        `customer_link_host` are always present (None when PacSpace sent none).
        """
        scope = Scope.check(period=period, time_preset=time_preset, start_date=start_date, end_date=end_date)
        options = call_options(timeout, max_retries, extra_headers)
        return await self._proof("invoice-proof", customer_id, scope, options)

    async def _proof(self, kind: str, customer_id: str, scope: Scope, options: CallOptions) -> Receipt:
        path = f"/api/v1/balance/{kind}/{customer_segment(customer_id)}"
        response = await self._get(path, options, query=scope.wire())
        # The link fields sometimes sit under `verification`; the model always has all of them.
        data = response.data
        if isinstance(data, Mapping):
            nested = data.get("verification")
            if isinstance(nested, Mapping):
                data = {**{k: nested[k] for k in _RECEIPT_LINKS if k in nested}, **data}
        return structure(data, Receipt, of=response)

    # --- account ----------------------------------------------------------------------------

    async def usage(
        self,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Usage:
        """What is left of the plan's allowance (``GET /api/v1/balance/usage``)."""
        response = await self._get("/api/v1/balance/usage", call_options(timeout, max_retries, extra_headers))
        return structure(response.data, Usage, of=response)

    async def gaps(
        self,
        customer_id: str,
        *,
        from_sequence: int | None = None,
        to_sequence: int | None = None,
        limit: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> SequenceGaps:
        """Missing sequence numbers in a customer's ledger (``GET /api/v1/balance/gaps/{id}``)."""
        query = {
            "fromSequence": None if from_sequence is None else count_arg("from_sequence", from_sequence),
            "toSequence": None if to_sequence is None else count_arg("to_sequence", to_sequence),
            "limit": None if limit is None else count_arg("limit", limit, positive=True),
        }
        ordered_args("from_sequence", from_sequence, "to_sequence", to_sequence)
        path = f"/api/v1/balance/gaps/{customer_segment(customer_id)}"
        response = await self._get(path, call_options(timeout, max_retries, extra_headers), query=query)
        data = response.data if isinstance(response.data, Mapping) else {"gaps": response.data}
        return structure(data, SequenceGaps, of=response)

    async def limits(
        self,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> ScopeLimits:
        """The widest scopes this account may ask for (``GET /api/v1/balance/limits``)."""
        response = await self._get("/api/v1/balance/limits", call_options(timeout, max_retries, extra_headers))
        return structure(response.data, ScopeLimits, of=response)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._requester.settings.clock.wall(), tz=timezone.utc)
