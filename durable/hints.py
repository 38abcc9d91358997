"""Hints: rebuilding decoded values from the type hints of the code that receives them.

`payload` turns bytes into plain values (the msgpack types and the extension types it knows);
this module fits them to what the receiving function's annotations name. Arguments are
rebuilt from parameter annotations, results from the return annotation: a map becomes the
hinted dataclass, a list a hinted tuple, set or NamedTuple, a raw value a hinted Enum member.
Whatever does not fit raises `SerializationError` naming its path (``order.items[2].sku``).
Values that came as JSON (over HTTP) carry datetimes, Decimals, UUIDs, bytes and timedeltas
in their JSON forms (`durable.jsonform`): where the hint names such a type, the form is
parsed (``"2026-12-02T10:00:00+00:00"`` for a ``datetime`` parameter).

The hint is also the allow-list for decoding: `Plan.enums` holds the Enum classes a hint
names, and those are the only classes an Enum extension value is rebuilt into. The payload
never chooses a class, and nothing is ever imported to decode it.

Unions. Dataclasses travel as the plain map of their fields, without class information, so a
union of dataclasses is only decodable when a map written from one member cannot be taken
for an earlier one: members are tried in order, and the first that accepts the map wins.
``Cat | Dog`` is refused with `SerializationError` when a Dog's map also fits Cat (Dog has
no field Cat lacks, and every field Cat requires) unless a field both share is a `Literal`
with different values in each (a discriminator, ``kind: Literal["dog"] = "dog"``). A union
mixing a dataclass with a dict type is refused too: a map fits both. The check runs when
``@workflow``/``@activity`` decorates the function (`durable.layout.check_function`), and
at the latest when the hint is first used.
"""

from __future__ import annotations

import base64
import binascii
import collections.abc
import dataclasses
import datetime
import decimal
import enum
import functools
import types
import typing
import uuid
from collections.abc import Callable
from typing import Any

from .errors import SerializationError
from .hintnames import MAPPINGS, article, class_hints, hint_name, type_name, unwrap
from .unions import check_union, init_fields, required

__all__ = [
    "Mismatch",
    "Plan",
    "hint_name",
    "plan",
    "rebuild",
    "refusal",
]

_Convert = Callable[[Any], Any]
_Enums = frozenset[type[enum.Enum]]


# --- plans: a hint's converter and the Enum classes it names ------------------------------


class Plan(typing.NamedTuple):
    """How to rebuild values of one hint: `convert` (None: any value fits as it is) and the
    Enum classes the hint names, which decoding may rebuild Enum extension values into."""

    convert: _Convert | None
    enums: _Enums


_ANY = Plan(None, frozenset())


def plan(hint: object) -> Plan:
    """The `Plan` of `hint` (cached).

    Raises:
        SerializationError: the hint holds a union whose members cannot be told apart.
    """
    try:
        key = _key(hint)
    except TypeError:  # e.g. Annotated with unhashable metadata: built each time
        return _make_plan(hint, complete=False) or _ANY
    try:
        return _cached_plan(key)
    except _Incomplete as incomplete:
        return incomplete.plan


def _key(hint: object) -> tuple[object, str]:
    """A cache key for `hint`; raises TypeError if it is unhashable. Unions compare equal
    whatever the order of their members (``A | B == B | A``) but are tried in order, so
    the key holds the spelling too."""
    if isinstance(hint, type):  # the common case, and no members to order
        return hint, ""
    hash(hint)
    return hint, repr(hint)


class _Incomplete(Exception):
    """A plan made while some field hints could not be resolved: used, but not cached (the
    hints may resolve later, once the module defining them is fully imported)."""

    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan


@functools.lru_cache(maxsize=1024)
def _cached_plan(key: tuple[object, str]) -> Plan:
    hint = key[0]
    made = _make_plan(hint)
    if made is None:
        raise _Incomplete(_make_plan(hint, complete=False) or _ANY)
    return made


