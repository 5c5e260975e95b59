"""The in-memory store: the store rules with nothing durable, for tests and short scripts."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from ._store import (
    Changes,
    EntryState,
    StoredEntry,
    StoreStats,
    dead_changes,
    full_error,
    requeue_changes,
    retry_changes,
    sent_changes,
)

__all__ = ["MemoryStore"]


class MemoryStore:
    """Entries in a dict, in the order they were added. Lost when the process ends."""

    def __init__(self) -> None:
        self._entries: dict[str, StoredEntry] = {}  # insertion order is the outbox order
        self._leases: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"MemoryStore(entries={len(self._entries)})"

    async def add(self, entry: StoredEntry, *, max_entries: int, max_bytes: int) -> None:
        unsent = [e for e in self._entries.values() if e.state is not EntryState.SENT]
        size = sum(e.size for e in unsent)
        if len(unsent) + 1 > max_entries or size + entry.size > max_bytes:
            raise full_error(entries=len(unsent), size=size, max_entries=max_entries, max_bytes=max_bytes)
        self._entries[entry.id] = entry

    async def claim(
        self, *, now: float, limit: int, lease_seconds: float, environment: str | None = None
    ) -> Sequence[StoredEntry]:
        seen: set[str] = set()
        claimed: list[StoredEntry] = []
        for entry in self._of(environment):
            if len(claimed) >= limit:
                break
            if entry.state is not EntryState.PENDING or entry.customer_id in seen:
                continue
            seen.add(entry.customer_id)  # only the customer's oldest pending entry may go
            if entry.next_attempt_at <= now and self._leases.get(entry.id, 0.0) <= now:
                self._leases[entry.id] = now + lease_seconds
                claimed.append(entry)
        return claimed

    async def mark_sent(self, entry_id: str, *, record_id: str) -> None:
        self._update(entry_id, sent_changes(record_id))

    async def retry_later(
        self, entry_id: str, *, at: float, attempts: int, error: str | None, error_code: str | None
    ) -> None:
        self._update(entry_id, retry_changes(at=at, attempts=attempts, error=error, error_code=error_code))

    async def mark_dead(
        self, entry_id: str, *, error: str, error_code: str | None, needs_reconciliation: bool = False
    ) -> None:
        self._update(
            entry_id, dead_changes(error=error, error_code=error_code, needs_reconciliation=needs_reconciliation)
        )

    async def requeue(self, entry_id: str, *, now: float) -> bool:
        entry = self._entries.get(entry_id)
        if entry is None or entry.state is not EntryState.DEAD:
            return False
        self._update(entry_id, requeue_changes(now))
        return True

    async def has_pending(self, *, environment: str | None = None) -> bool:
        return any(e.state is EntryState.PENDING for e in self._of(environment))

    async def prune(self, *, sent_before: float) -> int:
        gone = [e.id for e in self._entries.values() if e.state is EntryState.SENT and e.created_at < sent_before]
        for entry_id in gone:
            del self._entries[entry_id]
        return len(gone)

    async def get(self, entry_id: str) -> StoredEntry | None:
        return self._entries.get(entry_id)

    async def dead_letters(self, *, limit: int = 1000) -> Sequence[StoredEntry]:
        return [e for e in self._entries.values() if e.state is EntryState.DEAD][:limit]

    async def stats(self, *, now: float, environment: str | None = None) -> StoreStats:
        entries = self._of(environment)
        pending = [e for e in entries if e.state is EntryState.PENDING]
        return StoreStats(
            pending=len(pending),
            dead=sum(1 for e in entries if e.state is EntryState.DEAD),
            in_flight=sum(1 for e in pending if self._leases.get(e.id, 0.0) > now),
            oldest_pending_at=min((e.created_at for e in pending), default=None),
        )

    async def aclose(self) -> None:
        return None

    def _of(self, environment: str | None) -> list[StoredEntry]:
        entries = list(self._entries.values())
        return entries if environment is None else [e for e in entries if e.environment == environment]

    def _update(self, entry_id: str, changes: Changes) -> None:
        entry = self._entries.get(entry_id)
        if entry is None:
            return
        self._leases.pop(entry_id, None)
        self._entries[entry_id] = attrs.evolve(entry, **changes)  # type: ignore[arg-type]
