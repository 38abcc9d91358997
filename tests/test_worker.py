"""Client + Worker end to end on a real database (every backend, via ``store_url``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

import durable
import durable.worker
from durable import ApplicationError, RetryPolicy

FAST = RetryPolicy(max_attempts=3, initial_interval=timedelta(milliseconds=20))
calls: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    calls.clear()


@durable.activity
async def add_one(x: int) -> int:
    calls["add_one"] += 1
    return x + 1


@durable.workflow
async def count_to(n: int) -> int:
    x = 0
    for _ in range(n):
        x = await add_one(x)
    return x


def journal_is_sound(events: list[durable.Event]) -> None:
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    refs = [e.data["ref"] for e in events if e.kind == "activity_completed"]
    assert len(refs) == len(set(refs)), "an activity completion was journaled twice"


async def test_sequential_activities_journaled_once_each(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[count_to], activities=[add_one]):
        handle = await client.start(count_to, 5, id="count")
        assert await handle.result(timeout=20) == 5
    events = await handle.history()
    kinds = Counter(e.kind for e in events)
    assert kinds["activity_scheduled"] == 5
    assert kinds["activity_completed"] == 5
    assert events[0].kind == "workflow_started"
    assert events[-1].kind == "workflow_completed"
    journal_is_sound(events)
    desc = await handle.describe()
    assert desc.status == "completed"
    assert desc.result == 5
    assert desc.input == [5]
    assert desc.closed_at is not None


@durable.activity(retry=FAST)
async def flaky(key: str) -> str:
    calls[key] += 1
    if calls[key] < 3:
        raise ConnectionError(f"attempt {calls[key]} of {key} failed")
    return f"{key} ok"


@durable.workflow
async def uses_flaky(key: str) -> str:
    return await flaky(key)


async def test_retries_are_durable_and_each_failed_attempt_is_in_history(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[uses_flaky], activities=[flaky]):
        handle = await client.start(uses_flaky, "k1")
        assert await handle.result(timeout=20) == "k1 ok"
    events = await handle.history()
    retrying = [e for e in events if e.kind == "activity_retrying"]
    assert [e.data["attempt"] for e in retrying] == [1, 2]
    assert "attempt 1 of k1 failed" in retrying[0].data["error"].message
    assert retrying[0].data["error"].type == "ConnectionError"
    assert calls["k1"] == 3
    journal_is_sound(events)


@durable.activity(retry=RetryPolicy(max_attempts=5, non_retryable=(ValueError,)))
async def picky(x: int) -> int:
    calls["picky"] += 1
    raise ValueError(f"bad value {x}")


@durable.workflow
async def uses_picky() -> int:
    return await picky(7)


async def test_non_retryable_error_fails_workflow_with_cause(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[uses_picky], activities=[picky]):
        handle = await client.start(uses_picky)
        with pytest.raises(durable.WorkflowFailed) as info:
            await handle.result(timeout=20)
    assert calls["picky"] == 1
    cause = info.value.cause
    assert cause.type == "durable.errors.ActivityError" or "ActivityError" in cause.type
    assert "bad value 7" in str(info.value)
    desc = await handle.describe()
    assert desc.status == "failed"
    assert desc.error is not None


@durable.activity(queue="elsewhere")
async def remote_double(x: int) -> int:
    return 2 * x


@durable.workflow
async def uses_remote(x: int) -> int:
    return await remote_double(x)


async def test_activity_on_other_queue_runs_on_the_worker_serving_it(
    client: durable.Client,
) -> None:
    async with (
        durable.Worker(client, workflows=[uses_remote], queues=["default"]),
        durable.Worker(client, activities=[remote_double], queues=["elsewhere"]),
    ):
        assert await client.execute(uses_remote, 21, timeout=20) == 42


@durable.workflow
async def naps() -> float:
    start = durable.now()
    await durable.sleep(0.3)
    await asyncio.sleep(0.2)
    return (durable.now() - start).total_seconds()


async def test_timers_fire_and_time_moves_with_them(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[naps]):
        elapsed = await client.execute(naps, timeout=20)
    assert elapsed >= 0.5


@durable.workflow
async def collect_signals(n: int) -> list[Any]:
    got = []
    for _ in range(n):
        got.append(await durable.wait_signal("item", timeout=timedelta(seconds=30)))
    return got


async def test_signals_arrive_in_order_even_before_waiting(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[collect_signals]):
        handle = await client.start(collect_signals, 3)
        for i in range(3):
            await handle.signal("item", {"n": i})
        assert await handle.result(timeout=20) == [{"n": 0}, {"n": 1}, {"n": 2}]
    with pytest.raises(durable.WorkflowNotFound, match="closed"):
        await handle.signal("item", 4)


@durable.workflow
async def impatient() -> str:
    try:
        await durable.wait_signal("never", timeout=0.2)
    except TimeoutError:
        return "timed out"
    return "signalled"


async def test_wait_signal_times_out(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[impatient]):
        assert await client.execute(impatient, timeout=20) == "timed out"


@durable.workflow
async def child(x: int) -> int:
    if x < 0:
        raise ApplicationError("negative", type="Negative")
    return await add_one(x)


@durable.workflow
async def parent(xs: list[int]) -> list[Any]:
    results: list[Any] = []
    for x in xs:
        try:
            results.append(await child(x))
        except durable.ChildWorkflowError as err:
            results.append(f"child failed: {err.cause.type}")
    return results


async def test_child_workflows_return_results_and_failures(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[parent, child], activities=[add_one]):
        handle = await client.start(parent, [1, -1, 5], id="parent-1")
        assert await handle.result(timeout=20) == [2, "child failed: Negative", 6]
    kinds = [e.kind for e in await handle.history()]
    assert kinds.count("child_started") == 3
    assert kinds.count("child_completed") == 2
    assert kinds.count("child_failed") == 1
    children = [d async for d in client.list(name="child")]
    assert {d.status for d in children} == {"completed", "failed"}


@durable.workflow
async def fan_out(n: int) -> list[int]:
    return await durable.map(add_one, range(n), max_concurrency=3)


async def test_map_runs_every_item_in_order(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[fan_out], activities=[add_one]):
        assert await client.execute(fan_out, 10, timeout=20) == list(range(1, 11))


@durable.activity
async def slow_step(key: str) -> str:
    await asyncio.sleep(30)
    return key


@durable.activity
async def undo(key: str) -> str:
    calls[f"undo {key}"] += 1
    return f"undone {key}"


@durable.workflow
async def cancellable(compensate: bool) -> str:
    try:
        return await slow_step("booking")
    except asyncio.CancelledError:
        if not compensate:
            raise
        return await undo("booking")


async def wait_for_kind(handle: durable.WorkflowHandle[Any], kind: str) -> None:
    for _ in range(400):
        if any(e.kind == kind for e in await handle.history()):
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"no {kind} in {handle.id}")


async def test_cancel_lets_the_workflow_compensate(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[cancellable], activities=[slow_step, undo]):
        handle = await client.start(cancellable, True)
        await wait_for_kind(handle, "activity_scheduled")
        await handle.cancel()
        assert await handle.result(timeout=20) == "undone booking"
    assert calls["undo booking"] == 1
    kinds = [e.kind for e in await handle.history()]
    assert "cancel_requested" in kinds


async def test_cancel_uncaught_ends_cancelled(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[cancellable], activities=[slow_step, undo]):
        handle = await client.start(cancellable, False)
        await wait_for_kind(handle, "activity_scheduled")
        await handle.cancel()
        with pytest.raises(durable.WorkflowCancelled):
            await handle.result(timeout=20)
    assert (await handle.describe()).status == "cancelled"


async def test_terminate_closes_at_once_and_runs_no_more_code(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[cancellable], activities=[slow_step, undo]):
        handle = await client.start(cancellable, True)
        await wait_for_kind(handle, "activity_scheduled")
        await handle.terminate(reason="bad data")
        desc = await handle.describe()
        assert desc.status == "terminated"
        with pytest.raises(durable.WorkflowCancelled, match="bad data"):
            await handle.result(timeout=5)
        await asyncio.sleep(0.3)
    events = await handle.history()
    assert events[-1].kind == "workflow_terminated"
    assert calls["undo booking"] == 0  # the compensation never ran


@durable.workflow
async def counter_loop(n: int, total: int) -> int:
    total += await add_one(n)
    if n < 3:
        durable.continue_as_new(n + 1, total)
    return total


async def test_continue_as_new_result_follows_to_the_last_run(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[counter_loop], activities=[add_one]):
        handle = await client.start(counter_loop, 0, 0, id="looper")
        assert await handle.result(timeout=20) == 1 + 2 + 3 + 4
    runs = [d async for d in client.list(name="counter_loop")]
    assert sorted(d.status for d in runs) == ["completed"] + ["continued_as_new"] * 3
    assert len({d.run_id for d in runs}) == 4


@durable.workflow
async def reporter(steps: int) -> str:
    for i in range(steps):
        durable.publish("progress", {"done": i + 1, "of": steps})
        await add_one(i)
    return "finished"


async def test_published_values_are_readable(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[reporter], activities=[add_one]):
        handle = await client.start(reporter, 3)
        first = await handle.read("progress", timeout=20)
        assert first["of"] == 3
        assert await handle.result(timeout=20) == "finished"
        assert await handle.read("progress") == {"done": 3, "of": 3}
        with pytest.raises(KeyError):
            await handle.read("missing", timeout=1)


async def test_start_is_idempotent_on_id(client: durable.Client) -> None:
    first = await client.start(count_to, 1, id="same")
    again = await client.start(count_to, 2, id="same")
    assert again.run_id == first.run_id
    with pytest.raises(durable.WorkflowAlreadyExists):
        await client.start(count_to, 3, id="same", if_exists="error")
    async with durable.Worker(client, workflows=[count_to], activities=[add_one]):
        assert await first.result(timeout=20) == 1
        restarted = await client.start(count_to, 4, id="same", if_exists="restart")
        assert restarted.run_id != first.run_id
        assert await restarted.result(timeout=20) == 4


async def test_unknown_workflow_waits_and_describe_says_why(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[count_to], activities=[add_one]):
        handle = await client.start("no_such_workflow", 1)
        await asyncio.sleep(0.2)
        desc = await handle.describe()
        assert desc.status == "pending"
        assert desc.problem is not None
        assert "no_such_workflow" in desc.problem
    desc = await handle.describe()
    assert desc.problem is not None
    assert "No live worker" in desc.problem


async def test_unserializable_argument_is_refused_before_anything_is_written(
    client: durable.Client,
) -> None:
    with pytest.raises(durable.SerializationError, match="count_to"):
        await client.start(count_to, object(), id="bad")  # type: ignore[arg-type]
    with pytest.raises(durable.WorkflowNotFound):
        await client.get_handle("bad").describe()


async def test_oversized_argument_is_refused(client: durable.Client) -> None:
    with pytest.raises(durable.SerializationError, match=r"MiB|bytes"):
        await client.start(collect_signals, "x" * (3 * 1024 * 1024))  # type: ignore[arg-type]


@durable.activity(
    retry=RetryPolicy(max_attempts=2, initial_interval=timedelta(milliseconds=10)),
    heartbeat_timeout=timedelta(seconds=0.5),
)
async def silent(x: int) -> int:
    calls["silent"] += 1
    if calls["silent"] == 1:
        await asyncio.sleep(5)  # no heartbeat: the attempt is failed after 0.5 s
    return x


@durable.workflow
async def uses_silent() -> int:
    return await silent(3)


async def test_heartbeat_timeout_fails_the_attempt_and_retries(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[uses_silent], activities=[silent]):
        handle = await client.start(uses_silent)
        assert await handle.result(timeout=20) == 3
    retrying = [e for e in await handle.history() if e.kind == "activity_retrying"]
    assert len(retrying) == 1
    assert "heartbeat" in retrying[0].data["error"].message


@durable.activity
async def heartbeating() -> str:
    for _ in range(400):
        durable.heartbeat({"progress": calls["hb"]})
        calls["hb"] += 1
        await asyncio.sleep(0.025)
    return "ran to the end"


@durable.workflow
async def abandons_activity() -> str:
    try:
        return await asyncio.wait_for(heartbeating(), timeout=0.3)
    except TimeoutError:
        await asyncio.sleep(0.5)  # give the cancellation time to reach the heartbeat
        return "gave up"


async def test_cancellation_reaches_a_running_activity_at_its_heartbeat(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[abandons_activity], activities=[heartbeating]):
        assert await client.execute(abandons_activity, timeout=20) == "gave up"
        beats = calls["hb"]
        await asyncio.sleep(0.3)
        assert calls["hb"] == beats  # it stopped at a heartbeat
    assert beats < 100


@durable.workflow
async def sleepy(i: int) -> int:
    await durable.wait_signal("wake")
    return await add_one(i)


async def test_evicted_workflows_rebuild_by_replay(client: durable.Client) -> None:
    async with durable.Worker(
        client, workflows=[sleepy], activities=[add_one], cache_size=2
    ) as worker:
        handles = [await client.start(sleepy, i) for i in range(8)]
        for h in handles:
            await wait_for_kind(h, "workflow_started")
        assert len(worker._drivers) <= 2 + 1
        for h in handles:
            await h.signal("wake")
        results = [await h.result(timeout=20) for h in handles]
    assert results == list(range(1, 9))


@durable.activity(
    timeout=timedelta(seconds=0.3),
    retry=RetryPolicy(max_attempts=2, initial_interval=timedelta(milliseconds=10)),
)
async def hangs_first(x: int) -> int:
    calls["hangs_first"] += 1
    if calls["hangs_first"] == 1:
        await asyncio.sleep(10)
    return x


@durable.workflow
async def uses_hangs_first() -> int:
    return await hangs_first(9)


async def test_per_attempt_timeout_fails_the_attempt_and_retries(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[uses_hangs_first], activities=[hangs_first]):
        handle = await client.start(uses_hangs_first)
        assert await handle.result(timeout=20) == 9
    [retry] = [e for e in await handle.history() if e.kind == "activity_retrying"]
    assert retry.data["error"].type == "TimeoutError"
    assert "per-attempt timeout" in retry.data["error"].message


running = {"now": 0, "peak": 0}


@durable.activity
async def occupy(i: int) -> int:
    running["now"] += 1
    running["peak"] = max(running["peak"], running["now"])
    await asyncio.sleep(0.05)
    running["now"] -= 1
    return i


@durable.workflow
async def wide(n: int) -> list[int]:
    return list(await asyncio.gather(*(occupy(i) for i in range(n))))


async def test_max_concurrency_bounds_running_activities(client: durable.Client) -> None:
    running.update(now=0, peak=0)
    async with durable.Worker(client, workflows=[wide], activities=[occupy], max_concurrency=3):
        assert await client.execute(wide, 12, timeout=20) == list(range(12))
    assert running["peak"] == 3


release: asyncio.Event | None = None  # one per test: an Event belongs to one event loop


@durable.activity
async def held() -> str:
    assert release is not None
    await release.wait()
    return "released"


@durable.workflow
async def holding() -> str:
    return await held()


async def test_lease_seconds_sets_how_long_claims_outlive_the_worker(
    client: durable.Client,
) -> None:
    global release
    for bad in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="lease_seconds must be a number of seconds > 0"):
            durable.Worker(client, workflows=[holding], lease_seconds=bad)
    # A long lease still renews often enough to keep the worker listed (silent > 60 s: gone).
    hour = durable.Worker(client, workflows=[holding], lease_seconds=3600)
    assert hour.heartbeat_interval == durable.worker.HEARTBEAT_INTERVAL
    release = asyncio.Event()
    async with durable.Worker(client, workflows=[holding], activities=[held], lease_seconds=7):
        handle = await client.start(holding, id="held")
        store = await client._open()
        for _ in range(200):
            _, tasks, _ = await store.read_extras("held", handle.run_id)
            if tasks:
                break
            await asyncio.sleep(0.01)
        run = await store.get_run("held")
        assert run is not None
        assert run.lease_expires_at is not None
        [task] = tasks
        assert task.lease_expires_at is not None
        now = client.clock.now()
        assert 5.0 < run.lease_expires_at - now <= 7.0  # not the default 30 s
        assert 5.0 < task.lease_expires_at - now <= 7.0
        release.set()
        assert await handle.result(timeout=10) == "released"


async def test_a_worker_dropped_as_silent_registers_again(client: durable.Client) -> None:
    """After a stall long enough for others to drop it from ``workers`` (it then looks
    gone to ``describe()`` and the dashboard), a worker's next heartbeat re-registers it."""
    worker = durable.Worker(client, workflows=[count_to], activities=[add_one], lease_seconds=0.6)
    async with worker:
        store = await client._open()

        async def listed() -> bool:
            return worker.worker_id in {w.worker_id for w in await store.list_workers()}

        assert await listed()
        later = client.clock.now() + 3600  # someone else's heartbeat, an hour on
        await store.heartbeat("someone", runs=[], tasks={}, now=later, lease_until=later)
        assert not await listed()
        for _ in range(100):
            if await listed():
                break
            await asyncio.sleep(0.05)
        assert await listed()
        assert await client.execute(count_to, 2, timeout=10) == 2


