"""handle.steps(): the run as people see it, with branches and groups (every backend)."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import sqlite3
import weakref
from collections import Counter
from contextlib import closing
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import msgpack
import pytest

import durable
from durable import RetryPolicy, journal, payload, steps
from durable.errors import RemoteError
from durable.runsteps import RunSteps
from durable.steps import Step
from durable.store import JournalEntry, RunRecord
from tests.conftest import _postgres_admin

calls: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    calls.clear()


@durable.activity(retry=RetryPolicy(max_attempts=3, initial_interval=timedelta(milliseconds=10)))
async def double(x: int) -> int:
    calls[f"double-{x}"] += 1
    if x == 3 and calls["double-3"] < 3:
        raise ConnectionError(f"attempt {calls['double-3']} lost the connection")
    return 2 * x


@durable.workflow
async def doubler(x: int) -> int:
    return await double(x)


@durable.workflow
async def tour() -> int:
    first = await double(1)  # alone
    a, b = await asyncio.gather(double(2), double(3))  # two futures issued together
    mapped = await durable.map(double, [4, 5, 6], max_concurrency=2)  # three tasks

    async def pair(k: int) -> int:  # two tasks, each with two sequential calls
        return await double(k) + await double(k + 1)

    pairs = await asyncio.gather(pair(10), pair(20))
    child = await doubler(7)
    durable.publish("progress", "almost")
    try:
        await durable.wait_signal("hurry", timeout=timedelta(milliseconds=50))
    except TimeoutError:
        pass
    await durable.sleep(0.05)
    go = await durable.wait_signal("go")
    return first + a + b + sum(mapped) + sum(pairs) + child + go


def _by_kind(all_steps: list[Step], kind: str) -> list[Step]:
    return [s for s in all_steps if s.kind == kind]


async def test_steps_show_branches_groups_attempts_and_waits(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[tour, doubler], activities=[double]):
        handle = await client.start(tour, id="tour")
        for _ in range(400):
            waiting = [s for s in await handle.steps() if s.status == "waiting"]
            if waiting and waiting[-1].kind == "signal" and waiting[-1].name == "go":
                break
            await asyncio.sleep(0.02)
        before = await handle.steps()
        assert [s.status for s in before][-1] == "waiting"
        pending = (await handle.describe()).pending
        assert [(p.kind, p.name) for p in pending] == [("signal", "go")]
        await handle.signal("go", 1000)
        assert await handle.result(timeout=20) == 1000 + 2 * (
            1 + 2 + 3 + 4 + 5 + 6 + 10 + 11 + 20 + 21 + 7
        )
        after = await handle.steps()

    activities = _by_kind(after, "activity")
    assert [s.input for s in activities] == [[1], [2], [3], [4], [5], [6], [10], [20], [11], [21]]
    assert all(s.status == "completed" for s in activities)
    assert [s.output for s in activities[:3]] == [2, 4, 6]
    # Branches: the main coroutine issues the first three; map and gather spawn tasks.
    assert [s.branch for s in activities[:3]] == ["0", "0", "0"]
    assert [s.branch for s in activities[3:6]] == ["0.0", "0.1", "0.2"]
    assert sorted(s.branch for s in activities[6:]) == ["0.3", "0.3", "0.4", "0.4"]
    # Groups: alone, the gathered pair, the map's three items, the two gathered tasks.
    first, two, three = activities[0], activities[1], activities[2]
    assert first.group is None
    assert two.group == three.group == two.seq
    assert {s.group for s in activities[3:6]} == {activities[3].seq}
    assert {s.group for s in activities[6:]} == {activities[6].seq}
    # Every attempt is there, with its error and where it ran.
    assert [len(s.attempts) for s in activities] == [1, 1, 3, 1, 1, 1, 1, 1, 1, 1]
    failed = three.attempts[:2]
    assert [a.number for a in three.attempts] == [1, 2, 3]
    assert all(a.error is not None and "lost the connection" in a.error.message for a in failed)
    assert three.attempts[2].error is None
    assert all(a.worker is not None and a.started_at is not None for a in three.attempts)
    assert all(a.closed_at is not None for a in three.attempts)
    assert three.attempts[0].started_at <= three.attempts[0].closed_at  # type: ignore[operator]

    [child] = _by_kind(after, "child")
    assert (child.name, child.status, child.output, child.input) == (
        "doubler",
        "completed",
        14,
        [7],
    )
    assert child.child_id is not None
    assert child.child_id.startswith("tour/")
    [published] = _by_kind(after, "publish")
    assert (published.name, published.input) == ("progress", "almost")
    timed_out, go = _by_kind(after, "signal")
    assert (timed_out.name, timed_out.status) == ("hurry", "failed")
    assert timed_out.error is not None
    assert timed_out.error.type == "TimeoutError"
    assert isinstance(timed_out.input, datetime)  # its deadline
    assert (go.name, go.status, go.output) == ("go", "completed", 1000)
    [timer] = _by_kind(after, "timer")  # the wait's own timeout timer is not a step
    assert timer.status == "completed"
    assert [s.seq for s in after] == sorted(s.seq for s in after)

    # Built as the journal grew, cut anywhere: the same steps, and those handed out
    # before stay as they were.
    store = await client._open()
    run = await store.get_run("tour")
    assert run is not None
    rows = await store.read_journal_rows(run.run_id)
    extras = await store.read_extras(run.workflow_id, run.run_id)
    for cut in range(len(rows) + 1):
        builder = steps.StepBuilder()
        builder.fold(rows[:cut])
        early = builder.finish(run, extras.tasks, extras.timers)
        as_made = repr(early)
        builder.fold(rows[cut:])
        assert builder.finish(run, extras.tasks, extras.timers) == after
        assert repr(early) == as_made


@durable.activity
async def never_finishes() -> None:
    calls["never"] += 1
    await asyncio.sleep(3600)


@durable.workflow
async def abandons(seconds: float) -> str:
    try:
        await asyncio.wait_for(never_finishes(), seconds)
    except TimeoutError:
        pass
    await durable.sleep(3600)
    return "done"


async def test_steps_of_a_run_in_flight_and_after_it_closes(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[abandons], activities=[never_finishes]):
        handle = await client.start(abandons, 0.2, id="abandons")
        for _ in range(400):
            now = await handle.steps()
            if [s.kind for s in now][-1:] == ["timer"] and now[-1].seq > 4:
                break
            await asyncio.sleep(0.02)
        activity = _by_kind(now, "activity")[0]
        assert activity.status == "cancelled"  # wait_for gave up on it
        assert [s.status for s in _by_kind(now, "timer")] == ["completed", "waiting"]
        await handle.terminate("enough")
        closed = await handle.steps()
    assert [s.status for s in _by_kind(closed, "timer")] == ["completed", "cancelled"]


# -- a damaged journal entry hides nothing else ----------------------------------------


@durable.workflow
async def naps() -> str:
    await durable.sleep(timedelta(days=1))
    return "rested"


async def _corrupt(store_url: str, run_id: str, seq: int) -> None:
    """Overwrite one journal entry's data with bytes msgpack cannot read, behind the
    store's back."""
    parts = urlsplit(store_url)
    if parts.scheme == "sqlite":
        with closing(sqlite3.connect(parts.path[1:])) as db, db:
            db.execute(
                "UPDATE journal SET data = x'c1' WHERE run_id = ? AND seq = ?", (run_id, seq)
            )
        return
    schema = dict(p.split("=", 1) for p in parts.query.split("&"))["schema"]
    admin = await _postgres_admin()
    try:
        await admin.execute(
            f'UPDATE "{schema}".journal SET data = $1 WHERE run_id = $2 AND seq = $3',
            b"\xc1",
            run_id,
            seq,
        )
    finally:
        await admin.close()


