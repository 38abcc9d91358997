"""Payloads: how arguments, results, signal and published values are stored. msgpack, never pickle.

Every value crossing the journal is encoded here. The msgpack types (None, bool, int, float,
str, bytes, list, dict — with any hashable keys, int keys included) travel as themselves; the
other supported types travel as msgpack *extension types*, so they come back exactly even
without a type hint:

    code  type        ext data
    ----  ----------  ---------------------------------------------------------------------
       1  tuple       msgpack array of the items
       2  set         msgpack array of the members (sorted when they sort, so bytes repeat)
       3  frozenset   as set
       4  datetime    >HBBBBBIB year month day hour minute second microsecond fold (12 bytes),
                      plus >i UTC offset in seconds when aware (16 bytes)
       5  date        >HBB year month day
       6  time        >BBBIB hour minute second microsecond fold, plus >i offset when aware
       7  timedelta   >iiI days seconds microseconds
       8  Decimal     str(value), ASCII
       9  UUID        the 16 bytes
      10  Enum        msgpack array ["module:QualName", value]
      11  int         an int beyond 64 bits: signed big-endian two's complement bytes

An aware datetime or time keeps its UTC offset, not its tzinfo object: a `ZoneInfo` comes back
as the equivalent fixed `timezone` (offset 0 as `timezone.utc`). Subclasses of str, int,
float, bytes, list and dict travel as the base type; `bytearray` and `memoryview` as bytes; a
NamedTuple as a tuple.

Dataclasses travel as a plain map of their `init` fields, without class information: they
are rebuilt from the type hints of the function that receives them (arguments from parameter
annotations, results from the return annotation), so renaming or moving a class never breaks
stored data. Hints also turn lists back into tuples or sets, values into Enum members, and
NamedTuples back from tuples. A value that does not fit its hint raises `SerializationError`
naming the path inside it.

An Enum decoded *without* a hint is looked up by its "module:QualName" (importing the module
if needed, as it would be for the code that wrote it); only an `Enum` subclass found there is
used, otherwise the raw value is returned.

Encoding runs in msgpack's C packer; a value the packer cannot handle is walked once more in
Python only to name the offending path in the error. Decoding without a hint is a single
`msgpack.unpackb`.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import functools
import importlib
import inspect
import struct
import sys
import types
import typing
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgpack

from .errors import SerializationError

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "decode",
    "decode_args",
    "decode_result",
    "encode",
    "encode_args",
    "envelope",
]

MAX_PAYLOAD_BYTES = 2 * 1024 * 1024  # journal rows stay small: large data belongs in files

# Extension type codes: part of the stored format, never renumber.
_TUPLE, _SET, _FROZENSET, _DATETIME, _DATE, _TIME, _TIMEDELTA = 1, 2, 3, 4, 5, 6, 7
_DECIMAL, _UUID, _ENUM, _BIGINT = 8, 9, 10, 11

_SUPPORTED = (
    "the msgpack types (None, bool, int, float, str, bytes, list, dict), tuple, set, "
    "frozenset, datetime, date, time, timedelta, Decimal, UUID, Enum and dataclasses"
)

_DT = struct.Struct(">HBBBBBIB")
_D = struct.Struct(">HBB")
_T = struct.Struct(">BBBIB")
_TD = struct.Struct(">iiI")
_OFFSET = struct.Struct(">i")

_Convert = Callable[[Any], Any]


# --- encoding ----------------------------------------------------------------------------


class _Unsupported(TypeError):
    """`_default` met a value it cannot encode; `description` says what it is."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def _pack(value: object) -> bytes:
    # strict_types sends tuples and subclasses of the native types (IntEnum, StrEnum, ...)
    # to `_default` instead of silently flattening them into lists and plain ints.
    return msgpack.packb(value, default=_default, use_bin_type=True, strict_types=True)  # type: ignore[no-any-return]


def _default(obj: object) -> object:
    encoder = _ENCODERS.get(type(obj))
    if encoder is None:
        encoder = _encoder_for(type(obj))
    return encoder(obj)


def _sorted(members: collections.abc.Set[Any]) -> list[Any]:
    try:
        return sorted(members)
    except TypeError:  # mixed or unorderable members: any order decodes to the same set
        return list(members)


