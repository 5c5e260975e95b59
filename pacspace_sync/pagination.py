# hand-written: pages are walked one loop hop per page (tools/generate_sync.py leaves this file alone)
"""Pages and paginators for list calls.

``pac.customers.list().first_page()`` gives the first page; ``for item in pac.customers.list()``
walks every item across pages. Both the page/limit and the offset/limit styles of the API
are handled here, so resources only say how to read one page.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

from pacspace_async.pagination import AsyncPage, AsyncPaginator, PageCursor
from pacspace_sync._portal import Portal

__all__ = ["Page", "Paginator"]

T = TypeVar("T")


class Page(Generic[T]):
    """One page of items, with the means to fetch the next one."""

    def __init__(self, wrapped: AsyncPage[T], portal: Portal) -> None:
        self._wrapped = wrapped
        self._portal = portal

    @property
    def items(self) -> tuple[T, ...]:
        return self._wrapped.items

    @property
    def cursor(self) -> PageCursor:
        return self._wrapped.cursor

    @property
    def total(self) -> int | None:
        return self._wrapped.total

    @property
    def raw(self) -> Mapping[str, Any]:
        return self._wrapped.raw

    def has_next_page(self) -> bool:
        return self._wrapped.has_next_page()  # reads one attribute: no hop to the loop thread

    def next_page(self) -> Page[T]:
        """Fetch the following page; check `has_next_page()` first."""
        result = self._portal.call(self._wrapped.next_page)
        return Page(result, self._portal)

    def __iter__(self) -> Iterator[T]:
        return iter(self._wrapped)

    def __len__(self) -> int:
        return len(self._wrapped)

    def __repr__(self) -> str:
        return repr(self._wrapped).removeprefix("Async")


class Paginator(Generic[T]):
    """What a list call returns: `first_page()` gives the first page; iterate it for every item."""

    def __init__(self, wrapped: AsyncPaginator[T], portal: Portal) -> None:
        self._wrapped = wrapped
        self._portal = portal

    def first_page(self) -> Page[T]:
        result = self._portal.call(self._wrapped.first_page)
        return Page(result, self._portal)

    def pages(self) -> Iterator[Page[T]]:
        """Every page in turn, fetched as you go."""
        for item in self._portal.iterate(self._wrapped.pages()):
            yield Page(item, self._portal)

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():  # one loop hop per page; its items are iterated here
            yield from page
