"""Remote activities (``durable.call("name", ...)``) served through the client's task API
(`durable.tasks`), on every backend: poll, heartbeat, complete, fail, leases and timeouts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pytest

import durable
import durable.testing
from durable import RetryPolicy, StaleTask, TaskNotFound
from durable.tokens import TaskToken

FAST = RetryPolicy(max_attempts=3, initial_interval=timedelta(milliseconds=10))


@dataclass
class Size:
    width: int
    height: int
    taken: datetime | None = None


@durable.workflow
async def resize(path: str) -> dict[str, Any]:
    size = await durable.call("resize_image", path, 2, queue="media", result_type=Size, retry=FAST)
    assert isinstance(size, Size)
    assert size.taken is None or isinstance(size.taken, datetime)
    plain = await durable.call("probe", path, queue="media")
    taken = size.taken.year if size.taken else None
    return {"area": size.width * size.height, "probe": plain, "taken": taken}


async def serve_one(client: durable.Client, queue: str = "media", **kw: Any) -> durable.RemoteTask:
    kw.setdefault("worker", "node-1")
    kw.setdefault("wait", 10)
    tasks = await client.poll_tasks(queue, **kw)
    assert len(tasks) == 1, tasks
    return tasks[0]


async def test_remote_activity_completed_over_the_task_api(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[resize]):
        handle = await client.start(resize, "/a.png", id="resize")
        task = await serve_one(client, names=["resize_image"])
        assert (task.name, task.args, task.attempt) == ("resize_image", ["/a.png", 2], 1)
        assert (task.workflow_id, task.queue, task.deadline) == ("resize", "media", None)
        assert task.token.startswith("dt1.")
        # JSON forms, as a worker in another language sends them, rebuilt by result_type.
        await client.complete(
            task.token, {"width": 3, "height": 4, "taken": "2026-01-02T03:04:05Z"}
        )
        probe = await serve_one(client)  # names=None: any name on the queue
        assert probe.name == "probe"
        await client.complete(probe.token, ["png", 7])
        assert await handle.result(timeout=20) == {
            "area": 12,
            "probe": ["png", 7],
            "taken": 2026,
        }
        steps = [s for s in await handle.steps() if s.kind == "activity"]
        assert [(s.name, s.status) for s in steps] == [
            ("resize_image", "completed"),
            ("probe", "completed"),
        ]
        assert steps[0].attempts[0].worker == "node-1"
        assert steps[0].attempts[0].started_at is not None
        # The remote worker is listed while it polls.
        workers = {w.worker_id: w for w in await (await client._open()).list_workers()}
        assert workers["node-1"].queues == ("media",)


async def test_completing_twice_while_a_worker_journals_the_first_is_harmless(
    client: durable.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The repeated completion reads what is stored for the step; a worker moving the first
    completion from the inbox into the journal between those reads must not make it look
    stale (it did when the journal was read first: a 409 now and then under load)."""
    async with durable.Worker(client, workflows=[resize]):
        handle = await client.start(resize, "/b.png", id="twice")
        task = await serve_one(client, names=["resize_image"])
    await client.complete(task.token, {"width": 1, "height": 2})  # no worker: stays in the inbox
    store = await client._open()
    run = await store.get_run("twice")
    assert run is not None
    assert [i.kind for i in await store.read_inbox(run.run_id)] == ["activity_completed"]
    read_journal = store.read_journal
    moved: list[bool] = []

    async def journal_then_the_move(run_id: str, after_seq: int = 0) -> Any:
        entries = await read_journal(run_id, after_seq)
        if not moved:  # the worker journals the completion right after this read
            moved.append(True)
            async with durable.Worker(client, workflows=[resize]):
                while await store.read_inbox(run_id):
                    await asyncio.sleep(0.01)
        return entries

    monkeypatch.setattr(store, "read_journal", journal_then_the_move)
    await client.complete(task.token, {"width": 1, "height": 2})  # the same attempt again
    assert moved
    monkeypatch.undo()
    kinds = [e.kind for e in await handle.history()]
    assert kinds.count("activity_completed") == 1
    await handle.terminate("done")


async def test_a_python_worker_without_the_name_never_claims_it(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[resize], queues=["default", "media"]):
        handle = await client.start(resize, "/b.png", id="resize-b")
        await asyncio.sleep(0.5)  # the worker had every chance to take it
        desc = await handle.describe()
        assert [(p.kind, p.name) for p in desc.pending] == [("activity", "resize_image")]
        task = await serve_one(client)
        assert task.attempt == 1
        await client.complete(task.token, {"width": 1, "height": 1})
        await client.complete((await serve_one(client)).token, None)
        assert (await handle.result(timeout=20))["area"] == 1


