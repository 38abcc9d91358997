"""Per-function layouts: the fast "does this call bind?" answer and decoding arguments."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from durable import layout, payload
from durable.errors import SerializationError


@dataclasses.dataclass
class Line:
    sku: str
    qty: int = 1


def plain(a: int, b: str) -> None: ...
def defaults(a: int, b: int = 2, *, c: int = 3) -> None: ...
def keyword_only(a: int, *, key: str) -> None: ...
def positional_only(a: int, /, b: int = 0) -> None: ...
def star(a: int, *rest: Line, **extra: Line) -> None: ...
def nothing() -> None: ...


CALLS: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = [
    (plain, (1, "x"), {}),
    (plain, (1,), {}),
    (plain, (1, "x", 3), {}),
    (plain, (1,), {"b": "x"}),
    (plain, (), {"a": 1, "b": "x"}),
    (plain, (1,), {"a": 1}),
    (plain, (1, "x"), {"c": 1}),
    (defaults, (1,), {}),
    (defaults, (1, 2, 3), {}),
    (defaults, (1,), {"c": 4}),
    (defaults, (), {"b": 1}),
    (keyword_only, (1,), {}),
    (keyword_only, (1,), {"key": "k"}),
    (keyword_only, (), {"a": 1, "key": "k"}),
    (positional_only, (1,), {}),
    (positional_only, (), {"a": 1}),
    (positional_only, (1,), {"b": 2}),
    (star, (1, Line("a"), Line("b")), {"x": Line("c")}),
    (star, (), {"a": 1}),
    (star, (), {}),
    (nothing, (), {}),
    (nothing, (1,), {}),
    (nothing, (), {"a": 1}),
]


def binds(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError:
        return False
    return True


@pytest.mark.parametrize(("fn", "args", "kwargs"), CALLS)
def test_fast_binding_never_accepts_a_call_the_signature_refuses(
    fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    if layout.layout(fn).accepts(args, kwargs):
        assert binds(fn, args, kwargs)


@pytest.mark.parametrize(("fn", "args", "kwargs"), CALLS)
def test_encode_args_refuses_exactly_the_calls_that_do_not_bind(
    fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    if binds(fn, args, kwargs):
        data = payload.encode_args(fn, args, kwargs, what="args")
        assert payload.decode_args(fn, data) == (args, kwargs)
    else:
        with pytest.raises(TypeError, match="cannot be called with these arguments"):
            payload.encode_args(fn, args, kwargs, what="args")


def test_positional_calls_take_the_fast_path() -> None:
    assert layout.layout(plain).accepts((1, "x"), {})
    assert layout.layout(defaults).accepts((1,), {"c": 4})
    assert layout.layout(star).accepts((1, Line("a")), {})
    assert not layout.layout(plain).accepts((1,), {})  # left to the signature


def test_star_arguments_are_rebuilt_with_their_element_hints() -> None:
    data = payload.encode_args(star, (1, Line("a")), {"x": Line("b", 2)}, what="args")
    args, kwargs = payload.decode_args(star, data)
    assert type(args[1]) is Line
    assert type(kwargs["x"]) is Line
    assert kwargs["x"] == Line("b", 2)


def test_an_argument_of_exactly_its_hinted_type_is_kept_and_others_checked() -> None:
    data = payload.encode({"args": [1, 2], "kwargs": {}})
    with pytest.raises(SerializationError, match=r"argument 'b'.*expected str, got an int"):
        payload.decode_args(plain, data)
    bad_star = payload.encode({"args": [1, {"sku": 5}], "kwargs": {}})
    with pytest.raises(SerializationError, match=r"argument '\*rest'.*rest\[0\]\.sku"):
        payload.decode_args(star, bad_star)


def test_extra_positional_values_are_left_for_the_call_to_refuse() -> None:
    data = payload.encode({"args": [1, "x", "surplus"], "kwargs": {}})
    assert payload.decode_args(plain, data) == ((1, "x", "surplus"), {})


def test_check_function_skips_what_cannot_be_resolved_yet() -> None:
    def later(x: DefinedLater) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    layout.check_function(later)  # no error: the first call resolves the hints again
    layout.check_function(len)  # no signature to read: nothing to check
