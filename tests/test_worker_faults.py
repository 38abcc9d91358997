"""Defects that lost data or stopped workers, each pinned by a test (every backend).

Signals across continue-as-new, child ids across runs of one workflow id, user code
raising SystemExit, one step's bad data in a group commit, and results of activities that
finished while the database was out of reach.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections import Counter
from contextlib import closing
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

import durable
from durable import RetryPolicy, payload
from durable.errors import StepDataError
from durable.store import JournalEntry, StepCommit

calls: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    calls.clear()


# -- signals are never lost across continue_as_new ----------------------------------------


@durable.workflow
async def summing(total: int, remaining: int) -> int:
    if remaining == 0:
        return total
    value = await durable.wait_signal("add")
    durable.continue_as_new(total + value, remaining - 1)


async def test_signals_sent_back_to_back_survive_continue_as_new(client: durable.Client) -> None:
    """Each run takes one signal and continues as new: the other signals, already in its
    inbox (or arriving while it closes), must reach the successors, all 20 of them."""
    async with durable.Worker(client, workflows=[summing]):
        handle = await client.start(summing, 0, 20, id="summing")
        for value in range(1, 21):
            await handle.signal("add", value)
        assert await handle.result(timeout=30) == sum(range(1, 21))
    runs = [d async for d in client.list(name="summing", limit=100)]
    assert sorted(d.status for d in runs) == ["completed"] + ["continued_as_new"] * 20


@durable.workflow
async def cancellable_loop(rounds: int) -> str:
    try:
        if rounds == 0:
            await durable.sleep(timedelta(days=1))
            return "slept"
        durable.continue_as_new(rounds - 1)
    except asyncio.CancelledError:
        return "cancelled"


async def test_a_cancellation_sent_during_continue_as_new_reaches_the_successor(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[cancellable_loop]):
        handle = await client.start(cancellable_loop, 3, id="cancel-follows")
        await handle.cancel()
        assert await handle.result(timeout=30) == "cancelled"


# -- child ids are unique per run --------------------------------------------------------


@durable.workflow
async def shipper(item: str) -> str:
    return f"shipped {item}"


@durable.workflow
async def ships_twice(item: str, rounds: int) -> str:
    shipped = await shipper(item)
    if rounds > 1:
        durable.continue_as_new(f"{item}+", rounds - 1)
    return shipped


async def test_a_successor_does_not_reuse_its_predecessors_child_ids(
    client: durable.Client,
) -> None:
    """The default child id was the parent's id and journal position: the same in a
    successor, whose child was then 'left alone' and never answered."""
    async with durable.Worker(client, workflows=[ships_twice, shipper]):
        handle = await client.start(ships_twice, "book", 2, id="ships-twice")
        assert await handle.result(timeout=20) == "shipped book+"
    children = [d async for d in client.list(name="shipper")]
    assert len(children) == 2
    assert len({d.id for d in children}) == 2


@durable.workflow
async def slow_shipper(item: str) -> str:
    await durable.wait_signal("go")
    return f"shipped {item}"


@durable.workflow
async def order(item: str) -> str:
    # Abandoned when the parent closes, so a terminated predecessor's child runs on.
    return str(await durable.call(slow_shipper, item, parent_close="abandon"))


async def test_a_restarted_run_gets_its_own_childs_result(client: durable.Client) -> None:
    """A restarted ``order-7`` (input "second") returned "shipped first": its child id was
    its predecessor's, whose still-running child answered the new run."""
    async with durable.Worker(client, workflows=[order, slow_shipper]):
        first = await client.start(order, "first", id="order-7")
        await asyncio.wait_for(_wait_for_children(client, 1), 20)
        await first.terminate("replaced")
        second = await client.start(order, "second", id="order-7", if_exists="restart")
        await asyncio.wait_for(_wait_for_children(client, 2), 20)
        for child in [d async for d in client.list(name="slow_shipper")]:
            if child.status == "running":
                await client.get_handle(child.id).signal("go")
        assert await second.result(timeout=20) == "shipped second"


async def _wait_for_children(client: durable.Client, count: int) -> None:
    while len([d async for d in client.list(name="slow_shipper", status="running")]) < count:
        await asyncio.sleep(0.05)


@durable.workflow
async def ships_under_a_taken_id(item: str) -> str:
    try:
        return await durable.call(shipper, item, id="taken")
    except durable.ChildWorkflowError as err:
        return f"{err.cause.type}: {err}"


async def test_a_child_id_already_running_reaches_the_parent_as_an_error(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[ships_under_a_taken_id, shipper, slow_shipper]):
        await client.start(slow_shipper, "blocker", id="taken")
        outcome = await client.execute(ships_under_a_taken_id, "book", timeout=20)
        assert outcome.startswith("WorkflowAlreadyExists: ")
        assert "'taken'" in outcome or "taken" in outcome
        assert "could not start" in outcome


