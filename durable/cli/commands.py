"""What each `durable` command does (except ``worker`` and ``demo``): read or steer runs
through a `Client`, and print what happened.

Each command takes the parsed arguments and returns the exit status. Read commands print
text for people, or with ``--json`` one JSON document (`render.jsonable`). A command that
cannot do what was asked raises `Refused` (its message goes to stderr, with its exit
status); a `DurableError` from the client is reported by ``main`` the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

from ..client import Client, WorkflowDescription, WorkflowHandle
from ..errors import WorkflowAlreadyExists, WorkflowCancelled, WorkflowFailed
from ..steps import readable_value
from ..store import (
    CLOSED_STATUSES,
    TOPIC_RUNS,
    TOPIC_STEPS,
    TOPIC_TASKS,
    Store,
    run_topic,
    steps_topic,
)
from . import render

__all__ = [
    "Refused",
    "cancel",
    "list_runs",
    "read",
    "result",
    "show",
    "signal",
    "start",
    "terminate",
    "workers",
]

FOLLOW_POLL = 1.0  # most seconds `show --follow` waits between looks if nothing wakes it
FOLLOW_GAP = 0.1  # least seconds between its looks


class Refused(Exception):
    """The command could not do what was asked: ``durable: <message>`` on stderr, then
    exit with ``code`` (1: refused or failed; 2: timed out)."""

    def __init__(self, message: str, code: int = 1, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or []


def _print_json(value: Any) -> None:
    print(render.dumps(value, indent=2))


async def _store(client: Client) -> Store:
    # The CLI reads what the client API does not hand out yet (published values, workers)
    # from the client's own store rather than opening a second connection.
    return await client._open()


def _now() -> datetime:
    return datetime.now(UTC)


# ---- start and steer -----------------------------------------------------------------


def _state(d: WorkflowDescription) -> str:
    return f"run {d.run_id}, {d.status}"


async def start(args: argparse.Namespace) -> int:
    """``durable start NAME``: start a run, or say which existing one came back."""
    data = args.input
    call_args = data if isinstance(data, list) else ([] if data is None else [data])
    async with Client(args.db) as client:
        if args.id is not None:
            await _refuse_other_workflow(client, args.id, args.name)
        try:
            handle = await client.start(
                args.name,
                *call_args,
                id=args.id,
                queue=args.queue,
                if_exists=args.if_exists,
                tags=dict(args.tag) if args.tag else None,
            )
        except (TypeError, ValueError) as exc:  # arguments a live worker refuses; bad tags
            raise Refused(str(exc)) from None
        except WorkflowAlreadyExists:
            d = await client.get_handle(args.id).describe()
            raise Refused(
                f"{d.id} already exists ({_state(d)}); nothing was started. Use "
                "--if-exists return to get it, or --if-exists restart to start it again "
                "once it has closed."
            ) from None
        d = await handle.describe()
        if not handle.created and d.name != args.name:  # created meanwhile by someone else
            raise Refused(_other_workflow(d, args.name))
        if args.json:
            _print_json({"id": d.id, "run_id": d.run_id, "created": bool(handle.created)})
        elif handle.created:
            print(f"started {d.id} (run {d.run_id})")
        elif args.if_exists == "restart":
            print(f"{d.id} is still {d.status} (run {d.run_id}); returned it, not restarted")
        else:
            print(f"{d.id} already exists ({_state(d)}); returned it")
    return 0


def _other_workflow(d: WorkflowDescription, name: str) -> str:
    return (
        f"workflow id {d.id!r} belongs to a {d.name!r} workflow ({_state(d)}), not {name!r}; "
        "nothing was started. Choose another --id."
    )


async def _refuse_other_workflow(client: Client, workflow_id: str, name: str) -> None:
    """Refuse before writing anything when the id is taken by another workflow."""
    run = await (await _store(client)).get_run(workflow_id)
    if run is not None and run.name != name:
        d = await client.get_handle(workflow_id).describe()
        raise Refused(_other_workflow(d, name))


async def _open_run(handle: WorkflowHandle[Any], doing: str) -> WorkflowDescription:
    """The run's description, or `Refused` if it has closed (nothing to ``doing``)."""
    d = await handle.describe()
    if d.status in CLOSED_STATUSES:
        raise Refused(f"{d.id} has already closed ({_state(d)}); {doing}.")
    return d


