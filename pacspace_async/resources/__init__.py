"""The API's resources; each is reached through the client (``pac.balance`` and so on)."""

from .balance import AsyncBalance
from .verify import AsyncVerification

__all__ = ["AsyncBalance", "AsyncVerification"]
