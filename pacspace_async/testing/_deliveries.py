"""Signed webhook deliveries: registration, the retry loop, listing and manual retries.

Each event is sent to every registered URL of its environment as a POST whose raw body is
signed like PacSpace does (`pacspace_async.webhooks.signature_header`): ``X-PacSpace-Signature``
over ``"{X-PacSpace-Timestamp}.{body}"``, plus ``X-Event-ID`` and ``X-Webhook-Event``. Any 2xx
answer acknowledges it; otherwise it is sent again after each of `retry_delays` (re-signed
with a fresh timestamp each time) and marked ``failed`` when they run out. A manual retry
(``POST /api/v1/balance/webhooks/{eventId}/retry``) starts the schedule over.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import aiohttp
import attrs

from .._environments import Environment
from ..webhooks import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_header
from ._ids import Ids
from ._inputs import int_value, optional_text
from ._wire import ApiError, dumps, iso, utc

__all__ = ["DeliveryAttempt", "Dispatcher", "WebhookDeliveryRecord", "WebhookEndpoint"]

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
TENANT_ID = "ten_emulator"


@attrs.define
class WebhookEndpoint:
    webhook_id: str
    url: str
    secret: str = attrs.field(repr=False)
    environment: Environment | None  # None: both environments


@attrs.frozen
class DeliveryAttempt:
    """One POST of a delivery: the receiver's HTTP status, or the connection error."""

    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@attrs.frozen
class WebhookDeliveryRecord:
    """A delivery as the emulator tracks it (a snapshot). `body` is the exact signed bytes."""

    delivery_id: str
    event_id: str
    event: str
    url: str
    environment: Environment
    status: str
    attempts: tuple[DeliveryAttempt, ...]
    body: bytes = attrs.field(repr=False)
    created_at: datetime

    def payload(self) -> Any:
        return json.loads(self.body)


@attrs.define(eq=False)
class Delivery:
    delivery_id: str
    event_id: str
    event: str
    environment: Environment
    endpoint: WebhookEndpoint
    body: bytes
    created_at: datetime
    status: str = PENDING
    attempts: list[DeliveryAttempt] = attrs.Factory(list)
    next_attempt_at: datetime | None = None
    task: asyncio.Task[None] | None = None

    def wire(self) -> dict[str, Any]:
        last = self.attempts[-1] if self.attempts else None
        return {
            "eventId": self.event_id,
            "deliveryId": self.delivery_id,
            "webhookId": self.endpoint.webhook_id,
            "event": self.event,
            "status": self.status,
            "attempts": len(self.attempts),
            "url": self.endpoint.url,
            "createdAt": iso(self.created_at),
            "lastAttemptAt": iso(last.at) if last else None,
            "lastStatusCode": last.status_code if last else None,
            "lastError": last.error if last else None,
            "nextAttemptAt": iso(self.next_attempt_at) if self.next_attempt_at else None,
        }

    def snapshot(self) -> WebhookDeliveryRecord:
        return WebhookDeliveryRecord(
            delivery_id=self.delivery_id,
            event_id=self.event_id,
            event=self.event,
            url=self.endpoint.url,
            environment=self.environment,
            status=self.status,
            attempts=tuple(self.attempts),
            body=self.body,
            created_at=self.created_at,
        )