# -- SystemExit and KeyboardInterrupt from user code fail the step, not the worker ---------


@durable.workflow
async def exits(how: str) -> str:
    if how == "exit":
        sys.exit(3)
    raise KeyboardInterrupt


@durable.activity(retry=RetryPolicy(max_attempts=1))
async def exits_async() -> None:
    calls["exits_async"] += 1
    raise SystemExit("bye")


@durable.activity(retry=RetryPolicy(max_attempts=1), timeout=timedelta(seconds=30))
async def exits_watched() -> None:
    calls["exits_watched"] += 1
    raise KeyboardInterrupt


@durable.activity(retry=RetryPolicy(max_attempts=1))
def exits_in_a_thread() -> None:
    calls["exits_in_a_thread"] += 1
    sys.exit(4)


@durable.workflow
async def calls_exiting_activities() -> list[str]:
    out = []
    for fn in (exits_async, exits_watched, exits_in_a_thread):
        try:
            await fn()
        except durable.ActivityError as err:
            out.append(err.cause.type)
    return out


async def test_user_code_raising_system_exit_fails_the_step_not_the_worker(
    client: durable.Client,
) -> None:
    activities = [exits_async, exits_watched, exits_in_a_thread]
    async with durable.Worker(
        client, workflows=[exits, calls_exiting_activities], activities=activities
    ) as worker:
        for how, kind in (("exit", "SystemExit"), ("interrupt", "KeyboardInterrupt")):
            with pytest.raises(durable.WorkflowFailed) as failed:
                await client.execute(exits, how, timeout=20)
            assert failed.value.cause.type == kind
            assert "does not stop the worker" in failed.value.cause.message
        outcome = await client.execute(calls_exiting_activities, timeout=20)
        assert outcome == ["SystemExit", "KeyboardInterrupt", "SystemExit"]
        assert worker._background is not None
        assert not worker._background.done()
    assert calls == {"exits_async": 1, "exits_watched": 1, "exits_in_a_thread": 1}


# -- one step's bad data does not stall its neighbours -----------------------------------


@durable.workflow
async def publishes_a_bad_key(key: object) -> str:
    durable.publish(key, 1)  # type: ignore[arg-type]
    return "published"


async def test_publish_refuses_a_key_that_is_not_a_string(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[publishes_a_bad_key]):
        for key in (None, ("a", "b"), ""):
            with pytest.raises(durable.WorkflowFailed) as failed:
                await client.execute(publishes_a_bad_key, key, timeout=20)
            assert failed.value.cause.type == "TypeError"
            assert "non-empty str key" in failed.value.cause.message


async def test_a_step_whose_data_breaks_the_commit_is_refused_and_its_batch_goes_through(
    client: durable.Client,
) -> None:
    """A group commit failing on one step's data used to fail every step of the batch, over
    and over: now the batch is split, the healthy steps commit and the bad one alone gets
    `StepDataError` (its driver then parks the run). The worker here only commits: the
    runs are claimed for it by this test, and the steps are made by hand."""
    async with durable.Worker(client) as worker:
        for i in range(5):
            await client.start("made_by_hand", i, id=f"by-hand-{i}")
        now = worker.clock.now()
        claimed = await worker.store.claim_runs(
            worker.worker_id,
            queues=["default"],
            names=["made_by_hand"],
            now=now,
            lease_until=now + 60,
            limit=10,
        )
        assert len(claimed) == 5
        steps = []
        for i, item in enumerate(sorted(claimed, key=lambda c: c.run.workflow_id)):
            step = StepCommit(
                run_id=item.run.run_id,
                owner=worker.worker_id,
                expected_length=0,
                entries=[JournalEntry(1, "workflow_started", now, payload.envelope({}))],
                status="running",
            )
            if i == 2:
                step.published = {None: b"\xc0"}  # type: ignore[dict-item]
            steps.append(step)
        results = await asyncio.gather(
            *(worker._commit(step) for step in steps), return_exceptions=True
        )
        assert [r for i, r in enumerate(results) if i != 2] == [True] * 4
        assert isinstance(results[2], StepDataError)
        lengths = []
        for i in range(5):
            run = await worker.store.get_run(f"by-hand-{i}")
            assert run is not None
            lengths.append(run.history_length)
        assert lengths == [1, 1, 0, 1, 1]


# -- an outage costs time, not repeated work --------------------------------------------


release = asyncio.Event()


@durable.activity(retry=RetryPolicy(max_attempts=5, initial_interval=timedelta(seconds=1)))
async def runs_once(name: str) -> str:
    calls[name] += 1
    await release.wait()
    return f"{name} done"


@durable.workflow
async def one_step(name: str) -> str:
    return await runs_once(name)