async def test_a_parked_run_with_a_damaged_entry_can_still_be_inspected(
    client: durable.Client, store_url: str
) -> None:
    async with durable.Worker(client, workflows=[naps]):
        handle = await client.start(naps, id="naps")
        for _ in range(400):
            if (await handle.describe()).pending:
                break
            await asyncio.sleep(0.02)
    run_id = (await handle.describe()).run_id
    await _corrupt(store_url, run_id, 2)  # the timer_started entry
    async with durable.Worker(client, workflows=[naps]):  # a new worker must replay
        await handle.signal("wake-up", None)
        for _ in range(400):
            desc = await handle.describe()
            if desc.problem:
                break
            await asyncio.sleep(0.02)
    assert desc.status == "running"
    assert desc.problem is not None
    assert f"Journal entry 2 (timer_started) of run {run_id} cannot be read" in desc.problem
    assert "it is parked" in desc.problem
    events = await handle.history()
    assert [e.kind for e in events][:2] == ["workflow_started", "timer_started"]
    assert "damaged" in events[1].data
    assert "does not decode" in events[1].data["damaged"]
    shown = await handle.steps()
    assert [s.kind for s in shown] == ["damaged"]
    assert shown[0].error is not None
    assert "journal entry 2" in shown[0].error.message


def test_pending_names_what_each_step_waits_for() -> None:
    at = datetime(2026, 1, 1, 10, 30, 5, 123456).astimezone()
    built = [
        Step(1, "activity", "charge", "0", None, "retrying", scheduled_at=at),
        Step(2, "timer", "timer", "0", None, "waiting", scheduled_at=at, input=at),
        Step(3, "child", "ship", "0", None, "waiting", scheduled_at=at, child_id="c-1"),
        Step(4, "signal", "approve", "0", None, "waiting", scheduled_at=at),
        Step(5, "publish", "progress", "0", None, "completed", scheduled_at=at),
    ]
    assert [(p.kind, p.name, p.attempt) for p in steps.pending(built)] == [
        ("activity", "charge", 2),
        ("timer", f"until {at.isoformat(timespec='seconds')}", 1),
        ("child", "ship (c-1)", 1),
        ("signal", "approve", 1),
    ]


