"""The storage contract, part: schedules (`durable.schedules`) — a compare-and-set write
that creates a tick's runs in its transaction, and what is due when.

See `durable.testing.store_contract` for how a backend runs it.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from durable.store import ScheduleRecord, Store, open_store

from .kit import new_run

__all__ = [
    "test_due_schedules_by_time_and_by_a_closed_run_with_ticks_waiting",
    "test_save_schedule_creates_its_runs_only_when_its_compare_and_set_wins",
    "test_save_schedule_is_a_compare_and_set_on_the_version",
    "test_schedule_racing_writers_one_wins_and_one_run_is_created",
]


def schedule(schedule_id: str = "s", **changes: object) -> ScheduleRecord:
    """A schedule row due at 60, version 1."""
    base = ScheduleRecord(
        schedule_id=schedule_id,
        workflow="wf",
        queue="default",
        input=b"\x90",
        cron="* * * * *",
        timezone="Europe/Berlin",
        overlap="skip",
        catchup_window=600.0,
        jitter=0.0,
        paused=False,
        next_tick=60.0,
        due_at=60.0,
        buffered=(),
        latest=None,
        recent=(),
        version=1,
        created_at=1.0,
        updated_at=1.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def test_save_schedule_is_a_compare_and_set_on_the_version(store: Store) -> None:
    """Insert refuses an existing id; an update lands only on the version it read; every
    field round-trips; delete and list see what is stored."""
    first = schedule(buffered=(1.5, 2.0), recent=("s@a", "s@b"), latest="s@a", jitter=2.5)
    assert await store.save_schedule(first, expected_version=None)
    assert await store.get_schedule("s") == first
    assert not await store.save_schedule(replace(first, cron="0 * * * *"), expected_version=None)
    second = replace(first, version=2, paused=True, next_tick=None, due_at=None)
    assert not await store.save_schedule(second, expected_version=7)  # not what is stored
    assert await store.get_schedule("s") == first
    assert await store.save_schedule(second, expected_version=1)
    assert await store.get_schedule("s") == second
    assert not await store.save_schedule(replace(second, version=3), expected_version=1)
    assert await store.save_schedule(schedule("a"), expected_version=None)
    assert [s.schedule_id for s in await store.list_schedules()] == ["a", "s"]
    assert await store.delete_schedule("s")
    assert not await store.delete_schedule("s")
    assert await store.get_schedule("s") is None
    assert not await store.save_schedule(replace(second, version=4), expected_version=3)


async def test_save_schedule_creates_its_runs_only_when_its_compare_and_set_wins(
    store: Store,
) -> None:
    """Runs come with a winning write, in its transaction; a losing write creates none;
    a workflow id that already has a run is left as it is (the tick's second guard)."""
    await store.save_schedule(schedule(), expected_version=None)
    tick = new_run("s@t1", at=60.0, tags={"durable.schedule": "s"})
    assert not await store.save_schedule(schedule(version=3), expected_version=2, runs=[tick])
    assert await store.get_run("s@t1") is None
    assert await store.save_schedule(schedule(version=2), expected_version=1, runs=[tick])
    run = await store.get_run("s@t1")
    assert run is not None
    assert run.status == "pending"
    assert run.ready
    assert dict(run.tags) == {"durable.schedule": "s"}
    again = new_run("s@t1", at=61.0)
    other = new_run("s@t2", at=61.0)
    assert await store.save_schedule(schedule(version=3), expected_version=2, runs=[again, other])
    kept = await store.get_run("s@t1")
    assert kept is not None
    assert kept.run_id == run.run_id
    assert len(await store.list_runs(name="wf")) == 2


async def test_schedule_racing_writers_one_wins_and_one_run_is_created(
    store: Store, store_url: str
) -> None:
    """Two stores (as two workers) write the same tick from the same version at once:
    exactly one write lands, and the tick has one run."""
    await store.save_schedule(schedule(), expected_version=None)
    async with open_store(store_url) as other:
        for round_ in range(1, 6):
            runs_a = [new_run(f"s@{round_}", at=60.0, run_id=f"a{round_}")]
            runs_b = [new_run(f"s@{round_}", at=60.0, run_id=f"b{round_}")]
            nxt = schedule(version=round_ + 1)
            won = await asyncio.gather(
                store.save_schedule(nxt, expected_version=round_, runs=runs_a),
                other.save_schedule(nxt, expected_version=round_, runs=runs_b),
            )
            assert sorted(won) == [False, True]
            runs = await store.list_runs()
            assert len([r for r in runs if r.workflow_id == f"s@{round_}"]) == 1
            winner = "a" if won[0] else "b"
            current = await store.get_run(f"s@{round_}")
            assert current is not None
            assert current.run_id == f"{winner}{round_}"


async def test_due_schedules_by_time_and_by_a_closed_run_with_ticks_waiting(
    store: Store,
) -> None:
    """Due: not paused and due by time, or ticks buffered while its latest run is not
    open. Ordered by due time; the others' earliest due time comes back."""
    await store.save_schedule(schedule("early", due_at=50.0), expected_version=None)
    await store.save_schedule(schedule("late", due_at=90.0), expected_version=None)
    await store.save_schedule(schedule("paused", due_at=10.0, paused=True), expected_version=None)
    waiting = schedule("waiting", due_at=500.0, buffered=(55.0,), latest="waiting@1")
    await store.save_schedule(waiting, expected_version=None)
    run, _ = await store.create_run(new_run("waiting@1", at=1.0), if_exists="error")
    due, next_due = await store.due_schedules(60.0, 10)
    assert [s.schedule_id for s in due] == ["early"]
    assert next_due == 90.0
    due, next_due = await store.due_schedules(100.0, 1)
    assert [s.schedule_id for s in due] == ["early"]  # the limit, by due time
    assert next_due == 500.0  # only those not due count; "late" was due
    # Its latest run closes: the buffered tick is due at once.
    await store.terminate(run.run_id, entry_data=b"x", error=b"e", now=2.0, parent_item=None)
    due, _ = await store.due_schedules(60.0, 10)
    assert [s.schedule_id for s in due] == ["early", "waiting"]
    # Latest gone altogether (pruned): due as well.
    await store.save_schedule(replace(waiting, latest="gone", version=2), expected_version=1)
    due, _ = await store.due_schedules(60.0, 10)
    assert "waiting" in [s.schedule_id for s in due]
    due, next_due = await store.due_schedules(0.0, 10)
    assert "early" not in [s.schedule_id for s in due]
    assert next_due == 50.0  # paused ones are never due
