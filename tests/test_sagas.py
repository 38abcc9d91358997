"""durable.saga(): compensations newest first, retried, shielded from cancellation, never
silenced when they fail, marked in steps, history, `durable show` and the console, and
replayed after a worker restart in the middle of them."""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import durable
from durable import ApplicationError, RetryPolicy
from durable.cli.render import history_lines, steps_table
from durable.console import graph, timeline
from durable.testing import WorkflowEnvironment
from tests import saga_app

FAST = RetryPolicy(max_attempts=3, initial_interval=timedelta(seconds=1))
done: list[str] = []
tries: Counter[str] = Counter()
release = asyncio.Event()


@pytest.fixture(autouse=True)
def _reset() -> None:
    global release
    done.clear()
    tries.clear()
    release = asyncio.Event()  # one per test: an event is bound to the loop that waits on it


@durable.activity
async def book(what: str) -> str:
    done.append(f"book {what}")
    return f"{what}-1"


@durable.activity(retry=RetryPolicy(max_attempts=1))
async def boom(what: str) -> str:
    raise ApplicationError(f"{what} is sold out", type="SoldOut")


@durable.activity(retry=FAST)
async def undo(ref: str) -> None:
    tries[ref] += 1
    done.append(f"undo {ref}")


@durable.activity(retry=FAST)
async def flaky_undo(ref: str) -> None:
    tries[ref] += 1
    if tries[ref] < 3:
        raise ConnectionError(f"undo of {ref} timed out (attempt {tries[ref]})")
    done.append(f"undo {ref}")


@durable.activity(retry=RetryPolicy(max_attempts=2, initial_interval=timedelta(seconds=1)))
async def broken_undo(ref: str) -> None:
    tries[ref] += 1
    raise ConnectionError(f"cannot undo {ref}")


@durable.activity(retry=FAST)
async def slow_undo(ref: str) -> None:
    done.append(f"undo {ref} started")
    await release.wait()
    done.append(f"undo {ref}")


ACTIVITIES = [book, boom, undo, flaky_undo, broken_undo, slow_undo]


@durable.workflow
async def trip(fail_at: str, compensation: str = "undo") -> list[str]:
    undoes = {"undo": undo, "flaky_undo": flaky_undo, "broken_undo": broken_undo}
    async with durable.saga() as saga:
        for what in ("card", "hotel", "flight"):
            ref = await (boom(what) if what == fail_at else book(what))
            saga.compensate(undo if what == "card" else undoes[compensation], ref)
    return saga.compensated


async def _run(env: WorkflowEnvironment, *args: str) -> durable.WorkflowHandle[list[str]]:
    handle = await env.client.start(trip, *args, id=f"trip-{'-'.join(args)}")
    with pytest.raises(durable.WorkflowFailed) as failed:
        await handle.result(timeout=30)
    handle.failure = failed.value  # type: ignore[attr-defined]
    return handle


async def test_compensations_run_newest_first_then_the_error_propagates() -> None:
    async with WorkflowEnvironment(workflows=[trip], activities=ACTIVITIES) as env:
        handle = await _run(env, "flight")
        steps = await handle.steps()
        events = await handle.history()

    assert done == ["book card", "book hotel", "undo hotel-1", "undo card-1"]
    # The original error, unchanged: the compensations all succeeded.
    error = handle.failure.cause  # type: ignore[attr-defined]
    assert error.type == "ActivityError"
    assert "flight is sold out" in error.message
    # Steps: the compensations are their own kind, after the failed step, newest first.
    assert [(s.kind, s.name, s.status) for s in steps] == [
        ("activity", "book", "completed"),
        ("activity", "book", "completed"),
        ("activity", "boom", "failed"),
        ("compensation", "undo", "completed"),
        ("compensation", "undo", "completed"),
    ]
    assert [s.input for s in steps if s.kind == "compensation"] == [["hotel-1"], ["card-1"]]
    # History: marked on the journal entry itself, and only there.
    scheduled = [e.data for e in events if e.kind == "activity_scheduled"]
    assert [d.get("compensation") for d in scheduled] == [None, None, None, True, True]


@durable.workflow
async def no_failure() -> list[str]:
    async with durable.saga() as saga:
        saga.compensate(undo, await book("card"))
        saga.compensate(undo, await book("hotel"))
    return saga.compensated


