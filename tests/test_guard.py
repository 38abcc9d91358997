"""The guard: I/O, threads, clocks and global randomness are refused in workflow code only."""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import pickle
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

import durable
from durable import payload
from durable.definition import workflow_definition
from durable.engine import WorkflowRun
from durable.guard import RefusedCallError
from durable.testing import WorkflowEnvironment


@dataclass(frozen=True)
class Case:
    """A call workflow code may not make, and what its refusal must say."""

    call: Callable[[str], object]  # takes a scratch folder
    names: str  # the call, as the message names it
    instead: str  # the replacement the message suggests


def _start_thread(_: str) -> None:
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join()


def _connect(_: str) -> None:
    socket.create_connection(("127.0.0.1", 9), timeout=1).close()


CASES = {
    "time.sleep": Case(lambda _: time.sleep(0.001), "time.sleep()", "durable.sleep"),
    "time.time": Case(lambda _: time.time(), "time.time()", "durable.now()"),
    "time.time_ns": Case(lambda _: time.time_ns(), "time.time_ns()", "durable.now()"),
    "date.today": Case(lambda _: datetime.date.today(), "date.today()", "durable.now()"),
    "datetime.today": Case(lambda _: datetime.datetime.today(), "date.today()", "durable.now()"),
    "random.random": Case(lambda _: random.random(), "random.random()", "durable.random()"),
    "random.choice": Case(lambda _: random.choice("ab"), "random.choice()", "durable.random()"),
    "random.shuffle": Case(lambda _: random.shuffle([1, 2]), "random.shuffle()", "durable.random"),
    "uuid.uuid4": Case(lambda _: uuid.uuid4(), "uuid.uuid4()", "durable.uuid4()"),
    "open": Case(lambda d: open(os.path.join(d, "f.txt"), "w"), "open(", "@activity"),
    "pathlib": Case(lambda d: Path(d, "f.txt").write_text("x"), "open(", "@activity"),
    "os.listdir": Case(lambda d: os.listdir(d), "os.listdir(", "@activity"),
    "os.remove": Case(lambda d: os.remove(os.path.join(d, "gone")), "os.remove(", "@activity"),
    "subprocess.run": Case(
        lambda _: subprocess.run([sys.executable, "-c", "pass"], check=True),
        "subprocess.Popen(",
        "@activity",
    ),
    "os.environ": Case(lambda _: os.environ.update(GUARD_TEST="x"), "os.putenv(", "argument"),
    "importlib.metadata": Case(lambda _: metadata.version("pytest"), "open(", "@activity"),
    "os.system": Case(lambda _: os.system("true"), "os.system(", "@activity"),
    "socket": Case(lambda _: socket.socket().close(), "socket.socket()", "@activity"),
    "socket.connect": Case(_connect, "socket.getaddrinfo('127.0.0.1')", "@activity"),
    "thread": Case(_start_thread, "threading.Thread.start()", "asyncio"),
}


@durable.workflow
async def misbehaving(case: str, scratch: str) -> str:
    await durable.sleep(1)  # the call comes on a later step, not only the first
    CASES[case].call(scratch)
    return "not refused"


@pytest.mark.parametrize("case", sorted(CASES))
async def test_workflow_code_may_not(case: str, tmp_path: Path) -> None:
    async with WorkflowEnvironment(workflows=[misbehaving]) as env:
        with pytest.raises(durable.WorkflowFailed) as failed:
            await env.client.execute(misbehaving, case, str(tmp_path), timeout=20)
    cause = failed.value.cause
    assert cause.type.endswith("RefusedCallError")
    assert "Workflow 'misbehaving' called" in cause.message
    assert CASES[case].names in cause.message
    assert CASES[case].instead in cause.message
    assert os.listdir(tmp_path) == []  # nothing was written either


@durable.workflow
async def careful() -> str:
    try:
        time.sleep(1)  # noqa: ASYNC251  (the point of the test)
    except RefusedCallError as err:
        return f"caught: {err}"
    return "slept"


async def test_the_refusal_can_be_caught_by_the_workflow() -> None:
    async with WorkflowEnvironment(workflows=[careful]) as env:
        result = await env.client.execute(careful, timeout=20)
    assert result.startswith("caught: Workflow 'careful' called time.sleep()")


