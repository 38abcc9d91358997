"""Unions of dataclasses, refused when a value could come back as another member.

Dataclasses travel as the plain map of their fields, without class information, so a
union of dataclasses is only decodable when a map written from one member cannot be taken
for an earlier one (`durable.hints` tries the members in order). `check_union` refuses
``Cat | Dog`` with `SerializationError` when a Dog's map also fits Cat (Dog has no field
Cat lacks, and every field Cat requires) unless a field both share is a `Literal` with
different values in each (a discriminator), and a union mixing a dataclass with a dict
type (a map fits both).
"""

from __future__ import annotations

import dataclasses
import itertools
import typing
from typing import Any

from .errors import SerializationError
from .hintnames import MAPPINGS, article, class_hints, hint_name, unwrap

__all__ = ["check_union", "dataclass_of", "init_fields", "required"]


def dataclass_of(hint: object) -> type | None:
    """The dataclass a hint names (through NewType and Annotated), or ``None``."""
    hint = unwrap(hint)
    cls = typing.get_origin(hint) or hint
    return cls if isinstance(cls, type) and dataclasses.is_dataclass(cls) else None


def check_union(hint: object, members: tuple[object, ...]) -> None:
    """Raise `SerializationError` when ``hint`` (whose members are ``members``) cannot
    be decoded unambiguously: see the module docstring."""
    classes = [cls for cls in map(dataclass_of, members) if cls is not None]
    if not classes:
        return
    for member in members:
        origin = typing.get_origin(unwrap(member)) or unwrap(member)
        if origin in MAPPINGS or typing.is_typeddict(origin):
            raise SerializationError(
                f"Cannot use the type hint {hint_name(hint)}: a {classes[0].__qualname__} "
                f"travels as the map of its fields, so it cannot be told from "
                f"{hint_name(member)}. Use a dataclass (with a Literal field telling it "
                "apart) instead of the dict member."
            )
    for i, j in itertools.combinations(range(len(classes)), 2):
        first, later = classes[i], classes[j]
        if first is not later and _fits(later, first):
            raise SerializationError(_ambiguity(hint, first, later))


def init_fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    """A dataclass's fields that ``__init__`` takes, by name."""
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def required(fields: dict[str, dataclasses.Field[Any]]) -> set[str]:
    """The names of ``fields`` without a default."""
    missing = dataclasses.MISSING
    return {
        name for name, f in fields.items() if f.default is missing and f.default_factory is missing
    }


def _fits(written: type, reader: type) -> bool:
    """Whether the map of a `written` instance would be accepted as a `reader`."""
    wrote, reads = init_fields(written), init_fields(reader)
    if not wrote.keys() <= reads.keys() or not required(reads) <= wrote.keys():
        return False
    written_hints, reader_hints = class_hints(written), class_hints(reader)
    if written_hints is None or reader_hints is None:
        return False  # cannot tell yet; decoding reports the unresolvable hints
    return not any(
        _disjoint_literals(written_hints.get(name), reader_hints.get(name)) for name in wrote
    )


def _disjoint_literals(a: object, b: object) -> bool:
    a, b = unwrap(a), unwrap(b)
    if typing.get_origin(a) is not typing.Literal or typing.get_origin(b) is not typing.Literal:
        return False
    return not any(x == y for x in typing.get_args(a) for y in typing.get_args(b))


def _ambiguity(hint: object, first: type, later: type) -> str:
    a, b = first.__qualname__, later.__qualname__
    reorder = "" if _fits(first, later) else f", or list {b} before {a}"
    return (
        f"Cannot use the type hint {hint_name(hint)}: dataclasses travel as the map of their "
        f"fields, without their class, and a map written from {article(b)} also fits {a} "
        f"(every field of {b} is a field of {a}, and {b} has every field {a} requires), so "
        f"{article(b)} would come back as {article(a)}. Give both a field that tells them "
        "apart, such as "
        f'kind: Literal["{a.lower()}"] = "{a.lower()}" in {a} and '
        f'kind: Literal["{b.lower()}"] = "{b.lower()}" in {b}{reorder}.'
    )
