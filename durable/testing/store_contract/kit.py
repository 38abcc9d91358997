"""Helpers of the storage contract suite, and its ``store`` fixture.

Times are explicit floats, as the contract passes them; most leases run to `LEASE`, and
`peek` looks at a run's inbox by claiming it, as a throw-away inspector, after all of them.
Items are sent with the kinds clients really send (`SIGNAL` is ``signal_received``).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from durable.journal import Kind
from durable.store import (
    ClaimedRun,
    JournalEntry,
    NewRun,
    NewTask,
    StepCommit,
    Store,
    TaskRecord,
    WorkerRecord,
    open_store,
)

__all__ = [
    "AFTER",
    "LEASE",
    "SIGNAL",
    "claim",
    "claim_tasks",
    "entries",
    "journal_kinds",
    "new_run",
    "new_task",
    "peek",
    "start",
    "store",
    "worker",
]

LEASE = 100.0  # lease_until of most claims
AFTER = 1000.0  # a time after every lease in these tests
SIGNAL = Kind.SIGNAL_RECEIVED  # what clients send (never a made-up kind: STYLE 30)
_peeks = itertools.count()  # each peek happens later than the last


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An opened store on the fresh database ``store_url`` names, closed after the test."""
    async with open_store(store_url) as opened:
        yield opened


def new_run(workflow_id: str, at: float = 1.0, **kw: Any) -> NewRun:
    """A `NewRun` of workflow ``wf`` on queue ``default`` with a fresh run id."""
    kw.setdefault("run_id", f"{workflow_id}-{uuid.uuid4().hex[:8]}")
    kw.setdefault("name", "wf")
    kw.setdefault("queue", "default")
    kw.setdefault("input", b"in:" + workflow_id.encode())
    return NewRun(workflow_id=workflow_id, created_at=at, **kw)


def entries(first: int, *kinds: str, at: float = 5.0) -> list[JournalEntry]:
    """Journal entries of ``kinds`` numbered from ``first``, each with distinct data."""
    return [
        JournalEntry(first + i, k, at, f"{k}@{first + i}".encode()) for i, k in enumerate(kinds)
    ]


def new_task(run_id: str, workflow_id: str, seq: int, **kw: Any) -> NewTask:
    """A `NewTask` ``{run_id}:{seq}`` of activity ``act``, visible at once unless told."""
    kw.setdefault("name", "act")
    kw.setdefault("queue", "default")
    kw.setdefault("visible_at", 0.0)
    if kw.get("lease_owner") is not None:
        kw.setdefault("lease_expires_at", LEASE)
    return NewTask(f"{run_id}:{seq}", run_id, workflow_id, seq, data=b"spec", **kw)


def worker(worker_id: str, at: float = 0.0, **kw: Any) -> WorkerRecord:
    """A `WorkerRecord` serving ``default``/``wf``/``act`` unless told."""
    return WorkerRecord(
        worker_id,
        kw.get("queues", ("default",)),
        kw.get("workflows", ("wf",)),
        ("act",),
        "host",
        4242,
        at,
        at,
        kw.get("signatures", {}),
    )


async def claim(store: Store, owner: str, now: float = 10.0, **kw: Any) -> list[ClaimedRun]:
    """`Store.claim_runs` with this suite's defaults (queue ``default``, name ``wf``)."""
    return await store.claim_runs(
        owner,
        queues=kw.get("queues", ["default"]),
        names=kw.get("names", ["wf"]),
        now=now,
        lease_until=kw.get("lease_until", LEASE),
        limit=kw.get("limit", 100),
    )


async def claim_tasks(store: Store, owner: str, now: float = 10.0, **kw: Any) -> list[TaskRecord]:
    """`Store.claim_tasks` with this suite's defaults (queue ``default``, name ``act``)."""
    return await store.claim_tasks(
        owner,
        queues=kw.get("queues", ["default"]),
        names=kw.get("names", ["act"]),
        now=now,
        lease_until=kw.get("lease_until", LEASE),
        limit=kw.get("limit", 100),
        exclude=kw.get("exclude", ()),
    )


async def start(store: Store, workflow_id: str, owner: str = "w1", at: float = 1.0) -> str:
    """Create a run, claim it for ``owner`` and commit its first step (1 entry, running)."""
    run, created = await store.create_run(new_run(workflow_id, at), if_exists="error")
    assert created
    claimed = await claim(store, owner, now=2.0)
    assert run.run_id in {c.run.run_id for c in claimed}
    step = StepCommit(run.run_id, owner, 0, entries(1, "workflow_started"), status="running")
    assert await store.commit_steps([step], 3.0) == [True]
    return run.run_id


async def peek(store: Store, run_id: str) -> list[tuple[str, bytes]]:
    """The run's inbox as (kind, data): claimed by an inspector after every lease expired."""
    inspector = f"inspector-{uuid.uuid4().hex}"
    every = {"queues": ["default", "other"], "names": ["wf", "x", "other"]}
    now = AFTER + 10 * next(_peeks)  # after the previous inspector's lease, too
    for claimed in await claim(store, inspector, now=now, lease_until=now + 1, **every):
        if claimed.run.run_id == run_id:
            return [(item.kind, item.data) for item in claimed.inbox]
    return []


async def journal_kinds(store: Store, run_id: str) -> list[str]:
    """The kinds of the run's journal entries, in order."""
    return [e.kind for e in await store.read_journal(run_id)]
