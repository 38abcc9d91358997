"""The storage contract, part: listing runs for people — filters, keyset paging, counts per
status, tags, and what waits on each queue.

See `durable.testing.store_contract` for how a backend runs it.
"""

from __future__ import annotations

from typing import Any

from durable.store import QueueStats, StepCommit, Store

from .kit import LEASE, claim, claim_tasks, entries, new_run, new_task, start

__all__ = [
    "test_list_runs_newest_first_filtered_with_non_current",
    "test_list_runs_pages_after_a_run_in_one_stable_order",
    "test_queue_stats_count_what_waits_for_a_worker",
    "test_tags_are_stored_and_every_given_tag_must_match",
]


async def test_tags_are_stored_and_every_given_tag_must_match(store: Store) -> None:
    """Tags are stored with the run (from a client start, a child, a successor) and
    `Store.list_runs` keeps a run only if it has every given tag with that exact value."""
    acme = {"customer": "acme", "tier": "2"}
    await store.create_run(new_run("t1", at=1.0, tags=acme), if_exists="error")
    await store.create_run(new_run("t2", at=2.0, tags={"customer": "acme"}), if_exists="error")
    await store.create_run(new_run("t3", at=3.0, tags={"customer": "zeta"}), if_exists="error")
    await store.create_run(new_run("t4", at=4.0), if_exists="error")
    run = await store.get_run("t1")
    assert run is not None
    assert dict(run.tags) == acme
    untagged = await store.get_run("t4")
    assert untagged is not None
    assert dict(untagged.tags) == {}

    def ids(runs: list[Any]) -> list[str]:
        return [r.workflow_id for r in runs]

    assert ids(await store.list_runs(tags={"customer": "acme"})) == ["t2", "t1"]
    assert ids(await store.list_runs(tags=acme)) == ["t1"]
    assert ids(await store.list_runs(tags={"customer": "acme", "tier": "3"})) == []
    assert ids(await store.list_runs(tags={"tier": "2"}, name="wf")) == ["t1"]
    assert ids(await store.list_runs(tags={"customer": "acm"})) == []  # exact values only
    assert await store.count_runs() == {"pending": 4}
    assert await store.count_runs(tags={"customer": "acme"}) == {"pending": 2}
    assert await store.count_runs(name="other") == {}
    # a successor (continue-as-new) and a child are created with the tags they are given
    [claimed] = await claim(store, "w1", now=5.0, limit=1)  # t1, the oldest
    step = StepCommit(
        claimed.run.run_id,
        "w1",
        0,
        entries(1, "workflow_started", "continued_as_new"),
        status="continued_as_new",
        successor=new_run(claimed.run.workflow_id, at=6.0, tags=dict(claimed.run.tags)),
        new_runs=[new_run("child", at=6.0, tags={"customer": "acme", "role": "child"})],
    )
    assert await store.commit_steps([step], 6.0) == [True]
    assert ids(await store.list_runs(tags={"role": "child"})) == ["child"]
    assert await store.count_runs() == {"pending": 5, "continued_as_new": 1}
    assert await store.count_runs(tags={"customer": "acme"}) == {  # t2, the successor, the child
        "pending": 3,
        "continued_as_new": 1,
    }
    successor = await store.get_run(claimed.run.workflow_id)
    assert successor is not None
    assert successor.run_id != claimed.run.run_id
    assert dict(successor.tags) == dict(claimed.run.tags)


