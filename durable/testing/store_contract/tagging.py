"""The storage contract, part: tags a step sets (``StepCommit.tags``, from
``durable.set_tags``) and searching by tag with a time range and keyset paging.

See `durable.testing.store_contract` for how a backend runs it.
"""

from __future__ import annotations

from durable.store import StepCommit, Store

from .kit import claim, entries, new_run

__all__ = [
    "test_a_search_by_tags_pages_within_a_time_range",
    "test_tags_a_step_sets_merge_into_the_run_and_what_finds_it",
]


async def test_tags_a_step_sets_merge_into_the_run_and_what_finds_it(store: Store) -> None:
    """Accepted, a step's tags merge into the run's (a key given takes the new value, the
    others stay) and searches see the new values at once; a rejected step sets none."""
    await store.create_run(
        new_run("o", tags={"customer": "acme", "stage": "new"}), if_exists="error"
    )
    [claimed] = await claim(store, "w1")
    run_id = claimed.run.run_id
    started = entries(1, "workflow_started", "tags_set")
    step = StepCommit(run_id, "w1", 0, started, status="running", tags={"stage": "paid"})
    stale = StepCommit(run_id, "w2", 2, entries(3, "tags_set"), tags={"stage": "stolen"})
    assert await store.commit_steps([step, stale], 6.0) == [True, False]
    run = await store.get_run("o")
    assert run is not None
    assert dict(run.tags) == {"customer": "acme", "stage": "paid"}
    assert [r.run_id for r in await store.list_runs(tags={"stage": "paid"})] == [run_id]
    assert await store.list_runs(tags={"stage": "new"}) == []
    assert await store.list_runs(tags={"stage": "stolen"}) == []
    assert await store.count_runs(tags={"stage": "paid", "customer": "acme"}) == {"running": 1}
    # an untagged run gets its first tags from a step
    await store.create_run(new_run("plain", at=2.0), if_exists="error")
    [plain] = await claim(store, "w1", limit=1)
    first = StepCommit(
        plain.run.run_id, "w1", 0, entries(1, "workflow_started", "tags_set"), tags={"k": "v"}
    )
    assert await store.commit_steps([first], 7.0) == [True]
    assert [r.workflow_id for r in await store.list_runs(tags={"k": "v"})] == ["plain"]


async def test_a_search_by_tags_pages_within_a_time_range(store: Store) -> None:
    """Every given tag must match; ``created_after <= created_at < created_before``; pages
    by ``after`` continue newest first without gaps or repeats, equal times ordered by run
    id; a run of the same tags outside the range is never listed."""
    for i in range(12):
        tags = {"env": "prod", "team": "a" if i % 2 else "b"}
        await store.create_run(new_run(f"r{i:02}", at=float(i // 2), tags=tags), if_exists="error")
    await store.create_run(
        new_run("other", at=3.0, tags={"env": "dev", "team": "a"}), if_exists="error"
    )
    expected = [f"r{i:02}" for i in range(9, 1, -2)]  # team a, created 1.0 <= at < 5.0
    pages: list[list[str]] = []
    after = None
    while True:
        page = await store.list_runs(
            tags={"team": "a", "env": "prod"},
            created_after=1.0,
            created_before=5.0,
            after=after,
            limit=3,
        )
        if not page:
            break
        pages.append([r.workflow_id for r in page])
        after = page[-1].run_id
    assert pages == [expected[:3], expected[3:]]
    everything = await store.list_runs(tags={"env": "prod"}, limit=100)
    times = [(r.created_at, r.run_id) for r in everything]
    assert times == sorted(times, reverse=True)
    assert len(everything) == 12
