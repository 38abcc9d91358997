"""durable.grouping.Grouped: calls made during a write go together into the next one, each
caller gets its own result or exception, and a failed or cancelled write reaches every
caller of its group (and only them)."""

from __future__ import annotations

import asyncio

import pytest

from durable.grouping import Grouped


class Writes:
    """A write that records its groups and takes a moment, so calls pile up behind it."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.fail_group: int | None = None  # index of a group whose write raises

    async def __call__(self, items: list[int]) -> list[int | Exception]:
        self.groups.append(items)
        await asyncio.sleep(0.01)
        if self.fail_group == len(self.groups) - 1:
            raise OSError("disk full")
        return [ValueError(f"no {i}") if i < 0 else i * 10 for i in items]


async def test_calls_made_during_a_write_go_together_into_the_next() -> None:
    writes = Writes()
    grouped = Grouped(writes, most=3)
    first = asyncio.ensure_future(grouped(1))
    await asyncio.sleep(0)  # the first write is under way
    rest = [asyncio.ensure_future(grouped(i)) for i in range(2, 7)]
    assert await asyncio.gather(first, *rest) == [10, 20, 30, 40, 50, 60]
    assert writes.groups == [[1], [2, 3, 4], [5, 6]]  # at most 3 to a write


async def test_an_exception_result_goes_to_its_caller_only() -> None:
    grouped = Grouped(Writes(), most=10)
    results = await asyncio.gather(grouped(1), grouped(-2), grouped(3), return_exceptions=True)
    assert results[0] == 10
    assert results[2] == 30
    assert isinstance(results[1], ValueError)
    assert str(results[1]) == "no -2"


async def test_a_failed_write_fails_its_group_and_the_next_group_is_written() -> None:
    writes = Writes()
    writes.fail_group = 0
    grouped = Grouped(writes, most=2)
    calls = [asyncio.ensure_future(grouped(i)) for i in (1, 2, 3)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert [type(r) for r in results[:2]] == [OSError, OSError]
    assert results[2] == 30
    assert writes.groups == [[1, 2], [3]]


async def test_a_caller_that_gives_up_does_not_stop_the_others() -> None:
    writes = Writes()
    grouped = Grouped(writes, most=10)
    first = asyncio.ensure_future(grouped(1))
    await asyncio.sleep(0)
    impatient = asyncio.ensure_future(grouped(2))
    patient = asyncio.ensure_future(grouped(3))
    await asyncio.sleep(0)
    impatient.cancel()
    assert await first == 10
    assert await patient == 30
    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert writes.groups == [[1], [2, 3]]  # its item was written all the same
