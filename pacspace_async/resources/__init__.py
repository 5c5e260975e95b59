"""The API's resources; each is reached through the client (``pac.balance`` and so on)."""

from .balance import AsyncBalance
from .checkpoints import AsyncCheckpoints
from .customers import AsyncCustomers
from .summaries import AsyncSummaries
from .verify import AsyncVerification
from .webhook_deliveries import AsyncWebhookDeliveries

__all__ = [
    "AsyncBalance",
    "AsyncCheckpoints",
    "AsyncCustomers",
    "AsyncSummaries",
    "AsyncVerification",
    "AsyncWebhookDeliveries",
]
