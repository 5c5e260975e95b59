"""The one cattrs converter: camelCase on the wire, snake_case attrs models in Python.

One reader per type of value (text, money, counts, flags, instants, arrays, objects) serves
the answers' models and the webhook events alike, so a value means the same wherever it comes.
Models are forward compatible: unknown fields are ignored by the typed attributes but kept
in ``.raw``; unknown status values stay the strings the server sent.
"""

from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar, Union

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn_from_attrs, override
from multidict import istr

from ._errors import PacSpaceError

__all__ = [
    "MILLISECONDS_FROM",
    "REPLAY_HEADER",
    "converter",
    "local_field",
    "parse_datetime",
    "raw_field",
    "read_shape",
    "replay_flag",
    "structure",
    "to_decimal",
    "unix_seconds",
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
    """Money from a caller: int, str or Decimal (floats via their repr). Answers are read by
    the converter's stricter reader (`_wire_decimal`)."""
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


_WIRE_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?", re.ASCII)


def _wire_decimal(value: object, _: object = None) -> Decimal:
    """Money from an answer: a JSON number or plain decimal text, finite.

    Stricter than `to_decimal`, which reads what a caller passes: ``Decimal()`` alone would
    also take "1_0", " 5 ", non-ASCII digits and "NaN", none of which is an amount PacSpace sends.
    """
    if isinstance(value, Decimal):  # a JSON number with a fraction: the usual case, checked first
        if value.is_finite():
            return value
    elif isinstance(value, bool):
        raise TypeError("a boolean is not an amount")
    elif isinstance(value, int):
        return Decimal(value)
    elif isinstance(value, float):
        if math.isfinite(value):
            return Decimal(repr(value))
    elif isinstance(value, str):
        if _WIRE_DECIMAL.fullmatch(value):
            return Decimal(value)
    else:
        raise TypeError(f"{type(value).__name__} is not an amount")
    raise ValueError(f"{value!r} is not a finite decimal number")


_WHOLE_TEXT = re.compile(r"-?[0-9]+", re.ASCII)


def _whole(value: object, _: object = None) -> int:
    """A count or an index: an integer, or integral number or digit text (never a boolean)."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if _WHOLE_TEXT.fullmatch(value):
            return int(value)
    elif isinstance(value, (Decimal, float)):
        if math.isfinite(value) and value == int(value):
            return int(value)
    else:
        raise TypeError(f"{type(value).__name__} is not a whole number")
    raise ValueError(f"{value!r} is not a whole number")


#: Unix times of this magnitude and above are in milliseconds, below it in seconds.
#:
#: PacSpace writes timestamps in bodies as ISO 8601 text. It sends Unix time in one place, the
#: webhook timestamp header, and there its docs show seconds (``1739270400``) while its own
#: examples show milliseconds (``1739270400000``); its SDK reads 13 digits or more as
#: milliseconds. The two ranges never meet (10**12 seconds is the year 33658, 10**12 ms is
#: September 2001), so one rule reads every number, in a header, a model or a webhook event,
#: the same way: a server that switches units cannot move a timestamp by a factor of 1000.
MILLISECONDS_FROM = 1_000_000_000_000


def unix_seconds(value: int | float | Decimal) -> Decimal:
    """Seconds since the epoch, exact, from Unix time in seconds or milliseconds."""
    number = Decimal(value)
    return number / 1000 if abs(number) >= MILLISECONDS_FROM else number


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_FRACTION = re.compile(r"\.(\d+)")


def parse_datetime(value: object) -> datetime:
    """ISO 8601 (``Z`` or an offset; naive means UTC) or Unix time (`MILLISECONDS_FROM`) →
    aware datetime. The one reader of instants: models, webhook events and caller arguments."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        try:
            # Exact to the microsecond (a float of a 13-digit time is not), rounded half-even.
            micros = int((unix_seconds(value) * 1_000_000).to_integral_value())
            return _EPOCH + timedelta(microseconds=micros)
        except (ArithmeticError, ValueError):
            raise ValueError(f"{value} is not a Unix time between the years 1 and 9999") from None
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


def _is_array(tp: Any) -> bool:
    args = typing.get_args(tp)
    return typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis


def _hook_for(tp: Any) -> Callable[[Any, Any], Any]:
    """The converter's structure hook for `tp`: what ``converter.structure(value, tp)`` calls."""
    hook: Callable[[Any, Any], Any] = converter.get_structure_hook(tp)
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


def _array_hook(tp: Any) -> Any:
    item_type = typing.get_args(tp)[0]
    handler: Callable[[Any, Any], Any] | None = None

    def structure_array(value: Any, _: Any) -> tuple[Any, ...]:
        # A JSON array only: left to cattrs, a string would become a tuple of its characters.
        nonlocal handler
        if type(value) is not list and not isinstance(value, (list, tuple)):
            raise TypeError(f"{type(value).__name__} is not a JSON array")
        if handler is None:
            handler = _hook_for(item_type)
        return tuple([handler(item, item_type) for item in value])

    return structure_array


# The readers of the wire, one per type, for models and webhook events alike.
converter = cattrs.Converter()
converter.register_structure_hook(Decimal, _wire_decimal)
converter.register_structure_hook(int, _whole)
converter.register_structure_hook(datetime, lambda value, _: parse_datetime(value))
converter.register_structure_hook(str, _text)
converter.register_structure_hook(bool, _flag)
converter.register_structure_hook_func(
    lambda tp: getattr(tp, "__origin__", None) in (Mapping, dict) or tp in (Mapping, dict), _mapping
)
converter.register_structure_hook_factory(_is_optional, _optional_hook)
converter.register_structure_hook_factory(_is_array, _array_hook)


Shape = Callable[[Mapping[str, Any]], Mapping[str, Any]]
_SHAPES: dict[type[Any], Shape] = {}


def read_shape(cls: type[Any], shape: Shape) -> None:
    """Read the model `cls` from ``shape(value)`` rather than from `value` itself.

    For an object PacSpace sends in more than one shape (older docs, another SDK): `shape` maps
    the others onto the wire names of the fields, and `.raw` still keeps `value` as it came.
    Called where `cls` is defined, before anything reads it.
    """
    if cls in _PLANS:
        raise RuntimeError(f"{cls.__name__} is already read as it comes: give its shape before reading it")
    _SHAPES[cls] = shape


def _keyword_arguments(cls: type[Any]) -> type[dict[str, Any]]:
    # What cattrs' reader calls in place of the class with the fields it read: a dict of them,
    # so that the model is built once, with the fields the SDK fills in as well. Named after
    # the class, which cattrs' messages name; and a dict subclass is quicker to call here than
    # dict itself (it takes the fields as one mapping rather than keyword by keyword).
    return type(cls.__name__, (dict,), {"__slots__": (), "__qualname__": cls.__qualname__})


@attrs.frozen
class _Plan:
    """How a model class is read: cattrs reads and checks the wire fields into keyword
    arguments, and the class is called once with those and the fields this SDK fills in
    (`raw_field`, `local_field`), so no instance is changed after it is built."""

    cls: type[Any]
    read: Callable[[Any, Any], dict[str, Any]]  # the wire fields of a JSON object, as arguments
    shape: Shape | None
    keeps_raw: bool
    keeps_sent_key: bool
    keeps_replayed: bool

    def arguments(self, value: Any) -> dict[str, Any]:
        if type(value) is not dict and not isinstance(value, Mapping):
            raise TypeError(f"expected a JSON object for {self.cls.__name__}, got {type(value).__name__}")
        fields = self.read(value if self.shape is None else self.shape(value), self.cls)
        if self.keeps_raw:
            fields["raw"] = value
        return fields

    def build(self, value: Any, _: Any = None) -> Any:
        return self.cls(**self.arguments(value))


# The plan of each model class read so far.
_PLANS: dict[Any, _Plan] = {}


def _plan(cls: type[Any]) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:
        attrs.resolve_types(cls)
        fields = attrs.fields(cls)
        wire = [field for field in fields if not field.metadata.get(_NOT_ON_WIRE)]
        local = {field.name for field in fields if field.metadata.get(_NOT_ON_WIRE)}
        renames: dict[str, Any] = {field.name: override(rename=camel(field.name)) for field in wire}
        read = make_dict_structure_fn_from_attrs(wire, _keyword_arguments(cls), converter, **renames)
        plan = _PLANS[cls] = _Plan(
            cls, read, _SHAPES.get(cls), "raw" in local, "idempotency_key" in local, "replayed" in local
        )
    return plan


converter.register_structure_hook_factory(attrs.has, lambda cls: _plan(cls).build)


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
    plan = _PLANS.get(cls)
    if plan is None and attrs.has(cls):
        _hook_for(cls)  # makes the plan, unless the class has a hook of its own (a webhook event)
        plan = _PLANS.get(cls)
    try:
        if plan is None:
            return converter.structure(data, cls)
        fields = plan.arguments(data)
        if plan.keeps_sent_key and of is not None and of.idempotency_key is not None:
            fields["idempotency_key"] = of.idempotency_key
        if plan.keeps_replayed:
            headers = getattr(of, "headers", None)
            header = None if headers is None else headers.get(_REPLAY_KEY)
            item = data.get("idempotent")  # a mapping: `arguments` accepted it
            if header is not None or item is not None:
                replayed = _replayed(header, item)
                if replayed is not None:
                    fields["replayed"] = replayed
        return cls(**fields)
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