@durable.activity(name="resize_image", queue="media")
async def resize_here(path: str, factor: int) -> dict[str, int]:
    return {"width": factor, "height": factor}


async def test_a_python_worker_implementing_the_name_may_run_it(client: durable.Client) -> None:
    async with durable.Worker(
        client, workflows=[resize], activities=[resize_here], queues=["default", "media"]
    ):
        handle = await client.start(resize, "/c.png", id="resize-c")
        probe = await serve_one(client, names=["probe"])
        await client.complete(probe.token, "ok")
        assert await handle.result(timeout=20) == {"area": 4, "probe": "ok", "taken": None}


@durable.workflow
async def remote_once(x: int) -> Any:
    return await durable.call("compute", x, retry=FAST, timeout=30, heartbeat_timeout=5)


async def test_fail_retries_then_completes(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[remote_once]):
        handle = await client.start(remote_once, 1, id="retry")
        first = await serve_one(client, "default")
        assert first.deadline is not None
        assert first.heartbeat_timeout == 5
        await client.fail(first.token, {"type": "Busy", "message": "try later", "details": [1]})
        second = await serve_one(client, "default")
        assert second.attempt == 2
        await client.complete(second.token, 42)
        assert await handle.result(timeout=20) == 42
        [step] = [s for s in await handle.steps() if s.kind == "activity"]
        assert [a.number for a in step.attempts] == [1, 2]
        assert step.attempts[0].error is not None
        assert (step.attempts[0].error.type, step.attempts[0].error.details) == ("Busy", [1])
        # The first attempt's token is stale: its outcome (retrying) is not "completed".
        with pytest.raises(StaleTask) as info:
            await client.complete(first.token, 0)
        assert info.value.outcome["status"] == "completed"
        assert info.value.outcome["attempt"] == 2
        assert info.value.outcome["result"] == 42
        # Failing the first attempt again is the same end: a no-op.
        await client.fail(first.token, "try later")
        # Completing the second again: a no-op, nothing written twice.
        await client.complete(second.token, 42)
    kinds = [e.kind for e in await handle.history()]
    assert kinds.count("activity_completed") == 1
    assert kinds.count("activity_retrying") == 1


async def test_non_retryable_fail_fails_the_activity(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[remote_once]):
        handle = await client.start(remote_once, 1, id="nonretryable")
        task = await serve_one(client, "default")
        await client.fail(task.token, ValueError("bad input"), non_retryable=True)
        with pytest.raises(durable.WorkflowFailed) as info:
            await handle.result(timeout=20)
        assert "bad input" in str(info.value)
        with pytest.raises(StaleTask) as stale:
            await client.complete(task.token, 1)
        assert stale.value.outcome["status"] == "failed"
        assert stale.value.outcome["error"]["type"] == "ValueError"


@durable.workflow
async def gives_up(x: int) -> str:
    work = asyncio.ensure_future(durable.call("slow", x, heartbeat_timeout=30))
    await durable.wait_signal("stop")
    work.cancel()
    await durable.wait_signal("finish")
    return "stopped"


async def test_heartbeat_says_when_the_workflow_cancelled(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[gives_up]):
        handle = await client.start(gives_up, 1, id="cancel")
        task = await serve_one(client, "default")
        assert await client.heartbeat_task(task.token, {"done": 10}) is False
        await handle.signal("stop")
        for _ in range(100):  # the workflow gives up on it; the run goes on
            if await client.heartbeat_task(task.token):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the heartbeat never said the workflow cancelled the activity")
        [step] = [s for s in await handle.steps() if s.kind == "activity"]
        assert step.status == "cancelled"
        assert step.attempts[-1].heartbeat == {"done": 10}
        await client.fail(task.token, "cancelled as asked")  # not retried: nobody wants it
        await handle.signal("finish")
        assert await handle.result(timeout=20) == "stopped"
        with pytest.raises(StaleTask) as info:
            await client.heartbeat_task(task.token)  # the attempt is over now
        assert info.value.outcome["status"] == "failed"


@durable.workflow
async def closes_with_work(x: int) -> str:
    work = asyncio.ensure_future(durable.call("slow", x))
    await durable.wait_signal("stop")
    assert not work.done()
    return "closed"


