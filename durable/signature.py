"""Workflow signatures as workers publish them, so a start by name is checked before it runs.

A worker records, for each workflow it serves, its parameters (`describe`): names, kinds,
defaults and annotations, as JSON in `durable.store.WorkerRecord.signatures`. A client
starting a workflow *by name* (`Client.start("place_order", ...)`, ``durable start``, later
the HTTP API) has no code to bind the arguments to, so it checks them against what a live
worker serves (`check`): a wrong number of arguments, or a JSON value of the wrong kind for
a plainly annotated parameter (``int``, ``str``, ``list[...]``, a dataclass is an object, ...)
is refused before anything is written, naming the signature. Anything the description
cannot judge (a complex hint) is left to the worker, which fails such a run saying why.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import Store

__all__ = ["check", "check_live", "describe"]

# An annotation's outermost type, as JSON-like values show it: name -> accepted Python types.
_SHAPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "bytes": (str, bytes),
    "list": (list, tuple),
    "tuple": (list, tuple),
    "set": (list, tuple, set, frozenset),
    "frozenset": (list, tuple, set, frozenset),
    "dict": (dict,),
    "None": (type(None),),
}


def _shape(annotation: Any) -> str | None:
    """The name in `_SHAPES` the annotation's values must have, or None if not that plain."""
    if annotation is inspect.Parameter.empty:
        return None
    if annotation is None or annotation is type(None):
        return "None"
    origin = typing.get_origin(annotation)
    target = origin if origin is not None else annotation
    if isinstance(target, type):
        if target is bool or (target.__name__ in _SHAPES and target.__module__ == "builtins"):
            return target.__name__
        if hasattr(target, "__dataclass_fields__"):
            return "dict"  # a dataclass travels as an object of its fields
    return None


def describe(fn: Callable[..., Any]) -> str:
    """``fn``'s parameters as JSON: ``{"text": "(a: int, b: str = ...)", "params": [[name,
    kind, has_default, shape], ...]}`` (``shape`` a key of the plain types, or null)."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}
    sig = inspect.signature(fn)
    resolved = [
        p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()
    ]
    params = [
        [p.name, p.kind.name, p.default is not inspect.Parameter.empty, _shape(p.annotation)]
        for p in resolved
    ]
    # Shown as written, with the hints resolved (not the strings of postponed annotations).
    text = str(sig.replace(parameters=resolved, return_annotation=inspect.Signature.empty))
    return json.dumps({"text": text, "params": params})


def check(description: str, args: Sequence[Any]) -> str | None:
    """Why positional ``args`` (decoded JSON-like values) do not fit a workflow described
    by `describe`, or None when they do (or the description cannot be read)."""
    try:
        found = json.loads(description)
        text = str(found["text"])
        params = [(str(n), str(k), bool(d), s) for n, k, d, s in found["params"]]
    except (ValueError, KeyError, TypeError):
        return None  # written by another version: leave the check to the worker
    positional = [p for p in params if p[1] in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")]
    variadic = any(p[1] == "VAR_POSITIONAL" for p in params)
    required = [p[0] for p in positional if not p[2]]
    required_kw = [p[0] for p in params if p[1] == "KEYWORD_ONLY" and not p[2]]
    if required_kw:
        return f"it needs keyword argument(s) {required_kw} {text}, which a start cannot pass"
    if len(args) < len(required):
        missing = required[len(args) :]
        return f"{len(args)} argument(s) given, {len(required)} required: missing {missing} {text}"
    if len(args) > len(positional) and not variadic:
        return f"{len(args)} argument(s) given, at most {len(positional)} taken {text}"
    for value, (name, _, _, shape) in zip(args, positional, strict=False):
        allowed = _SHAPES.get(shape) if isinstance(shape, str) else None
        if allowed is None:
            continue
        if isinstance(value, bool) and shape in ("int", "float"):
            allowed = ()  # JSON true is not a number
        if not isinstance(value, allowed):
            kind = "null" if value is None else type(value).__name__
            return f"argument {name!r} must be {shape}, got {kind} {value!r} {text}"
    return None


async def check_live(store: Store, name: str, args: list[Any], verb: str) -> None:
    """Refuse arguments that do not fit the workflow ``name`` as a live worker serves it
    (``verb``: what the caller was doing, "start" or "schedule"); with no live worker
    describing it, the worker will tell.

    Raises:
        TypeError: naming the parameter and the worker; nothing was written.
    """
    for worker in await store.list_workers():
        description = worker.signatures.get(name)
        if description is None:
            continue
        problem = check(description, args)
        if problem is not None:
            raise TypeError(
                f"Cannot {verb} workflow {name!r}: {problem}, as worker {worker.worker_id} "
                "serves it. Nothing was written."
            )
        return