async def test_queue_stats_count_what_waits_for_a_worker(store: Store) -> None:
    """Due queued tasks (and since when the oldest is due), tasks delayed for a retry, and
    open runs with work but no live lease, per queue; a queue with nothing waiting is
    left out, and so is a run a worker holds."""
    assert await store.queue_stats(10.0) == []
    run_id = await start(store, "busy")  # claimed and leased by w1: not waiting
    await store.create_run(new_run("idle", at=4.0, queue="slow"), if_exists="error")
    step = StepCommit(
        run_id,
        "w1",
        1,
        entries(2, "activity_scheduled", "activity_scheduled", "activity_scheduled"),
        new_tasks=[
            new_task(run_id, "busy", 2, queue="media", visible_at=5.0),
            new_task(run_id, "busy", 3, queue="media", visible_at=7.0),
            new_task(run_id, "busy", 4, queue="media", visible_at=50.0),  # a retry's backoff
        ],
    )
    assert await store.commit_steps([step], 8.0) == [True]
    assert await store.queue_stats(10.0) == [
        QueueStats("media", 2, 5.0, 1, 0, None),
        QueueStats("slow", 0, None, 0, 1, 4.0),
    ]
    await claim_tasks(store, "w2", now=10.0, queues=["media"], names=["act"], limit=1)
    [media, _] = await store.queue_stats(10.0)
    assert (media.tasks_waiting, media.oldest_task_at) == (1, 7.0)
    # once the run's lease has lapsed (its worker died), the run waits for a worker too
    assert await store.queue_stats(LEASE + 1) == [
        QueueStats("default", 0, None, 0, 1, 8.0),
        QueueStats("media", 2, 7.0, 0, 0, None),
        QueueStats("slow", 0, None, 0, 1, 4.0),
    ]


async def test_list_runs_newest_first_filtered_with_non_current(store: Store) -> None:
    await store.create_run(new_run("a", at=1.0), if_exists="error")
    await store.create_run(new_run("b", at=3.0, name="other"), if_exists="error")
    c, _ = await store.create_run(new_run("c", at=2.0), if_exists="error")
    await store.terminate(c.run_id, entry_data=b"", error=b"", now=4.0, parent_item=None)
    c2, _ = await store.create_run(new_run("c", at=5.0), if_exists="restart")
    assert [r.run_id for r in await store.list_runs()][:1] == [c2.run_id]
    assert [r.workflow_id for r in await store.list_runs()] == ["c", "b", "c", "a"]
    assert [r.workflow_id for r in await store.list_runs(name="wf")] == ["c", "c", "a"]
    assert [r.run_id for r in await store.list_runs(status="terminated")] == [c.run_id]
    assert [r.workflow_id for r in await store.list_runs(status="pending", name="wf")] == [
        "c",
        "a",
    ]
    assert len(await store.list_runs(limit=2)) == 2
    # a time range: created_after inclusive, created_before exclusive
    assert [r.workflow_id for r in await store.list_runs(created_after=2.0)] == ["c", "b", "c"]
    assert [r.workflow_id for r in await store.list_runs(created_before=3.0)] == ["c", "a"]
    between = await store.list_runs(created_after=2.0, created_before=5.0, name="wf")
    assert [r.run_id for r in between] == [c.run_id]


async def test_list_runs_pages_after_a_run_in_one_stable_order(store: Store) -> None:
    """Keyset paging: ``after`` the last run id of a page gives the next page; runs of one
    instant come in ``run_id`` order (descending), so no run is skipped or repeated."""
    for i, at in enumerate([1.0, 2.0, 2.0, 2.0, 3.0, 4.0, 4.0]):
        await store.create_run(new_run(f"p{i}", at=at, run_id=f"run-{i}"), if_exists="error")
    whole = [r.run_id for r in await store.list_runs()]
    assert whole == ["run-6", "run-5", "run-4", "run-3", "run-2", "run-1", "run-0"]
    pages: list[list[str]] = []
    after = None
    while True:
        page = [r.run_id for r in await store.list_runs(limit=2, after=after)]
        if not page:
            break
        pages.append(page)
        after = page[-1]
    assert pages == [["run-6", "run-5"], ["run-4", "run-3"], ["run-2", "run-1"], ["run-0"]]
    # filters apply within the page, new runs do not shift it, an unknown cursor ends it
    await store.create_run(new_run("late", at=9.0, run_id="run-9"), if_exists="error")
    assert [r.run_id for r in await store.list_runs(limit=2, after="run-4")] == [
        "run-3",
        "run-2",
    ]
    assert await store.list_runs(after="no-such-run") == []
    assert [r.run_id for r in await store.list_runs(status="pending", after="run-1")] == ["run-0"]


# ---- inbox and claims of runs ------------------------------------------------------------