@pytest.mark.slow
async def test_a_result_that_finished_during_an_outage_is_kept_not_rerun(
    store_url: str,
) -> None:
    """The database refuses writes (another process holds its write lock) for longer than
    the store waits: the activity's result cannot be committed. It is kept and delivered
    once the database answers, instead of the activity running again after lease expiry."""
    if not store_url.startswith("sqlite"):
        pytest.skip("the outage is made by holding SQLite's write lock from another process")
    release.clear()
    path = urlsplit(store_url).path[1:]
    async with (
        durable.connect(store_url) as client,
        durable.Worker(client, workflows=[one_step], activities=[runs_once], lease_seconds=2),
    ):
        handle = await client.start(one_step, "outage", id="outage")
        while calls["outage"] == 0:
            await asyncio.sleep(0.01)
        with closing(sqlite3.connect(path, isolation_level=None)) as blocker:
            blocker.execute("BEGIN EXCLUSIVE")
            release.set()  # the activity finishes now, while nothing can be written
            await asyncio.sleep(13)  # past the store's 10 s busy timeout, and the lease
            blocker.execute("ROLLBACK")
        assert await handle.result(timeout=60) == "outage done"
    assert calls["outage"] == 1


@durable.workflow
async def two_children_one_id() -> list[str]:
    first = durable.call(slow_shipper, "first", id="dup")
    second = durable.call(shipper, "second", id="dup")
    results = await asyncio.gather(first, second, return_exceptions=True)
    return [r if isinstance(r, str) else f"{type(r).__name__}: {r.cause.type}" for r in results]


async def test_two_children_of_one_id_each_get_their_own_answer(client: durable.Client) -> None:
    """The second child is refused while the first runs; the refusal must reach the second
    call and the first child's result the first (children were matched by id alone, so
    the first call was forgotten and the parent waited for ever)."""
    async with durable.Worker(client, workflows=[two_children_one_id, slow_shipper, shipper]):
        handle = await client.start(two_children_one_id, id="two-children")
        await asyncio.wait_for(_wait_for_children(client, 1), 20)
        for _ in range(400):
            steps = await handle.steps()
            if any(s.kind == "child" and s.status == "failed" for s in steps):
                break
            await asyncio.sleep(0.02)
        await client.get_handle("dup").signal("go")
        assert await handle.result(timeout=20) == [
            "shipped first",
            "ChildWorkflowError: WorkflowAlreadyExists",
        ]


# -- races inside one worker (found in review) -------------------------------------------


@durable.activity
async def slow_once(key: str) -> str:
    calls[key] += 1
    await asyncio.sleep(0.2)
    return key


@durable.workflow
async def acts_then_waits(key: str) -> str:
    done = await slow_once(key)
    go = await durable.wait_signal("go")
    return f"{done}-{go}"


def _slow_commits(
    worker: durable.Worker, which: Any, delay: float, *, after: bool = False
) -> asyncio.Event:
    """Make the worker's first group commit that ``which(steps)`` picks take ``delay``
    seconds more (a busy disk), before it writes or, with ``after``, once it has written
    (its answer is slow to come back); the event is set when the delay begins."""
    store = worker.store
    real = store.commit_steps
    begun = asyncio.Event()

    async def slow(steps: Any, now: float) -> Any:
        if begun.is_set() or not which(steps):
            return await real(steps, now)
        if after:
            result = await real(steps, now)
            begun.set()
            await asyncio.sleep(delay)
            return result
        begun.set()
        await asyncio.sleep(delay)
        return await real(steps, now)

    store.commit_steps = slow  # type: ignore[method-assign]
    return begun


async def test_a_claim_during_the_first_commit_does_not_start_the_workflow_twice(
    client: durable.Client,
) -> None:
    """A signal made the run claimable while its first step was committing: the stale
    claim (history 0) queued a second workflow_started, and the code ran twice."""
    async with durable.Worker(client, workflows=[acts_then_waits], activities=[slow_once]) as w:
        begun = _slow_commits(w, lambda steps: any(s.expected_length == 0 for s in steps), 0.5)
        handle = await client.start(acts_then_waits, "first", id="once")
        await asyncio.wait_for(begun.wait(), 10)
        await handle.signal("go", "now")
        assert await handle.result(timeout=20) == "first-now"
    kinds = [e.kind for e in await handle.history()]
    assert kinds.count("workflow_started") == 1
    assert kinds.count("activity_scheduled") == 1
    assert calls["first"] == 1


