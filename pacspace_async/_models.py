"""The one cattrs converter: camelCase on the wire, snake_case attrs models in Python.

Models are forward compatible: unknown fields are ignored by the typed attributes but kept
in ``.raw``; unknown status values stay the strings the server sent.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar, Union

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override
from multidict import istr

from ._errors import PacSpaceError

__all__ = [
    "REPLAY_HEADER",
    "converter",
    "local_field",
    "parse_datetime",
    "raw_field",
    "replay_flag",
    "structure",
    "to_decimal",
]

T = TypeVar("T")


class _NoRaw(Mapping[str, Any]):
    """The `raw` of a model built in code rather than read from an answer: empty, read-only,
    and picklable (a `MappingProxyType` is not, which made such models unpicklable). There is
    one instance; it copies and merges into plain dicts, as a `raw` read from an answer does."""

    __slots__ = ()
    _instance: _NoRaw | None = None

    def __new__(cls) -> _NoRaw:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def copy(self) -> dict[str, Any]:
        return {}

    def __or__(self, other: Mapping[str, Any]) -> dict[str, Any]:
        return dict(other)

    def __ror__(self, other: Mapping[str, Any]) -> dict[str, Any]:
        return dict(other)

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "{}"

    def __reduce__(self) -> str:
        return "_EMPTY"  # pickled by name: unpickles to this module's one instance


_EMPTY: Mapping[str, Any] = _NoRaw()
_NOT_ON_WIRE = "pacspace_not_on_wire"


def raw_field() -> Any:
    """The decoded JSON of the object, kept whole (not compared, not shown in repr)."""
    return attrs.field(default=_EMPTY, eq=False, repr=False, metadata={_NOT_ON_WIRE: True})


def local_field(default: Any = None, *, eq: bool = True) -> Any:
    """A field the SDK fills in (such as the idempotency key sent), not read from the wire."""
    return attrs.field(default=default, eq=eq, metadata={_NOT_ON_WIRE: True})


def camel(name: str) -> str:
    """``record_id`` → ``recordId``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def to_decimal(value: object) -> Decimal:
    """Money from the wire or from a caller: int, str or Decimal (floats via their repr)."""
    if isinstance(value, bool):
        raise TypeError("a bool is not an amount")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, (int, str)):
        try:
            return Decimal(value)
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
    if isinstance(value, float):
        return Decimal(repr(value))
    raise TypeError(f"{type(value).__name__} is not an amount")


_FRACTION = re.compile(r"\.(\d+)")


def parse_datetime(value: object) -> datetime:
    """ISO 8601 (``Z`` or an offset; naive means UTC) or epoch seconds → aware datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    if not isinstance(value, str):
        raise TypeError(f"{type(value).__name__} is not a timestamp")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python 3.10 accepts only 3 or 6 fractional digits.
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _text(value: object, _: object = None) -> str:
    # Ids sometimes arrive as numbers; anything else in a text field is not text.
    if isinstance(value, str):
        return value
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not text")


def _mapping(value: object, _: object = None) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{type(value).__name__} is not a JSON object")
    return dict(value)


def _flag(value: object, _: object = None) -> bool:
    # bool("false") is True: only real JSON booleans count.
    if isinstance(value, bool):
        return value
    raise TypeError(f"{type(value).__name__} is not a boolean")


def _is_optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType) and type(None) in typing.get_args(tp)


def _hook_for(tp: Any) -> Callable[[Any, Any], Any]:
    """The converter's structure hook for `tp`: what ``converter.structure(value, tp)`` calls."""
    get_hook = getattr(converter, "get_structure_hook", None)  # cattrs >= 24.1
    if get_hook is None:
        return converter.structure
    hook: Callable[[Any, Any], Any] = get_hook(tp)
    return hook


def _optional_hook(tp: Any) -> Any:
    inner = [arg for arg in tp.__args__ if arg is not type(None)]
    target: Any = inner[0] if len(inner) == 1 else Union[tuple(inner)]
    # Looked up on first use, then kept: cattrs' generated model code keeps its field hooks the
    # same way, and every hook of this converter is registered at import.
    handler: Callable[[Any, Any], Any] | None = None
    text_field = target is str

    def structure_optional(value: Any, _: Any) -> Any:
        # Forward compatible: a field the server started sending in another shape becomes
        # None on the model (it is still in `.raw`) instead of failing the whole call.
        nonlocal handler
        if value is None:
            return None
        if text_field and type(value) is str:
            return value  # what the str hook (`_text`) gives a str
        if handler is None:
            handler = _hook_for(target)
        try:
            return handler(value, target)
        except (cattrs.BaseValidationError, TypeError, ValueError, ArithmeticError):
            return None

    return structure_optional


converter = cattrs.Converter()
converter.register_structure_hook(Decimal, lambda value, _: to_decimal(value))
converter.register_structure_hook(datetime, lambda value, _: parse_datetime(value))
converter.register_structure_hook(str, _text)
converter.register_structure_hook(bool, _flag)
converter.register_structure_hook_func(
    lambda tp: getattr(tp, "__origin__", None) in (Mapping, dict) or tp in (Mapping, dict), _mapping
)
converter.register_structure_hook_factory(_is_optional, _optional_hook)


