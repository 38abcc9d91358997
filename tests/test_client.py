"""The client's own surface, on every backend: listing runs page by page."""

from __future__ import annotations

import pytest

import durable


async def test_list_pages_by_cursor_and_checks_the_status(client: durable.Client) -> None:
    for n in range(5):
        await client.start("some_workflow", n, id=f"w-{n}")
    everything = [d.id async for d in client.list()]
    assert everything == ["w-4", "w-3", "w-2", "w-1", "w-0"]
    pages, cursor = [], None
    while True:
        page = [d async for d in client.list(limit=2, cursor=cursor)]
        if not page:
            break
        pages.append([d.id for d in page])
        cursor = page[-1].run_id
    assert pages == [["w-4", "w-3"], ["w-2", "w-1"], ["w-0"]]
    with pytest.raises(ValueError, match="status must be one of pending, running"):
        [d async for d in client.list(status="done")]


@durable.workflow
async def loops_twice(n: int) -> int:
    if n < 2:
        durable.continue_as_new(n + 1)
    return n


async def test_tags_label_a_run_filter_the_list_and_follow_continue_as_new(
    client: durable.Client,
) -> None:
    await client.start("some_workflow", id="plain")
    await client.start("some_workflow", id="acme-1", tags={"customer": "acme", "tier": "2"})
    await client.start("some_workflow", id="zeta-1", tags={"customer": "zeta"})
    assert (await client.get_handle("acme-1").describe()).tags == {"customer": "acme", "tier": "2"}
    assert (await client.get_handle("plain").describe()).tags == {}
    listed = [d async for d in client.list(tags={"customer": "acme"})]
    assert [(d.id, d.tags) for d in listed] == [("acme-1", {"customer": "acme", "tier": "2"})]
    assert [d.id async for d in client.list(tags={"customer": "zeta", "tier": "2"})] == []
    async with durable.Worker(client, workflows=[loops_twice]):
        result = await client.execute(loops_twice, 0, id="looping", tags={"job": "nightly"})
    assert result == 2
    runs = [(d.id, d.status) async for d in client.list(tags={"job": "nightly"})]
    assert runs == [("looping", "completed"), *[("looping", "continued_as_new")] * 2]


@pytest.mark.parametrize(
    ("tags", "problem"),
    [
        ({"customer": 42}, "tags map str keys to str values"),
        ({"a:b": "c"}, "without ':'"),
        ({"": "c"}, "must be non-empty"),
        ({"k": "v" * 300}, "too long"),
        ({f"k{i}": "v" for i in range(40)}, "at most 32 tags"),
        (["customer", "acme"], "must be a mapping"),
    ],
)
async def test_bad_tags_are_refused_before_anything_is_written(
    client: durable.Client, tags: object, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        await client.start("some_workflow", id="tagged", tags=tags)  # type: ignore[arg-type]
    assert [d async for d in client.list()] == []
    with pytest.raises(ValueError, match=problem):
        [d async for d in client.list(tags=tags)]  # type: ignore[arg-type]