async def test_a_block_that_ends_normally_drops_its_compensations() -> None:
    async with WorkflowEnvironment(workflows=[no_failure], activities=ACTIVITIES) as env:
        assert await env.client.execute(no_failure, id="fine", timeout=30) == []
        steps = await env.client.get_handle("fine").steps()
    assert done == ["book card", "book hotel"]
    assert [s.kind for s in steps] == ["activity", "activity"]


async def test_a_compensation_is_retried_like_any_activity_and_its_attempts_shown() -> None:
    async with WorkflowEnvironment(workflows=[trip], activities=ACTIVITIES) as env:
        handle = await _run(env, "flight", "flaky_undo")
        steps = await handle.steps()

    assert done == ["book card", "book hotel", "undo hotel-1", "undo card-1"]
    assert tries == {"hotel-1": 3, "card-1": 1}
    hotel = next(s for s in steps if s.kind == "compensation" and s.input == ["hotel-1"])
    assert hotel.status == "completed"
    assert [a.number for a in hotel.attempts] == [1, 2, 3]
    assert [a.error.type if a.error else None for a in hotel.attempts] == [
        "ConnectionError",
        "ConnectionError",
        None,
    ]


async def test_a_failing_compensation_does_not_stop_the_others_nor_hide_the_error() -> None:
    async with WorkflowEnvironment(workflows=[trip], activities=ACTIVITIES) as env:
        handle = await _run(env, "flight", "broken_undo")
        steps = await handle.steps()

    # The hotel's undo failed after its two attempts; the card's still ran.
    assert tries == {"hotel-1": 2, "card-1": 1}
    assert done == ["book card", "book hotel", "undo card-1"]
    error = handle.failure.cause  # type: ignore[attr-defined]
    assert error.type == "CompensationError"
    assert "1 of its 2 compensation(s) failed too" in error.message
    assert "cannot undo hotel-1" in error.message
    # What was being compensated travels with it.
    assert error.cause is not None
    assert error.cause.type == "ActivityError"
    assert "flight is sold out" in error.cause.message
    assert [(s.kind, s.status) for s in steps if s.kind == "compensation"] == [
        ("compensation", "failed"),
        ("compensation", "completed"),
    ]


@durable.workflow
async def catches_compensation_error() -> dict[str, object]:
    try:
        async with durable.saga() as saga:
            saga.compensate(broken_undo, await book("card"))
            saga.compensate(undo, await book("hotel"))
            raise ApplicationError("changed my mind", type="Abandoned")
    except durable.CompensationError as err:
        return {
            "error": type(err.error).__name__,
            "failures": [f.cause.message for f in err.failures],
            "compensated": saga.compensated,
            "chained": err.__cause__ is err.error,
        }
    return {}


async def test_the_compensation_error_carries_the_error_and_each_failure() -> None:
    async with WorkflowEnvironment(
        workflows=[catches_compensation_error], activities=ACTIVITIES
    ) as env:
        out = await env.client.execute(catches_compensation_error, id="catch", timeout=30)
    assert out == {
        "error": "ApplicationError",
        "failures": ["cannot undo card-1"],
        "compensated": ["undo"],
        "chained": True,
    }


@durable.workflow
async def waits_in_saga(compensation: str) -> None:
    first = {"undo": undo, "slow_undo": slow_undo, "broken_undo": broken_undo}[compensation]
    async with durable.saga() as saga:
        saga.compensate(undo, await book("card"))
        saga.compensate(first, await book("hotel"))
        await durable.wait_signal("go")


async def _until(handle: durable.WorkflowHandle[None], entry: str) -> None:
    for _ in range(500):
        if entry in done:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{entry!r} never happened: {done}")


async def test_cancelling_the_workflow_runs_the_compensations_then_it_ends_cancelled() -> None:
    async with WorkflowEnvironment(workflows=[waits_in_saga], activities=ACTIVITIES) as env:
        handle = await env.client.start(waits_in_saga, "undo", id="cancelled")
        await _until(handle, "book hotel")
        await handle.cancel()
        with pytest.raises(durable.WorkflowCancelled):
            await handle.result(timeout=30)
        steps = await handle.steps()
    assert done == ["book card", "book hotel", "undo hotel-1", "undo card-1"]
    assert [(s.kind, s.status) for s in steps if s.kind == "compensation"] == [
        ("compensation", "completed"),
        ("compensation", "completed"),
    ]