def _model_hook(cls: type[Any]) -> Any:
    fields = attrs.fields(cls)
    overrides = {
        field.name: override(omit=True) if field.metadata.get(_NOT_ON_WIRE) else override(rename=camel(field.name))
        for field in fields
    }
    build = make_dict_structure_fn(cls, converter, **overrides)  # type: ignore[arg-type]
    keeps_raw = any(field.name == "raw" for field in fields)

    def structure_model(value: Any, _: Any) -> Any:
        if type(value) is not dict and not isinstance(value, Mapping):
            raise TypeError(f"expected a JSON object for {cls.__name__}, got {type(value).__name__}")
        model = build(value, cls)
        if keeps_raw:
            # The instance was built a moment ago and nobody else holds it: filling in `raw`
            # directly avoids copying every model with attrs.evolve on the hot path.
            object.__setattr__(model, "raw", value)
        return model

    return structure_model


converter.register_structure_hook_factory(attrs.has, _model_hook)


# The hook of each model class structured so far (what converter.structure would dispatch to),
# and whether the model has an `idempotency_key` and a `replayed` of its own (`local_field`s)
# to fill in from the exchange.
_HOOKS: dict[Any, tuple[Callable[[Any, Any], Any], bool, bool]] = {}


def _holds_local(cls: Any, name: str) -> bool:
    if not (isinstance(cls, type) and attrs.has(cls)):
        return False
    field = attrs.fields_dict(cls).get(name)
    return field is not None and bool(field.metadata.get(_NOT_ON_WIRE))


#: The response header saying a POST's answer is the stored answer of an earlier request with
#: the same idempotency key (Stripe's name for it), ``true`` or ``false``.
REPLAY_HEADER = "Idempotent-Replayed"


def replay_flag(text: str | None) -> bool | None:
    """The `REPLAY_HEADER` value: True or False as it says; None when absent or unreadable."""
    if text is None:
        return None
    said = text.strip().lower()
    return True if said == "true" else False if said == "false" else None


# Looked up on every answer a DeltaRecord is read from: a case-insensitive key made once.
_REPLAY_KEY = istr(REPLAY_HEADER)


def _replayed(header: str | None, item: object) -> bool | None:
    """Whether the server answered from its idempotency memory rather than recording anew.

    The whole answer being a stored one (the header), or this very item being one already
    recorded (its ``idempotent`` field), makes it True; either saying "new", with nothing
    saying "replayed", makes it False; None when nothing says.
    """
    said = replay_flag(header)
    if said is True or item is True:
        return True
    if said is False or item is False:
        return False
    return None


class Exchange(typing.Protocol):
    """What identifies the request an answer came from (an `APIResponse`)."""

    @property
    def request_id(self) -> str | None: ...

    @property
    def idempotency_key(self) -> str | None: ...


def structure(data: Any, cls: type[T], *, of: Exchange | None = None) -> T:
    """Build a model from decoded JSON, or say plainly that the answer was not understood.

    `of`: the exchange the answer came from. A model with an `idempotency_key` field gets the
    key that was sent, one with a `replayed` field whether the answer was a replay (the
    `REPLAY_HEADER` of `of`, the ``idempotent`` field of `data`); an error names the request id
    and carries that key (the write may well have been recorded).
    """
    found = _HOOKS.get(cls)
    try:
        if found is None:
            found = _HOOKS[cls] = (_hook_for(cls), _holds_local(cls, "idempotency_key"), _holds_local(cls, "replayed"))
        hook, holds_sent_key, holds_replayed = found
        model = hook(data, cls)
        # Built a moment ago and held by nobody else: fill the fields in place rather than
        # copying the whole model with attrs.evolve.
        if holds_sent_key and of is not None and of.idempotency_key is not None:
            object.__setattr__(model, "idempotency_key", of.idempotency_key)
        if holds_replayed:
            headers = getattr(of, "headers", None)
            header = None if headers is None else headers.get(_REPLAY_KEY)
            item = data.get("idempotent")  # a mapping: the model's hook accepted it
            if header is not None or item is not None:
                replayed = _replayed(header, item)
                if replayed is not None:
                    object.__setattr__(model, "replayed", replayed)
        return model  # type: ignore[no-any-return]
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
        detail = "; ".join(_leaves(exc))
        request = f" (request_id={of.request_id})" if of is not None and of.request_id else ""
        raise PacSpaceError(
            f"PacSpace answered with a {cls.__name__} this SDK cannot read ({detail}){request}; "
            "please report it with the request id",
            idempotency_key=None if of is None else of.idempotency_key,
        ) from None


def _leaves(exc: BaseException) -> list[str]:
    if isinstance(exc, cattrs.BaseValidationError):
        found: list[str] = []
        for inner in exc.exceptions:
            found.extend(_leaves(inner))
        return found[:3]
    if isinstance(exc, KeyError):
        return [f"missing field {exc.args[0]!r}"]
    return [f"{type(exc).__name__}: {exc}"]
