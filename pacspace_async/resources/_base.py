"""What every resource shares: its client's requester, the per-call options, and the
GET/POST/list plumbing."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from .._checks import count_arg, seconds_arg
from .._environments import Environment
from .._models import structure
from .._requester import APIResponse, Requester, checked_extra_headers
from ..pagination import AsyncPage, AsyncPaginator, PageCursor

__all__ = ["NO_OPTIONS", "AsyncAPIResource", "CallOptions", "call_options", "list_items"]

T = TypeVar("T")


@attrs.frozen
class CallOptions:
    """The keyword-only per-call options of a public method, bundled once per call.

    Every public method keeps them as plain keywords (the sync facade and the agent tools are
    built from those signatures); inside, they travel as this one value down to the request,
    so a method names each of them once instead of forwarding each by hand.
    `idempotency_key` only means something to a POST.
    """

    timeout: float | None = None
    max_retries: int | None = None
    extra_headers: Mapping[str, str] | None = None
    idempotency_key: str | None = None

    def checked(self) -> CallOptions:
        """These options, refused now if invalid (the requester checks them again per request:
        this is for calls that must refuse bad options before doing anything else)."""
        if self.timeout is not None:
            seconds_arg("timeout", self.timeout)
        if self.max_retries is not None:
            count_arg("max_retries", self.max_retries)
        checked_extra_headers(self.extra_headers)
        return self


NO_OPTIONS = CallOptions()


def call_options(
    timeout: float | None,
    max_retries: int | None,
    extra_headers: Mapping[str, str] | None,
    idempotency_key: str | None = None,
) -> CallOptions:
    """The options of one call; the shared `NO_OPTIONS` when none is given, as on most calls
    (building a frozen instance per call would cost the hot path, `emit`, for nothing)."""
    if timeout is None and max_retries is None and extra_headers is None and idempotency_key is None:
        return NO_OPTIONS
    return CallOptions(timeout, max_retries, extra_headers, idempotency_key)


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
        options: CallOptions,
        *,
        query: Mapping[str, object] | None = None,
        deadline: float | None = None,
        authenticated: bool = True,
        environment: Environment | None = None,
    ) -> Coroutine[Any, Any, APIResponse]:
        """A GET; `deadline` bounds the whole call (retries included) below the client's."""
        return self._requester.request(
            "GET",
            path,
            query=query,
            authenticated=authenticated,
            environment=environment,
            timeout=options.timeout,
            max_retries=options.max_retries,
            extra_headers=options.extra_headers,
            deadline=deadline,
        )

    def _post(
        self,
        path: str,
        options: CallOptions,
        *,
        body: Any,
        operation: str,
        reference: str | None = None,
        scope: str | None = None,
    ) -> Coroutine[Any, Any, APIResponse]:
        """A POST with its idempotency key: the caller's, else from `reference`, else fresh."""
        key = self._requester.idempotency.for_call(
            operation=operation, caller_key=options.idempotency_key, reference=reference, scope=scope
        )
        return self._requester.request(
            "POST",
            path,
            json=body,
            idempotency_key=key,
            timeout=options.timeout,
            max_retries=options.max_retries,
            extra_headers=options.extra_headers,
        )

    def _paginate(
        self,
        path: str,
        options: CallOptions,
        *,
        query: Mapping[str, object],
        first: PageCursor,
        item_keys: Sequence[str],
        model: type[T],
        prepare: Callable[[Any], Any] | None = None,
    ) -> AsyncPaginator[T]:
        """A list call: each page is one GET with the cursor's page/offset and limit."""

        async def fetch(cursor: PageCursor) -> AsyncPage[T]:
            response = await self._get(path, options, query={**query, **cursor.query()})
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