@durable.activity(retry=FAST)
async def resumable(total: int) -> tuple[int, int | None]:
    """Counts to ``total``, saving its progress; attempt 1 fails half way."""
    info = durable.activity_info()
    start = info.heartbeat_details or 0
    for i in range(start, total):
        durable.heartbeat(i + 1)
        if info.attempt == 1 and i + 1 == total // 2:
            raise RuntimeError("flaky")
    return info.attempt, info.heartbeat_details


@durable.workflow
async def resumes() -> tuple[int, int | None]:
    return await resumable(10)


async def test_a_retry_resumes_from_the_failed_attempts_heartbeat_details(
    client: durable.Client,
) -> None:
    """Details saved by heartbeats reach the next attempt even when the attempt fails long
    before the worker's next lease renewal (every 5 s) would have stored them."""
    async with durable.Worker(client, workflows=[resumes], activities=[resumable]):
        assert await client.execute(resumes, timeout=10) == (2, 5)


@durable.activity
async def echo(blob: bytes) -> bytes:
    return blob


@durable.workflow
async def carries(blob: bytes) -> int:
    back = await echo(blob)
    return len(back)


async def test_payloads_at_the_limit_go_through(client: durable.Client) -> None:
    """Arguments and results exactly at the payload limit are accepted, and the worker's own
    records around them (a few bytes more) do not fail later: the journal entry of the
    workflow's start, the scheduled activity's arguments, and its completion."""
    from durable import payload

    probe = 100_000
    overhead = len(payload.encode_args(carries, (b"x" * probe,), {}, what="probe")) - probe
    size = payload.MAX_PAYLOAD_BYTES - overhead
    blob = b"x" * size
    assert len(payload.encode_args(carries, (blob,), {}, what="blob")) == payload.MAX_PAYLOAD_BYTES
    async with durable.Worker(client, workflows=[carries], activities=[echo]):
        assert await client.execute(carries, blob, timeout=20) == size