async def test_heartbeat_says_stop_once_the_run_closed(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[closes_with_work]):
        handle = await client.start(closes_with_work, 1, id="closes")
        task = await serve_one(client, "default")
        await handle.signal("stop")
        assert await handle.result(timeout=20) == "closed"
        assert await client.heartbeat_task(task.token) is True
        await client.complete(task.token, "late")  # accepted, and dropped: nobody wants it
        with pytest.raises(StaleTask) as info:
            await client.heartbeat_task(task.token)
        assert info.value.outcome == {"status": "closed", "run_status": "completed"}
    kinds = [e.kind for e in await handle.history()]
    assert "activity_completed" not in kinds


@durable.workflow
async def fan_out(n: int) -> list[Any]:
    return list(await asyncio.gather(*(durable.call("square", i) for i in range(n))))


async def test_concurrent_pollers_never_share_an_attempt(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[fan_out]):
        handle = await client.start(fan_out, 30, id="fan")
        seen: list[str] = []

        async def poller(name: str) -> None:
            while len(seen) < 30:
                for task in await client.poll_tasks("default", worker=name, max_tasks=4, wait=0.2):
                    seen.append(task.token)
                    await client.complete(task.token, task.args[0] ** 2)

        async with asyncio.TaskGroup() as tg:
            for i in range(4):
                tg.create_task(poller(f"p{i}"))
        assert await handle.result(timeout=20) == [i * i for i in range(30)]
        parsed = [TaskToken.parse(t) for t in seen]
        assert len({(t.seq, t.attempt) for t in parsed}) == 30 == len(seen)


async def test_lost_remote_worker_is_retried_when_its_lease_expires(
    client: durable.Client,
) -> None:
    @durable.workflow(name="lost_wf")
    async def lost_wf() -> Any:
        return await durable.call("job", retry=FAST, heartbeat_timeout=0.3)

    async with durable.Worker(client, workflows=[lost_wf]):
        handle = await client.start(lost_wf, id="lost")
        gone = await serve_one(client, "default", worker="vanishes")
        # Another poller finds the task once the lease expired (0.3 s without heartbeat).
        again = await serve_one(client, "default", worker="stays", wait=10)
        assert again.attempt == 2
        with pytest.raises(StaleTask) as info:
            await client.heartbeat_task(gone.token)
        assert info.value.outcome == {"status": "running", "attempt": 2}
        await client.complete(again.token, "ok")
        assert await handle.result(timeout=20) == "ok"
        [step] = [s for s in await handle.steps() if s.kind == "activity"]
        assert step.attempts[0].error is not None
        assert step.attempts[0].error.type == "WorkerLost"


async def test_start_to_close_timeout_enforced_without_another_poller(
    client: durable.Client,
) -> None:
    @durable.workflow(name="slow_wf")
    async def slow_wf() -> Any:
        return await durable.call(
            "job", retry=RetryPolicy(max_attempts=1), timeout=timedelta(seconds=0.5)
        )

    async with durable.Worker(client, workflows=[slow_wf]):
        handle = await client.start(slow_wf, id="slow")
        task = await serve_one(client, "default")
        assert task.deadline is not None
        # Heartbeats do not stretch the attempt past its deadline; nobody polls again.
        assert await client.heartbeat_task(task.token) is False
        with pytest.raises(durable.WorkflowFailed) as info:
            await handle.result(timeout=20)
        assert "ActivityError" in str(info.value) or "attempt" in str(info.value)
        with pytest.raises(StaleTask) as stale:
            await client.complete(task.token, "too late")
        assert stale.value.outcome["status"] in ("failed", "closed")


async def test_completing_after_the_deadline_is_refused_as_timed_out(
    client: durable.Client,
) -> None:
    @durable.workflow(name="deadline_wf")
    async def deadline_wf() -> Any:
        return await durable.call("job", retry=FAST, timeout=0.3)

    async with durable.Worker(client, workflows=[deadline_wf]):
        handle = await client.start(deadline_wf, id="deadline")
        late = await serve_one(client, "default")
        await asyncio.sleep(0.4)
        with pytest.raises(StaleTask) as info:
            await client.complete(late.token, "late")
        assert "timeout" in str(info.value)
        assert info.value.outcome["status"] in ("scheduled", "retrying", "running")
        retry = await serve_one(client, "default")
        assert retry.attempt == 2
        await client.complete(retry.token, "in time")
        assert await handle.result(timeout=20) == "in time"
        [step] = [s for s in await handle.steps() if s.kind == "activity"]
        assert step.attempts[0].error is not None
        assert step.attempts[0].error.type == "TimeoutError"


