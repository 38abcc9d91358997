"""The `durable` command: run workers, start and steer workflows, look inside them.

    durable worker myapp.orders --db sqlite:///app.db --queue default --concurrency 50
    durable start place_order --input '[{"id": "o-1", "cents": 1200}]' --id order-1
    durable list --status running
    durable show order-1
    durable signal order-1 approved true
    durable cancel order-1
    durable terminate order-1 --reason "bad data"
    durable demo

The database comes from ``--db``, else ``$DURABLE_DB``, else ``sqlite:///durable.db``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from .client import DEFAULT_URL, Client, WorkflowDescription
from .errors import DurableError
from .store import redact_url
from .worker import Worker

__all__ = ["collect", "main"]


def collect(modules: Sequence[ModuleType]) -> tuple[list[Any], list[Any]]:
    """The workflows and activities the given modules define (by their decorators)."""
    workflows: list[Any] = []
    activities: list[Any] = []
    for module in modules:
        for value in vars(module).values():
            if getattr(value, "__durable_workflow__", None) is not None and value not in workflows:
                workflows.append(value)
            elif (
                getattr(value, "__durable_activity__", None) is not None and value not in activities
            ):
                activities.append(value)
    return workflows, activities


def _import(names: Sequence[str]) -> list[ModuleType]:
    sys.path.insert(0, os.getcwd())
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if not _is_requested(name, exc.name):
                # The module is there; something it imports is not.
                raise SystemExit(
                    f"durable: module {name!r} failed to import: {exc} (a dependency of "
                    f"{name}? Install it in this environment, or fix the import.)"
                ) from exc
            raise SystemExit(
                f"durable: cannot import module {name!r}: {exc}. Give a dotted module name "
                "importable from the current directory (e.g. myapp.workflows)."
            ) from exc
        except ImportError as exc:  # e.g. "cannot import name ..." inside the module
            raise SystemExit(f"durable: module {name!r} failed to import: {exc}") from exc
    return modules


def _is_requested(name: str, missing: str | None) -> bool:
    """Whether the missing module is ``name`` itself or a package it is in (so the name is
    wrong), rather than something ``name`` imports."""
    return missing is not None and (name == missing or name.startswith(missing + "."))


def _json(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"durable: {what} is not valid JSON ({exc}): {text!r}") from exc


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


async def _worker(args: argparse.Namespace) -> int:
    workflows, activities = collect(_import(args.modules))
    if not workflows and not activities:
        raise SystemExit(
            f"durable: no @workflow or @activity functions found in {', '.join(args.modules)}."
        )
    async with Client(args.db) as client:
        worker = Worker(
            client,
            workflows=workflows,
            activities=activities,
            queues=args.queue or None,
            max_concurrency=args.concurrency,
            lease_seconds=args.lease,
        )
        where = redact_url(client.url)  # never print a password
        print(
            f"durable worker {worker.worker_id} on {where}: queues {list(worker.queues)}, "
            f"{len(workflows)} workflow(s), {len(activities)} activity(ies). Ctrl-C stops.",
            flush=True,
        )
        await worker.run()
    return 0


async def _start(args: argparse.Namespace) -> int:
    data = _json(args.input, "--input")
    call_args = data if isinstance(data, list) else ([] if data is None else [data])
    async with Client(args.db) as client:
        handle = await client.start(args.name, *call_args, id=args.id, queue=args.queue)
        print(handle.id)
    return 0


def _row(d: WorkflowDescription) -> str:
    created = d.created_at.strftime("%Y-%m-%d %H:%M:%S")
    return f"{d.id:<36} {d.name:<24} {d.status:<17} {created}"


async def _list(args: argparse.Namespace) -> int:
    async with Client(args.db) as client:
        print(f"{'ID':<36} {'NAME':<24} {'STATUS':<17} CREATED")
        async for d in client.list(status=args.status, name=args.name, limit=args.limit):
            print(_row(d))
    return 0


async def _show(args: argparse.Namespace) -> int:
    async with Client(args.db) as client:
        handle = client.get_handle(args.id)
        d = await handle.describe()
        print(f"{d.name} {d.id} (run {d.run_id})")
        print(f"  status   {d.status}")
        print(f"  queue    {d.queue}")
        print(f"  input    {_jsonable(d.input)}")
        if d.result is not None:
            print(f"  result   {_jsonable(d.result)}")
        if d.error is not None:
            print(f"  error    {d.error}")
        if d.problem:
            print(f"  problem  {d.problem}")
        for step in d.pending:
            err = f" last error: {step.last_error}" if step.last_error else ""
            print(f"  pending  {step.kind} {step.name} attempt {step.attempt}{err}")
        print("history:")
        for event in await handle.history():
            data = {k: v for k, v in event.data.items() if k not in ("retry", "traceback")}
            print(f"  {event.seq:>4} {event.time:%H:%M:%S.%f} {event.kind:<20} {_jsonable(data)}")
    return 0


async def _signal(args: argparse.Namespace) -> int:
    async with Client(args.db) as client:
        await client.get_handle(args.id).signal(args.name, _json(args.value, "the value"))
    return 0


async def _cancel(args: argparse.Namespace) -> int:
    async with Client(args.db) as client:
        await client.get_handle(args.id).cancel()
    return 0


async def _terminate(args: argparse.Namespace) -> int:
    async with Client(args.db) as client:
        await client.get_handle(args.id).terminate(args.reason or "")
    return 0


async def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    await run_demo(args.db)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="durable", description="Durable execution: run workers, start and steer workflows."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument(
            "--db",
            default=None,
            help=f"database URL (default: $DURABLE_DB or {DEFAULT_URL})",
        )
        return p

    p = command("worker", "serve the workflows and activities the modules define")
    p.add_argument("modules", nargs="+", metavar="MODULE")
    p.add_argument("--queue", action="append", help="a queue to serve (repeatable)")
    p.add_argument("--concurrency", type=_at_least_one, default=100, help="activities at once")
    p.add_argument(
        "--lease",
        type=_seconds,
        metavar="SECONDS",
        help="how long this worker's claims outlive it if it dies (default: 30); "
        "others take over after that",
    )
    p.set_defaults(run=_worker)

    p = command("start", "start a workflow by name; prints its id")
    p.add_argument("name")
    p.add_argument("--input", help="JSON: a list of arguments, or one argument")
    p.add_argument("--id", help="workflow id (default: random); starting is idempotent on it")
    p.add_argument("--queue", help="queue (default: 'default')")
    p.set_defaults(run=_start)

    p = command("list", "list workflow runs, newest first")
    p.add_argument("--status")
    p.add_argument("--name")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(run=_list)

    p = command("show", "describe a workflow and print its history")
    p.add_argument("id")
    p.set_defaults(run=_show)

    p = command("signal", "send a signal to a workflow")
    p.add_argument("id")
    p.add_argument("name")
    p.add_argument("value", nargs="?", help="JSON value (default: null)")
    p.set_defaults(run=_signal)

    p = command("cancel", "request cancellation of a workflow")
    p.add_argument("id")
    p.set_defaults(run=_cancel)

    p = command("terminate", "close a workflow now, running no more of its code")
    p.add_argument("id")
    p.add_argument("--reason")
    p.set_defaults(run=_terminate)

    p = command("demo", "run a sample workflow end to end on a SQLite file")
    p.set_defaults(run=_demo)
    return parser


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `durable` console script."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "demo" and args.db is None:
        args.db = os.environ.get("DURABLE_DB") or "sqlite:///durable-demo.db"
    try:
        return int(asyncio.run(args.run(args)))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except DurableError as exc:
        print(f"durable: {exc}", file=sys.stderr)
        return 1