def _every_call(scratch: str) -> list[str]:
    """Make every guarded call; return the ones that raised."""
    refused = []
    for name, case in sorted(CASES.items()):
        if name == "os.remove":
            Path(scratch, "gone").write_text("")
        try:
            opened = case.call(scratch)
        except OSError:
            pass  # e.g. nothing listens on port 9: the call was made, not refused
        except RefusedCallError as err:
            refused.append(f"{name}: {err}")
        else:
            if hasattr(opened, "close"):
                opened.close()
    os.environ.pop("GUARD_TEST", None)
    return refused


workflow_inside = threading.Event()  # set by workflow code while it blocks its thread
activity_done = threading.Event()
activity_started = threading.Event()


@durable.activity
def sync_everything(scratch: str) -> list[str]:
    activity_started.set()
    assert workflow_inside.wait(10), "the workflow never entered its step"
    try:
        return _every_call(scratch)
    finally:
        activity_done.set()


@durable.workflow
async def overlapping(scratch: str) -> list[str]:
    pending = durable.call(sync_everything, scratch)
    await durable.wait_signal("go")
    # Workflow code, running now, blocks its thread until the activity made its calls.
    workflow_inside.set()
    finished = activity_done.wait(10)
    return [*await pending, *([] if finished else ["the activity did not finish in time"])]


@pytest.fixture
def events() -> Iterator[None]:
    for event in (workflow_inside, activity_done, activity_started):
        event.clear()
    yield
    workflow_inside.set()  # release a stuck activity, if any
    activity_done.set()


@pytest.mark.usefixtures("events")
async def test_sync_activity_is_not_refused_while_workflow_code_runs(tmp_path: Path) -> None:
    async with WorkflowEnvironment(workflows=[overlapping], activities=[sync_everything]) as env:
        handle = await env.client.start(overlapping, str(tmp_path))
        assert await asyncio.to_thread(activity_started.wait, 10)
        await handle.signal("go")
        assert await handle.result(timeout=30) == []


@durable.activity
async def async_everything(scratch: str) -> list[str]:
    await asyncio.sleep(0)
    return _every_call(scratch)


@durable.workflow
async def awaiting_async(scratch: str, n: int) -> list[str]:
    # Several runs mid-flight, their steps interleaved with the activities on one thread.
    results = await durable.map(async_everything, [scratch] * n)
    return [line for refused in results for line in refused]


async def test_async_activity_is_not_refused_between_workflow_steps(tmp_path: Path) -> None:
    async with WorkflowEnvironment(
        workflows=[awaiting_async], activities=[async_everything]
    ) as env:
        handles = [await env.client.start(awaiting_async, str(tmp_path), 3) for _ in range(2)]
        assert [await h.result(timeout=30) for h in handles] == [[], []]


@durable.workflow
async def chatty(who: str) -> str:
    durable.logger.info("hello %s", who)
    logging.getLogger("tests.guard").warning("plain logging from %s", who)
    return who


async def test_logging_from_workflow_code_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # delay=True: the handler opens its file at the first record, inside workflow code.
    handler = logging.FileHandler(tmp_path / "workflow.log", delay=True)
    workflow_logger = logging.getLogger("durable.workflow")
    workflow_logger.addHandler(handler)
    try:
        with caplog.at_level(logging.INFO):
            async with WorkflowEnvironment(workflows=[chatty]) as env:
                assert await env.client.execute(chatty, "ada", timeout=20) == "ada"
    finally:
        workflow_logger.removeHandler(handler)
        handler.close()
    assert "hello ada" in (tmp_path / "workflow.log").read_text()
    assert "plain logging from ada" in caplog.text


LAZY_MODULE = """
import time
LOADED_AT = time.time()  # import-time code may read the clock and files
with open(__file__) as source:
    FIRST_LINE = source.readline().strip()
"""


@durable.workflow
async def lazy(module: str) -> str:
    import importlib

    loaded = importlib.import_module(module)
    json_tool = __import__("json.tool")  # a standard module, probably not imported yet
    assert json_tool is not None
    return str(loaded.FIRST_LINE)


async def test_lazy_import_inside_workflow_code_is_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "guard_lazy_module.py").write_text("# lazily imported" + LAZY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "guard_lazy_module", raising=False)
    async with WorkflowEnvironment(workflows=[lazy]) as env:
        assert await env.client.execute(lazy, "guard_lazy_module", timeout=20) == (
            "# lazily imported"
        )
    assert "guard_lazy_module" in sys.modules


@durable.workflow
async def failing() -> None:
    raise ValueError("out of stock")  # this line is read back for the traceback