async def test_bad_tokens_say_what_a_token_is(client: durable.Client) -> None:
    for bad in ("nope", "dt1.!!!", "dt1." + "A" * 10, 7):
        with pytest.raises(TaskNotFound, match="poll_tasks"):
            await client.complete(bad, 1)  # type: ignore[arg-type]
    unknown = TaskToken("a", "wf", "no-such-run", 2, 1, "w", 0.0, None, 60.0).encode()
    with pytest.raises(TaskNotFound, match="does not exist"):
        await client.complete(unknown, 1)


async def test_poll_refuses_bad_arguments(client: durable.Client) -> None:
    with pytest.raises(ValueError, match="queue"):
        await client.poll_tasks("", worker="w")
    with pytest.raises(ValueError, match="worker"):
        await client.poll_tasks("q", worker="durable:external")
    with pytest.raises(ValueError, match="max_tasks"):
        await client.poll_tasks("q", worker="w", max_tasks=0)
    with pytest.raises(TypeError, match="names"):
        await client.poll_tasks("q", worker="w", names="abc")
    assert await client.poll_tasks("q", worker="w", wait=timedelta(milliseconds=50)) == []


async def test_remote_call_refuses_keyword_arguments() -> None:
    @durable.workflow(name="kw_wf")
    async def kw_wf() -> Any:
        return await durable.call("job", x=1)

    env = durable.testing.WorkflowEnvironment(workflows=[kw_wf])
    async with env:
        with pytest.raises(durable.WorkflowFailed, match="positional arguments only"):
            await env.client.execute(kw_wf)


async def test_long_poll_wakes_when_a_task_is_queued(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[remote_once]):
        poll = asyncio.ensure_future(client.poll_tasks("default", worker="w", wait=10))
        await asyncio.sleep(0.2)
        assert not poll.done()
        started = datetime.now()
        await client.start(remote_once, 5, id="wake")
        [task] = await poll
        assert (datetime.now() - started).total_seconds() < 5
        await client.complete(task.token, 5)


