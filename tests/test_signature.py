"""Starting a workflow by name: arguments checked against what a live worker serves."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

import durable
from durable import signature


@dataclass
class Order:
    id: str
    cents: int


async def place(order_id: str, cents: int, items: list[str], note: str = "") -> None: ...


async def takes_order(order: Order, *more: int) -> None: ...


async def keyword_only(a: int, *, b: int) -> None: ...


async def takes_sets(s: set[int], f: frozenset[str]) -> None: ...


async def loose(a, b: int | None, c: dict[str, int]) -> None: ...  # type: ignore[no-untyped-def]


def test_describe_says_each_parameter_and_its_plain_kind() -> None:
    found = json.loads(signature.describe(place))
    assert found["text"] == "(order_id: str, cents: int, items: list[str], note: str = '')"
    assert found["params"] == [
        ["order_id", "POSITIONAL_OR_KEYWORD", False, "str"],
        ["cents", "POSITIONAL_OR_KEYWORD", False, "int"],
        ["items", "POSITIONAL_OR_KEYWORD", False, "list"],
        ["note", "POSITIONAL_OR_KEYWORD", True, "str"],
    ]
    assert [p[3] for p in json.loads(signature.describe(loose))["params"]] == [None, None, "dict"]
    assert json.loads(signature.describe(takes_order))["params"][0][3] == "dict"


@pytest.mark.parametrize(
    ("fn", "args", "problem"),
    [
        (place, ["o-1", 5, ["a"]], None),
        (place, ["o-1", 5, [], "gift"], None),
        (place, ["o-1", 5], "2 argument(s) given, 3 required: missing ['items']"),
        (place, ["o-1", 5, [], "", 1], "5 argument(s) given, at most 4 taken"),
        (place, ["o-1", "5", []], "argument 'cents' must be int, got str '5'"),
        (place, ["o-1", True, []], "argument 'cents' must be int, got bool True"),
        (place, [7, 5, []], "argument 'order_id' must be str, got int 7"),
        (place, ["o-1", 5, "a,b"], "argument 'items' must be list, got str 'a,b'"),
        (place, ["o-1", 5, None], "argument 'items' must be list, got null None"),
        (takes_order, [{"id": "o", "cents": 1}, 1, 2, 3], None),
        (takes_order, ["o"], "argument 'order' must be dict, got str 'o'"),
        (keyword_only, [1], "it needs keyword argument(s) ['b']"),
        (takes_sets, [{1, 2}, frozenset({"a"})], None),
        (takes_sets, [[1, 2], ["a"]], None),
        (takes_sets, [{"a": 1}, []], "argument 's' must be set, got dict"),
        (loose, [object(), None, {}], None),
        (loose, ["x", "anything", {}], None),
    ],
)
def test_check_refuses_what_cannot_bind_or_is_plainly_of_the_wrong_kind(
    fn: object, args: list[object], problem: str | None
) -> None:
    found = signature.check(signature.describe(fn), args)  # type: ignore[arg-type]
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(problem)
        assert "(" in found  # the signature is shown


def test_a_description_from_another_version_is_not_judged() -> None:
    assert signature.check("not json", [1]) is None
    assert signature.check('{"text": "()"}', [1]) is None


@durable.workflow
async def greet(name: str, times: int = 1) -> str:
    return " ".join([f"hello {name}"] * times)


async def test_a_start_by_name_is_checked_against_a_live_worker(client: durable.Client) -> None:
    with pytest.raises(durable.WorkflowNotFound):
        await client.get_handle("g-1").describe()
    # No worker describes it yet: the start goes through (the worker will judge it).
    unchecked = await client.start("greet", "ada", "twice", id="g-0")
    assert unchecked.created
    async with durable.Worker(client, workflows=[greet]) as worker:
        [record] = [w for w in await worker.store.list_workers() if w.worker_id == worker.worker_id]
        assert json.loads(record.signatures["greet"])["text"] == "(name: str, times: int = 1)"
        with pytest.raises(TypeError) as refused:
            await client.start("greet", "ada", "twice", id="g-1")
        message = str(refused.value)
        assert message.startswith("Cannot start workflow 'greet': argument 'times' must be int")
        assert f"as worker {worker.worker_id} serves it. Nothing was written." in message
        with pytest.raises(durable.WorkflowNotFound):
            await client.get_handle("g-1").describe()
        assert await client.execute("greet", "ada", 2, timeout=20) == "hello ada hello ada"
        with pytest.raises(durable.WorkflowFailed):  # the unchecked one fails, saying why
            await unchecked.result(timeout=20)
