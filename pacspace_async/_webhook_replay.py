"""Replay protection: where a verifier remembers the deliveries it accepted.

Public through :mod:`pacspace_async.webhooks`.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Protocol, runtime_checkable

from ._errors import InvalidArgumentError

__all__ = ["InMemoryReplayCache", "ReplayCache", "replay_key"]


@runtime_checkable
class ReplayCache(Protocol):
    """Where a verifier remembers the deliveries it has accepted (plug in a shared store here).

    The verifier calls :meth:`seen` once per delivery, and only for a delivery that passed
    every other check, so a forger can neither add ids nor fill the store. ``event_id`` is the
    signed body's ``id``; for a body without one it is ``"sha256:"`` and the hex digest of the
    signed ``"{timestamp}.{body}"``, so an exact copy is still refused.
    """

    def seen(self, event_id: str, now: float, ttl: float) -> bool:
        """True if ``event_id`` was recorded less than ``ttl`` seconds before ``now``;
        otherwise record it (until ``now + ttl``) and return False. Must be atomic."""
        ...


class InMemoryReplayCache:
    """A bounded, thread-safe, per-process :class:`ReplayCache`.

    ``seen`` is atomic under a lock, so one cache can serve the threads of a web server and the
    sync client. Past ``max_entries`` the oldest entry is evicted before it expires, and a copy
    of that delivery would then pass: make ``max_entries`` larger than the number of deliveries
    you receive in twice the tolerance (10 minutes by default). Only verified deliveries are
    recorded, so only PacSpace's own traffic fills it. Several processes need a shared store.
    """

    __slots__ = ("_entries", "_lock", "_max_entries")

    def __init__(self, max_entries: int = 10_000) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise InvalidArgumentError("max_entries must be a positive integer")
        self._max_entries = max_entries
        self._entries: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, event_id: str, now: float, ttl: float) -> bool:
        with self._lock:
            self._purge(now)
            expires = self._entries.get(event_id)
            if expires is not None and expires > now:
                return True
            self._entries.pop(event_id, None)
            self._entries[event_id] = now + ttl
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
            return False

    def _purge(self, now: float) -> None:
        # Insertion order is expiry order while ttl and the clock are steady; if they are not,
        # a stale entry just lingers until evicted, and `seen` still checks expiry itself.
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if oldest > now:
                break
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return f"InMemoryReplayCache(max_entries={self._max_entries})"


_DIGEST_KEY_PREFIX = "sha256:"


def replay_key(body_id: str | None, timestamp: str, body: bytes) -> str:
    """What the replay cache remembers: only what the signature covers.

    The signed body's ``id``, so PacSpace's own re-sends of an event (signed afresh) count as
    one. A body without an ``id`` is keyed by a digest of the signed ``"{timestamp}.{body}"``:
    an exact copy of it is refused, a re-send with a new timestamp is not. The unsigned
    ``X-Event-ID`` header is never used, or a captured delivery could block any id.
    """
    if body_id is not None:
        return body_id
    return _DIGEST_KEY_PREFIX + hashlib.sha256(timestamp.encode("ascii") + b"." + body).hexdigest()