# -- the builder's fast paths read what the records say ----------------------------------


def _run_record(status: str) -> RunRecord:
    return RunRecord(
        "w", "r", "wf", "default", status, b"", None, None, 1.0, 1.0, None, None, None, 0,
        False, None, None, False, None, None, None, True,
    )  # fmt: skip


def _rows() -> list[tuple[int, str, float, bytes]]:
    retry = {"maximum_attempts": 3}
    one = payload.encode({"args": [1], "kwargs": {}})
    keyword = payload.encode({"args": [], "kwargs": {"k": 2}})
    records: list[journal.Record] = [
        journal.ActivityScheduled("charge", "q", one, retry),
        journal.ActivityScheduled(
            "undo", "q", keyword, retry, branch="0.1", group=2, compensation=True
        ),
        journal.ActivityCompleted(1, payload.encode({"total": 5}), 3.5, "w-1", 2),
        journal.Published("progress", payload.encode("half"), branch="0.1"),
        journal.ActivityCompleted(2, None),
        journal.ActivityCompleted(99, payload.encode(0)),  # answers no step: ignored
    ]
    rows = [(n, r.KIND.value, 10.0 + n, journal.encode(r)) for n, r in enumerate(records, 1)]
    no_queue = {"name": "x", "args": payload.encode([]), "retry": retry}
    rows.append((7, "activity_scheduled", 17.0, msgpack.packb(no_queue)))  # a field missing
    rows.append((8, "published", 18.0, msgpack.packb([1, 2])))  # not a map
    rows.append((9, "activity_completed", 19.0, b"\xc1"))  # not msgpack
    return rows


