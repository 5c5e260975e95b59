"""Pages and paginators for list calls.

``await pac.customers.list()`` gives the first page; ``async for item in pac.customers.list()``
walks every item across pages. Both the page/limit and the offset/limit styles of the API
are handled here, so resources only say how to read one page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping
from typing import Any, Generic, TypeVar

import attrs

__all__ = ["AsyncPage", "AsyncPaginator", "PageCursor"]

T = TypeVar("T")


@attrs.frozen
class PageCursor:
    """Where a page starts: a 1-based `page` (page/limit style) or an `offset`."""

    limit: int
    page: int | None = None
    offset: int | None = None

    def query(self) -> dict[str, int]:
        if self.page is not None:
            return {"page": self.page, "limit": self.limit}
        return {"offset": self.offset or 0, "limit": self.limit}

    def after(self, count: int, total: int | None, total_pages: int | None) -> PageCursor | None:
        """The next page's cursor, or None when this page was the last.

        An empty page, a short page, or the server's totals end the walk.
        """
        if count == 0:
            return None
        if self.page is not None:
            if total_pages is not None:
                return attrs.evolve(self, page=self.page + 1) if self.page < total_pages else None
            return attrs.evolve(self, page=self.page + 1) if count >= self.limit else None
        start = self.offset or 0
        if total is not None:
            return attrs.evolve(self, offset=start + count) if start + count < total else None
        return attrs.evolve(self, offset=start + count) if count >= self.limit else None


class AsyncPage(Generic[T]):
    """One page of items, with the means to fetch the next one."""

    def __init__(
        self,
        items: tuple[T, ...],
        *,
        cursor: PageCursor,
        next_cursor: PageCursor | None,
        total: int | None,
        raw: Mapping[str, Any],
        fetch: Callable[[PageCursor], Awaitable[AsyncPage[T]]],
    ) -> None:
        self.items = items
        self.cursor = cursor
        self.total = total
        self.raw = raw
        self._next_cursor = next_cursor
        self._fetch = fetch

    def has_next_page(self) -> bool:
        return self._next_cursor is not None

    async def next_page(self) -> AsyncPage[T]:
        """Fetch the following page; check `has_next_page()` first."""
        if self._next_cursor is None:
            raise RuntimeError("this is the last page; check has_next_page() before next_page()")
        return await self._fetch(self._next_cursor)

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"AsyncPage(items={len(self.items)}, cursor={self.cursor}, has_next_page={self.has_next_page()})"


class AsyncPaginator(Generic[T]):
    """What a list call returns: await it for the first page, iterate it for every item."""

    def __init__(self, fetch: Callable[[PageCursor], Awaitable[AsyncPage[T]]], first: PageCursor) -> None:
        self._fetch = fetch
        self._first = first

    async def first_page(self) -> AsyncPage[T]:
        return await self._fetch(self._first)

    def __await__(self) -> Generator[Any, None, AsyncPage[T]]:
        return self.first_page().__await__()

    async def pages(self) -> AsyncIterator[AsyncPage[T]]:
        """Every page in turn, fetched as you go."""
        page = await self.first_page()
        yield page
        while page.has_next_page():
            page = await page.next_page()
            yield page

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.items:
                yield item