@durable.workflow
async def naps_and_counts(n: int) -> int:
    await asyncio.sleep(0.05)  # a durable timer
    return await count_to(n)


async def test_worker_loops_survive_database_errors(client: durable.Client) -> None:
    """The database out of reach for longer than the store retries makes each of the
    worker's loops fail; they restart with backoff and the worker goes on (here every
    claim, task claim and timer check fails three times before the database "returns")."""
    from durable.errors import StoreError

    async with durable.Worker(
        client, workflows=[naps_and_counts, count_to], activities=[add_one]
    ) as worker:
        store = worker.store
        failures: Counter[str] = Counter()
        for name in ("claim_runs", "claim_tasks", "fire_timers"):
            real = getattr(store, name)

            def failing(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
                if failures[_name] < 3:
                    failures[_name] += 1
                    raise StoreError(f"injected: the database is unreachable ({_name})")
                return _real(*args, **kwargs)

            setattr(store, name, failing)
        store.hub.notify(["runs", "tasks", "timers"])  # every loop queries now
        assert await client.execute(naps_and_counts, 3, timeout=20) == 3
        assert failures == {"claim_runs": 3, "claim_tasks": 3, "fire_timers": 3}
        assert worker._background is not None
        assert not worker._background.done()


@durable.activity(retry=RetryPolicy(max_attempts=5, initial_interval=timedelta(milliseconds=10)))
async def refuses(x: int) -> int:
    calls["refuses"] += 1
    raise ApplicationError(f"card {x} declined", type="Declined", non_retryable=True)


@durable.workflow
async def pays(x: int) -> str:
    try:
        return str(await refuses(x))
    except durable.ActivityError as err:
        return f"{err.cause.type}: {err.cause.message} after {err.attempts}"


async def test_application_error_non_retryable_is_not_retried(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[pays], activities=[refuses]):
        assert await client.execute(pays, 4, timeout=20) == "Declined: card 4 declined after 1"
    assert calls["refuses"] == 1


@durable.activity(
    retry=RetryPolicy(max_attempts=0, initial_interval=timedelta(milliseconds=100), backoff=1.0),
    schedule_to_close=timedelta(seconds=0.5),
)
async def never_works() -> None:
    calls["never_works"] += 1
    raise RuntimeError("down")


@durable.workflow
async def gives_up_in_time() -> str:
    try:
        await never_works()
    except durable.ActivityError as err:
        return f"gave up after {err.attempts}"
    return "worked"


async def test_schedule_to_close_bounds_every_attempt_together(client: durable.Client) -> None:
    """Unlimited attempts 0.1 s apart, but half a second in all: a handful, then failed."""
    async with durable.Worker(client, workflows=[gives_up_in_time], activities=[never_works]):
        result = await client.execute(gives_up_in_time, timeout=20)
    assert result == f"gave up after {calls['never_works']}"
    assert 2 <= calls["never_works"] <= 6


@durable.activity(
    retry=RetryPolicy(max_attempts=0, initial_interval=timedelta(milliseconds=100)),
    schedule_to_close=timedelta(seconds=0.5),
)
async def slow_and_failing() -> None:
    calls["slow_and_failing"] += 1
    await asyncio.sleep(0.6)
    raise RuntimeError("down")


@durable.workflow
async def out_of_time() -> str:
    try:
        await slow_and_failing()
    except durable.ActivityError as err:
        return f"gave up after {err.attempts}"
    return "worked"


async def test_schedule_to_close_counts_from_scheduling_not_from_the_attempts_end(
    client: durable.Client,
) -> None:
    """One attempt that itself outlasts schedule_to_close: no retry (a local attempt's
    deadline was once measured from its end)."""
    async with durable.Worker(client, workflows=[out_of_time], activities=[slow_and_failing]):
        assert await client.execute(out_of_time, timeout=20) == "gave up after 1"
    assert calls["slow_and_failing"] == 1


def test_two_workflows_with_one_name_are_refused(client: durable.Client) -> None:
    @durable.workflow(name="twin")
    async def first() -> None: ...

    @durable.workflow(name="twin")
    async def second() -> None: ...

    with pytest.raises(ValueError, match="Two workflows are named 'twin'"):
        durable.Worker(client, workflows=[first, second])


@durable.workflow
async def waits_forever() -> str:
    try:
        await durable.wait_signal("never")
    except asyncio.CancelledError:
        calls["child cancelled"] += 1
        raise
    return "signalled"


@durable.workflow
async def parent_of_waiter() -> str:
    return await durable.call(waits_forever, id="the-child")


async def test_cancelling_a_parent_cancels_its_child(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[parent_of_waiter, waits_forever]):
        parent = await client.start(parent_of_waiter, id="the-parent")
        child = client.get_handle("the-child")
        for _ in range(500):
            with contextlib.suppress(durable.WorkflowNotFound):
                if (await child.describe()).status == "running":
                    break
            await asyncio.sleep(0.02)
        await parent.cancel()
        with pytest.raises(durable.WorkflowCancelled):
            await parent.result(timeout=20)
        with pytest.raises(durable.WorkflowCancelled):
            await child.result(timeout=20)
    assert calls["child cancelled"] == 1


@durable.workflow
async def long_history(n: int) -> int:
    for _ in range(n):
        await durable.sleep(0.001)
    await durable.wait_signal("done")
    return n


async def test_describe_warns_of_a_long_history(
    client: durable.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from durable import steps

    monkeypatch.setattr(steps, "HISTORY_WARN", 10)
    async with durable.Worker(client, workflows=[long_history]):
        short = await client.start(long_history, 2)
        long = await client.start(long_history, 8)
        # started, 2 entries per sleep, then the start of the wait for "done"
        for handle, length in ((short, 6), (long, 18)):
            for _ in range(500):
                if (await handle.describe()).history_length >= length:
                    break
                await asyncio.sleep(0.02)
        assert (await short.describe()).problem is None
        problem = (await long.describe()).problem
        assert problem is not None
        assert "journal has 18 entries" in problem
        assert "continue_as_new" in problem
        for handle in (short, long):
            await handle.signal("done")
            await handle.result(timeout=20)


@durable.activity(queue="far")
async def far_heartbeater() -> str:
    for _ in range(400):
        durable.heartbeat()
        calls["far beats"] += 1
        await asyncio.sleep(0.025)
    return "ran to the end"


@durable.workflow
async def abandons_far_activity() -> str:
    try:
        return await asyncio.wait_for(far_heartbeater(), timeout=0.5)
    except TimeoutError:
        return "gave up"


async def test_cancellation_reaches_an_activity_running_in_another_worker(
    client: durable.Client, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workflow's worker does not serve the activity; the one that claimed it learns of
    the cancellation at its next lease renewal and raises it at the activity's heartbeat."""
    monkeypatch.setattr(durable.worker, "HEARTBEAT_INTERVAL", 0.2)
    async with durable.connect(store_url) as other:
        async with (
            durable.Worker(client, workflows=[abandons_far_activity]),
            durable.Worker(other, activities=[far_heartbeater]),
        ):
            assert await client.execute(abandons_far_activity, timeout=20) == "gave up"
            stopped = False
            for _ in range(100):  # until it stops beating: cancelled at a heartbeat
                beats = calls["far beats"]
                await asyncio.sleep(0.1)
                if calls["far beats"] == beats:
                    stopped = True
                    break
            assert stopped, "the activity kept running"
    assert beats < 200  # it ran ~0.5 s, not its 10 s


async def test_connect_defaults_to_durable_db(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'from-env.db'}"
    monkeypatch.setenv("DURABLE_DB", url)
    async with durable.connect() as client:
        assert client.url == url
        async with durable.Worker(client, workflows=[count_to], activities=[add_one]):
            assert await client.execute(count_to, 2, timeout=10) == 2
    assert (tmp_path / "from-env.db").exists()


async def test_a_finished_attempt_keeps_its_lease_until_its_result_commits(
    client: durable.Client, store_url: str
) -> None:
    """A local attempt's result rides the run's next commit. While that commit is slow
    (here: held for 1.5 s, past the 1 s lease), the worker keeps renewing the task's lease,
    so nobody declares the finished attempt lost and runs the activity again."""
    from durable.store import open_store

    async with durable.Worker(
        client, workflows=[count_to], activities=[add_one], lease_seconds=1.0
    ) as worker:
        store = worker.store
        real = store.commit_steps

        async def slow_when_finishing(steps: Any, now: float) -> Any:
            if any(step.finished_tasks for step in steps):
                await asyncio.sleep(1.5)
            return await real(steps, now)

        store.commit_steps = slow_when_finishing  # type: ignore[method-assign]
        handle = await client.start(count_to, 1)
        stolen = []
        async with open_store(store_url) as detector:
            while not stolen:
                now = client.clock.now()
                stolen = await detector.claim_tasks(
                    "detector", queues=["default"], names=["add_one"], now=now,
                    lease_until=now + 60, limit=1,
                )  # fmt: skip
                if (await handle.describe()).status == "completed":
                    break
                await asyncio.sleep(0.1)
        assert stolen == [], "a finished attempt's lease lapsed while its result committed"
        assert await handle.result(timeout=10) == 1
    assert calls["add_one"] == 1


async def test_a_driver_error_in_a_commit_does_not_park_the_runs(client: durable.Client) -> None:
    """A database driver's own error (disk I/O, a cancelled statement; not a StoreError)
    failing a group commit is the database's trouble, not the runs': they are dropped and
    taken up again, never parked (a parked run waits for a worker to start)."""
    async with durable.Worker(
        client, workflows=[count_to], activities=[add_one], lease_seconds=1.0
    ) as worker:
        store = worker.store
        real = store.commit_steps
        failed = []

        async def flaky(steps: Any, now: float) -> Any:
            if not failed and any(step.finished_tasks for step in steps):
                failed.append(len(steps))
                raise OSError("disk I/O error")
            return await real(steps, now)

        store.commit_steps = flaky  # type: ignore[method-assign]
        handles = [await client.start(count_to, 2) for _ in range(3)]
        results = [await h.result(timeout=20) for h in handles]
        assert results == [2, 2, 2]
        assert failed, "the commit should have failed once"
        for handle in handles:
            assert (await handle.describe()).problem is None


@durable.activity(retry=RetryPolicy(max_attempts=1))
async def fails_loudly(kind: str) -> None:
    if kind == "long":
        raise ApplicationError("x" * 5_000_000, type="Huge")
    raise ApplicationError("odd details", type="Odd", details={"handle": object()})


@durable.workflow
async def reports(kind: str) -> dict[str, Any]:
    try:
        await fails_loudly(kind)
    except durable.ActivityError as err:
        return {
            "type": err.cause.type,
            "length": len(err.cause.message),
            "details": err.cause.details,
        }
    return {}


async def test_an_error_too_big_or_odd_for_the_journal_is_cut_not_fatal(
    client: durable.Client,
) -> None:
    """An activity's error goes into the journal: a 5 MB message is cut (it is not a
    payload the user chose to pass), unserializable details become a note, and the
    workflow sees the real error type either way, not a lost worker."""
    from durable.errors import MAX_MESSAGE

    async with durable.Worker(client, workflows=[reports], activities=[fails_loudly]):
        long = await client.execute(reports, "long", timeout=20)
        odd = await client.execute(reports, "odd", timeout=20)
    assert long["type"] == "Huge"
    assert MAX_MESSAGE <= long["length"] < MAX_MESSAGE + 100
    assert odd["type"] == "Odd"
    assert "object object" in odd["details"]["unstorable"]


async def test_a_claim_that_took_all_there_was_is_not_repeated_at_once(
    client: durable.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # After a claim that found fewer runs than it may take, the claim loop waits for a
    # change (or its poll interval), as after an empty one, instead of asking again at once
    # for nothing: one query per wake-up, not two.
    loop = asyncio.get_running_loop()
    async with durable.Worker(client, workflows=[sleepy], activities=[add_one]) as worker:
        claims: list[tuple[float, int]] = []
        original = worker.store.claim_runs

        async def counting(*args: Any, **kwargs: Any) -> Any:
            found = await original(*args, **kwargs)
            claims.append((loop.time(), len(found)))
            return found

        monkeypatch.setattr(worker.store, "claim_runs", counting)
        handle = await client.start(sleepy, 1)
        await wait_for_kind(handle, "workflow_started")
        await asyncio.sleep(0.2)
        await handle.signal("wake")
        assert await handle.result(timeout=20) == 2
    took = [at for at, n in claims if n]
    assert took  # the start, the signal (one may be taken by a claim begun before the spy)
    early = [(at, n) for at, n in claims if any(0 <= at - t < 0.15 for t in took) and not n]
    assert early == [], claims


@durable.activity
async def pause(x: int) -> int:
    await asyncio.sleep(0.5)
    return x


@durable.workflow
async def pauses_then_uses_remote(x: int) -> int:
    return await remote_double(await pause(x))


async def test_a_task_queued_on_another_queue_does_not_send_the_worker_to_claim(
    client: durable.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A step that queues a task names its queue (durable.topics.tasks_topic): a worker
    # serving other queues sleeps on, where it used to claim tasks and find none, beside
    # the step's own commit. (The task is queued after a local activity, by the worker's
    # own commits alone: on SQLite another connection's commit wakes every poller of work,
    # which is how other processes' commits are seen.) The fallback poll, which claims
    # whatever was notified, is put past the test's window: on a loaded machine the window
    # outlasted its second.
    monkeypatch.setattr(durable.worker, "POLL_INTERVAL", 60.0)
    async with durable.Worker(
        client, workflows=[pauses_then_uses_remote], activities=[pause], queues=["default"]
    ) as worker:
        handle = await client.start(pauses_then_uses_remote, 4)
        await wait_for_kind(handle, "activity_scheduled")
        await asyncio.sleep(0.1)  # the worker's claims after the start are done
        claims: list[dict[str, Any]] = []
        original = worker.store.claim_tasks

        async def counting(*args: Any, **kwargs: Any) -> Any:
            if not kwargs.get("expired_only"):  # not the sweep for lost attempts
                claims.append(kwargs)
            return await original(*args, **kwargs)

        monkeypatch.setattr(worker.store, "claim_tasks", counting)
        for _ in range(400):  # until remote_double is scheduled, after pause
            kinds = [e.kind for e in await handle.history()]
            if kinds.count("activity_scheduled") == 2:
                break
            await asyncio.sleep(0.025)
        await asyncio.sleep(0.3)
        assert kinds.count("activity_scheduled") == 2
        assert claims == []
        async with durable.Worker(client, activities=[remote_double], queues=["elsewhere"]):
            assert await handle.result(timeout=20) == 8


@durable.workflow
async def publishes_then_waits(x: int) -> int:
    durable.publish("stage", "started")
    await pause(x)
    durable.publish("stage", "paused")
    return await pause(x + 1)


async def test_result_reads_the_run_when_it_closes_not_at_each_change(
    client: durable.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # result() waits on the workflow's close (durable.topics.end_topic): the run's start,
    # its published values and its steps do not each make it read the run again.
    async with durable.Worker(client, workflows=[publishes_then_waits], activities=[pause]):
        store = await client._open()
        reads: list[str] = []
        original = store.get_run

        async def counting(workflow_id: str, run_id: str | None = None) -> Any:
            found = await original(workflow_id, run_id)
            if workflow_id == "watched":
                reads.append(found.status if found is not None else "none")
            return found

        monkeypatch.setattr(store, "get_run", counting)
        handle = await client.start(publishes_then_waits, 1, id="watched")
        assert await handle.result(timeout=20) == 2
    assert reads in (["pending", "completed"], ["running", "completed"]), reads
