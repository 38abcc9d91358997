"""How type hints are named in messages and looked through: the small helpers that
`durable.hints` (rebuilding values), `durable.unions` (refusing ambiguous unions),
`durable.payload` and `durable.jsonform` share."""

from __future__ import annotations

import collections.abc
import typing
from typing import Any

__all__ = ["MAPPINGS", "article", "class_hints", "hint_name", "type_name", "unwrap"]

# The hints a map (a dict) is rebuilt as.
MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


def type_name(cls: type) -> str:
    """``str`` for builtins, ``module.QualName`` for everything else (used in messages)."""
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def article(noun: str) -> str:
    """``an int``, ``a str``."""
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


def hint_name(hint: object) -> str:
    """A hint as messages show it: ``int``, ``list[Order]``, ``Cat | Dog``."""
    if isinstance(hint, type):
        return "None" if hint is type(None) else hint.__qualname__
    return repr(hint).replace("typing.", "")


def unwrap(hint: object) -> object:
    """The hint under any ``NewType`` and ``Annotated`` wrapping it."""
    while True:
        if isinstance(hint, typing.NewType):
            hint = hint.__supertype__
        elif typing.get_origin(hint) is typing.Annotated:
            hint = typing.get_args(hint)[0]
        else:
            return hint


def class_hints(cls: type) -> dict[str, Any] | None:
    """``typing.get_type_hints(cls)``, or ``None`` while they cannot be resolved."""
    try:
        return typing.get_type_hints(cls)
    except Exception:
        return None