async def test_a_failing_workflow_still_records_its_traceback() -> None:
    # Formatting the traceback reads source lines (linecache opens the file).
    async with WorkflowEnvironment(workflows=[failing]) as env:
        with pytest.raises(durable.WorkflowFailed) as failed:
            await env.client.execute(failing, timeout=20)
    assert failed.value.cause.type == "ValueError"
    assert "this line is read back for the traceback" in failed.value.cause.traceback


@durable.workflow
async def tolerant() -> str:
    await durable.sleep(60)
    try:
        time.time()
    except RefusedCallError as err:
        return f"refused: {err}"
    return "allowed"


def test_the_guard_is_active_during_replay() -> None:
    defn = workflow_definition(tolerant)
    args = payload.encode_args(tolerant, (), {}, what="args")
    live = WorkflowRun(defn, workflow_id="wf-1", run_id="run-1", queue="default")
    first = live.apply("workflow_started", {"args": args}, 1000.0)
    fired = {"ref": first[0].seq}
    second = live.apply("timer_fired", fired, 1060.0)
    assert live.outcome is not None
    assert payload.decode(live.outcome.result or b"").startswith("refused: ")

    replay = WorkflowRun(defn, workflow_id="wf-1", run_id="run-1", queue="default")
    replay.apply("workflow_started", {"args": args}, 1000.0, recorded=_recorded(first))
    # Were the guard off in replay, the code would return "allowed": a NonDeterminismError.
    replay.apply("timer_fired", fired, 1060.0, recorded=_recorded(second))
    assert replay.outcome == live.outcome


def _recorded(commands: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(c.kind, c.data) for c in commands]


def _install_guard() -> None:
    """Run a workflow step, which installs the guard if no test did yet."""
    run = WorkflowRun(workflow_definition(tolerant), workflow_id="wf-1", run_id="r", queue="q")
    run.apply("workflow_started", {"args": payload.encode_args(tolerant, (), {}, what="a")}, 1.0)
    run.evict()


def test_code_outside_workflows_is_never_refused(tmp_path: Path) -> None:
    _install_guard()
    assert _every_call(str(tmp_path)) == []  # this thread runs no workflow code now


LAZY_INSTALL = """
import asyncio
import time

import durable
from durable.testing import WorkflowEnvironment

print(type(time.sleep).__name__)

@durable.workflow
async def nothing() -> int:
    return 1

async def main() -> None:
    async with WorkflowEnvironment(workflows=[nothing]) as env:
        await env.client.execute(nothing, timeout=20)

asyncio.run(main())
print(type(time.sleep).__name__)
"""


def test_the_guard_is_installed_only_when_a_workflow_first_runs() -> None:
    # A process that only imports durable (a client, say) keeps the plain functions.
    done = subprocess.run(
        [sys.executable, "-c", LAZY_INSTALL], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["builtin_function_or_method", "function"]


def test_wrapped_functions_still_pickle_by_name() -> None:
    # Process pools pickle the functions they run: time.sleep or random.random must still go.
    _install_guard()
    for fn in (time.sleep, time.time, random.random, random.randint, uuid.uuid4):
        assert hasattr(fn, "__wrapped__"), fn  # the guard's wrapper, not the original
        assert pickle.loads(pickle.dumps(fn)) is fn


@durable.activity
async def stamp(at: float) -> float:
    return at


@durable.workflow
async def stamping() -> float:
    return await stamp(time.time())


def test_a_run_recorded_before_the_guard_is_parked_on_replay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from durable import guard
    from durable.errors import NonDeterminismError

    defn = workflow_definition(stamping)
    args = payload.encode_args(stamping, (), {}, what="args")
    with monkeypatch.context() as old_version:  # an earlier durable: no guard
        old_version.setattr(guard, "enter", lambda workflow: None)
        old_version.setattr(guard, "leave", lambda previous: None)
        live = WorkflowRun(defn, workflow_id="wf-1", run_id="run-1", queue="default")
        first = live.apply("workflow_started", {"args": args}, 1000.0)
    assert [c.kind for c in first] == ["activity_scheduled"]
    live.evict()

    replay = WorkflowRun(defn, workflow_id="wf-1", run_id="run-1", queue="default")
    with pytest.raises(NonDeterminismError) as parked:
        replay.apply("workflow_started", {"args": args}, 1000.0, recorded=_recorded(first))
    replay.evict()
    assert "holds activity_scheduled 'stamp'" in str(parked.value)
    assert "the code issued workflow_failed" in str(parked.value)
