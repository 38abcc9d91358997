"""What a claim on a limited queue may start (`durable.limits`): the rules, written once,
that both backends apply inside their claim transaction (each keeps only its queries).

    budget = claim_budget(limits, limit, running, started)
    full = full_keys(limits, running)
    again = admit(rows, budget, limits.key_concurrency, running, full, taken, skip)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .limits import QueueLimits
    from .rows import TaskRecord

__all__ = ["admit", "claim_budget", "full_keys"]


def claim_budget(
    limits: QueueLimits, limit: int, running: Mapping[str | None, int], started: int | None
) -> int:
    """How many tasks the claim may start: at most ``limit``, what the queue's concurrency
    leaves beside its ``running`` tasks (by key), and what its rate leaves after the
    ``started`` ones of the window (``None`` when it has no rate)."""
    budget = limit
    if limits.concurrency is not None:
        budget = min(budget, limits.concurrency - sum(running.values()))
    if limits.rate is not None and started is not None:
        budget = min(budget, limits.rate - started)
    return budget


def full_keys(limits: QueueLimits, running: Mapping[str | None, int]) -> set[str]:
    """The keys already running as many tasks as ``key_concurrency`` allows."""
    per_key = limits.key_concurrency
    if per_key is None:
        return set()
    return {k for k, n in running.items() if k is not None and n >= per_key}


def admit(
    tasks: Iterable[TaskRecord],
    budget: int,
    per_key: int | None,
    running: dict[str | None, int],
    full: set[str],
    taken: list[TaskRecord],
    skip: list[str],
) -> bool:
    """Take ``tasks`` (in claim order) into ``taken`` up to ``budget``, passing over those
    whose key is full (and marking the key in ``full``); ``running`` and ``skip`` follow.
    True when a key filled up on the way: the caller looks again without it."""
    passed_over = False
    for task in tasks:
        if task.key is not None and per_key is not None:
            if running.get(task.key, 0) >= per_key:
                full.add(task.key)
                passed_over = True
                continue
            running[task.key] = running.get(task.key, 0) + 1
        taken.append(task)
        skip.append(task.task_id)
        if len(taken) == budget:
            break
    return passed_over
