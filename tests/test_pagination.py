"""Pages and paginators: the cursor arithmetic, the walk over pages, and two real list calls."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from aiohttp import web
from conftest import SANDBOX_KEY, LoopbackServer, ok

from pacspace_async import AsyncPacSpace
from pacspace_async.pagination import AsyncPage, AsyncPaginator, PageCursor

Make = Callable[[], LoopbackServer]


# --- PageCursor -------------------------------------------------------------------------------


def test_cursor_query_in_both_styles() -> None:
    assert PageCursor(limit=2, page=3).query() == {"page": 3, "limit": 2}
    assert PageCursor(limit=2, offset=40).query() == {"offset": 40, "limit": 2}
    assert PageCursor(limit=2).query() == {"offset": 0, "limit": 2}


@pytest.mark.parametrize(
    ("cursor", "count", "total", "total_pages", "expected"),
    [
        # page style, no totalPages: a full page goes on, a short or empty one ends
        (PageCursor(limit=2, page=1), 2, None, None, PageCursor(limit=2, page=2)),
        (PageCursor(limit=2, page=2), 1, None, None, None),
        (PageCursor(limit=2, page=2), 0, None, None, None),
        (PageCursor(limit=2, page=1), 3, None, None, PageCursor(limit=2, page=2)),  # server ignored the limit
        # page style with totalPages: the server's count decides
        (PageCursor(limit=2, page=1), 2, 5, 3, PageCursor(limit=2, page=2)),
        (PageCursor(limit=2, page=2), 2, 5, 3, PageCursor(limit=2, page=3)),
        (PageCursor(limit=2, page=3), 2, 6, 3, None),
        (PageCursor(limit=2, page=3), 1, 5, 3, None),
        (PageCursor(limit=2, page=1), 0, 0, 0, None),
        (PageCursor(limit=2, page=1), 0, 5, 3, None),  # an empty page ends even if totals say more
        # offset style, no total: a full page goes on, a short or empty one ends
        (PageCursor(limit=2, offset=0), 2, None, None, PageCursor(limit=2, offset=2)),
        (PageCursor(limit=2, offset=2), 2, None, None, PageCursor(limit=2, offset=4)),
        (PageCursor(limit=2, offset=4), 1, None, None, None),
        (PageCursor(limit=2, offset=4), 0, None, None, None),
        (PageCursor(limit=2), 2, None, None, PageCursor(limit=2, offset=2)),
        # offset style with total
        (PageCursor(limit=2, offset=0), 2, 5, None, PageCursor(limit=2, offset=2)),
        (PageCursor(limit=2, offset=2), 2, 4, None, None),
        (PageCursor(limit=2, offset=4), 1, 5, None, None),
        (PageCursor(limit=2, offset=0), 0, 5, None, None),
    ],
)
def test_cursor_after(
    cursor: PageCursor, count: int, total: int | None, total_pages: int | None, expected: PageCursor | None
) -> None:
    assert cursor.after(count, total, total_pages) == expected


# --- AsyncPaginator and AsyncPage with a fake fetch ------------------------------------------


class FakeList:
    """A page/limit list of `pages` (each a list of items); records every cursor fetched."""

    def __init__(self, pages: Sequence[Sequence[str]]) -> None:
        self.pages = pages
        self.fetched: list[PageCursor] = []

    async def fetch(self, cursor: PageCursor) -> AsyncPage[str]:
        self.fetched.append(cursor)
        assert cursor.page is not None
        items = tuple(self.pages[cursor.page - 1]) if cursor.page <= len(self.pages) else ()
        return AsyncPage(
            items,
            cursor=cursor,
            next_cursor=cursor.after(len(items), None, None),
            total=None,
            raw={"items": list(items)},
            fetch=self.fetch,
        )

    def paginator(self, limit: int = 2) -> AsyncPaginator[str]:
        return AsyncPaginator(self.fetch, PageCursor(limit=limit, page=1))


async def test_three_pages_then_stop() -> None:
    pages = FakeList([["a", "b"], ["c", "d"], ["e"], ["never"]])
    assert [item async for item in pages.paginator()] == ["a", "b", "c", "d", "e"]
    assert [cursor.page for cursor in pages.fetched] == [1, 2, 3]


async def test_an_empty_page_ends_iteration() -> None:
    pages = FakeList([["a", "b"], ["c", "d"], [], ["never", "seen"]])
    assert [item async for item in pages.paginator()] == ["a", "b", "c", "d"]
    assert [cursor.page for cursor in pages.fetched] == [1, 2, 3]


async def test_an_empty_first_page_yields_nothing() -> None:
    pages = FakeList([[]])
    assert [item async for item in pages.paginator()] == []
    assert len(pages.fetched) == 1


async def test_awaiting_the_paginator_gives_the_first_page_only() -> None:
    pages = FakeList([["a", "b"], ["c"]])
    page = await pages.paginator()
    assert isinstance(page, AsyncPage)
    assert page.items == ("a", "b")
    assert list(page) == ["a", "b"]
    assert len(page) == 2
    assert page.cursor == PageCursor(limit=2, page=1)
    assert len(pages.fetched) == 1
    assert "has_next_page=True" in repr(page)


async def test_next_page_walks_and_raises_on_the_last() -> None:
    pages = FakeList([["a", "b"], ["c", "d"], ["e"]])
    first = await pages.paginator()
    assert first.has_next_page() is True
    second = await first.next_page()
    assert second.items == ("c", "d")
    assert second.has_next_page() is True
    third = await second.next_page()
    assert third.items == ("e",)
    assert third.has_next_page() is False
    with pytest.raises(RuntimeError, match="last page"):
        await third.next_page()
    assert [cursor.page for cursor in pages.fetched] == [1, 2, 3]


async def test_pages_yields_each_page_in_turn() -> None:
    pages = FakeList([["a", "b"], ["c", "d"], ["e"]])
    walked = [page.items async for page in pages.paginator().pages()]
    assert walked == [("a", "b"), ("c", "d"), ("e",)]


async def test_a_paginator_can_be_walked_twice() -> None:
    pages = FakeList([["a", "b"], ["c"]])
    paginator = pages.paginator()
    assert [item async for item in paginator] == ["a", "b", "c"]
    assert [item async for item in paginator] == ["a", "b", "c"]
    assert len(pages.fetched) == 4


async def test_nothing_is_fetched_until_asked() -> None:
    pages = FakeList([["a"]])
    pages.paginator()
    assert pages.fetched == []


# --- end to end over a loopback server --------------------------------------------------------


def customers_route(total: int, *, with_pages: bool) -> Callable[[web.Request], Any]:
    customers = [{"customerId": f"cust_{n}", "totalDeltas": n} for n in range(total)]

    async def handler(request: web.Request) -> web.StreamResponse:
        page, limit = int(request.query["page"]), int(request.query["limit"])
        chunk = customers[(page - 1) * limit : page * limit]
        data: dict[str, Any] = {"customers": chunk}
        if with_pages:
            data["pagination"] = {"total": total, "page": page, "limit": limit, "totalPages": -(-total // limit)}
        return ok(data)

    return handler


def checkpoints_route(total: int, *, with_total: bool) -> Callable[[web.Request], Any]:
    checkpoints = [{"checkpointId": f"chk_{n}", "proofRoot": f"0x{n:064x}"} for n in range(total)]

    async def handler(request: web.Request) -> web.StreamResponse:
        offset, limit = int(request.query["offset"]), int(request.query["limit"])
        data: dict[str, Any] = {"checkpoints": checkpoints[offset : offset + limit]}
        if with_total:
            data["total"] = total
        return ok(data)

    return handler


@pytest.mark.parametrize("with_pages", [True, False], ids=["with-pagination", "bare"])
async def test_customers_list_walks_three_pages_by_page_and_limit(loopback: Make, with_pages: bool) -> None:
    server = loopback()
    server.route("GET", "/api/v1/balance/customers", customers_route(5, with_pages=with_pages))
    url = await server.start()
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": url}) as pac:
        customers = [customer async for customer in pac.customers.list(limit=2, search="cust")]
    assert [c.customer_id for c in customers] == [f"cust_{n}" for n in range(5)]
    assert [c.total_deltas for c in customers] == list(range(5))
    assert [dict(request.query) for request in server.requests] == [
        {"search": "cust", "page": "1", "limit": "2"},
        {"search": "cust", "page": "2", "limit": "2"},
        {"search": "cust", "page": "3", "limit": "2"},
    ]


async def test_customers_list_pages_by_hand(loopback: Make) -> None:
    server = loopback()
    server.route("GET", "/api/v1/balance/customers", customers_route(5, with_pages=True))
    url = await server.start()
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": url}) as pac:
        page = await pac.customers.list(limit=2)
        sizes = [len(page)]
        while page.has_next_page():
            page = await page.next_page()
            sizes.append(len(page))
        assert page.total == 5
    assert sizes == [2, 2, 1]
    assert len(server.requests) == 3


@pytest.mark.parametrize("with_total", [True, False], ids=["with-total", "bare"])
async def test_checkpoints_list_walks_by_offset_and_limit(loopback: Make, with_total: bool) -> None:
    server = loopback()
    server.route("GET", "/api/v1/balance/checkpoints", checkpoints_route(5, with_total=with_total))
    url = await server.start()
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": url}) as pac:
        checkpoints = [c async for c in pac.checkpoints.list(limit=2, customer_id="cust_1")]
    assert [c.checkpoint_id for c in checkpoints] == [f"chk_{n}" for n in range(5)]
    assert checkpoints[4].proof_root == f"0x{4:064x}"
    assert [dict(request.query) for request in server.requests] == [
        {"customerId": "cust_1", "offset": "0", "limit": "2"},
        {"customerId": "cust_1", "offset": "2", "limit": "2"},
        {"customerId": "cust_1", "offset": "4", "limit": "2"},
    ]


async def test_an_empty_last_page_ends_the_offset_walk(loopback: Make) -> None:
    server = loopback()
    server.route("GET", "/api/v1/balance/checkpoints", checkpoints_route(4, with_total=False))
    url = await server.start()
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": url}) as pac:
        checkpoints = [c async for c in pac.checkpoints.list(limit=2)]
    assert len(checkpoints) == 4
    assert [request.query["offset"] for request in server.requests] == ["0", "2", "4"]


async def test_an_empty_list_makes_one_request(loopback: Make) -> None:
    server = loopback()
    server.route("GET", "/api/v1/balance/customers", customers_route(0, with_pages=True))
    url = await server.start()
    async with AsyncPacSpace(SANDBOX_KEY, base_urls={"sandbox": url}) as pac:
        assert [c async for c in pac.customers.list()] == []
    assert len(server.requests) == 1