def test_steps_from_rows_match_the_journal_records_and_keep_values_encoded_on_asking() -> None:
    rows = _rows()
    entries = [JournalEntry(*row) for row in rows]
    for status in ("running", "failed"):
        run = _run_record(status)
        built = steps.build(run, entries)
        assert steps.build_rows(run, rows) == built
        lazy = steps.build_rows(run, rows, decode=False)
        assert isinstance(lazy[0].input, steps.Undecoded)
        assert steps.build_rows(run, rows, decode=False) == lazy  # values compare encoded
        assert [steps.decoded(s) for s in lazy] == built
        assert [steps.value(s.input) for s in lazy] == [s.input for s in built]
    charge, undo, published, no_queue, not_map, not_msgpack = built
    assert (charge.kind, charge.status, charge.input, charge.output) == (
        "activity", "completed", [1], {"total": 5},
    )  # fmt: skip
    assert [(a.number, a.worker) for a in charge.attempts] == [(2, "w-1")]
    assert charge.closed_at == charge.attempts[0].closed_at
    assert (undo.kind, undo.branch, undo.group, undo.input, undo.output) == (
        "compensation", "0.1", 2, [{"k": 2}], None,
    )  # fmt: skip
    assert (published.kind, published.name, published.branch, published.group) == (
        "publish", "progress", "0.1", None,
    )  # fmt: skip
    assert published.input == "half"
    assert published.closed_at == published.scheduled_at
    assert [s.kind for s in (no_queue, not_map, not_msgpack)] == ["damaged"] * 3
    assert no_queue.error is not None
    assert "missing a field" in no_queue.error.message


# -- kept built while the journal grows, anew when a repair cut it ------------------------

fail_now = {"yes": True}


@durable.workflow
async def mends() -> int:
    first = await double(1)
    if fail_now["yes"]:
        raise ValueError("not yet")
    return first + await double(2)


async def test_run_steps_read_what_was_written_since_and_anew_after_a_repair(
    client: durable.Client,
) -> None:
    store = await client._open()
    handle = client.get_handle("mends")
    async with durable.Worker(client, workflows=[mends], activities=[double]):
        await client.start(mends, id="mends")
        with pytest.raises(durable.WorkflowFailed):
            await handle.result(timeout=20)
    run = await store.get_run("mends")
    assert run is not None
    kept = RunSteps(run.run_id)
    await kept.read(store, run)
    assert kept.steps(run) == await handle.steps()
    fail_now["yes"] = False  # the fix is deployed
    try:
        async with durable.Worker(client, workflows=[mends], activities=[double]):
            await handle.retry()  # takes workflow_failed off the journal's end
            assert await handle.result(timeout=20) == 6
    finally:
        fail_now["yes"] = True
    run = await store.get_run("mends")
    assert run is not None
    await kept.read(store, run)
    extras = await store.read_extras(run.workflow_id, run.run_id)
    assert kept.steps(run, extras.tasks, extras.timers) == await handle.steps()
    assert [s.output for s in kept.steps(run)] == [2, 4]
    await kept.read(store, run)  # nothing new
    assert kept.steps(run) == await handle.steps()


def _fed_as_records(rows: list[tuple[int, str, float, bytes]]) -> steps.StepBuilder:
    """A builder fed every row as its record (`StepBuilder.entry`), fast paths bypassed."""
    builder = steps.StepBuilder()
    for seq, kind, time, data in rows:
        builder.entry(seq, time, journal.decode(kind, data))
    return builder