async def test_a_claim_during_a_commit_that_hands_the_lease_back_is_stepped_at_once(
    client: durable.Client,
) -> None:
    """The step that hands the lease back has committed, but its answer is slow to come
    back; a signal arrives and the worker claims the run again meanwhile. It used to drop
    that claim with the lease its own again: the run waited for the lease to expire (30 s)
    before anyone took the signal."""
    async with durable.Worker(client, workflows=[acts_then_waits], activities=[slow_once]) as w:
        begun = _slow_commits(
            w,
            lambda steps: any(s.release_lease and s.status is None for s in steps),
            0.5,
            after=True,
        )
        handle = await client.start(acts_then_waits, "second", id="handed-back")
        await asyncio.wait_for(begun.wait(), 10)
        await handle.signal("go", "soon")
        assert await handle.result(timeout=10) == "second-soon"


async def test_a_finished_activity_of_a_rejected_step_is_delivered_not_run_again(
    client: durable.Client,
) -> None:
    """A step carrying a finished activity's result was rejected (here: the store says so
    once, as when a fence refuses it); the driver was dropped with the result, and the
    activity ran again once its task lease expired."""
    async with durable.Worker(
        client, workflows=[acts_then_waits], activities=[slow_once], lease_seconds=1
    ) as w:
        store = w.store
        real = store.commit_steps
        refused: list[str] = []

        async def refuse_once(steps: Any, now: float) -> Any:
            if not refused and any(s.finished_tasks for s in steps):
                refused.append(steps[0].run_id)
                return [False] * len(steps)  # writes nothing, as a fenced-off batch
            return await real(steps, now)

        store.commit_steps = refuse_once  # type: ignore[method-assign]
        handle = await client.start(acts_then_waits, "third", id="rejected")
        while not refused:
            await asyncio.sleep(0.01)
        await asyncio.sleep(2.5)  # past the task lease: a lost result would be retried now
        await handle.signal("go", "later")
        assert await handle.result(timeout=20) == "third-later"
    assert calls["third"] == 1


class Abort(BaseException):
    """A user's own BaseException subclass."""


@durable.activity(retry=RetryPolicy(max_attempts=1))
async def aborts() -> None:
    calls["aborts"] += 1
    raise Abort("stop everything")


@durable.activity(retry=RetryPolicy(max_attempts=1))
def aborts_in_a_thread() -> None:
    calls["aborts_in_a_thread"] += 1
    raise Abort("stop everything")


@durable.workflow
async def calls_aborting_activities() -> list[str]:
    out = []
    for fn in (aborts, aborts_in_a_thread):
        try:
            await fn()
        except durable.ActivityError as err:
            out.append(err.cause.type)
    return out


async def test_a_base_exception_of_the_users_own_fails_the_attempt_not_the_worker(
    client: durable.Client,
) -> None:
    activities = [aborts, aborts_in_a_thread]
    async with durable.Worker(
        client, workflows=[calls_aborting_activities], activities=activities
    ) as worker:
        outcome = await client.execute(calls_aborting_activities, timeout=20)
        assert outcome == [f"{__name__}.Abort"] * 2
        assert worker._background is not None
        assert not worker._background.done()
    assert calls == {"aborts": 1, "aborts_in_a_thread": 1}


async def test_a_heartbeat_racing_a_commit_does_not_call_a_finished_attempt_lost(
    client: durable.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A heartbeat taken while a finished attempt's result commits finds its task row gone
    (the commit deleted it): that is no lost lease. It was logged as one, thousands of times
    a minute under load, and the attempt was flagged cancelled."""
    import logging

    caplog.set_level(logging.WARNING, logger="durable.worker")
    async with durable.Worker(client, workflows=[acts_then_waits], activities=[slow_once]) as w:
        begun = _slow_commits(
            w, lambda steps: any(s.finished_tasks for s in steps), 0.5, after=True
        )
        handle = await client.start(acts_then_waits, "fourth", id="beat-race")
        await asyncio.wait_for(begun.wait(), 10)
        finishing = [c for d in w._drivers.values() for c in d.finishing.values()]
        assert len(finishing) == 1  # committed, the commit's answer not back yet
        await w._beat()
        assert not finishing[0].cancelled
        await handle.signal("go", "on")
        assert await handle.result(timeout=20) == "fourth-on"
    assert "lost its lease on task" not in caplog.text


async def test_a_run_whose_step_the_database_failed_is_stepped_again_at_once(
    client: durable.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database fails a step's commit (an outage past the store's retries): the worker
    drops the run, which stays leased to it and not ready, so no claim took it before its
    lease expired (here a minute). It is handed back as soon as the database answers, and
    the worker takes it again at once."""
    from durable.errors import StoreError

    async with durable.Worker(client, workflows=[shipper], lease_seconds=60) as worker:
        original = worker.store.commit_steps
        failures = 0

        async def fails_once(steps: Any, now: float) -> Any:
            nonlocal failures
            if failures == 0:
                failures += 1
                raise StoreError("the database is out of reach (a test)")
            return await original(steps, now)

        monkeypatch.setattr(worker.store, "commit_steps", fails_once)
        assert await client.execute(shipper, "x", timeout=10) == "shipped x"
    assert failures == 1