async def test_a_cancellation_while_compensating_does_not_stop_the_compensations() -> None:
    async with WorkflowEnvironment(
        workflows=[waits_in_saga], activities=ACTIVITIES, time_skipping=False
    ) as env:
        handle = await env.client.start(waits_in_saga, "slow_undo", id="twice")
        await _until(handle, "book hotel")
        await handle.cancel()
        await _until(handle, "undo hotel-1 started")
        await handle.cancel()  # again, in the middle of the first compensation
        await asyncio.sleep(0.2)
        release.set()
        with pytest.raises(durable.WorkflowCancelled):
            await handle.result(timeout=30)
        kinds = [e.kind for e in await handle.history()]
    assert done == [
        "book card",
        "book hotel",
        "undo hotel-1 started",
        "undo hotel-1",
        "undo card-1",
    ]
    assert kinds[-1] == "workflow_cancelled"


async def test_a_cancelled_run_whose_compensation_fails_ends_failed_saying_so() -> None:
    async with WorkflowEnvironment(workflows=[waits_in_saga], activities=ACTIVITIES) as env:
        handle = await env.client.start(waits_in_saga, "broken_undo", id="cancel-broken")
        await _until(handle, "book hotel")
        await handle.cancel()
        with pytest.raises(durable.WorkflowFailed) as failed:
            await handle.result(timeout=30)
    # Not hidden behind the cancellation: the undo that failed is the run's error.
    error = failed.value.cause
    assert error.type == "CompensationError"
    assert "was cancelled, and 1 of its 2 compensation(s) failed too" in error.message
    assert error.cause is not None
    assert error.cause.type == "asyncio.exceptions.CancelledError"
    assert done == ["book card", "book hotel", "undo card-1"]  # the other undo still ran


@durable.activity(queue="undo")
async def queued_undo(ref: str) -> None:
    done.append(f"undo {ref}")


@durable.workflow
async def restarts(n: int) -> list[str]:
    async with durable.saga() as saga:
        for i in range(n):
            saga.compensate(queued_undo, await book(f"leg{i}"))
        await boom("last leg")
    return []  # pragma: no cover


async def test_a_worker_restart_in_the_middle_of_compensating_replays_and_goes_on(
    client: durable.Client,
) -> None:
    # First worker: runs the saga up to its compensations, which wait on a queue it does
    # not serve; then it stops, mid-compensation.
    first = durable.Worker(
        client, workflows=[restarts], activities=[book, boom], queues=["default"]
    )
    async with first:
        handle = await client.start(restarts, 3, id="restart")
        for _ in range(500):
            described = await handle.describe()
            if described.pending and described.pending[0].kind == "compensation":
                break
            await asyncio.sleep(0.02)
    assert [(p.kind, p.name) for p in described.pending] == [("compensation", "queued_undo")]
    assert done == ["book leg0", "book leg1", "book leg2"]

    # A fresh worker (nothing cached: it replays the journal) finishes the compensations.
    second = durable.Worker(
        client,
        workflows=[restarts],
        activities=[book, boom, queued_undo],
        queues=["default", "undo"],
    )
    async with second:
        with pytest.raises(durable.WorkflowFailed, match="last leg is sold out"):
            await handle.result(timeout=30)
    # Each compensation ran once, newest first; nothing before them ran again.
    assert done == [
        "book leg0",
        "book leg1",
        "book leg2",
        "undo leg2-1",
        "undo leg1-1",
        "undo leg0-1",
    ]
    steps = await handle.steps()
    assert [(s.kind, s.input) for s in steps if s.kind == "compensation"] == [
        ("compensation", ["leg2-1"]),
        ("compensation", ["leg1-1"]),
        ("compensation", ["leg0-1"]),
    ]


@durable.workflow
async def misuses(how: str) -> None:
    if how == "not-an-activity":
        async with durable.saga() as saga:
            saga.compensate(print, "x")
    elif how == "after-the-block":
        async with durable.saga() as saga:
            pass
        saga.compensate(undo, "x")


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("not-an-activity", "saga.compensate() takes an @activity function"),
        ("after-the-block", "works inside 'async with durable.saga() as saga:' only"),
    ],
)
async def test_misuse_is_refused_clearly(how: str, message: str) -> None:
    async with WorkflowEnvironment(workflows=[misuses], activities=ACTIVITIES) as env:
        with pytest.raises(durable.WorkflowFailed, match="TypeError") as failed:
            await env.client.execute(misuses, how, id=how, timeout=30)
    assert message in failed.value.cause.message