def test_the_fast_paths_make_the_steps_the_records_make_in_parts_and_out_of_order() -> None:
    retry = {"maximum_attempts": 3}
    error = {"type": "ValueError", "message": "no", "traceback": ""}
    records: list[journal.Record] = [
        journal.ActivityScheduled("a", "q", payload.encode({"args": [1], "kwargs": {}}), retry),
        journal.ActivityScheduled("b", "q", payload.encode(2), retry, branch="0.1", group=4),
        journal.Published("p", payload.encode("x")),
        journal.ActivityRetrying(2, 1, RemoteError.from_dict(error), 11.0, "w-2"),
        journal.ActivityCompleted(1, payload.encode(10), 11.5, "w-1"),
        journal.Published("q", payload.encode("y"), branch="0.1"),
        journal.ActivityCompleted(2, payload.encode(20), 12.5, "w-2", 2),
    ]
    times = [10.0, 10.0, 10.0, 12.0, 13.0, 13.0, 14.0]  # rows of one commit share its time
    rows = [
        (n, r.KIND.value, t, journal.encode(r))
        for n, (r, t) in enumerate(zip(records, times, strict=True), 1)
    ]
    run = _run_record("running")
    want = _fed_as_records(rows).finish(run)
    assert [s.status for s in want] == ["completed", "completed", "completed", "completed"]
    builder = steps.StepBuilder()
    builder.fold(rows[:3])
    assert [s.status for s in builder.finish(run)] == ["scheduled", "scheduled", "completed"]
    builder.fold(rows[3:])  # completes steps already handed out: copies, the old ones stay
    assert builder.finish(run) == want
    assert steps.build_rows(run, rows) == want
    assert [s.seq for s in steps.build_rows(run, rows[::-1])] == [1, 2, 3, 6]  # seq order
    a, b, p, q = steps.build_rows(run, rows)
    assert a.scheduled_at is b.scheduled_at is p.scheduled_at  # one datetime per commit
    assert a.closed_at is q.closed_at
    assert [(x.number, x.worker, x.error is None) for x in b.attempts] == [
        (1, "w-2", False),
        (2, "w-2", True),
    ]


def test_a_builder_keeps_the_rows_of_the_kinds_asked_for_as_it_folds_them() -> None:
    rows = _rows()
    started = (0, "workflow_started", 9.0, journal.encode(journal.WorkflowStarted(b"")))
    rows = [started, *rows, (10, "run_retried", 20.0, b"\xc1")]  # a damaged one is kept too
    for keep in ({"workflow_started", "run_retried"}, {"published", "run_retried"}):
        builder = steps.StepBuilder(decode=False, keep=keep)
        builder.fold(rows[:4])
        builder.fold(iter(rows[4:]))  # any iterable, in two folds
        assert builder.kept == [row for row in rows if row[1] in keep]
        assert builder.finish(_run_record("completed")) == steps.build_rows(
            _run_record("completed"), rows, decode=False
        )


def test_a_build_leaves_what_the_program_froze_frozen_and_the_collector_on() -> None:
    rows = _rows()
    run = _run_record("completed")
    gc.freeze()  # as a program forking workers would
    try:
        frozen = gc.get_freeze_count()
        assert steps.build_rows(run, rows) == steps.build(run, [JournalEntry(*r) for r in rows])
        assert gc.get_freeze_count() == frozen
        assert gc.isenabled()
    finally:
        gc.unfreeze()
    steps.build_rows(run, rows)
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()


def test_the_fast_paths_look_for_every_field_their_records_require() -> None:
    # `StepBuilder._fold` names them (a map lacking one is damaged: `journal.from_data`):
    # a new required field needs looking for there too.
    def required(record: type[journal.Record]) -> set[str]:
        return {
            f.name
            for f in dataclasses.fields(record)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }

    assert required(journal.ActivityScheduled) == {"name", "queue", "args", "retry"}
    assert required(journal.ActivityCompleted) == {"ref", "result"}
    assert required(journal.Published) == {"key", "value"}


def test_a_big_build_makes_what_is_young_old_a_small_one_leaves_it_young(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Knot:
        me: object

    def knot() -> weakref.ref[Knot]:  # a young garbage cycle
        made = Knot()
        made.me = made
        return weakref.ref(made)

    rows, run = _rows(), _run_record("completed")
    before = gc.get_threshold()
    gc.set_threshold(1_000_000_000)  # no collection but those asked for
    try:
        gc.collect()
        young = knot()
        steps.build_rows(run, rows)  # small: the young collection as ever
        gc.collect(0)
        assert young() is None
        monkeypatch.setattr(steps, "_PROMOTED", 0)  # as big as 100,000 steps
        young = knot()
        steps.build_rows(run, rows)
        gc.collect(0)
        assert young() is not None  # in the oldest generation, with what the build made
        gc.collect()
        assert young() is None
    finally:
        gc.set_threshold(*before)
