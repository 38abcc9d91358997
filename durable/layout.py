"""Layouts: how a function's arguments and result are rebuilt, worked out once per function.

A `Layout` pairs each parameter of a function with the `durable.hints.Plan` of its
annotation (``*args`` and ``**kwargs`` elements with theirs) and the return annotation with
its own. It is cached per function, because replay decodes the arguments and results of
every step again: it also answers "does this call bind?" without `inspect.Signature.bind`
for the common calls (`Layout.accepts`).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

from .errors import SerializationError
from .hints import Mismatch, Plan, plan, refusal

__all__ = ["Layout", "check_function", "layout", "name_of", "rebuild_args"]

_Convert = Callable[[Any], Any]


def name_of(fn: Callable[..., Any]) -> str:
    """The qualified name of `fn` for messages."""
    return getattr(fn, "__qualname__", None) or repr(fn)


@dataclasses.dataclass(frozen=True)
class Layout:
    """What decoding a function's arguments and result needs, computed once per function.

    Each parameter comes as ``(name, converter, exact)``: ``exact`` is its hint when a plain
    class, so a value of exactly that type skips the converter.
    """

    signature: inspect.Signature
    positional: list[tuple[str, _Convert | None, type | None]]
    var_positional: tuple[str, _Convert | None, type | None] | None
    keyword: dict[str, tuple[_Convert | None, type | None]]
    var_keyword: tuple[_Convert | None, type | None] | None
    result: Plan
    enums: frozenset[type[enum.Enum]]  # of every parameter: what decoding the arguments may rebuild
    required_positional: list[str]  # the leading positional parameters without a default
    required_keyword_only: frozenset[str]
    position: dict[str, int]  # index of each positional-or-keyword parameter; -1 keyword-only

    def accepts(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """True when the call surely binds (most calls); False means "ask the signature"."""
        n = len(args)
        if n > len(self.positional) and self.var_positional is None:
            return False
        if not kwargs:
            return n >= len(self.required_positional) and not self.required_keyword_only
        for key in kwargs:
            index = self.position.get(key)
            if index is None or 0 <= index < n:  # unknown, or given twice
                return False
        return all(name in kwargs for name in self.required_positional[n:]) and (
            self.required_keyword_only <= kwargs.keys()
        )


def layout(fn: Callable[..., Any]) -> Layout:
    """The `Layout` of `fn` (cached).

    Raises:
        SerializationError: `fn`'s annotations cannot be resolved, or name a union whose
            members cannot be told apart.
    """
    return _layout(fn)


@functools.lru_cache(maxsize=1024)
def _layout(fn: Callable[..., Any]) -> Layout:
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:
        raise SerializationError(
            f"Cannot read the type hints of {name_of(fn)}(): {type(exc).__name__}: {exc}. "
            "Arguments and results are rebuilt from them, so every name in the annotations "
            "must be importable at run time (not only under TYPE_CHECKING)."
        ) from exc
    return _build_layout(fn, hints)


def _build_layout(fn: Callable[..., Any], hints: dict[str, Any]) -> Layout:
    P = inspect.Parameter
    signature = inspect.signature(fn)
    positional: list[tuple[str, _Convert | None, type | None]] = []
    var_positional = None
    keyword: dict[str, tuple[_Convert | None, type | None]] = {}
    var_keyword = None
    required_positional: list[str] = []
    required_keyword_only: set[str] = set()
    position: dict[str, int] = {}
    enums: set[type[enum.Enum]] = set()
    for name, param in signature.parameters.items():
        hint = hints.get(name)
        try:
            convert, found = plan(hint)
        except SerializationError as exc:
            raise SerializationError(f"Parameter {name!r} of {name_of(fn)}(): {exc}") from None
        enums |= found
        exact = hint if isinstance(hint, type) and convert is not None else None
        required = param.default is P.empty
        if param.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD):
            if required:
                required_positional.append(name)
            if param.kind is P.POSITIONAL_OR_KEYWORD:
                position[name] = len(positional)
            positional.append((name, convert, exact))
        if param.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY):
            keyword[name] = (convert, exact)
        if param.kind is P.KEYWORD_ONLY:
            position[name] = -1
            if required:
                required_keyword_only.add(name)
        if param.kind is P.VAR_POSITIONAL:
            var_positional = (name, convert, exact)
        if param.kind is P.VAR_KEYWORD:
            var_keyword = (convert, exact)
    result = hints.get("return")
    if typing.get_origin(result) in (collections.abc.Awaitable, collections.abc.Coroutine):
        result = typing.get_args(result)[-1]  # a plain def returning a coroutine
    try:
        result_plan = plan(result)
    except SerializationError as exc:
        raise SerializationError(f"Return type of {name_of(fn)}(): {exc}") from None
    return Layout(
        signature,
        positional,
        var_positional,
        keyword,
        var_keyword,
        result_plan,
        frozenset(enums),
        required_positional,
        frozenset(required_keyword_only),
        position,
    )


def check_function(fn: Callable[..., Any]) -> None:
    """Refuse, when `fn` is decorated, annotations that could never be decoded faithfully.

    Annotations that cannot be resolved yet (a class defined further down the module) are
    left for the first call, which resolves them again.

    Raises:
        SerializationError: a union in the annotations whose members cannot be told apart.
    """
    try:
        hints = typing.get_type_hints(fn)
        inspect.signature(fn)
    except Exception:
        return
    _build_layout(fn, hints)


def rebuild_args(
    layout: Layout, args: list[Any], kwargs: dict[str, Any], what: str
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Fit decoded ``args``/``kwargs`` to the parameters of `layout`'s function.

    Raises:
        SerializationError: an argument does not fit its annotation (naming it and the path).
    """
    out: list[Any] = []
    positional, n = layout.positional, len(layout.positional)
    for i, value in enumerate(args):
        if i < n:
            name, convert, exact = positional[i]
            root = label = name
        elif layout.var_positional is not None:
            name, convert, exact = layout.var_positional
            root, label = f"{name}[{i - n}]", f"*{name}"
        else:  # more than fn takes: left for the call itself to refuse
            out.append(value)
            continue
        if convert is None or type(value) is exact:
            out.append(value)
            continue
        try:
            out.append(convert(value))
        except Mismatch as exc:
            raise refusal(exc, f"{what}: argument {label!r}", root) from None
    rebuilt: dict[str, Any] = {}
    for key, value in kwargs.items():
        convert, exact = layout.keyword.get(key) or layout.var_keyword or (None, None)
        if convert is None or type(value) is exact:
            rebuilt[key] = value
            continue
        try:
            rebuilt[key] = convert(value)
        except Mismatch as exc:
            raise refusal(exc, f"{what}: argument {key!r}", key) from None
    return tuple(out), rebuilt