def test_outside_a_workflow_saga_says_where_it_works() -> None:
    with pytest.raises(durable.NotInWorkflowError, match="only works inside a workflow"):
        durable.saga()


def _step(seq: int, kind: str, name: str, status: str) -> durable.Step:
    at = datetime(2026, 12, 2, 12, 0, seq, tzinfo=UTC)
    return durable.Step(seq, kind, name, "0", None, status, [], at, None, at, ["ref-1"])


def test_show_and_the_console_mark_compensations_in_words_and_shape() -> None:
    steps = [
        _step(2, "activity", "charge", "completed"),
        _step(4, "activity", "reserve", "failed"),
        _step(6, "compensation", "refund", "completed"),
    ]
    now = datetime(2026, 12, 2, 13, tzinfo=UTC)
    table = steps_table(steps, now)
    assert [line.split()[:3] for line in table[1:]] == [
        ["2", "activity", "charge"],
        ["4", "activity", "reserve"],
        ["6", "compensation", "refund"],
    ]
    event = durable.Event(6, "activity_scheduled", now, {"name": "refund", "compensation": True})
    (line,) = history_lines([event])
    assert '"compensation": true' in line
    drawn = graph.render_svg(graph.layout(steps))
    assert drawn.count('data-kind="compensation"') == 1
    assert ">compensation \u00b7 refund(" in drawn  # the word, then the name
    assert "\u21ba" in drawn  # the undo mark in its corner
    rows = timeline.build(steps, now=now).rows
    assert [r.label for r in rows][-1] == "compensation \u00b7 refund('ref-1')"


ROOT = Path(__file__).resolve().parent.parent


def _read(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


async def _saga_worker(url: str, log: Path, out: Path) -> asyncio.subprocess.Process:
    """``durable worker tests.saga_app`` with a 1 s lease, up once it printed its banner."""
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "durable", "worker", "tests.saga_app", "--db", url, "--lease", "1"),
            cwd=ROOT,
            env=dict(os.environ, SAGA_LOG=str(log), PYTHONUNBUFFERED="1"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=fd,
            stderr=asyncio.subprocess.STDOUT,
        )
    finally:
        os.close(fd)  # the child has its own copy
    for _ in range(300):
        if b"Ctrl-C stops." in _read(out):
            return process
        assert process.returncode is None, _read(out).decode()
        await asyncio.sleep(0.05)
    raise AssertionError(f"the worker did not start: {_read(out).decode()}")


def _log(log: Path) -> list[tuple[str, str, str, int]]:
    if not log.exists():
        return []
    rows = [line.split() for line in log.read_text().splitlines()]
    return [(event, name, key, int(pid)) for event, name, key, pid, _ in rows]


async def test_a_worker_killed_while_compensating_is_replaced_and_the_saga_goes_on(
    store_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "saga.log"
    first = await _saga_worker(store_url, log, tmp_path / "first.out")
    second: asyncio.subprocess.Process | None = None
    try:
        async with durable.connect(store_url) as client:
            handle = await client.start(saga_app.trip_saga, 3, id="saga-kill")
            for _ in range(600):  # until the first undo is under way
                if ("start", "undo_leg", "leg2", first.pid) in _log(log):
                    break
                await asyncio.sleep(0.02)
            first.kill()  # SIGKILL, in the middle of the newest leg's undo
            await first.wait()
            second = await _saga_worker(store_url, log, tmp_path / "second.out")
            with pytest.raises(durable.WorkflowFailed, match="last cannot be booked"):
                await handle.result(timeout=60)
            steps = await handle.steps()
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
    rows = _log(log)
    # Booked once each, by the first worker; undone newest first, each to its end once, the
    # one cut short by the kill run again by the second worker.
    assert [(n, k, p) for e, n, k, p in rows if n == "book_leg" and e == "end"] == [
        ("book_leg", f"leg{i}", first.pid) for i in range(3)
    ]
    assert second is not None
    ends = [(k, p) for e, n, k, p in rows if n == "undo_leg" and e == "end"]
    assert ends == [("leg2", second.pid), ("leg1", second.pid), ("leg0", second.pid)]
    assert ("start", "undo_leg", "leg2", first.pid) in rows
    undone = [s for s in steps if s.kind == "compensation"]
    assert [(s.input, s.status) for s in undone] == [
        (["leg2"], "completed"),
        (["leg1"], "completed"),
        (["leg0"], "completed"),
    ]
    assert len(undone[0].attempts) >= 2  # the attempt lost with the first worker, then one