async def signal(args: argparse.Namespace) -> int:
    """``durable signal ID NAME [VALUE]``."""
    async with Client(args.db) as client:
        handle = client.get_handle(args.id)
        d = await _open_run(handle, f"signal {args.name!r} was not sent")
        await handle.signal(args.name, args.value)
        print(f"signal {args.name!r} sent to {d.id} (run {d.run_id})")
    return 0


async def cancel(args: argparse.Namespace) -> int:
    """``durable cancel ID``."""
    async with Client(args.db) as client:
        handle = client.get_handle(args.id)
        d = await _open_run(handle, "nothing to cancel")
        await handle.cancel()
        print(f"cancellation requested for {d.id} (run {d.run_id})")
    return 0


async def terminate(args: argparse.Namespace) -> int:
    """``durable terminate ID [--reason TEXT]``."""
    async with Client(args.db) as client:
        handle = client.get_handle(args.id)
        d = await _open_run(handle, "nothing to terminate")
        await handle.terminate(args.reason or "")
        print(f"{d.id} terminated (run {d.run_id})")
    return 0


# ---- read ------------------------------------------------------------------------------


async def list_runs(args: argparse.Namespace) -> int:
    """``durable list``: runs, newest first."""
    async with Client(args.db) as client:
        listing = client.list(
            status=args.status,
            name=args.name,
            limit=args.limit,
            cursor=args.after,
            tags=dict(args.tag) if args.tag else None,
            created_after=args.created_after,
            created_before=args.created_before,
        )
        try:
            runs = [d async for d in listing]
        except ValueError as exc:  # a tag no run could carry
            raise Refused(str(exc)) from None
    if args.json:
        _print_json(runs)
        return 0
    if not runs:
        filters = [f"{k} {v!r}" for k, v in (("status", args.status), ("name", args.name)) if v]
        filters += [f"tag {k}={v}" for k, v in args.tag or ()]
        for word, when in (("since", args.created_after), ("before", args.created_before)):
            if when is not None:
                filters.append(f"created {word} {when.isoformat()}")
        print(f"no workflow runs{' with ' + ' and '.join(filters) if filters else ''}")
        return 0
    for line in render.runs_table(runs):
        print(line)
    if len(runs) == args.limit:
        print(f"(there may be more: add --after {runs[-1].run_id} for the next page)")
    return 0


async def _view(client: Client, handle: WorkflowHandle[Any]) -> render.RunView:
    d = await handle.describe()
    steps = await handle.steps()
    extras = await (await _store(client)).read_extras(d.id, d.run_id)
    published = {k: readable_value(v) for k, v in extras.published.items()}
    retry_at = {
        t.seq: datetime.fromtimestamp(t.visible_at, UTC)
        for t in extras.tasks
        if t.status == "queued"
    }
    return render.RunView(d, steps, published, await handle.history(), _now(), retry_at)


async def show(args: argparse.Namespace) -> int:
    """``durable show ID [--follow]``."""
    async with Client(args.db) as client:
        handle = client.get_handle(args.id)
        view = await _view(client, handle)
        if args.json:
            _print_json(view.to_json())
            return 0
        for line in render.run_lines(view):
            print(line)
        if args.follow:
            return await _follow(client, handle, view)
    return 0


