"""Building frozen dataclasses on the hot path without their generated ``__init__``.

A frozen dataclass's ``__init__`` sets each field with a call of ``object.__setattr__`` (its
own ``__setattr__`` refuses): for the ten fields of an `ActivityInfo` that is most of its
cost, and the worker makes several such objects per step. `build` makes the instance with
the map of its fields as its ``__dict__``, in one call.
"""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["build"]

T = TypeVar("T")

_new = object.__new__
_set = object.__setattr__


def build(cls: type[T], fields: dict[str, Any]) -> T:
    """``cls(**fields)`` for a frozen dataclass ``cls`` without slots nor ``__post_init__``,
    given every field (in their order, as ``repr`` shows them): ``fields`` becomes the
    instance's ``__dict__`` as it is, so the caller must not keep it."""
    made: T = _new(cls)
    _set(made, "__dict__", fields)
    return made
