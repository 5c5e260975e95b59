"""What every resource shares: its client's requester, and the GET/POST/list plumbing."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from .._models import structure
from .._requester import APIResponse, Requester
from ..pagination import AsyncPage, AsyncPaginator, PageCursor

__all__ = ["AsyncAPIResource", "list_items"]

T = TypeVar("T")


def list_items(data: Any, keys: Sequence[str]) -> list[Any]:
    """The item list of a list answer: the first of `keys` that holds a list, or a bare list."""
    if isinstance(data, list):
        return data
    if isinstance(data, Mapping):
        for key in keys:
            value = data.get(key)
            if isinstance(value, list):
                return value
    return []


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class AsyncAPIResource:
    # `_get` and `_post` hand back the requester's coroutine instead of awaiting it in a frame
    # of their own: every suspension of a call resumes through each frame of its await chain,
    # and a frame that only passes the result through costs on every one of them.

    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def _get(
        self,
        path: str,
        *,
        query: Mapping[str, object] | None = None,
        timeout: float | None,
        max_retries: int | None,
        extra_headers: Mapping[str, str] | None,
        deadline: float | None = None,
    ) -> Coroutine[Any, Any, APIResponse]:
        return self._requester.request(
            "GET",
            path,
            query=query,
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
            deadline=deadline,
        )

    def _post(
        self,
        path: str,
        *,
        body: Any,
        operation: str,
        idempotency_key: str | None,
        reference: str | None = None,
        scope: str | None = None,
        timeout: float | None,
        max_retries: int | None,
        extra_headers: Mapping[str, str] | None,
    ) -> Coroutine[Any, Any, APIResponse]:
        """A POST with its idempotency key: the caller's, else from `reference`, else fresh."""
        key = self._requester.idempotency.for_call(
            operation=operation, caller_key=idempotency_key, reference=reference, scope=scope
        )
        return self._requester.request(
            "POST",
            path,
            json=body,
            idempotency_key=key,
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
        )

    def _paginate(
        self,
        path: str,
        *,
        query: Mapping[str, object],
        first: PageCursor,
        item_keys: Sequence[str],
        model: type[T],
        timeout: float | None,
        max_retries: int | None,
        extra_headers: Mapping[str, str] | None,
        prepare: Callable[[Any], Any] | None = None,
    ) -> AsyncPaginator[T]:
        """A list call: each page is one GET with the cursor's page/offset and limit."""

        async def fetch(cursor: PageCursor) -> AsyncPage[T]:
            response = await self._get(
                path,
                query={**query, **cursor.query()},
                timeout=timeout,
                max_retries=max_retries,
                extra_headers=extra_headers,
            )
            data = response.data
            raw_items = list_items(data, item_keys)
            items = tuple(structure(prepare(item) if prepare else item, model, of=response) for item in raw_items)
            info = data.get("pagination") if isinstance(data, Mapping) else None
            info = info if isinstance(info, Mapping) else (data if isinstance(data, Mapping) else {})
            total = _int_or_none(info.get("total"))
            total_pages = _int_or_none(info.get("totalPages"))
            return AsyncPage(
                items,
                cursor=cursor,
                next_cursor=cursor.after(len(raw_items), total, total_pages),
                total=total,
                raw=data if isinstance(data, Mapping) else {"items": data},
                fetch=fetch,
            )

        return AsyncPaginator(fetch, first)
