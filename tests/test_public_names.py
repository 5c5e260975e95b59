"""Every type alias a public signature names can be imported from `pacspace_async`.

A caller annotating their own code (a key reader, an auth hook, a date argument) needs the
alias the SDK's signature uses; reaching into a private module for it would break on refactors.
"""

from __future__ import annotations

import inspect
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

import pacspace_async
import pacspace_async.resources
import pacspace_sync

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
EXPECTED_ALIASES = {"AuthErrorHook", "DateLike", "KeyReader", "KeySource", "PeriodLike", "WebhookEventData"}


def _is_alias(value: object) -> bool:
    """A typing construct (``Union[...]``, ``X | Y``, ``Callable[...]``), not a class or module."""
    # Not inspect.isclass: on Python 3.10 it is True for list[int] (a GenericAlias passes for its origin).
    return isinstance(value, (types.UnionType, types.GenericAlias)) or typing.get_origin(value) is not None


def _annotations(obj: Any) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, annotation text, the namespace it is read in) for a class's public surface."""
    namespace = vars(sys.modules[obj.__module__])
    for name, text in vars(obj).get("__annotations__", {}).items():
        yield f"{obj.__name__}.{name}", str(text), namespace
    for name, member in vars(obj).items():
        function: Callable[..., Any] | None = getattr(member, "fget", member)
        if (name.startswith("_") and name != "__init__") or not inspect.isfunction(function):
            continue
        for parameter, text in function.__annotations__.items():
            yield f"{obj.__name__}.{name}({parameter})", str(text), vars(sys.modules[function.__module__])


def public_classes() -> list[type]:
    """The exported classes, and the resources a client reaches them through."""
    names = [(pacspace_async, name) for name in pacspace_async.__all__]
    names += [(pacspace_async.resources, name) for name in pacspace_async.resources.__all__]
    found = [getattr(module, name) for module, name in names]
    return [cls for cls in found if inspect.isclass(cls) and cls.__module__.startswith("pacspace_async")]


def test_every_alias_in_a_public_signature_is_exported() -> None:
    found: dict[str, object] = {}
    for cls in public_classes():
        for where, text, namespace in _annotations(cls):
            for name in NAME.findall(text):
                value = namespace.get(name)
                if value is not None and _is_alias(value):
                    found[name] = value
                    assert name in pacspace_async.__all__, f"{where} uses {name}, which pacspace_async does not export"
                    assert getattr(pacspace_async, name) is value, name
    assert set(found) == EXPECTED_ALIASES


def test_the_aliases_are_exported_and_the_sync_package_shares_them() -> None:
    for name in EXPECTED_ALIASES:
        assert name in pacspace_async.__all__, name
        assert _is_alias(getattr(pacspace_async, name)), name
        if name in getattr(pacspace_sync, "__all__", ()):  # once the facade is regenerated
            assert getattr(pacspace_sync, name) is getattr(pacspace_async, name)
