"""JSON forms of durable's values: how payloads cross HTTP and reach other languages.

Payloads are msgpack inside durable (`durable.payload`); over HTTP they travel as JSON. The
msgpack types map onto JSON directly; the richer types have one documented form each:

    Python value                      JSON form
    --------------------------------  ----------------------------------------------------
    None, bool, int, float, str       null, true/false, number, string (NaN and infinities
                                      are refused: JSON has no spelling for them)
    list, tuple, NamedTuple           array
    set, frozenset                    array (sorted when the members sort)
    dict                              object; str keys as they are, int/float/bool keys as
                                      their JSON text ("1", "2.5", "true"), other keys refused
    dataclass                         object of its init fields
    datetime, date, time              ISO 8601 string: "2026-12-02T14:30:00+00:00",
                                      "2026-12-02", "14:30:00" (naive values stay naive)
    timedelta                         number of seconds (float): 90.0
    Decimal                           string: "12.50" (exact, unlike a JSON number)
    UUID                              string: "0b6f...-..."
    bytes, bytearray, memoryview      base64 string (standard alphabet, padded)
    Enum member                       its value, in its JSON form

`to_json` writes these forms. The way back is `from_json`, or simply the code receiving the
value: a workflow parameter, an activity's ``result_type``, a dataclass field annotated
``datetime`` accepts the ISO string (`durable.hints` parses the form where the hint names
the richer type). Without a hint the JSON value stays as it is (a string stays a string).
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from . import hints
from .errors import SerializationError
from .hintnames import article, hint_name, type_name

__all__ = ["from_json", "to_json"]


def to_json(value: Any, *, what: str = "value") -> Any:
    """The JSON form of ``value`` (see the module docstring): plain dicts, lists, strings,
    numbers, booleans and ``None``, ready for `json.dumps`.

        >>> to_json({"at": datetime(2026, 12, 2, tzinfo=UTC), "ids": (1, 2)})
        {'at': '2026-12-02T00:00:00+00:00', 'ids': [1, 2]}

    Raises:
        SerializationError: a value with no JSON form, naming its path inside ``what``.
    """
    return _walk(value, what)


def from_json(data: Any, hint: object = None, *, what: str = "value") -> Any:
    """``data`` (parsed JSON) rebuilt as ``hint`` names: ISO strings into datetimes, objects
    into dataclasses, arrays into tuples and sets, values into Enum members. With no hint
    (``None`` or ``Any``) the data comes back as it is.

    Raises:
        SerializationError: the data does not fit the hint, naming the path inside it.
    """
    convert = hints.plan(hint).convert if hint is not None else None
    if convert is None:
        return data
    try:
        return convert(data)
    except hints.Mismatch as exc:
        path = what + "".join(reversed(exc.segments))
        raise SerializationError(f"{path} does not fit {hint_name(hint)}: {exc.message}") from None


def _walk(value: Any, path: str) -> Any:
    # Exact types first: the common case costs one dict lookup.
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise SerializationError(
                f"Cannot write {path} as JSON: {value!r} has no JSON form; "
                "send a finite number, or None"
            )
        return value
    if isinstance(value, enum.Enum):
        return _walk(value.value, path)
    if isinstance(value, dict):
        return {_key(k, path): _walk(v, f"{path}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, set | frozenset):
        try:
            members = sorted(value)
        except TypeError:
            members = list(value)
        return [_walk(item, f"{path}[{i}]") for i, item in enumerate(members)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: _walk(getattr(value, field.name), f"{path}.{field.name}")
            for field in dataclasses.fields(value)
            if field.init
        }
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal | UUID):
        if isinstance(value, Decimal) and not value.is_finite():
            raise SerializationError(
                f"Cannot write {path} as JSON: Decimal({str(value)!r}) is not a finite number"
            )
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, str | int | float):  # subclasses: their plain value
        return _plain(value, path)
    raise SerializationError(
        f"Cannot write {path} as JSON: {article(type_name(kind))} has no JSON "
        "form. Send plain data (dict, list, str, numbers), or a type durable documents "
        "a JSON form for (datetime, Decimal, UUID, bytes, a dataclass, an Enum)."
    )


def _plain(value: str | int | float, path: str) -> Any:
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return _walk(base(value), path)
    raise AssertionError(value)  # unreachable: the caller checked


def _key(key: Any, path: str) -> str:
    if isinstance(key, enum.Enum):
        key = key.value
    if isinstance(key, str):
        return str.__str__(key)
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float) and math.isfinite(key):
        return float.__repr__(key)
    raise SerializationError(
        f"Cannot write {path} as JSON: its key {key!r} is {article(type(key).__name__)}, "
        "and JSON object keys are strings. Use str keys for maps that cross HTTP."
    )
