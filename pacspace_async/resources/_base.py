"""What every resource shares: the requester of the client it belongs to."""

from __future__ import annotations

from .._requester import Requester

__all__ = ["AsyncAPIResource"]


class AsyncAPIResource:
    def __init__(self, requester: Requester) -> None:
        self._requester = requester
