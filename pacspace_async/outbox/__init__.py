"""A durable outbox: emits stored first, then sent by a drain task, each recorded once.

>>> from pacspace_async.outbox import Outbox
>>> async with Outbox(pac, store="sqlite:///pacspace-outbox.sqlite3") as outbox:
...     entry = await outbox.emit(customer_id="cust_1", delta=Decimal("-1"), reason="usage",
...                               reference_id="inv_9")
"""

from ._memory import MemoryStore
from ._outbox import Outbox, OutboxClock, OutboxEntry, OutboxStats, open_store, retry_delay
from ._sqlite import DEFAULT_SQLITE_FILE, SqliteStore
from ._store import EntryState, OutboxFullError, OutboxStore, StoredEntry, StoreStats

__all__ = [
    "DEFAULT_SQLITE_FILE",
    "EntryState",
    "MemoryStore",
    "Outbox",
    "OutboxClock",
    "OutboxEntry",
    "OutboxFullError",
    "OutboxStats",
    "OutboxStore",
    "SqliteStore",
    "StoreStats",
    "StoredEntry",
    "open_store",
    "retry_delay",
]