def _make_plan(hint: object, complete: bool = True) -> Plan | None:
    """The plan of `hint`, or None when `complete` and some hints inside are unresolvable."""
    if hint is None:
        return _ANY
    enums: set[type[enum.Enum]] = set()
    if not _walk(hint, set(), enums) and complete:
        return None
    return Plan(_converter(hint), frozenset(enums))


def _walk(hint: object, seen: set[type], enums: set[type[enum.Enum]]) -> bool:
    """Visit every type `hint` names, through dataclass and NamedTuple fields: collect the
    Enum classes and refuse ambiguous unions. False if some field hints were unresolvable
    (skipped here; decoding such a class reports them)."""
    hint = unwrap(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return True
    if origin is typing.Union or origin is types.UnionType:
        check_union(hint, args)
    complete = _walk_all(args, seen, enums)
    cls = origin if isinstance(origin, type) else hint
    if not isinstance(cls, type) or cls in seen:
        return complete
    seen.add(cls)
    if issubclass(cls, enum.Enum):
        enums.add(cls)
    elif (
        dataclasses.is_dataclass(cls)
        or typing.is_typeddict(cls)
        or (issubclass(cls, tuple) and hasattr(cls, "_fields"))
    ):
        field_hints = class_hints(cls)
        if field_hints is None:
            return False
        complete = _walk_all(field_hints.values(), seen, enums) and complete
    return complete


def _walk_all(
    hints: collections.abc.Iterable[object], seen: set[type], enums: set[type[enum.Enum]]
) -> bool:
    complete = True
    for hint in hints:  # every one, even after an incomplete one: all unions are checked
        complete = _walk(hint, seen, enums) and complete
    return complete


class Mismatch(Exception):
    """Raised by a converter: a value does not fit its hint; `segments` collect its path,
    innermost first. `rebuild` turns it into a `SerializationError`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.segments: list[str] = []


def refusal(exc: Mismatch, what: str, root: str) -> SerializationError:
    """The error for `exc`: the value named `what`, whose path starts at `root`, did not fit."""
    path = root + "".join(reversed(exc.segments))
    return SerializationError(
        f"Cannot decode {what}: the value at {path} does not fit its type hint: "
        f"{exc.message}. Was the code changed since the data was written?"
    )


def rebuild(convert: _Convert | None, value: object, what: str, root: str) -> Any:
    """Fit the plain `value` to a plan's converter; `what` and `root` name it in errors.

    Raises:
        SerializationError: the value does not fit, naming the path inside it.
    """
    if convert is None:
        return value
    try:
        return convert(value)
    except Mismatch as exc:
        raise refusal(exc, what, root) from None


# --- converters ---------------------------------------------------------------------------


def _converter(hint: object) -> _Convert | None:
    """A function fitting a plain decoded value to `hint`, or None if any value fits."""
    try:
        key = _key(hint)
    except TypeError:
        return _build_converter(hint)
    return _cached_converter(key)


@functools.lru_cache(maxsize=1024)
def _cached_converter(key: tuple[object, str]) -> _Convert | None:
    return _build_converter(key[0])


def _build_converter(hint: object) -> _Convert | None:
    if hint is Any or hint is object or isinstance(hint, str | typing.TypeVar | typing.ForwardRef):
        return None
    if hint is None or hint is type(None):
        return _instance_of(type(None), "None")
    if isinstance(hint, typing.NewType):
        return _converter(hint.__supertype__)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        return _converter(args[0])
    if origin is typing.Literal:
        return _literal(args)
    if origin is typing.Union or origin is types.UnionType:
        return _union(hint, args)
    if origin is None and isinstance(hint, type):
        origin, args = hint, ()
    if not isinstance(origin, type):
        return None  # a hint we cannot check (Callable, a Protocol, ...): taken as is
    item = _converter(args[0]) if args else None
    if origin in (list, collections.abc.MutableSequence):
        return _sequence(item, list)
    if origin in (collections.abc.Sequence, collections.abc.Iterable, collections.abc.Collection):
        return _sequence(item, None)
    if origin is tuple:
        if not args or args[-1] is Ellipsis:
            return _sequence(item, tuple)
        return _fixed_tuple(hint, [_converter(arg) for arg in args])
    if origin in (set, frozenset, collections.abc.Set, collections.abc.MutableSet):
        return _set(item, frozenset if origin is frozenset else set)
    if origin in MAPPINGS:
        return _mapping(item, _converter(args[1]) if args else None)
    if typing.is_typeddict(origin):
        return _typed_dict(origin)
    if dataclasses.is_dataclass(origin):
        return _Dataclass(origin)
    if issubclass(origin, enum.Enum):
        return _enum(origin)
    if issubclass(origin, tuple) and hasattr(origin, "_fields"):  # a NamedTuple
        return _named_tuple(origin)
    if getattr(origin, "_is_protocol", False):
        return None
    if origin is float:  # int is acceptable where float is expected (PEP 484)
        return _instance_of((float, int), "float")
    form = _JSON_FORMS.get(origin)
    if form is not None:
        return _json_form(origin, *form)
    return _instance_of(origin, hint_name(origin))


def _got(value: object) -> str:
    return article(type_name(type(value)))


def _instance_of(cls: type | tuple[type, ...], name: str) -> _Convert:
    def convert(value: object) -> object:
        if isinstance(value, cls):
            return value
        raise Mismatch(f"expected {name}, got {_got(value)}")

    return convert


def _iso(cls: type[datetime.date] | type[datetime.time]) -> Callable[[Any], Any]:
    def parse(text: Any) -> Any:
        if not isinstance(text, str):
            raise TypeError
        return cls.fromisoformat(text)

    return parse


def _seconds(value: Any) -> datetime.timedelta:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError
    return datetime.timedelta(seconds=value)


def _decimal(value: Any) -> decimal.Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError
    number = decimal.Decimal(str(value) if isinstance(value, float) else value)
    if not number.is_finite():  # "NaN" would pass Decimal() and poison arithmetic later
        raise ValueError
    return number


def _uuid(value: Any) -> uuid.UUID:
    if not isinstance(value, str):
        raise TypeError
    return uuid.UUID(value)


def _base64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError
    return base64.b64decode(value, validate=True)


# Values that arrive as JSON (over HTTP, from another language) carry the richer types in
# their JSON forms (`durable.jsonform`); where the hint names the type, the form is parsed.
# type -> (parse, which raises TypeError or ValueError; the form, for messages)
_JSON_FORMS: dict[type, tuple[Callable[[Any], Any], str]] = {
    datetime.datetime: (_iso(datetime.datetime), "an ISO 8601 date-time string"),
    datetime.date: (_iso(datetime.date), "an ISO 8601 date string"),
    datetime.time: (_iso(datetime.time), "an ISO 8601 time string"),
    datetime.timedelta: (_seconds, "a number of seconds"),
    decimal.Decimal: (_decimal, "a decimal string"),
    uuid.UUID: (_uuid, "a UUID string"),
    bytes: (_base64, "a base64 string"),
}


def _json_form(cls: type, parse: Callable[[Any], Any], form: str) -> _Convert:
    name = hint_name(cls)

    def convert(value: object) -> object:
        if isinstance(value, cls):
            return value
        try:
            return parse(value)
        except (TypeError, ValueError, binascii.Error, decimal.InvalidOperation):
            shown = repr(value) if isinstance(value, str | int | float) else _got(value)
            if len(shown) > 60:
                shown = shown[:57] + "..."
            raise Mismatch(f"expected {name} (or its JSON form, {form}), got {shown}") from None

    return convert


def _literal(allowed: tuple[object, ...]) -> _Convert:
    def convert(value: object) -> object:
        if value in allowed:
            return value
        raise Mismatch(f"expected one of {allowed!r}, got {value!r}")

    return convert


# A container value is first offered to the union members of exactly its type, so that
# ``list[int] | tuple[int, ...]`` gives back a tuple as a tuple rather than as a list.
_EXACT = (list, tuple, set, frozenset)


def _union(hint: object, members: tuple[object, ...]) -> _Convert | None:
    check_union(hint, members)
    maybe = [(member, _converter(member)) for member in members]
    converters = [(m, convert) for m, convert in maybe if convert is not None]
    if len(converters) < len(maybe):  # Any among the members: every value fits
        return None
    rest = [m for m in members if m is not type(None)]
    if len(rest) == 1:  # Optional[X]: errors come straight from X, with their paths
        inner = _converter(rest[0])
        assert inner is not None
        return lambda value: None if value is None else inner(value)
    first: dict[type, list[tuple[object, _Convert]]] = {}
    for kind in _EXACT:
        same = [(m, c) for m, c in converters if _is_kind(m, kind)]
        if same:
            first[kind] = same + [pair for pair in converters if pair not in same]

    def convert(value: object) -> object:
        problems = []
        for member, member_convert in first.get(type(value), converters):
            try:
                return member_convert(value)
            except Mismatch as exc:
                problems.append((member, exc))
        deepest = max((exc for _, exc in problems), key=lambda exc: len(exc.segments))
        if deepest.segments:  # got furthest into one member: that was surely the intent
            raise deepest
        reasons = "; ".join(f"as {hint_name(m)}: {exc.message}" for m, exc in problems)
        raise Mismatch(f"matches no member of {hint_name(hint)} ({reasons})")

    return convert


def _is_kind(member: object, kind: type) -> bool:
    member = unwrap(member)
    cls = typing.get_origin(member) or member
    return isinstance(cls, type) and issubclass(cls, kind)


def _sequence(item: _Convert | None, out: type | None) -> _Convert:
    def convert(value: object) -> object:
        if not isinstance(value, list | tuple):
            raise Mismatch(f"expected a sequence, got {_got(value)}")
        kind = out or type(value)
        if item is None:
            return value if type(value) is kind else kind(value)
        items = []
        for i, element in enumerate(value):
            try:
                items.append(item(element))
            except Mismatch as exc:
                exc.segments.append(f"[{i}]")
                raise
        return items if kind is list else kind(items)

    return convert


def _fixed_tuple(hint: object, items: list[_Convert | None]) -> _Convert:
    def convert(value: object) -> object:
        if not isinstance(value, list | tuple) or len(value) != len(items):
            raise Mismatch(f"expected {hint_name(hint)}, got {_got(value)} {value!r:.60}")
        out = []
        for i, (element, item) in enumerate(zip(value, items, strict=True)):
            try:
                out.append(element if item is None else item(element))
            except Mismatch as exc:
                exc.segments.append(f"[{i}]")
                raise
        return tuple(out)

    return convert


def _named_tuple(cls: type[tuple[Any, ...]]) -> _Convert:
    fields_ = cls._fields  # type: ignore[attr-defined]
    hints = class_hints(cls) or {}  # unresolvable field hints: items taken as they are
    fields = _fixed_tuple(cls, [_converter(hints.get(f, Any)) for f in fields_])
    return lambda value: value if isinstance(value, cls) else cls(*fields(value))


def _set(item: _Convert | None, out: type[set[Any]] | type[frozenset[Any]]) -> _Convert:
    def convert(value: object) -> object:
        if not isinstance(value, set | frozenset | list | tuple):
            raise Mismatch(f"expected a set, got {_got(value)}")
        if item is None:
            return value if type(value) is out else out(value)
        try:
            return out(item(element) for element in value)
        except Mismatch as exc:
            exc.segments.append("{...}")
            raise

    return convert


def _mapping(key: _Convert | None, item: _Convert | None) -> _Convert:
    def convert(value: object) -> object:
        if not isinstance(value, dict):
            raise Mismatch(f"expected a dict, got {_got(value)}")
        if key is None and item is None:
            return value
        out = {}
        for k, v in value.items():
            try:
                converted_key = k if key is None else key(k)
            except Mismatch as exc:
                raise Mismatch(f"a key {k!r}: {exc.message}") from None
            try:
                out[converted_key] = v if item is None else item(v)
            except Mismatch as exc:
                exc.segments.append(f"[{k!r}]")
                raise
        return out

    return convert


def _typed_dict(cls: type) -> _Convert:
    """A TypedDict stays a dict (isinstance checks on it raise); its keys are fitted to their
    hints, and its required keys must be there."""
    try:  # with extras, to read Required/NotRequired (lost in string annotations otherwise)
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception:  # unresolvable: any dict fits
        hints = {}
    items: dict[str, _Convert | None] = {}
    required = set()
    total = getattr(cls, "__total__", True)
    for key, hint in hints.items():
        wrapper = typing.get_origin(hint)
        if wrapper is typing.NotRequired or wrapper is typing.Required:
            hint = typing.get_args(hint)[0]
        if wrapper is typing.Required or (wrapper is not typing.NotRequired and total):
            required.add(key)
        items[key] = _converter(hint)

    def convert(value: object) -> object:
        if not isinstance(value, dict):
            raise Mismatch(f"expected {cls.__qualname__} (a dict), got {_got(value)}")
        missing = sorted(required - value.keys())
        if missing:
            raise Mismatch(f"missing required key {missing[0]!r} of {cls.__qualname__}")
        out = {}
        for key, item in value.items():
            convert_item = items.get(key)
            try:
                out[key] = item if convert_item is None else convert_item(item)
            except Mismatch as exc:
                exc.segments.append(f"[{key!r}]")
                raise
        return out

    return convert


def _enum(cls: type[enum.Enum]) -> _Convert:
    def convert(value: object) -> object:
        if isinstance(value, cls):
            return value
        if isinstance(value, enum.Enum):  # a StrEnum member would pass cls(value) below
            raise Mismatch(f"expected {cls.__qualname__}, got {value!r}")
        try:
            return cls(value)
        except ValueError:
            raise Mismatch(f"{value!r} is not a member of {cls.__qualname__}") from None

    return convert


class _Dataclass:
    """Builds a dataclass from the map of its fields; field converters are made on first use
    so that self-referencing classes (``cause: RemoteError | None``) do not recurse."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        # name -> (the field's converter, its hint when a plain class: a fast exact-type pass)
        self.fields: dict[str, tuple[_Convert | None, type | None]] | None = None
        self.required: frozenset[str] = frozenset()

    def _prepare(self) -> dict[str, tuple[_Convert | None, type | None]]:
        try:
            hints = typing.get_type_hints(self.cls)
        except Exception as exc:
            raise Mismatch(
                f"cannot read the type hints of {self.cls.__qualname__} "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        fields = init_fields(self.cls)
        self.required = frozenset(required(fields))
        prepared = {}
        for name in fields:
            hint = hints.get(name, Any)
            prepared[name] = (_converter(hint), hint if isinstance(hint, type) else None)
        self.fields = prepared
        return prepared

    def __call__(self, value: object) -> object:
        if not isinstance(value, dict):
            if isinstance(value, self.cls):
                return value
            raise Mismatch(
                f"expected {self.cls.__qualname__} (a map of its fields), got {_got(value)}"
            )
        fields = self.fields if self.fields is not None else self._prepare()
        kwargs = {}
        for key, item in value.items():
            field = fields.get(key)
            if field is None:
                known = ", ".join(fields)
                raise Mismatch(
                    f"unknown field {key!r} for {self.cls.__qualname__} (its fields: {known})"
                )
            convert, exact = field
            if convert is None or type(item) is exact:
                kwargs[key] = item
                continue
            try:
                kwargs[key] = convert(item)
            except Mismatch as exc:
                exc.segments.append(f".{key}")
                raise
        if len(kwargs) < len(fields) and not self.required <= kwargs.keys():
            missing = sorted(self.required - kwargs.keys())[0]
            raise Mismatch(f"missing required field {missing!r} of {self.cls.__qualname__}")
        try:
            return self.cls(**kwargs)
        except Exception as exc:  # __post_init__ validation, for one
            name = self.cls.__qualname__
            raise Mismatch(f"{name}(...) raised {type(exc).__name__}: {exc}") from exc