def _offset(value: datetime | time) -> bytes:
    offset = value.utcoffset()
    if offset is None:
        raise _Unsupported(f"a {type(value).__name__} whose tzinfo gives no UTC offset")
    if offset.microseconds:
        raise _Unsupported(f"a {type(value).__name__} with a sub-second UTC offset")
    return _OFFSET.pack(offset.days * 86400 + offset.seconds)


def _encode_datetime(v: datetime) -> msgpack.ExtType:
    data = _DT.pack(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, v.fold)
    return msgpack.ExtType(_DATETIME, data if v.tzinfo is None else data + _offset(v))


def _encode_time(v: time) -> msgpack.ExtType:
    data = _T.pack(v.hour, v.minute, v.second, v.microsecond, v.fold)
    return msgpack.ExtType(_TIME, data if v.tzinfo is None else data + _offset(v))


def _encode_int(v: int) -> object:
    v = int.__int__(v)  # an int subclass becomes a plain int
    if -(2**63) <= v < 2**64:
        return v
    return msgpack.ExtType(_BIGINT, v.to_bytes((v.bit_length() + 8) // 8, "big", signed=True))


def _encode_enum(v: enum.Enum) -> msgpack.ExtType:
    cls = type(v)
    return msgpack.ExtType(_ENUM, _pack([f"{cls.__module__}:{cls.__qualname__}", v.value]))


_ENCODERS: dict[type, Callable[[Any], object]] = {
    tuple: lambda v: msgpack.ExtType(_TUPLE, _pack(list(v))),
    set: lambda v: msgpack.ExtType(_SET, _pack(_sorted(v))),
    frozenset: lambda v: msgpack.ExtType(_FROZENSET, _pack(_sorted(v))),
    datetime: _encode_datetime,
    date: lambda v: msgpack.ExtType(_DATE, _D.pack(v.year, v.month, v.day)),
    time: _encode_time,
    timedelta: lambda v: msgpack.ExtType(_TIMEDELTA, _TD.pack(v.days, v.seconds, v.microseconds)),
    Decimal: lambda v: msgpack.ExtType(_DECIMAL, str(v).encode("ascii")),
    UUID: lambda v: msgpack.ExtType(_UUID, v.bytes),
    int: _encode_int,  # reached only for ints beyond 64 bits
}

# Checked in order for types not yet in _ENCODERS: Enum before int/str (IntEnum, StrEnum),
# datetime before date (a datetime is a date).
_SUBCLASS_ENCODERS: list[tuple[type, Callable[[Any], object]]] = [
    (enum.Enum, _encode_enum),
    (datetime, _encode_datetime),
    *((base, _ENCODERS[base]) for base in (tuple, set, frozenset, date, time, timedelta)),
    *((base, _ENCODERS[base]) for base in (Decimal, UUID, int)),
    (str, str.__str__),
    (float, float.__float__),
    (bytes, bytes),
    (bytearray, bytes),
    (dict, dict),
    (list, list),
]


def _encoder_for(cls: type) -> Callable[[Any], object]:
    encoder: Callable[[Any], object] | None = None
    if dataclasses.is_dataclass(cls):
        names = tuple(f.name for f in dataclasses.fields(cls) if f.init)
        encoder = lambda v: {name: getattr(v, name) for name in names}  # noqa: E731
    else:
        encoder = next((enc for base, enc in _SUBCLASS_ENCODERS if issubclass(cls, base)), None)
    if encoder is None:
        raise _Unsupported(_a(_type_name(cls)))
    _ENCODERS[cls] = encoder
    return encoder


def _type_name(cls: type) -> str:
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


_NATIVE = frozenset({type(None), bool, int, float, str, bytes, bytearray, memoryview})


_CYCLE = "a reference back to a value that contains it (a reference cycle)"


def _find_unsupported(value: object, path: str, active: set[int]) -> tuple[str, str] | None:
    """Find the first value `_pack` refuses: (subject naming its path, what it is), or None."""
    if type(value) in _NATIVE:
        return None
    if id(value) in active:
        return f"the value at {path}", _CYCLE
    children: collections.abc.Iterable[tuple[str, object]]
    if isinstance(value, enum.Enum):
        children = [(f"{path}.value", value.value)]
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        children = [
            (f"{path}.{f.name}", getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.init
        ]
    elif isinstance(value, dict):
        for key in value:
            if (found := _find_unsupported(key, path, active)) is not None:
                return f"a key in {path}", found[1]
        children = ((f"{path}[{key!r}]", item) for key, item in value.items())
    elif isinstance(value, list | tuple):
        children = ((f"{path}[{i}]", item) for i, item in enumerate(value))
    elif isinstance(value, set | frozenset):
        children = ((f"{path}{{...}}", item) for item in value)
    else:
        try:
            _default(value)
        except _Unsupported as exc:
            return f"the value at {path}", exc.description
        return None
    active.add(id(value))
    try:
        for child_path, child in children:
            found = _find_unsupported(child, child_path, active)
            if found is not None:
                return found
    finally:
        active.discard(id(value))
    return None


def _unsupported_message(what: str, found: tuple[str, str] | None, exc: Exception) -> str:
    if found is None:  # the packer failed on something other than a type: say what it said
        return f"Cannot serialize {what}: {type(exc).__name__}: {exc}."
    subject, description = found
    if description is _CYCLE:
        return (
            f"Cannot serialize {what}: {subject} is {description}; payloads are trees, "
            "so break the cycle (pass an id instead of the reference)."
        )
    return (
        f"Cannot serialize {what}: {subject} is {description}; supported: {_SUPPORTED}. "
        "Convert it to one of these, or pass an id instead."
    )


def _search(value: object, path: str) -> tuple[str, str] | None:
    try:
        return _find_unsupported(value, path, set())
    except RecursionError:
        return None


def _check_size(data: bytes, what: str, limit: int | None) -> bytes:
    limit = MAX_PAYLOAD_BYTES if limit is None else limit
    if len(data) > limit:
        raise SerializationError(
            f"Cannot serialize {what}: it encodes to {_size(len(data))}, over the payload limit of "
            f"{_size(limit)}. Payloads live in the journal; pass a reference to the data "
            "(a file path, an object-store key, a database id) instead of the data itself."
        )
    return data


def _size(n: int) -> str:
    return f"{n:,} bytes ({n / 1024 / 1024:.2f} MiB)"


def encode(
    value: object, *, what: str = "value", limit: int | None = None, root: str = "value"
) -> bytes:
    """Encode `value` as msgpack bytes (see the module docstring for the types supported).

    `what` names the value in errors ("result of activity 'charge'"), `root` is the name its
    path starts from, and `limit` overrides `MAX_PAYLOAD_BYTES`.

        encode({"id": 7, "at": datetime.now(UTC)}, what="signal 'paid'")

    Raises:
        SerializationError: a value inside is not supported (the message gives its path, such
            as ``value['items'][2].owner``), or the encoded size is over the limit.
    """
    try:
        data = _pack(value)
    except Exception as exc:
        message = _unsupported_message(what, _search(value, root), exc)
        raise SerializationError(message) from (None if isinstance(exc, _Unsupported) else exc)
    return _check_size(data, what, limit)


def envelope(value: object) -> bytes:
    """Encode one of durable's own records (a journal entry's or an inbox item's data) that
    wraps payloads already checked by `encode` or `encode_args`.

    No size limit applies: the limit is for what users pass and return, and a record adds a
    few bytes around it, which must not turn an accepted payload into a failure later.
    """
    return _pack(value)


def encode_args(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    what: str,
    limit: int | None = None,
) -> bytes:
    """Encode a call's arguments as the map ``{"args": [...], "kwargs": {...}}``.

    The call is checked against `fn`'s signature first, so a call that could never run is
    refused at the call site. `what` names the arguments in errors ("arguments of activity
    'charge'"); an unsupported value is reported with the parameter it was passed as.

    Raises:
        TypeError: the arguments do not match `fn`'s signature.
        SerializationError: an argument cannot be encoded, the total is over the limit, or
            `fn`'s annotations cannot be resolved (they are needed to decode the arguments).
    """
    sig = _signature(fn)
    _layout(fn)  # unresolvable annotations would fail every decode: refuse the call now
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{_name(fn)}() cannot be called with these arguments: {exc}") from None
    try:
        data = _pack({"args": list(args), "kwargs": kwargs})
    except Exception as exc:
        for name, value in bound.arguments.items():
            kind = sig.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                named = [(f"*{name}", f"{name}[{i}]", item) for i, item in enumerate(value)]
            elif kind is inspect.Parameter.VAR_KEYWORD:
                named = [(key, key, item) for key, item in value.items()]
            else:
                named = [(name, name, value)]
            for label, root, item in named:
                found = _search(item, root)
                if found is not None:
                    message = _unsupported_message(f"{what}: argument {label!r}", found, exc)
                    raise SerializationError(message) from None
        raise SerializationError(_unsupported_message(what, None, exc)) from exc
    return _check_size(data, what, limit)


# --- decoding ----------------------------------------------------------------------------


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False, use_list=True)


class _BadExtension(ValueError):
    """An extension value that is well-formed but cannot be rebuilt here."""


def _ext_hook(code: int, data: bytes) -> object:
    decoder = _DECODERS.get(code)
    if decoder is None:
        raise _BadExtension(f"unknown extension type {code} (written by a newer durable?)")
    return decoder(data)


@functools.lru_cache(maxsize=64)
def _tz(seconds: int) -> timezone:
    return UTC if seconds == 0 else timezone(timedelta(seconds=seconds))


def _decode_datetime(data: bytes) -> datetime:
    y, mo, d, h, mi, s, us, fold = _DT.unpack_from(data)
    tz = _tz(_OFFSET.unpack_from(data, _DT.size)[0]) if len(data) > _DT.size else None
    return datetime(y, mo, d, h, mi, s, us, tz, fold=fold)


def _decode_time(data: bytes) -> time:
    h, mi, s, us, fold = _T.unpack_from(data)
    tz = _tz(_OFFSET.unpack_from(data, _T.size)[0]) if len(data) > _T.size else None
    return time(h, mi, s, us, tz, fold=fold)


def _decode_enum(data: bytes) -> object:
    name, value = _unpack(data)
    cls = _enum_class(name)
    if cls is None:
        return value
    try:
        return cls(value)
    except ValueError:
        raise _BadExtension(f"{value!r} is not a member of {name} (was it removed?)") from None


@functools.lru_cache(maxsize=256)
def _enum_class(name: str) -> type[enum.Enum] | None:
    module_name, _, qualname = name.partition(":")
    try:
        obj: object = sys.modules.get(module_name) or importlib.import_module(module_name)
    except Exception:  # not importable here: the caller gets the raw value
        return None
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if isinstance(obj, type) and issubclass(obj, enum.Enum):
        return obj
    return None


_DECODERS: dict[int, Callable[[bytes], object]] = {
    _TUPLE: lambda data: tuple(_unpack(data)),
    _SET: lambda data: set(_unpack(data)),
    _FROZENSET: lambda data: frozenset(_unpack(data)),
    _DATETIME: _decode_datetime,
    _DATE: lambda data: date(*_D.unpack(data)),
    _TIME: _decode_time,
    _TIMEDELTA: lambda data: timedelta(*_TD.unpack(data)),
    _DECIMAL: lambda data: Decimal(data.decode("ascii")),
    _UUID: lambda data: UUID(bytes=bytes(data)),
    _ENUM: _decode_enum,
    _BIGINT: lambda data: int.from_bytes(data, "big", signed=True),
}


def decode(data: bytes, hint: object = None, *, what: str = "value", root: str = "value") -> Any:
    """Decode bytes from `encode`; with a type `hint`, rebuild the value to fit it.

    Without a hint the value comes back as encoded, except that dataclasses are plain dicts.
    With one, dicts become the hinted dataclasses (recursively, through list[X], tuple[X, ...],
    set[X], dict[K, V], X | None and other unions), lists become hinted tuples and sets, and
    raw values hinted Enum members. `what` and `root` name the value in errors.

        decode(data, list[Order], what="result of activity 'orders'")

    Raises:
        SerializationError: the bytes are not a payload, or the value does not fit `hint`
            (unknown or missing dataclass fields, wrong types), naming the path inside it.
    """
    try:
        value = _unpack(data)
    except _BadExtension as exc:
        raise SerializationError(f"Cannot decode {what}: {exc}.") from None
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise SerializationError(
            f"Cannot decode {what}: the data is corrupt or not a durable payload ({reason})."
        ) from exc
    if hint is None:
        return value
    return _rebuild(_converter(hint), value, what, root)


def decode_args(
    fn: Callable[..., Any], data: bytes, *, what: str | None = None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Decode `encode_args` bytes into ``(args, kwargs)`` rebuilt from `fn`'s annotations.

    Each argument is rebuilt with its parameter's annotation; ``*args`` and ``**kwargs``
    elements with theirs (``*ids: int`` means each is an int).

    Raises:
        SerializationError: the data is not an arguments payload, an argument does not fit
            its annotation, or `fn`'s annotations cannot be resolved.
    """
    what = what or f"arguments of {_name(fn)}()"
    plain = decode(data, what=what)
    if not (
        isinstance(plain, dict)
        and isinstance(plain.get("args"), list)
        and isinstance(plain.get("kwargs"), dict)
    ):
        raise SerializationError(f"Cannot decode {what}: the data is not an arguments payload.")
    layout = _layout(fn)
    positional, var_positional = layout.positional, layout.var_positional
    args: list[Any] = []
    for i, value in enumerate(plain["args"]):
        if i < len(positional):
            name, convert = positional[i]
            args.append(_rebuild(convert, value, f"{what}: argument {name!r}", name))
        elif var_positional is not None:
            name, convert = var_positional
            root = f"{name}[{i - len(positional)}]"
            args.append(_rebuild(convert, value, f"{what}: argument '*{name}'", root))
        else:  # more than fn takes: left for the call itself to refuse
            args.append(value)
    kwargs: dict[str, Any] = {}
    for key, value in plain["kwargs"].items():
        convert = layout.keyword.get(key, layout.var_keyword)
        kwargs[key] = _rebuild(convert, value, f"{what}: argument {key!r}", key)
    return tuple(args), kwargs


def decode_result(fn: Callable[..., Any], data: bytes, *, what: str | None = None) -> Any:
    """Decode a result of `fn`, rebuilt from its return annotation.

    For ``async def f() -> Order`` the result is rebuilt as an ``Order``.

    Raises:
        SerializationError: the data is corrupt or does not fit the return annotation.
    """
    what = what or f"result of {_name(fn)}()"
    return decode(data, _layout(fn).result, what=what, root="result")


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


@functools.lru_cache(maxsize=1024)
def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(fn)


class _Layout(typing.NamedTuple):
    positional: list[tuple[str, _Convert | None]]
    var_positional: tuple[str, _Convert | None] | None
    keyword: dict[str, _Convert | None]
    var_keyword: _Convert | None
    result: object


@functools.lru_cache(maxsize=1024)
def _layout(fn: Callable[..., Any]) -> _Layout:
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:
        raise SerializationError(
            f"Cannot read the type hints of {_name(fn)}(): {type(exc).__name__}: {exc}. "
            "Arguments and results are rebuilt from them, so every name in the annotations "
            "must be importable at run time (not only under TYPE_CHECKING)."
        ) from exc
    P = inspect.Parameter
    positional: list[tuple[str, _Convert | None]] = []
    var_positional: tuple[str, _Convert | None] | None = None
    keyword: dict[str, _Convert | None] = {}
    var_keyword: _Convert | None = None
    for name, param in _signature(fn).parameters.items():
        convert = _converter(hints[name]) if name in hints else None
        if param.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD):
            positional.append((name, convert))
        if param.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY):
            keyword[name] = convert
        if param.kind is P.VAR_POSITIONAL:
            var_positional = (name, convert)
        if param.kind is P.VAR_KEYWORD:
            var_keyword = convert
    result = hints.get("return")
    origin = typing.get_origin(result)
    if origin in (collections.abc.Awaitable, collections.abc.Coroutine):
        result = typing.get_args(result)[-1]  # a plain def returning a coroutine
    return _Layout(positional, var_positional, keyword, var_keyword, result)


# --- rebuilding from type hints ----------------------------------------------------------


class _Mismatch(Exception):
    """A value does not fit its hint; `segments` collect its path, innermost first."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.segments: list[str] = []


def _rebuild(convert: _Convert | None, value: object, what: str, root: str) -> Any:
    if convert is None:
        return value
    try:
        return convert(value)
    except _Mismatch as exc:
        path = root + "".join(reversed(exc.segments))
        raise SerializationError(
            f"Cannot decode {what}: the value at {path} does not fit its type hint: "
            f"{exc.message}. Was the code changed since the data was written?"
        ) from None


def _converter(hint: object) -> _Convert | None:
    """A function fitting a plain decoded value to `hint`, or None if any value fits."""
    try:
        hash(hint)
    except TypeError:  # e.g. Annotated with unhashable metadata: built each time
        return _build_converter(hint)
    return _cached_converter(hint)


@functools.lru_cache(maxsize=1024)
def _cached_converter(hint: object) -> _Convert | None:
    return _build_converter(hint)


def _hint_name(hint: object) -> str:
    if isinstance(hint, type):
        return "None" if hint is type(None) else hint.__qualname__
    return repr(hint).replace("typing.", "")


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
    if origin in (list, collections.abc.MutableSequence):
        return _sequence(_converter(args[0]) if args else None, list)
    if origin in (collections.abc.Sequence, collections.abc.Iterable, collections.abc.Collection):
        return _sequence(_converter(args[0]) if args else None, None)
    if origin is tuple:
        if not args or args[-1] is Ellipsis:
            return _sequence(_converter(args[0]) if args else None, tuple)
        return _fixed_tuple(hint, [_converter(arg) for arg in args])
    if origin in (set, frozenset, collections.abc.Set, collections.abc.MutableSet):
        out = frozenset if origin is frozenset else set
        return _set(_converter(args[0]) if args else None, out)
    if origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
        if not args:
            return _mapping(None, None)
        return _mapping(_converter(args[0]), _converter(args[1]))
    if dataclasses.is_dataclass(origin):
        return _Dataclass(origin)
    if issubclass(origin, enum.Enum):
        return _enum(origin)
    if issubclass(origin, tuple) and hasattr(origin, "_fields"):  # a NamedTuple
        try:
            hints = typing.get_type_hints(origin)
        except Exception:  # unresolvable field hints: the items are taken as they are
            hints = {}
        fields = _fixed_tuple(origin, [_converter(hints.get(f, Any)) for f in origin._fields])
        return lambda value: value if isinstance(value, origin) else origin(*fields(value))
    if getattr(origin, "_is_protocol", False):
        return None
    if origin is float:  # int is acceptable where float is expected (PEP 484)
        return _instance_of((float, int), "float")
    return _instance_of(origin, _hint_name(origin))


def _got(value: object) -> str:
    return _a(_type_name(type(value)))


def _instance_of(cls: type | tuple[type, ...], name: str) -> _Convert:
    def convert(value: object) -> object:
        if isinstance(value, cls):
            return value
        raise _Mismatch(f"expected {name}, got {_got(value)}")

    return convert


def _literal(allowed: tuple[object, ...]) -> _Convert:
    def convert(value: object) -> object:
        if value in allowed:
            return value
        raise _Mismatch(f"expected one of {allowed!r}, got {value!r}")

    return convert


def _union(hint: object, members: tuple[object, ...]) -> _Convert | None:
    maybe = [_converter(member) for member in members]
    converters = [convert for convert in maybe if convert is not None]
    if len(converters) < len(maybe):  # Any among the members: every value fits
        return None
    rest = [m for m in members if m is not type(None)]
    if len(rest) == 1:  # Optional[X]: errors come straight from X, with their paths
        inner = _converter(rest[0])
        assert inner is not None
        return lambda value: None if value is None else inner(value)

    def convert(value: object) -> object:
        problems = []
        for member_convert in converters:
            try:
                return member_convert(value)
            except _Mismatch as exc:
                problems.append(exc)
        deepest = max(problems, key=lambda exc: len(exc.segments))
        if deepest.segments:  # got furthest into one member: that was surely the intent
            raise deepest
        reasons = "; ".join(
            f"as {_hint_name(m)}: {p.message}" for m, p in zip(members, problems, strict=True)
        )
        raise _Mismatch(f"matches no member of {_hint_name(hint)} ({reasons})")

    return convert


def _sequence(item: _Convert | None, out: type | None) -> _Convert:
    def convert(value: object) -> object:
        if not isinstance(value, list | tuple):
            raise _Mismatch(f"expected a sequence, got {_got(value)}")
        kind = out or type(value)
        if item is None:
            return value if type(value) is kind else kind(value)
        items = []
        for i, element in enumerate(value):
            try:
                items.append(item(element))
            except _Mismatch as exc:
                exc.segments.append(f"[{i}]")
                raise
        return items if kind is list else kind(items)

    return convert


def _fixed_tuple(hint: object, items: list[_Convert | None]) -> _Convert:
    def convert(value: object) -> object:
        if not isinstance(value, list | tuple) or len(value) != len(items):
            raise _Mismatch(f"expected {_hint_name(hint)}, got {_got(value)} {value!r:.60}")
        out = []
        for i, (element, item) in enumerate(zip(value, items, strict=True)):
            try:
                out.append(element if item is None else item(element))
            except _Mismatch as exc:
                exc.segments.append(f"[{i}]")
                raise
        return tuple(out)

    return convert


def _set(item: _Convert | None, out: type[set[Any]] | type[frozenset[Any]]) -> _Convert:
    def convert(value: object) -> object:
        if not isinstance(value, set | frozenset | list | tuple):
            raise _Mismatch(f"expected a set, got {_got(value)}")
        if item is None:
            return value if type(value) is out else out(value)
        try:
            return out(item(element) for element in value)
        except _Mismatch as exc:
            exc.segments.append("{...}")
            raise

    return convert


def _mapping(key: _Convert | None, item: _Convert | None) -> _Convert:
    def convert(value: object) -> object:
        if not isinstance(value, dict):
            raise _Mismatch(f"expected a dict, got {_got(value)}")
        if key is None and item is None:
            return value
        out = {}
        for k, v in value.items():
            try:
                converted_key = k if key is None else key(k)
            except _Mismatch as exc:
                raise _Mismatch(f"a key {k!r}: {exc.message}") from None
            try:
                out[converted_key] = v if item is None else item(v)
            except _Mismatch as exc:
                exc.segments.append(f"[{k!r}]")
                raise
        return out

    return convert


def _enum(cls: type[enum.Enum]) -> _Convert:
    def convert(value: object) -> object:
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            raise _Mismatch(f"{value!r} is not a member of {cls.__qualname__}") from None

    return convert


def _field_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception as exc:
        raise _Mismatch(
            f"cannot read the type hints of {cls.__qualname__} ({type(exc).__name__}: {exc})"
        ) from exc


class _Dataclass:
    """Builds a dataclass from the map of its fields; field converters are made on first use
    so that self-referencing classes (``cause: RemoteError | None``) do not recurse."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        # name -> (the field's converter, its hint when a plain class: a fast exact-type pass)
        self.fields: dict[str, tuple[_Convert | None, type | None]] | None = None
        self.required: frozenset[str] = frozenset()

    def _prepare(self) -> dict[str, tuple[_Convert | None, type | None]]:
        hints = _field_hints(self.cls)
        fields = [f for f in dataclasses.fields(self.cls) if f.init]
        no_default = dataclasses.MISSING
        self.required = frozenset(
            f.name for f in fields if f.default is no_default and f.default_factory is no_default
        )
        self.fields = {}
        for f in fields:
            hint = hints.get(f.name, Any)
            self.fields[f.name] = (_converter(hint), hint if isinstance(hint, type) else None)
        return self.fields

    def __call__(self, value: object) -> object:
        if not isinstance(value, dict):
            if isinstance(value, self.cls):
                return value
            raise _Mismatch(
                f"expected {self.cls.__qualname__} (a map of its fields), got {_got(value)}"
            )
        fields = self.fields if self.fields is not None else self._prepare()
        kwargs = {}
        for key, item in value.items():
            field = fields.get(key)
            if field is None:
                known = ", ".join(fields)
                raise _Mismatch(
                    f"unknown field {key!r} for {self.cls.__qualname__} (its fields: {known})"
                )
            convert, exact = field
            if convert is None or type(item) is exact:
                kwargs[key] = item
                continue
            try:
                kwargs[key] = convert(item)
            except _Mismatch as exc:
                exc.segments.append(f".{key}")
                raise
        if len(kwargs) < len(fields) and not self.required <= kwargs.keys():
            missing = sorted(self.required - kwargs.keys())[0]
            raise _Mismatch(f"missing required field {missing!r} of {self.cls.__qualname__}")
        try:
            return self.cls(**kwargs)
        except Exception as exc:  # __post_init__ validation, for one
            name = self.cls.__qualname__
            raise _Mismatch(f"{name}(...) raised {type(exc).__name__}: {exc}") from exc
