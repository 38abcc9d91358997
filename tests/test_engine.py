"""The replay engine offline: journal in, commands out — no store, no clock, no worker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

import durable
from durable import payload
from durable.definition import workflow_definition
from durable.engine import INPUT_KINDS, Effects, WorkflowRun
from durable.errors import NonDeterminismError, RemoteError

T0 = 1_700_000_000.0


@durable.activity
async def fetch(key: str) -> str:
    return f"value-{key}"


@durable.activity
async def other(key: str) -> str:
    return key


@dataclass
class Receipt:
    order: str
    cents: int


@durable.activity
async def charge(order: str, cents: int) -> Receipt:
    return Receipt(order, cents)


class Journal:
    """Drives a WorkflowRun live, recording the journal as a worker would."""

    def __init__(self, fn: Any, *args: Any, run_id: str = "run-1") -> None:
        self.fn = fn
        self.run_id = run_id
        self.entries: list[tuple[str, dict[str, Any], float]] = []
        self.run = self.new_run()
        self.feed("workflow_started", {"args": payload.encode_args(fn, args, {}, what="args")})

    def new_run(self) -> WorkflowRun:
        return WorkflowRun(
            workflow_definition(self.fn), workflow_id="wf-1", run_id=self.run_id, queue="default"
        )

    def feed(self, kind: str, data: dict[str, Any], time: float = T0) -> list[Any]:
        commands = self.run.apply(kind, data, time)
        self.entries.append((kind, data, time))
        self.entries.extend((c.kind, c.data, time) for c in commands)
        return commands

    def seq_of(self, kind: str, n: int = 0) -> int:
        seqs = [i + 1 for i, (k, _, _) in enumerate(self.entries) if k == kind]
        return seqs[n]

    def complete(self, seq: int, value: Any, time: float = T0) -> list[Any]:
        return self.feed("activity_completed", {"ref": seq, "result": payload.encode(value)}, time)

    def kinds(self) -> list[str]:
        return [k for k, _, _ in self.entries]

    def replay(self, fn: Any = None) -> WorkflowRun:
        """Rebuild a fresh run from the recorded journal, checking every command."""
        run = WorkflowRun(
            workflow_definition(fn or self.fn),
            workflow_id="wf-1",
            run_id=self.run_id,
            queue="default",
        )
        i = 0
        while i < len(self.entries):
            kind, data, time = self.entries[i]
            j = i + 1
            while j < len(self.entries) and self.entries[j][0] not in INPUT_KINDS:
                j += 1
            run.apply(kind, data, time, recorded=[(k, d) for k, d, _ in self.entries[i + 1 : j]])
            i = j
        return run


@durable.workflow
async def sequential(n: int) -> list[str]:
    return [await fetch(str(i)) for i in range(n)]


def test_sequential_activities_one_command_per_input() -> None:
    j = Journal(sequential, 3)
    assert j.kinds() == ["workflow_started", "activity_scheduled"]
    for i in range(3):
        j.complete(j.seq_of("activity_scheduled", i), f"value-{i}")
    assert j.kinds()[-1] == "workflow_completed"
    assert payload.decode(j.run.outcome.result) == ["value-0", "value-1", "value-2"]  # type: ignore[union-attr]
    replayed = j.replay()
    assert replayed.outcome is not None
    assert replayed.outcome.status == "completed"
    assert replayed.history_length == len(j.entries)


@durable.workflow
async def typed_result() -> int:
    receipt = await charge("o-1", 250)
    assert isinstance(receipt, Receipt)  # rebuilt from the return annotation
    return receipt.cents


def test_activity_result_rebuilt_as_dataclass() -> None:
    j = Journal(typed_result)
    j.complete(2, Receipt("o-1", 250))
    assert j.run.outcome is not None
    assert j.run.outcome.status == "completed", j.run.outcome
    assert payload.decode(j.run.outcome.result or b"") == 250


@durable.workflow
async def gathered() -> list[str]:
    return list(await asyncio.gather(fetch("a"), fetch("b"), fetch("c")))


def test_gather_schedules_in_call_order_and_replays_any_completion_order() -> None:
    j = Journal(gathered)
    names = [d["args"] for k, d, _ in j.entries if k == "activity_scheduled"]
    assert len(names) == 3
    # Complete out of order: c, a, b.
    j.complete(4, "C")
    j.complete(2, "A")
    assert j.run.outcome is None
    j.complete(3, "B")
    assert payload.decode(j.run.outcome.result or b"") == ["A", "B", "C"]  # type: ignore[union-attr]
    assert j.replay().outcome is not None


@durable.workflow
async def first_wins() -> str:
    a = asyncio.ensure_future(fetch("slow"))
    b = asyncio.ensure_future(fetch("fast"))
    done, pending = await asyncio.wait({a, b}, return_when=asyncio.FIRST_COMPLETED)
    for p in pending:
        p.cancel()
    winner = done.pop().result()
    follow = await other(winner)
    return str(follow)


def test_wait_first_completed_is_deterministic_and_cancels_loser() -> None:
    j = Journal(first_wins)
    assert j.kinds().count("activity_scheduled") == 2
    slow, fast = j.seq_of("activity_scheduled", 0), j.seq_of("activity_scheduled", 1)
    j.complete(fast, "F")
    effects = j.run.take_effects()
    assert effects.cancelled_activities == [slow]
    assert j.kinds()[-1] == "activity_scheduled"  # `other`
    j.complete(j.seq_of("activity_scheduled", 2), "F!")
    assert payload.decode(j.run.outcome.result or b"") == "F!"  # type: ignore[union-attr]
    j.replay()


@durable.workflow
async def signal_or_timeout() -> str:
    try:
        value = await durable.wait_signal("go", timeout=60)
    except TimeoutError:
        return "timed out"
    return f"got {value}"


def test_signal_beats_timer_and_cancels_it() -> None:
    j = Journal(signal_or_timeout)
    assert j.kinds() == ["workflow_started", "signal_wait_started", "timer_started"]
    assert j.entries[1][1]["name"] == "go"
    assert j.entries[1][1]["due"] == T0 + 60
    assert j.entries[2][1]["due"] == T0 + 60
    j.feed("signal_received", {"name": "go", "value": payload.encode(7)}, T0 + 5)
    assert payload.decode(j.run.outcome.result or b"") == "got 7"  # type: ignore[union-attr]
    assert j.run.take_effects().cancelled_timers == [3]
    assert j.run.take_effects() == Effects()  # taken once: the next step has none
    j.replay()


def test_timer_beats_signal() -> None:
    j = Journal(signal_or_timeout)
    j.feed("timer_fired", {"ref": j.seq_of("timer_started")}, T0 + 60)
    assert payload.decode(j.run.outcome.result or b"") == "timed out"  # type: ignore[union-attr]
    # A signal arriving after the run closed changes nothing.
    j.feed("signal_received", {"name": "go", "value": payload.encode(1)}, T0 + 61)
    assert j.kinds()[-2:] == ["workflow_completed", "signal_received"]
    j.replay()


@durable.workflow
async def wait_for_activity() -> str:
    try:
        return await asyncio.wait_for(fetch("x"), timeout=10)
    except TimeoutError:
        return "too slow"


def test_asyncio_wait_for_is_a_durable_timer() -> None:
    j = Journal(wait_for_activity)
    assert j.kinds() == [
        "workflow_started",
        "timer_started",
        "activity_scheduled",
    ] or j.kinds() == [
        "workflow_started",
        "activity_scheduled",
        "timer_started",
    ]
    timer = j.seq_of("timer_started")
    j.feed("timer_fired", {"ref": timer}, T0 + 10)
    assert payload.decode(j.run.outcome.result or b"") == "too slow"  # type: ignore[union-attr]
    assert j.run.take_effects().cancelled_activities == [j.seq_of("activity_scheduled")]
    assert j.run.take_effects() == Effects()
    j.replay()


@durable.workflow
async def sleeper() -> float:
    start = durable.now()
    await asyncio.sleep(3600)
    await durable.sleep(60)
    return (durable.now() - start).total_seconds()


def test_sleep_is_durable_and_time_is_the_inputs_time() -> None:
    j = Journal(sleeper)
    j.feed("timer_fired", {"ref": 2}, T0 + 3600)
    j.feed("timer_fired", {"ref": j.seq_of("timer_started", 1)}, T0 + 3660)
    assert payload.decode(j.run.outcome.result or b"") == 3660.0  # type: ignore[union-attr]
    j.replay()


@durable.workflow
async def random_things() -> list[Any]:
    return [durable.random().randint(0, 10**9), str(durable.uuid4())]


def test_random_and_uuid_replay_identically_and_differ_per_run() -> None:
    a = Journal(random_things, run_id="r-a")
    b = Journal(random_things, run_id="r-b")
    assert a.run.outcome is not None
    assert b.run.outcome is not None
    result = payload.decode(a.run.outcome.result)
    assert result != payload.decode(b.run.outcome.result)
    # A replay (the recorded journal, checked command by command) draws the same numbers:
    # replay does not compare a workflow's result, so compare the replayed run's outcome.
    replayed = a.replay()
    assert replayed.is_replaying
    assert replayed.outcome is not None
    assert payload.decode(replayed.outcome.result) == result


@durable.workflow
async def v1() -> str:
    return await fetch("x")


@durable.workflow(name="v1")
async def v1_renamed_activity() -> str:
    return await other("x")


def test_changed_activity_is_non_determinism_naming_both() -> None:
    j = Journal(v1)
    j.complete(2, "done")
    with pytest.raises(NonDeterminismError) as info:
        j.replay(v1_renamed_activity)
    message = str(info.value)
    assert "'fetch'" in message
    assert "'other'" in message
    assert "wf-1" in message


@durable.workflow(name="v1")
async def v1_extra_step() -> str:
    await other("first")
    return await fetch("x")


@durable.workflow(name="v1")
async def v1_fewer_steps() -> str:
    return "no activity at all"


def test_added_or_removed_command_is_non_determinism() -> None:
    j = Journal(v1)
    j.complete(2, "done")
    with pytest.raises(NonDeterminismError):
        j.replay(v1_extra_step)
    with pytest.raises(
        NonDeterminismError, match=r"holds activity_scheduled 'fetch'.*issued workflow_completed"
    ):
        j.replay(v1_fewer_steps)


@durable.workflow
async def kid(n: int) -> int:
    return n


@durable.workflow(name="keys")
async def keys_v1() -> str:
    durable.publish("progress", 1)
    await durable.call(kid, 1, id="kid-a")
    return "done"


@durable.workflow(name="keys")
async def keys_other_publish_key() -> str:
    durable.publish("percent", 1)
    await durable.call(kid, 1, id="kid-a")
    return "done"


@durable.workflow(name="keys")
async def keys_other_child_id() -> str:
    durable.publish("progress", 1)
    await durable.call(kid, 1, id="kid-b")
    return "done"


@durable.workflow(name="keys")
async def keys_other_arguments() -> str:
    durable.publish("progress", 2)  # a value, not a key: replay does not check it
    await durable.call(kid, 2, id="kid-a")  # arguments, likewise
    return "done"


def test_key_arguments_are_checked_on_replay() -> None:
    """Replay checks kind, name and key arguments: a child's id and a published key (and a
    patch id, below). Other arguments may change with a deploy without breaking runs."""
    j = Journal(keys_v1)
    assert j.kinds() == ["workflow_started", "published", "child_started"]
    with pytest.raises(NonDeterminismError, match="percent"):
        j.replay(keys_other_publish_key)
    with pytest.raises(NonDeterminismError, match=r"id 'kid-a'.*id 'kid-b'"):
        j.replay(keys_other_child_id)
    j.replay(keys_other_arguments)


@durable.workflow(name="v1")
async def v1_other_patch() -> str:
    if durable.patched("use-another"):
        return await other("x")
    return await fetch("x")


@durable.workflow
async def wakes_at(when: float) -> float:
    from datetime import UTC, datetime

    await durable.sleep_until(datetime.fromtimestamp(when, UTC))
    return durable.now().timestamp()


def test_sleep_until_is_a_durable_timer_to_that_instant() -> None:
    j = Journal(wakes_at, T0 + 3600)
    [timer] = [d for k, d, _ in j.entries if k == "timer_started"]
    assert timer["due"] == T0 + 3600
    j.feed("timer_fired", {"ref": j.seq_of("timer_started")}, time=T0 + 3600.5)
    assert j.run.outcome is not None
    assert payload.decode(j.run.outcome.result) == T0 + 3600.5
    j.replay()


def test_sleep_until_a_past_instant_returns_without_a_timer() -> None:
    j = Journal(wakes_at, T0 - 60)
    assert j.kinds() == ["workflow_started", "workflow_completed"]
    assert j.run.outcome is not None
    # It returned at once, in the same step: the workflow's clock is still the input's.
    assert payload.decode(j.run.outcome.result) == T0


@durable.workflow(name="v1")
async def v1_patched() -> str:
    if durable.patched("use-other"):
        return await other("x")
    return await fetch("x")


def test_patched_keeps_old_runs_on_old_path_and_new_runs_on_new() -> None:
    old = Journal(v1)
    old.complete(2, "done")
    replayed = old.replay(v1_patched)  # recorded before the patch: takes the old branch
    assert replayed.outcome is not None
    new = Journal(v1_patched)
    assert new.kinds() == ["workflow_started", "marker", "activity_scheduled"]
    assert new.entries[2][1]["name"] == "other"
    new.complete(3, "x")
    new.replay(v1_patched)


@durable.workflow(name="v1")
async def v1_deprecated() -> str:
    durable.deprecate_patch("use-other")
    return await other("x")


def test_a_different_patch_id_is_non_determinism() -> None:
    marked = Journal(v1_patched)
    marked.complete(3, "x")
    with pytest.raises(NonDeterminismError, match="holds marker 'use-other'"):
        marked.replay(v1_other_patch)


def test_deprecate_patch_replays_marked_runs_and_marks_nothing_new() -> None:
    marked = Journal(v1_patched)
    marked.complete(3, "x")
    marked.replay(v1_deprecated)
    fresh = Journal(v1_deprecated)
    assert "marker" not in fresh.kinds()


@durable.workflow
async def compensating() -> str:
    try:
        await fetch("book")
        return "booked"
    except asyncio.CancelledError:
        await other("undo")
        return "compensated"


def test_cancel_raises_at_the_await_point_and_workflow_can_compensate() -> None:
    j = Journal(compensating)
    commands = j.feed("cancel_requested", {"reason": "user"})
    assert [c.kind for c in commands] == ["activity_scheduled"]
    assert commands[0].data["name"] == "other"
    assert j.run.take_effects().cancelled_activities == [2]
    j.complete(commands[0].seq, "undone")
    assert payload.decode(j.run.outcome.result or b"") == "compensated"  # type: ignore[union-attr]
    j.replay()


@durable.workflow
async def failing() -> str:
    try:
        await fetch("x")
    except durable.ActivityError as err:
        raise ValueError(f"gave up: {err.cause.message}") from err
    return "unreachable"


def test_activity_failure_raises_activity_error_and_fails_workflow() -> None:
    j = Journal(failing)
    error = RemoteError("ConnectionError", "refused")
    j.feed("activity_retrying", {"ref": 2, "attempt": 1, "error": error.to_dict()})
    j.feed("activity_failed", {"ref": 2, "error": error.to_dict(), "attempts": 2})
    outcome = j.run.outcome
    assert outcome is not None
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error.type == "ValueError"
    assert "gave up: refused" in outcome.error.message
    j.replay()


@durable.workflow
async def io_in_workflow() -> str:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, print, "x")
    return "no"


def test_threads_and_io_are_refused_with_a_clear_error() -> None:
    j = Journal(io_in_workflow)
    outcome = j.run.outcome
    assert outcome is not None
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert "cannot do I/O" in outcome.error.message
    assert "@activity" in outcome.error.message


@durable.workflow
async def mapped(items: list[str]) -> list[str]:
    return await durable.map(fetch, items, max_concurrency=2)


def test_map_bounds_concurrency_and_keeps_item_order() -> None:
    j = Journal(mapped, ["a", "b", "c", "d"])
    assert j.kinds().count("activity_scheduled") == 2  # only two in flight
    j.complete(3, "B")
    assert j.kinds().count("activity_scheduled") == 3
    j.complete(2, "A")
    j.complete(j.seq_of("activity_scheduled", 3), "D")
    j.complete(j.seq_of("activity_scheduled", 2), "C")
    assert payload.decode(j.run.outcome.result or b"") == ["A", "B", "C", "D"]  # type: ignore[union-attr]
    j.replay()


@durable.workflow
async def mailbox() -> list[Any]:
    await fetch("x")
    return [await durable.wait_signal("s"), await durable.wait_signal("s")]


def test_signals_before_waiting_are_kept_in_order() -> None:
    j = Journal(mailbox)
    j.feed("signal_received", {"name": "s", "value": payload.encode(1)})
    j.feed("signal_received", {"name": "s", "value": payload.encode(2)})
    j.complete(2, "x")
    assert payload.decode(j.run.outcome.result or b"") == [1, 2]  # type: ignore[union-attr]


@durable.workflow
async def looping(n: int) -> int:
    if n < 3:
        durable.continue_as_new(n + 1)
    return n


def test_continue_as_new_closes_run_with_new_arguments() -> None:
    j = Journal(looping, 0)
    outcome = j.run.outcome
    assert outcome is not None
    assert outcome.status == "continued_as_new"
    args, _ = payload.decode_args(looping, outcome.continue_args or b"")
    assert args == (1,)
    assert outcome.successor_run_id


def test_evict_unwinds_every_coroutine() -> None:
    j = Journal(gathered)
    tasks = list(j.run._loop._tasks)
    assert tasks
    j.run.evict()
    assert all(t.done() for t in tasks)
    assert j.run._loop.is_closed()


def test_workflow_called_outside_workflow_points_at_client_start() -> None:
    with pytest.raises(durable.NotInWorkflowError, match=r"client\.start"):
        sequential(1)


async def test_activity_called_outside_workflow_just_runs() -> None:
    assert await fetch("k") == "value-k"


@durable.workflow(name="both")
async def fetch_both() -> list[str]:
    return list(await asyncio.gather(fetch("a"), fetch("b")))


@durable.workflow(name="both")
async def fetch_only_a() -> list[str]:
    return [await fetch("a")]


def test_code_issuing_fewer_commands_than_the_journal_is_non_determinism() -> None:
    """The journal recorded two activities after the start; code that schedules only the
    first and then waits issues nothing more: replay must say so, not carry on silently."""
    j = Journal(fetch_both)
    assert j.kinds() == ["workflow_started", "activity_scheduled", "activity_scheduled"]
    with pytest.raises(
        NonDeterminismError,
        match=r"after input #1, the journal holds activity_scheduled 'fetch' next, but the "
        r"code issued nothing more",
    ):
        j.replay(fetch_only_a)


def test_replay_checks_the_commands_position_by_position() -> None:
    """Each command is checked against the recorded one at its own position: the second
    command against the second record, and a code that issues one more than recorded is
    refused, naming the command and the step."""
    j = Journal(keys_v1)
    started = j.entries[0]
    recorded = [(k, d) for k, d, _ in j.entries[1:]]
    runs = [j.new_run() for _ in range(3)]
    try:
        with pytest.raises(
            NonDeterminismError,
            match=r"after input #1, the code issued child_started 'kid' \(id 'kid-a'\) where "
            r"the journal holds no further command\.",
        ):
            runs[0].apply(*started, recorded=recorded[:1])
        commands = runs[1].apply(*started, recorded=recorded)
        assert [(c.seq, c.kind) for c in commands] == [(2, "published"), (3, "child_started")]
        assert runs[1].is_replaying
        with pytest.raises(
            NonDeterminismError,
            match=r"holds published 'progress' at step 3, but the code issued child_started "
            r"'kid' \(id 'kid-a'\)",
        ):
            runs[2].apply(*started, recorded=[recorded[0], recorded[0]])
    finally:
        for run in runs:
            run.evict()


def test_a_live_step_returns_its_commands_numbered_after_the_input() -> None:
    j = Journal(fetch_both)
    assert [c.seq for c in j.run.apply("activity_completed", _done(2), T0)] == []
    assert j.run.history_length == 4
    [closing] = j.run.apply("activity_completed", _done(3), T0)
    assert (closing.seq, closing.kind) == (6, "workflow_completed")
    assert not j.run.is_replaying


def _done(ref: int) -> dict[str, Any]:
    return {"ref": ref, "result": payload.encode("v")}


@pytest.mark.parametrize(
    ("kind", "data", "described"),
    [
        ("activity_scheduled", {"name": "fetch", "args": b"1"}, "activity_scheduled 'fetch'"),
        ("child_started", {"name": "kid", "id": "k-1"}, "child_started 'kid' (id 'k-1')"),
        ("published", {"key": "progress", "value": b"1"}, "published 'progress'"),
        ("marker", {"patch": "use-other"}, "marker 'use-other'"),
        ("signal_wait_started", {"name": "approve"}, "signal_wait_started 'approve'"),
        ("timer_started", {"due": T0}, "timer_started"),
        ("workflow_completed", {"result": b""}, "workflow_completed"),
    ],
)
def test_describe_command_names_what_identifies_it(
    kind: str, data: dict[str, Any], described: str
) -> None:
    from durable.journal import describe_command

    assert describe_command(kind, data) == described


@pytest.mark.parametrize(
    ("kind", "data", "same", "different"),
    [
        ("activity_scheduled", {"name": "f", "args": b"1"}, {"name": "f", "args": b"2"},
         {"name": "g", "args": b"1"}),
        ("child_started", {"name": "k", "id": "a", "args": b"1"},
         {"name": "k", "id": "a", "args": b"2"}, {"name": "k", "id": "b", "args": b"1"}),
        ("child_started", {"name": "k", "id": "a"}, {"name": "k", "id": "a"},
         {"name": "j", "id": "a"}),
        ("published", {"key": "p", "value": b"1"}, {"key": "p", "value": b"2"},
         {"key": "q", "value": b"1"}),
        ("marker", {"patch": "x", "deprecated": False}, {"patch": "x", "deprecated": True},
         {"patch": "y", "deprecated": False}),
        ("signal_wait_started", {"name": "s"}, {"name": "s"}, {"name": "t"}),
        ("timer_started", {"due": T0}, {"due": T0 + 1}, None),
    ],
)  # fmt: skip
def test_same_command_compares_kind_and_identity_not_arguments(
    kind: str, data: dict[str, Any], same: dict[str, Any], different: dict[str, Any] | None
) -> None:
    from durable.journal import same_command

    assert same_command(kind, data, kind, same)
    assert same_command(kind, same, kind, data)
    if different is not None:
        assert not same_command(kind, data, kind, different)
        assert not same_command(kind, different, kind, data)
    assert not same_command(kind, data, "workflow_completed", data)
    assert not same_command("workflow_completed", data, kind, data)


async def _fetch_twice(key: str) -> str:
    return await fetch(key) + await fetch(key + "'")


@durable.workflow
async def branching() -> list[str]:
    first = await fetch("main")
    both = await asyncio.gather(_fetch_twice("a"), _fetch_twice("b"))
    return [first, *both]


def test_commands_are_tagged_with_the_branch_and_group_that_issued_them() -> None:
    """Each command carries the path of the task that issued it (``0`` the main coroutine,
    ``0.N`` the tasks it spawned); commands issued side by side share a group, the seq of
    the first. The closing command is not tagged."""
    j = Journal(branching)
    j.complete(2, "m")
    j.complete(j.seq_of("activity_scheduled", 1), "a1")
    j.complete(j.seq_of("activity_scheduled", 2), "b1")
    j.complete(j.seq_of("activity_scheduled", 3), "a2")
    j.complete(j.seq_of("activity_scheduled", 4), "b2")
    tags = [
        (seq + 1, kind, data.get("branch"), data.get("group"))
        for seq, (kind, data, _) in enumerate(j.entries)
        if kind in ("activity_scheduled", "workflow_completed")
    ]
    assert tags == [
        (2, "activity_scheduled", "0", None),
        (4, "activity_scheduled", "0.0", 4),
        (5, "activity_scheduled", "0.1", 4),
        (7, "activity_scheduled", "0.0", 4),
        (9, "activity_scheduled", "0.1", 4),
        (12, "workflow_completed", None, None),
    ]
    assert j.run.outcome is not None
    assert payload.decode(j.run.outcome.result) == ["m", "a1a2", "b1b2"]
    j.replay()


def test_only_inputs_are_applied() -> None:
    run = Journal(v1).new_run()
    with pytest.raises(ValueError, match=r"^'activity_scheduled' is not an input kind$"):
        run.apply("activity_scheduled", {"name": "fetch"}, T0)