class Dispatcher:
    """Sends deliveries from the emulator's event loop, one task per delivery cycle."""

    def __init__(
        self,
        *,
        ids: Ids,
        clock: Callable[[], float],
        retry_delays: Sequence[float],
        timeout: float,
    ) -> None:
        if any(delay < 0 for delay in retry_delays):
            raise ValueError("webhook retry delays must be >= 0 seconds")
        self.ids = ids
        self.clock = clock
        self.retry_delays = tuple(float(delay) for delay in retry_delays)
        self.timeout = timeout
        self.endpoints: list[WebhookEndpoint] = []
        self.deliveries: dict[str, Delivery] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    # --- configuration ----------------------------------------------------------------------

    def register(self, url: str, secret: str | None, environment: Environment | None) -> WebhookEndpoint:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"a webhook URL must be absolute http(s), got {url!r}")
        if secret is None:
            secret = "whsec_" + secrets.token_hex(16)
        elif not isinstance(secret, str) or not secret:
            raise ValueError("a webhook secret must be a non-empty string")
        endpoint = WebhookEndpoint(self.ids.new("wh", 48), url, secret, environment)
        self.endpoints.append(endpoint)
        return endpoint

    # --- events -----------------------------------------------------------------------------

    def publish(self, environment: Environment, event: str, data: Mapping[str, Any]) -> list[Delivery]:
        """Sign and send `event` to every endpoint of `environment` (needs the running loop)."""
        targets = [e for e in self.endpoints if e.environment in (None, environment)]
        if not targets:
            return []
        now = utc(self.clock())
        event_id = self.ids.new("evt")
        envelope = {
            "id": event_id,
            "event": event,
            "tenantId": TENANT_ID,
            "environment": environment.value,
            "createdAt": iso(now),
            "data": dict(data),
        }
        body = dumps(envelope)
        made = []
        for endpoint in targets:
            delivery = Delivery(self.ids.new("whd"), event_id, event, environment, endpoint, body, now)
            self.deliveries[delivery.delivery_id] = delivery
            self._start(delivery)
            made.append(delivery)
        return made

    def retry(self, environment: Environment, event_id: str) -> list[Delivery]:
        matching = [d for d in self.deliveries.values() if d.event_id == event_id and d.environment is environment]
        if not matching:
            raise ApiError(404, "EVENT_NOT_FOUND", f"no webhook event {event_id} in {environment.value}")
        for delivery in matching:
            if delivery.task is not None and not delivery.task.done():
                delivery.task.cancel()
            delivery.status = PENDING
            self._start(delivery)
        return matching

    def listing(self, environment: Environment, query: Mapping[str, object]) -> dict[str, Any]:
        status = optional_text(query, "status")
        limit = int_value(query, "limit", 50, lowest=1, highest=1000)
        offset = int_value(query, "offset", 0, lowest=0, highest=None)
        matching = [
            d
            for d in reversed(list(self.deliveries.values()))
            if d.environment is environment and (status is None or d.status == status.lower())
        ]
        return {
            "deliveries": [d.wire() for d in matching[offset : offset + limit]],
            "pagination": {"total": len(matching), "limit": limit, "offset": offset},
        }

    # --- sending ----------------------------------------------------------------------------

    def _start(self, delivery: Delivery) -> None:
        task = asyncio.get_running_loop().create_task(
            self._run(delivery), name=f"pacspace-emulator-webhook-{delivery.delivery_id}"
        )
        delivery.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def _run(self, delivery: Delivery) -> None:
        for number in range(len(self.retry_delays) + 1):
            if number:
                delay = self.retry_delays[number - 1]
                delivery.next_attempt_at = utc(self.clock() + delay)
                await asyncio.sleep(delay)
                delivery.next_attempt_at = None
            if await self._attempt(delivery):
                delivery.status = DELIVERED
                return
        delivery.status = FAILED

    async def _attempt(self, delivery: Delivery) -> bool:
        timestamp = str(int(self.clock()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "pacspace-emulator-webhooks/1",
            SIGNATURE_HEADER: signature_header(delivery.endpoint.secret, timestamp, delivery.body),
            TIMESTAMP_HEADER: timestamp,
            EVENT_ID_HEADER: delivery.event_id,
            EVENT_TYPE_HEADER: delivery.event,
        }
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            async with self._http().post(
                delivery.endpoint.url, data=delivery.body, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                status = response.status
        except asyncio.TimeoutError:
            error = f"no answer within {self.timeout:g}s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        delivery.attempts.append(
            DeliveryAttempt(len(delivery.attempts) + 1, utc(self.clock()), status, error, time.monotonic() - started)
        )
        return status is not None and 200 <= status < 300

    def running(self) -> list[asyncio.Task[None]]:
        return [task for task in self._tasks if not task.done()]

    async def drain(self, timeout: float) -> None:
        """Wait until no delivery is being sent or waiting for a retry."""
        deadline = time.monotonic() + timeout
        while True:
            tasks = self.running()
            if not tasks:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(tasks)} webhook deliveries were still underway after {timeout:g}s")
            await asyncio.wait(tasks, timeout=remaining)

    async def cancel_all(self) -> None:
        tasks = self.running()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def clear(self) -> None:
        for task in self.running():
            task.cancel()
        self.deliveries.clear()

    async def aclose(self) -> None:
        await self.cancel_all()
        if self._session is not None:
            await self._session.close()
            self._session = None
