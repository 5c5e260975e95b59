"""A webhook receiver: verify PacSpace's signed deliveries, answer fast, let the agent follow up.

    python examples/webhook_receiver.py

No network, no account: the emulator runs in-process and delivers its webhooks to an
``aiohttp.web`` endpoint on 127.0.0.1, as PacSpace would deliver them to yours.

The endpoint verifies ``X-PacSpace-Signature`` / ``X-PacSpace-Timestamp`` over the raw body with
`WebhookVerifier` (a replay cache refuses a captured copy), answers 400 to anything that does
not verify and 200 to the rest at once, and queues the event. The agent side reads the queue and
acts with a tool call: on ``delta.verified`` it checks the delta with ``pacspace_delta_status``.
The agent's `ToolPolicy` lets it emit (the tools are read-only without one), for these two
customers only.
A forged delivery (a real one with its amount changed) is refused with 400.
"""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp
from aiohttp import web

from pacspace_async import DeltaVerifiedData, WebhookEvent, WebhookVerificationError
from pacspace_async.testing import Emulator
from pacspace_async.tools import ToolPolicy, call_tool
from pacspace_async.webhooks import InMemoryReplayCache, WebhookVerifier

SECRET = "whsec_example_receiver_secret"
EMITS = [
    {"customer_id": "cust_acme", "delta": "-12.00", "reason": "api_usage", "reference_id": "evt-usage-001"},
    {"customer_id": "cust_acme", "delta": "-3.50", "reason": "api_usage", "reference_id": "evt-usage-002"},
    {"customer_id": "cust_globex", "delta": "100", "reason": "top_up", "reference_id": "evt-topup-001"},
]
POLICY = ToolPolicy(allow=("read", "pacspace_emit_delta"), customers=("cust_acme", "cust_globex"))


class Receiver:
    """``POST /webhooks/pacspace``: verify, queue, answer — the work happens after the answer."""

    def __init__(self, secret: str) -> None:
        self.verifier = WebhookVerifier(secret, replay_cache=InMemoryReplayCache())
        self.events: asyncio.Queue[WebhookEvent] = asyncio.Queue()
        self.captured: list[tuple[dict[str, str], bytes]] = []
        self.refused = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()  # the raw bytes: a re-serialised body no longer matches
        try:
            event = self.verifier.verify(request.headers, body)
        except WebhookVerificationError as error:
            self.refused += 1
            print(f"   receiver: 400 {error}")
            return web.Response(status=400, text=str(error))
        self.captured.append((dict(request.headers), body))
        self.events.put_nowait(event)
        return web.Response(status=200)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/webhooks/pacspace", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/webhooks/pacspace"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def forge(receiver: Receiver) -> int:
    """Send the receiver a real delivery with its amount changed; returns the HTTP status."""
    headers, body = receiver.captured[0]
    envelope = json.loads(body)
    envelope["data"]["delta"] = "-0.01"
    forged = json.dumps(envelope).encode()
    keep = {k: v for k, v in headers.items() if k.lower().startswith("x-")}
    async with aiohttp.ClientSession() as session, session.post(receiver.url, data=forged, headers=keep) as answer:
        return answer.status


async def main() -> int:
    receiver = Receiver(SECRET)
    await receiver.start()
    try:
        async with Emulator(verify_delay=0.05) as emu, emu.client() as pac:
            emu.register_webhook(receiver.url, SECRET)
            print(f"receiver listening on {receiver.url}")
            records: dict[str, str] = {}
            for arguments in EMITS:
                result = await call_tool(pac, "pacspace_emit_delta", arguments, policy=POLICY)
                assert result["ok"], result
                records[result["result"]["record_id"]] = arguments["reference_id"]
                print(f"agent: emitted {arguments['reference_id']} -> {result['result']['record_id']}")
            # Verification happens in the background; each one is delivered to the receiver,
            # and the agent handles the events as they arrive.
            confirmed: set[str] = set()
            while confirmed != set(records):
                try:
                    event = await asyncio.wait_for(receiver.events.get(), timeout=10)
                except asyncio.TimeoutError:
                    break
                data = event.data
                if event.type == "delta.verified" and isinstance(data, DeltaVerifiedData) and data.record_id:
                    status = await call_tool(pac, "pacspace_delta_status", {"record_id": data.record_id}, policy=POLICY)
                    print(
                        f"agent: {event.type} {data.record_id} ({data.delta}) -> "
                        f"pacspace_delta_status says {status['result']['status']}"
                    )
                    if status["ok"] and status["result"]["status"] == "VERIFIED":
                        confirmed.add(data.record_id)
                else:
                    print(f"agent: {event.type} (nothing to do)")
            await emu.wait_for_deliveries()
            forged_status = await forge(receiver)
            print(f"forged delivery: HTTP {forged_status}")
            delivered = sum(1 for d in emu.deliveries if d.status == "delivered")
    finally:
        await receiver.stop()
    print(f"{delivered} deliveries verified and acknowledged, {receiver.refused} refused")
    if confirmed != set(records) or forged_status != 400:
        print("FAILED: every emit should be confirmed by a verified webhook, the forgery refused", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
