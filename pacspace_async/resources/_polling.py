"""Polling a delta until it is final, within one time budget for the whole wait."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .._errors import APITimeoutError, VerificationTimeoutError
from .._requester import Clock
from ..models.balance import DeltaRecord

__all__ = ["until_final"]


async def until_final(
    poll: Callable[[float], Awaitable[DeltaRecord]],
    record_id: str,
    clock: Clock,
    timeout: float,
    poll_interval: float,
    max_poll_interval: float,
) -> DeltaRecord:
    """`poll(deadline)` until the record is VERIFIED or FAILED; `timeout` bounds the whole wait.

    The interval starts at `poll_interval` and grows by half each poll up to
    `max_poll_interval`; past `timeout`, `VerificationTimeoutError` (the delta stays recorded).
    """
    give_up_at = clock.monotonic() + timeout
    interval = poll_interval
    last_status: str | None = None
    while True:
        # A poll, retries included, ends with the wait (the one made at the very end of it
        # gets a second): `timeout` bounds the whole wait, not each poll.
        try:
            record = await poll(max(give_up_at - clock.monotonic(), 1.0))
        except APITimeoutError:
            if clock.monotonic() < give_up_at:
                raise
        else:
            if record.is_final:
                return record
            last_status = record.status
        remaining = give_up_at - clock.monotonic()
        if remaining <= 0:
            raise VerificationTimeoutError(
                f"delta {record_id} was still {last_status or 'not final'} after {timeout:g}s; it stays "
                "recorded and will be verified later: wait again or listen for the delta.verified webhook",
                record_id=record_id,
                last_status=last_status,
            )
        await clock.sleep(min(interval, remaining))
        interval = min(interval * 1.5, max(max_poll_interval, poll_interval))
