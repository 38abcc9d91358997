"""Branches and groups: where in a workflow's code each command was issued.

Every command the code issues is journaled with its ``branch``, the path of the asyncio
task that issued it: ``"0"`` is the workflow's main coroutine, ``"0.2"`` the third task it
spawned (through ``asyncio.gather``, ``create_task``, ``durable.map``), ``"0.2.0"`` the
first task that one spawned. Commands that run side by side also share a ``group``: the
seq of the group's first command. A group is either

- the tasks spawned together, without an await between them (``gather`` of coroutines,
  ``durable.map``): every command those tasks (and tasks they spawn) issue, or
- the commands one task issued together, without an await between them (``gather`` of
  activity calls, which return futures at once): ``a, b = await asyncio.gather(f(), g())``.

A command issued alone has no group. This is what the console draws as fan-out, and it is
recorded when the command is issued, live and on replay alike (the same code takes the same
path), so the graph of a run comes from data, not from guessing at its code.

"Together" is one *segment*: one callback of the workflow loop running (a task's step up
to its next await). Only the workflow loop calls into this module.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["GROUPED_KINDS", "Branches"]

#: Command kinds that run side by side and so are grouped; the others only get a branch.
GROUPED_KINDS = frozenset(
    {"activity_scheduled", "child_started", "timer_started", "signal_wait_started"}
)


class _Group:
    __slots__ = ("id", "size")

    def __init__(self) -> None:
        self.size = 0  # tasks spawned in it
        self.id: int | None = None  # seq of its first command, once it has one


class _Branch:
    __slots__ = ("burst", "parent", "path", "spawned")

    def __init__(self, path: str, parent: _Branch | None, burst: _Group | None) -> None:
        self.path = path
        self.parent = parent
        self.burst = burst  # the tasks spawned with this one
        self.spawned = 0

    def group(self) -> _Group | None:
        """The spawn group this task's commands belong to: its own burst if it had company,
        else its parent's."""
        branch: _Branch | None = self
        while branch is not None:
            if branch.burst is not None and branch.burst.size >= 2:
                return branch.burst
            branch = branch.parent
        return None


class Branches:
    """The branch of every task of one workflow loop, and the groups being formed."""

    def __init__(self) -> None:
        self._of: dict[asyncio.Task[Any], _Branch] = {}
        self._root = _Branch("0", None, None)
        self._main_seen = False
        self._bursts: dict[str, _Group] = {}  # spawns of the current segment, by parent path
        # Commands without a spawn group issued in the current segment: (branch path, data)
        self._loose: list[tuple[str, int, dict[str, Any]]] = []

    def spawned(self, task: asyncio.Task[Any], parent: asyncio.Task[Any] | None) -> None:
        """Record ``task``, created while ``parent`` (or no task) was running."""
        if parent is None and not self._main_seen:
            self._main_seen = True
            self._of[task] = self._root  # the workflow's main coroutine
            task.add_done_callback(self._of.pop)
            return
        owner = self._of.get(parent) if parent is not None else None
        if owner is None:
            owner = self._root
        burst = self._bursts.get(owner.path)
        if burst is None:
            burst = self._bursts[owner.path] = _Group()
        burst.size += 1
        branch = _Branch(f"{owner.path}.{owner.spawned}", owner, burst)
        owner.spawned += 1
        self._of[task] = branch
        task.add_done_callback(self._of.pop)

    def tag(
        self, task: asyncio.Task[Any] | None, kind: str, seq: int, data: dict[str, Any]
    ) -> None:
        """Add ``branch`` (and ``group`` where known) to a command's ``data``."""
        branch = self._of.get(task) if task is not None else None
        if branch is None:
            branch = self._root
        data["branch"] = branch.path
        if kind not in GROUPED_KINDS:
            return
        group = branch.group()
        if group is not None:
            if group.id is None:
                group.id = seq
            data["group"] = group.id
            return
        self._loose.append((branch.path, seq, data))

    def segment_done(self) -> None:
        """One callback of the loop ran: close the groups formed in it."""
        if self._bursts:
            self._bursts = {}
        if not self._loose:
            return
        if len(self._loose) > 1:
            first: dict[str, int] = {}
            counts: dict[str, int] = {}
            for path, seq, _ in self._loose:
                first.setdefault(path, seq)
                counts[path] = counts.get(path, 0) + 1
            for path, _, data in self._loose:
                if counts[path] > 1:
                    data["group"] = first[path]
        self._loose = []
