"""Activities as methods of objects that carry dependencies, and the queue an activity
without one of its own runs on (its caller's), on every backend."""

from __future__ import annotations

import asyncio
import inspect
import types
from dataclasses import dataclass
from typing import Any

import pytest

import durable
from durable.cli import collect
from durable.definition import activity_definition
from durable.testing import WorkflowEnvironment


@dataclass
class Receipt:
    order: str
    cents: int


class Pool:
    """Stands for a dependency (a connection pool): it cannot be serialized."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.used: list[str] = []
        self.lock = asyncio.Lock()  # msgpack could never encode this


class Payments:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    @durable.activity
    async def charge(self, order: str, cents: int) -> Receipt:
        self.pool.used.append(f"charge {order}")
        return Receipt(order, cents)

    @durable.activity(name="payments-refund", retry=durable.RetryPolicy(max_attempts=1))
    def refund(self, receipt: Receipt) -> str:  # sync: runs in a thread
        self.pool.used.append(f"refund {receipt.order}")
        return f"{self.pool.name} refunded {receipt.cents}"


@durable.workflow
async def pay_and_refund(order: str, cents: int) -> list[Any]:
    receipt = await Payments.charge(order, cents)  # through the class: no object here
    assert isinstance(receipt, Receipt)
    refunded = await durable.call(Payments.refund, receipt)
    return [receipt.cents, refunded]


def test_a_method_activity_is_named_class_dot_method_and_its_signature_skips_self() -> None:
    charge = activity_definition(Payments.charge)
    assert charge.name == "Payments.charge"
    assert charge.method
    assert charge.queue is None
    assert list(inspect.signature(charge.fn).parameters) == ["order", "cents"]
    assert activity_definition(Payments.refund).name == "payments-refund"  # name= wins
    # the same definition through an object's method
    assert activity_definition(Payments(Pool("p")).charge) is charge


async def test_outside_a_workflow_a_method_activity_just_runs_on_its_object() -> None:
    pool = Pool("p")
    assert await Payments(pool).charge("o1", 5) == Receipt("o1", 5)
    assert pool.used == ["charge o1"]


async def test_a_worker_runs_method_activities_on_the_object_it_was_given(
    client: durable.Client,
) -> None:
    pool = Pool("main-pool")
    payments = Payments(pool)
    async with durable.Worker(
        client, workflows=[pay_and_refund], activities=[payments.charge, payments.refund]
    ):
        handle = await client.start(pay_and_refund, "o-7", 250, id="pay-7")
        assert await handle.result(timeout=20) == [250, "main-pool refunded 250"]
    assert pool.used == ["charge o-7", "refund o-7"]
    scheduled = [e.data for e in await handle.history() if e.kind == "activity_scheduled"]
    assert [d["name"] for d in scheduled] == ["Payments.charge", "payments-refund"]
    # self is not among the arguments the journal holds
    steps = [s for s in await handle.steps() if s.kind == "activity"]
    assert steps[0].input == ["o-7", 250]


@durable.workflow
async def pay_through_an_object(order: str) -> int:
    # An object in workflow code is not used: the worker's object runs the method.
    receipt = await Payments(Pool("workflow-side")).charge(order, 3)
    return receipt.cents


async def test_calling_through_an_object_in_a_workflow_runs_on_the_workers_object() -> None:
    pool = Pool("worker-side")
    async with WorkflowEnvironment(
        workflows=[pay_through_an_object], activities=[Payments(pool).charge]
    ) as env:
        assert await env.client.execute(pay_through_an_object, "o-9") == 3
    assert pool.used == ["charge o-9"]


def test_a_method_taken_from_its_class_is_refused_with_the_fix(client: durable.Client) -> None:
    fix = r"'Payments.charge' is a method.*Payments\(\.\.\.\)\.charge"
    with pytest.raises(TypeError, match=fix):
        durable.Worker(client, activities=[Payments.charge])


def test_two_objects_registering_one_method_are_refused(client: durable.Client) -> None:
    one, two = Payments(Pool("a")), Payments(Pool("b"))
    durable.Worker(client, activities=[one.charge, one.charge])  # the same object twice is fine
    with pytest.raises(ValueError, match=r"Two objects register method activity 'Payments.charge'"):
        durable.Worker(client, activities=[one.charge, two.charge])


def test_a_method_activity_run_without_its_object_says_so() -> None:
    defn = activity_definition(Payments.charge)
    with pytest.raises(AttributeError, match=r"ran without its object \(it used self.pool\)"):
        asyncio.run(defn.fn("o", 1))


async def test_a_method_activity_no_worker_registers_waits_and_describe_names_it(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[pay_and_refund], activities=[]):
        handle = await client.start(pay_and_refund, "o-1", 1, id="unserved")
        problem = None
        for _ in range(200):
            problem = (await handle.describe()).problem
            if problem:
                break
            await asyncio.sleep(0.02)
    assert problem is not None
    assert "'Payments.charge'" in problem


async def test_a_remote_worker_sees_the_class_dot_method_name_and_no_self(
    client: durable.Client,
) -> None:
    # No Python worker implements Payments.charge here: one in another language polls it.
    async with durable.Worker(client, workflows=[pay_and_refund], queues=["default"]):
        handle = await client.start(pay_and_refund, "o-r", 40, id="remote-pay")
        tasks = await client.poll_tasks("default", worker="node-1", wait=10)
        assert [(t.name, t.args, t.queue) for t in tasks] == [
            ("Payments.charge", ["o-r", 40], "default")
        ]
        await client.complete(tasks[0].token, {"order": "o-r", "cents": 40})
        refund = (await client.poll_tasks("default", worker="node-1", wait=10))[0]
        assert refund.name == "payments-refund"
        assert refund.args == [{"order": "o-r", "cents": 40}]
        await client.complete(refund.token, "node refunded 40")
        assert await handle.result(timeout=20) == [40, "node refunded 40"]


def test_the_cli_serves_method_activities_of_module_level_objects() -> None:
    module = types.ModuleType("payments_app")
    module.Payments = Payments  # type: ignore[attr-defined]  # the class alone: no object
    module.pay_and_refund = pay_and_refund  # type: ignore[attr-defined]
    module.charge_unbound = Payments.charge  # type: ignore[attr-defined]  # skipped too
    workflows, activities = collect([module])
    assert workflows == [pay_and_refund]
    assert activities == []
    payments = Payments(Pool("cli"))
    module.payments = payments  # type: ignore[attr-defined]
    module.charge = payments.charge  # type: ignore[attr-defined]  # found once, not twice
    workflows, activities = collect([module])
    assert sorted(activity_definition(a).name for a in activities) == [
        "Payments.charge",
        "payments-refund",
    ]
    assert all(a.__self__ is payments for a in activities)


# -- queues -------------------------------------------------------------------------------


@durable.activity
async def transcode(path: str) -> str:
    return f"{path}.mp4"


@durable.activity(queue="gpu")
async def recognise(path: str) -> str:
    return f"faces in {path}"


@durable.workflow(queue="media")
async def media_pipeline(path: str) -> list[str]:
    return [await transcode(path), await recognise(path)]


async def test_an_activity_without_a_queue_runs_on_its_callers_queue(
    client: durable.Client,
) -> None:
    async with (
        durable.Worker(client, workflows=[media_pipeline], activities=[transcode]),
        durable.Worker(client, activities=[recognise]),
    ):
        handle = await client.start(media_pipeline, "cat", id="media-1")
        assert await handle.result(timeout=20) == ["cat.mp4", "faces in cat"]
    scheduled = [e.data for e in await handle.history() if e.kind == "activity_scheduled"]
    assert [(d["name"], d["queue"]) for d in scheduled] == [
        ("transcode", "media"),
        ("recognise", "gpu"),
    ]


async def test_an_activity_only_worker_on_the_callers_queue_claims_its_tasks(
    client: durable.Client,
) -> None:
    # The workflow's worker does not implement transcode: the task is queued on "media"
    # and claimed by the worker of queue "media" that does.
    async with (
        durable.Worker(client, workflows=[media_pipeline], activities=[recognise]),
        durable.Worker(client, activities=[transcode], queues=["media"], worker_id="media-w"),
        durable.Worker(client, activities=[recognise], queues=["gpu"]),
    ):
        handle = await client.start(media_pipeline, "dog", id="media-2")
        assert await handle.result(timeout=20) == ["dog.mp4", "faces in dog"]
    first = next(s for s in await handle.steps() if s.name == "transcode")
    assert [a.worker for a in first.attempts] == ["media-w"]


@durable.workflow(queue="media")
async def media_with_override(path: str) -> str:
    return str(await durable.call(transcode, path, queue="cpu"))


async def test_a_per_call_queue_still_wins(client: durable.Client) -> None:
    async with (
        durable.Worker(client, workflows=[media_with_override]),
        durable.Worker(client, activities=[transcode], queues=["cpu"]),
    ):
        handle = await client.start(media_with_override, "x", id="media-3")
        assert await handle.result(timeout=20) == "x.mp4"
    scheduled = [e.data for e in await handle.history() if e.kind == "activity_scheduled"]
    assert scheduled[0]["queue"] == "cpu"


def test_a_bad_queue_is_refused_at_the_decorator() -> None:
    with pytest.raises(ValueError, match="must be a non-empty str or None"):
        durable.activity(queue="")


def test_a_run_recorded_on_the_old_default_queue_still_replays() -> None:
    from durable import payload
    from durable.definition import workflow_definition
    from durable.engine import WorkflowRun

    def run() -> WorkflowRun:
        defn = workflow_definition(media_pipeline)
        return WorkflowRun(defn, workflow_id="m", run_id="run-1", queue="media")

    started = {"args": payload.encode_args(media_pipeline, ("a",), {}, what="args")}
    live = run()
    commands = [(c.kind, c.data) for c in live.apply("workflow_started", started, 1.0)]
    assert [d["queue"] for k, d in commands if k == "activity_scheduled"] == ["media"]
    live.evict()
    # Recorded when activities without a queue went to "default": replay compares names.
    old = [(k, {**d, "queue": "default"}) for k, d in commands]
    replayed = run()
    again = replayed.apply("workflow_started", started, 1.0, recorded=old)  # no mismatch
    assert [c.kind for c in again] == [k for k, _ in old]
    done = {"ref": 2, "result": payload.encode("a.mp4")}
    live_again = replayed.apply("activity_completed", done, 2.0)
    assert [(c.kind, c.data["name"], c.data["queue"]) for c in live_again] == [
        ("activity_scheduled", "recognise", "gpu")
    ]
    replayed.evict()