async def _follow(client: Client, handle: WorkflowHandle[Any], view: render.RunView) -> int:
    """Print each step as it changes, and a progress line, until the run closes."""
    store = await _store(client)
    # Its own topic says when the run's status changes; a step that ends makes the run
    # ready (runs), one that begins is journaled (its steps topic; TOPIC_STEPS where a
    # NOTIFY had no room to name it) and a retry is queued (tasks). FOLLOW_POLL bounds the
    # rest.
    topics = [run_topic(handle.id), steps_topic(handle.id), TOPIC_STEPS, TOPIC_RUNS, TOPIC_TASKS]
    seen = {s.seq: (s.status, len(s.attempts)) for s in view.steps}
    run_id, shown = view.description.run_id, ""
    print()
    print(f"following {handle.id} until it closes (Ctrl-C stops)", flush=True)
    mark = store.watermark()
    view = await _view(client, handle)  # read after the mark: no change slips between
    while True:
        d = view.description
        if d.run_id != run_id:
            print(f"{render.clock(_now())}  continued as new: run {d.run_id}")
            run_id, seen = d.run_id, {}
        for step in view.steps:
            state = (step.status, len(step.attempts))
            if seen.get(step.seq) != state:
                seen[step.seq] = state
                print(f"{render.clock(_now())}  {render.step_event(step)}")
        if d.status in CLOSED_STATUSES and d.status != "continued_as_new":
            for line in render.outcome(d):
                print(line)
            return 0 if d.status == "completed" else 1
        progress = render.progress(d.status, view.steps)
        if progress != shown:
            print(f"{render.clock(_now())}  {progress}", flush=True)
            shown = progress
        await store.wait(topics, FOLLOW_POLL, since=mark)
        await asyncio.sleep(FOLLOW_GAP)  # a busy database wakes us often: look at most so often
        mark = store.watermark()
        view = await _view(client, handle)


def _failure(exc: WorkflowFailed | WorkflowCancelled) -> list[str]:
    """The lines under a failed result: the error with its traceback and causes."""
    if not isinstance(exc, WorkflowFailed):
        return []
    return render.error_lines(exc.cause, "  ")[1:]  # its first line ends the message


async def result(args: argparse.Namespace) -> int:
    """``durable result ID [--wait SECONDS]``: the result as JSON; exit 1 if the run
    failed or was cancelled, 2 if it is still going when the wait ends."""
    async with Client(args.db) as client:
        handle = client.get_handle(args.id)
        try:
            value = await handle.result(timeout=args.wait)
        except (WorkflowFailed, WorkflowCancelled) as exc:
            d = await handle.describe()
            if args.json:
                _print_json({"id": d.id, "run_id": d.run_id, "status": d.status, "error": d.error})
            raise Refused(str(exc), 1, _failure(exc)) from None
        except TimeoutError:
            d = await handle.describe()
            if args.json:
                _print_json({"id": d.id, "run_id": d.run_id, "status": d.status})
            raise Refused(
                f"{d.id} is still {d.status} after {args.wait:g}s ({_state(d)}); it goes on.",
                2,
            ) from None
        if args.json:
            d = await handle.describe()
            _print_json({"id": d.id, "run_id": d.run_id, "status": d.status, "result": value})
        else:
            _print_json(value)
    return 0


async def read(args: argparse.Namespace) -> int:
    """``durable read ID KEY [--wait SECONDS]``: the latest value published under KEY."""
    async with Client(args.db) as client:
        handle = client.get_handle(args.id)
        try:
            value = await handle.read(args.key, timeout=args.wait)
        except KeyError as exc:
            raise Refused(str(exc.args[0])) from None
        except TimeoutError:
            raise Refused(
                f"{args.id} published nothing under {args.key!r} within {args.wait:g}s.", 2
            ) from None
    _print_json({"id": args.id, "key": args.key, "value": value} if args.json else value)
    return 0


async def workers(args: argparse.Namespace) -> int:
    """``durable workers``: the live workers and what they serve."""
    async with Client(args.db) as client:
        found = await (await _store(client)).list_workers()
    if args.json:
        _print_json([render.worker_dict(w) for w in found])
    elif not found:
        print("no live workers")
    else:
        for line in render.worker_lines(found, _now()):
            print(line)
    return 0


def report(exc: Refused) -> int:
    """Print a refusal on stderr; its exit status."""
    print(f"durable: {exc}", file=sys.stderr)
    for line in exc.details:
        print(line, file=sys.stderr)
    return exc.code
