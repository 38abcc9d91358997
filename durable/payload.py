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
NamedTuples back from tuples; `durable.hints` does that rebuilding (`durable.layout` per
function), and refuses a union of
dataclasses whose members a map cannot tell apart. A value that does not fit its hint raises
`SerializationError` naming the path inside it.

Decoding never imports anything and never picks a class the receiving code did not name: an
Enum (code 10) is rebuilt as a member only of an Enum class that the hint names (anywhere
inside it, through dataclass fields too), matched by "module:QualName". Decoded without such
a hint (no hint, `Any`, a plain `dict`, a signal's value) it comes back as its raw value.

Only the types above are encoded: anything else, including a raw `msgpack.ExtType` or
`msgpack.Timestamp` (which the packer would otherwise write as they are), is refused with
`SerializationError`, so whatever `encode` accepts, `decode` reads back. That includes a
frozen dataclass used as a dict key or set member: decoded without a hint, its map comes back
as a dict subclass hashed by its keys (and every map of that payload with it).

Encoding runs in msgpack's C packer; a value the packer cannot handle is walked once more in
Python only to name the offending path in the error (as is, rarely, a value whose bytes
may hold an extension value this module did not make: see `_pack_checked`). Decoding
without a hint is a single `msgpack.unpackb`.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import functools
import inspect
import re
import struct
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgpack

from . import hints
from .errors import MAX_DETAILS, RemoteError, SerializationError
from .hintnames import article as _a
from .hintnames import type_name as _type_name
from .layout import layout as _layout
from .layout import name_of as _name
from .layout import rebuild_args as _rebuild_args

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "decode",
    "decode_args",
    "decode_result",
    "encode",
    "encode_args",
    "envelope",
    "error_record",
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

# The packer writes a raw ExtType or Timestamp as it is, without asking `_default`, so
# `encode` checks that every extension value in its output is one `_default` made. Bytes
# that can start one (fixext 1-16, ext 8/16/32) are counted; only when there are more than
# `_default` made (strings and ints can hold such bytes too) is the output read back to
# count the real ones. msgpack decodes code -1 (Timestamp) without calling the hook, so a
# header that may carry code -1 (0xff) sends the value to the exact walk instead.
_EXT_HEADERS = bytes([0xC7, 0xC8, 0xC9, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8])
_FIXEXT_MINUS_ONE = tuple(bytes([header, 0xFF]) for header in range(0xD4, 0xD9))
_EXT_MINUS_ONE = re.compile(rb"\xc7.\xff|\xc8..\xff|\xc9....\xff", re.DOTALL)
_RAW_EXT = (msgpack.ExtType, msgpack.Timestamp)


class _Tally(threading.local):
    """Extension values `_default` made in this thread since `encode` reset it."""

    made = 0


_tally = _Tally()


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
    out = encoder(obj)
    if type(out) is msgpack.ExtType:
        _tally.made += 1
    return out


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


_NATIVE = frozenset({type(None), bool, int, float, str, bytes, bytearray, memoryview})


_CYCLE = "a reference back to a value that contains it (a reference cycle)"
_RAW = "a raw msgpack extension value (msgpack.ExtType or msgpack.Timestamp)"


def _find_unsupported(value: object, path: str, active: set[int]) -> tuple[str, str] | None:
    """Find the first value `_pack` refuses: (subject naming its path, what it is), or None."""
    if type(value) in _NATIVE:
        return None
    if type(value) in _RAW_EXT:
        return f"the value at {path}", _RAW
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
    if description is _RAW:
        return (
            f"Cannot serialize {what}: {subject} is {description}, which the decoder could "
            f"not read back safely; supported: {_SUPPORTED}. Pass the value itself instead."
        )
    if description is _CYCLE:
        return (
            f"Cannot serialize {what}: {subject} is {description}; payloads are trees, "
            "so break the cycle (pass an id instead of the reference)."
        )
    return (
        f"Cannot serialize {what}: {subject} is {description}; supported: {_SUPPORTED}. "
        "Convert it to one of these, or pass an id instead."
    )


def _holds_raw_ext(value: object) -> bool:
    """Whether a raw ExtType or Timestamp hides in `value` (the packer writes those as they
    are, bypassing `_default`). `value` has packed, so it is a tree of supported types."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in _NATIVE:
            continue
        if kind in _RAW_EXT:
            return True
        if isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif isinstance(item, enum.Enum):
            stack.append(item.value)
        elif dataclasses.is_dataclass(item):
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item) if f.init)
    return False


def _pack_checked(value: object) -> bytes:
    """`_pack`, refusing a raw ExtType or Timestamp anywhere in `value` (`_Unsupported`)."""
    _tally.made = 0
    data = _pack(value)
    made = _tally.made
    if len(data) - len(data.translate(None, _EXT_HEADERS)) <= made:
        return data  # the usual case: no room for an extension value `_default` did not make
    if (_maybe_timestamp(data) or _smuggled(data, made)) and _holds_raw_ext(value):
        raise _Unsupported(_RAW)
    return data


def _maybe_timestamp(data: bytes) -> bool:
    if b"\xff" not in data:
        return False
    return any(pattern in data for pattern in _FIXEXT_MINUS_ONE) or bool(
        _EXT_MINUS_ONE.search(data)
    )


def _smuggled(data: bytes, made: int) -> bool:
    """Whether `data` holds more extension values than the `made` ones of `_default`."""
    found = 0

    def count(code: int, inner: bytes) -> object:
        nonlocal found
        found += 1
        if code in (_TUPLE, _SET, _FROZENSET, _ENUM):  # packed values inside: count theirs
            msgpack.unpackb(inner, ext_hook=count, strict_map_key=False, raw=True)
        return found  # a hashable stand-in (it may be a dict key)

    try:
        msgpack.unpackb(data, ext_hook=count, strict_map_key=False, raw=True)
    except Exception:  # cannot tell: let the walk decide
        return True
    return found > made


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
        data = _pack_checked(value)
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
    layout = _layout(fn)  # unresolvable annotations would fail every decode: refuse now
    if not layout.accepts(args, kwargs):
        try:
            layout.signature.bind(*args, **kwargs)
        except TypeError as exc:
            message = f"{_name(fn)}() cannot be called with these arguments: {exc}"
            raise TypeError(message) from None
    value = {"args": list(args), "kwargs": kwargs}
    try:
        data = _pack_checked(value)
    except Exception as exc:
        sig = layout.signature
        for name, bound in sig.bind(*args, **kwargs).arguments.items():
            kind = sig.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                named = [(f"*{name}", f"{name}[{i}]", item) for i, item in enumerate(bound)]
            elif kind is inspect.Parameter.VAR_KEYWORD:
                named = [(key, key, item) for key, item in bound.items()]
            else:
                named = [(name, name, bound)]
            for label, root, item in named:
                found = _search(item, root)
                if found is not None:
                    message = _unsupported_message(f"{what}: argument {label!r}", found, exc)
                    raise SerializationError(message) from None
        raise SerializationError(_unsupported_message(what, None, exc)) from exc
    return _check_size(data, what, limit)


def error_record(exc: BaseException) -> RemoteError:
    """`RemoteError.from_exception(exc)` made fit for the journal: an `ApplicationError`'s
    ``details`` that cannot be encoded, or encode to more than `MAX_DETAILS` bytes, are
    replaced by a note with their ``repr`` (the failure itself must always be recordable)."""
    error = RemoteError.from_exception(exc)
    if error.details is None:
        return error
    try:
        encode(error.details, what="ApplicationError details", limit=MAX_DETAILS)
    except SerializationError as err:
        return error.with_unstorable_details(str(err))
    return error


# --- decoding ----------------------------------------------------------------------------

_Hook = Callable[[int, bytes], object]


class _BadExtension(ValueError):
    """An extension value that is well-formed but cannot be rebuilt here."""


class _Key(dict[Any, Any]):
    """A map decoded where only a hashable value fits: a dict key or a set member, as a
    frozen dataclass (a map of its fields) can be. Equal to the plain dict; hashed by its
    keys. A hint rebuilds the dataclass from it like from any map."""

    __slots__ = ()

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self))


def _unpack(data: bytes, hook: _Hook, keys: bool = False) -> Any:
    return msgpack.unpackb(
        data,
        ext_hook=hook,
        object_hook=_Key if keys else None,
        raw=False,
        strict_map_key=False,
        use_list=True,
    )


@functools.lru_cache(maxsize=256)
def _ext_hook(enums: frozenset[type[enum.Enum]], keys: bool = False) -> _Hook:
    """The ext hook that rebuilds Enum values into the classes in `enums` only. With `keys`,
    maps inside come back as `_Key` (for the rare payload a plain unpack cannot hold)."""
    classes = {f"{cls.__module__}:{cls.__qualname__}": cls for cls in enums}

    def hook(code: int, data: bytes) -> object:
        if code == _ENUM:
            name, value = _unpack(data, hook, keys)
            cls = classes.get(name) if isinstance(name, str) else None
            if cls is None:  # a class the receiving code does not name: the raw value
                return value
            try:
                return cls(value)
            except ValueError:
                message = f"{value!r} is not a member of {name} (was it removed?)"
                raise _BadExtension(message) from None
        if code in (_TUPLE, _SET, _FROZENSET):
            try:
                return _CONTAINERS[code](_unpack(data, hook, keys))
            except TypeError:  # a set of maps (frozen dataclasses): members made hashable
                if keys or code == _TUPLE:
                    raise
                return _CONTAINERS[code](_unpack(data, _ext_hook(enums, True), True))
        decoder = _DECODERS.get(code)
        if decoder is None:
            raise _BadExtension(f"unknown extension type {code} (written by a newer durable?)")
        return decoder(data)

    return hook


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


_CONTAINERS: dict[int, Callable[[list[Any]], object]] = {
    _TUPLE: tuple,
    _SET: set,
    _FROZENSET: frozenset,
}

_DECODERS: dict[int, Callable[[bytes], object]] = {
    _DATETIME: _decode_datetime,
    _DATE: lambda data: date(*_D.unpack(data)),
    _TIME: _decode_time,
    _TIMEDELTA: lambda data: timedelta(*_TD.unpack(data)),
    _DECIMAL: lambda data: Decimal(data.decode("ascii")),
    _UUID: lambda data: UUID(bytes=bytes(data)),
    _BIGINT: lambda data: int.from_bytes(data, "big", signed=True),
}

_NO_ENUMS: frozenset[type[enum.Enum]] = frozenset()
_PLAIN = _ext_hook(_NO_ENUMS)  # the hot path: every journal record is decoded with it


def _decode_plain(data: bytes, enums: frozenset[type[enum.Enum]], what: str) -> Any:
    try:
        try:
            return _unpack(data, _ext_hook(enums) if enums else _PLAIN)
        except TypeError:  # a map used as a dict key (a frozen dataclass): made hashable
            return _unpack(data, _ext_hook(enums, True), True)
    except _BadExtension as exc:
        raise SerializationError(f"Cannot decode {what}: {exc}.") from None
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise SerializationError(
            f"Cannot decode {what}: the data is corrupt or not a durable payload ({reason})."
        ) from exc


def decode(data: bytes, hint: object = None, *, what: str = "value", root: str = "value") -> Any:
    """Decode bytes from `encode`; with a type `hint`, rebuild the value to fit it.

    Without a hint the value comes back as encoded, except that dataclasses are plain dicts
    and Enum members their raw values. With one, dicts become the hinted dataclasses
    (recursively, through list[X], tuple[X, ...], set[X], dict[K, V], X | None and other
    unions), lists become hinted tuples and sets, and values hinted Enum members. `what` and
    `root` name the value in errors.

        decode(data, list[Order], what="result of activity 'orders'")

    Raises:
        SerializationError: the bytes are not a payload, or the value does not fit `hint`
            (unknown or missing dataclass fields, wrong types), naming the path inside it;
            or `hint` holds a union of dataclasses that cannot be told apart.
    """
    if hint is None:
        return _decode_plain(data, _NO_ENUMS, what)
    plan = hints.plan(hint)
    return hints.rebuild(plan.convert, _decode_plain(data, plan.enums, what), what, root)


@functools.lru_cache(maxsize=1024)
def _what(fn: Callable[..., Any], part: str) -> str:
    """How errors name the ``part`` of a call of ``fn`` (cached: asked for every decode)."""
    return f"{part} of {_name(fn)}()"


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
    layout = _layout(fn)
    what = what or _what(fn, "arguments")
    plain = _decode_plain(data, layout.enums, what)
    if not (
        isinstance(plain, dict)
        and isinstance(plain.get("args"), list)
        and isinstance(plain.get("kwargs"), dict)
    ):
        raise SerializationError(f"Cannot decode {what}: the data is not an arguments payload.")
    return _rebuild_args(layout, plain["args"], plain["kwargs"], what)


def decode_result(fn: Callable[..., Any], data: bytes, *, what: str | None = None) -> Any:
    """Decode a result of `fn`, rebuilt from its return annotation.

    For ``async def f() -> Order`` the result is rebuilt as an ``Order``.

    Raises:
        SerializationError: the data is corrupt or does not fit the return annotation.
    """
    plan = _layout(fn).result
    what = what or _what(fn, "result")
    value = _decode_plain(data, plan.enums, what)
    return hints.rebuild(plan.convert, value, what, "result")
