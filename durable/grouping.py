"""Calls made while a write is under way are written together, in the next one: `Grouped`.

A store takes each call of an operation that many callers make at once (`Store.create_run`,
`Store.finish_task`) as one item, and writes the items that came meanwhile in one
transaction (group commit): a burst of N calls costs a few commits, not N. Each caller gets
its own item's result, or the exception its item got; a write that fails as a whole fails
each of its callers with that exception (cancels them, if the write was cancelled).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Grouped"]

T = TypeVar("T")
R = TypeVar("R")


class Grouped(Generic[T, R]):
    """``await grouped(item)``: ``item`` written by ``write`` with the others waiting, at
    most ``most`` to a write. ``write`` returns a result per item, in order; a result that
    is an `Exception` is raised to that item's caller (the others go on)."""

    __slots__ = ("_most", "_waiting", "_write", "_writer")

    def __init__(
        self, write: Callable[[list[T]], Awaitable[Sequence[R | Exception]]], most: int
    ) -> None:
        self._write = write
        self._most = most
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, fut))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._drain())
        return await fut

    async def _drain(self) -> None:
        while self._waiting:
            group = self._waiting[: self._most]
            del self._waiting[: self._most]
            try:
                results = await self._write([item for item, _ in group])
            except BaseException as exc:
                for _, fut in group:
                    if fut.done():
                        continue  # its caller gave up waiting
                    if isinstance(exc, asyncio.CancelledError):
                        fut.cancel()
                    else:
                        fut.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, fut), result in zip(group, results, strict=True):
                if fut.done():
                    continue
                if isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
