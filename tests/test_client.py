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