async def test_a_poll_after_one_that_took_all_there_was_asks_again_only_when_told(
    client: durable.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A remote worker polling again at once after completing what it got: no task was
    # notified since the claim that took everything, so the poll waits before asking the
    # database, then asks once at its end; a task queued meanwhile still wakes it at once.
    async with durable.Worker(client, workflows=[remote_once]):
        await client.start(remote_once, 1, id="first")
        [task] = await client.poll_tasks("default", worker="w", max_tasks=10, wait=10)
        store = await client._open()
        claims: list[int] = []
        original = store.claim_tasks

        async def counting(owner: str, **kwargs: Any) -> Any:
            found = await original(owner, **kwargs)
            if owner == "w":  # not the worker's sweeps for lost attempts
                claims.append(len(found))
            return found

        monkeypatch.setattr(store, "claim_tasks", counting)
        assert await client.poll_tasks("default", worker="w", max_tasks=10, wait=0.4) == []
        assert claims == [0]  # one claim, at the end (it asked at its start and end before)
        await client.complete(task.token, 1)
        poll = asyncio.ensure_future(
            client.poll_tasks("default", worker="w", max_tasks=10, wait=10)
        )
        await asyncio.sleep(0.1)
        started = datetime.now()
        await client.start(remote_once, 2, id="second")
        [second] = await poll
        assert second.args == [2]
        assert (datetime.now() - started).total_seconds() < 5
        await client.complete(second.token, 2)


@durable.workflow
async def impatient() -> str:
    try:
        return str(await asyncio.wait_for(durable.call("job"), 0.2))
    except TimeoutError:
        return "gave up"


async def test_a_task_given_up_before_any_poll_is_never_handed_out(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[impatient]):
        handle = await client.start(impatient, id="impatient")
        assert await handle.result(timeout=20) == "gave up"
    # The run closed: the queued task went with it.
    assert await client.poll_tasks("default", worker="late", wait=0.3) == []
    [step] = [s for s in await handle.steps() if s.kind == "activity"]
    assert step.status == "cancelled"


@durable.workflow
async def cancels_then_waits() -> str:
    work = asyncio.ensure_future(durable.call("job"))
    await asyncio.sleep(0)
    work.cancel()
    await durable.wait_signal("done")
    return "done"


async def test_a_cancelled_queued_task_ends_cancelled_when_polled(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[cancels_then_waits]):
        handle = await client.start(cancels_then_waits, id="cancelled-queued")
        for _ in range(100):
            steps = [s for s in await handle.steps() if s.kind == "activity"]
            if steps and steps[0].status == "cancelled":
                break
            await asyncio.sleep(0.05)
        assert await client.poll_tasks("default", worker="w", wait=0.3) == []
        for _ in range(100):
            kinds = [e.kind for e in await handle.history()]
            if "activity_failed" in kinds:
                break
            await asyncio.sleep(0.05)
        [failed] = [e for e in await handle.history() if e.kind == "activity_failed"]
        assert failed.data["error"].type == "CancelledError"
        await handle.signal("done")
        assert await handle.result(timeout=20) == "done"


async def test_failing_an_attempt_already_counted_lost_is_stale(client: durable.Client) -> None:
    @durable.workflow(name="lost_then_fail")
    async def lost_then_fail() -> Any:
        return await durable.call("job", retry=FAST, heartbeat_timeout=0.2)

    async with durable.Worker(client, workflows=[lost_then_fail]):
        handle = await client.start(lost_then_fail, id="lost-fail")
        gone = await serve_one(client, "default", worker="a")
        again = await serve_one(client, "default", worker="b")  # after attempt 1 was lost
        with pytest.raises(StaleTask) as info:
            await client.fail(gone.token, "it broke")  # not what was recorded: it was lost
        assert info.value.outcome == {"status": "running", "attempt": 2}
        await client.complete(again.token, 1)
        assert await handle.result(timeout=20) == 1


async def test_describe_says_when_no_worker_takes_a_remote_task(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[resize]):
        handle = await client.start(resize, "/d.png", id="unserved")
        for _ in range(100):
            if (await handle.describe()).pending:
                break
            await asyncio.sleep(0.05)
        problem = (await handle.describe()).problem
        assert problem is not None
        assert "'resize_image'" in problem
        assert "'media'" in problem
        # A remote worker polling the queue for other names does not take it.
        await client.poll_tasks("media", worker="node-9", names=["other"])
        assert (await handle.describe()).problem is not None
        [task] = await client.poll_tasks("media", worker="node-10")
        assert (await handle.describe()).problem is None
        await client.complete(task.token, {"width": 1, "height": 1})


def test_a_remote_worker_taking_any_name_serves_its_queue() -> None:
    from durable.steps import problem
    from durable.store import RunRecord, TaskRecord, WorkerRecord

    run = RunRecord(
        "wf", "r", "wf", "default", "running", b"", None, None, 0.0, 0.0, None, None, None,
        1, False, None, None, False, None, None, None, True,
    )  # fmt: skip
    task = TaskRecord(
        "r:2", "r", "wf", 2, "resize", "media", b"", 1, "queued", 0.0, None, None, None,
        False, None, 0.0,
    )  # fmt: skip
    anyname = WorkerRecord("n", ("media",), (), ("*",), "h", 1, 0.0, 0.0)
    other = WorkerRecord("m", ("media",), (), ("probe",), "h", 1, 0.0, 0.0)
    assert problem(run, [other], [task]) is not None
    assert problem(run, [other, anyname], [task]) is None
    assert problem(run, [], [replace(task, status="running")]) is None


@durable.workflow
async def gather_remote(n: int) -> int:
    results = await asyncio.gather(*(durable.call("echo", i, queue="many") for i in range(n)))
    return sum(results)


async def test_results_trickling_in_never_make_the_worker_replay(client: durable.Client) -> None:
    # Completions one by one while the worker steps: a claim of the run that its step's
    # commit then releases must not cost a replay (the run is kept in memory throughout).
    from durable.telemetry import FIGURES

    n = 200
    misses = FIGURES.cache["miss"]
    async with durable.Worker(client, workflows=[gather_remote]):
        handle = await client.start(gather_remote, n, id="trickle")

        async def poller(name: str) -> None:
            while True:
                for task in await client.poll_tasks("many", worker=name, max_tasks=1, wait=5):
                    await client.complete(task.token, task.args[0])

        pollers = [asyncio.create_task(poller(f"node-{i}")) for i in range(4)]
        try:
            assert await handle.result(timeout=60) == n * (n - 1) // 2
        finally:
            for task in pollers:
                task.cancel()
            await asyncio.gather(*pollers, return_exceptions=True)
    assert FIGURES.cache["miss"] - misses == 1  # the first step only: never rebuilt
