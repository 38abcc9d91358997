"""The `durable` command: run workers, start and steer workflows, look inside them.

    durable worker myapp.orders --db sqlite:///app.db --queue default --concurrency 50
    durable start place_order --input '[{"id": "o-1", "cents": 1200}]' --id order-1
    durable list --status running
    durable show order-1 [--follow]
    durable result order-1 --wait 60
    durable read order-1 progress
    durable signal order-1 approved true
    durable query cart-7 has '"apple"'
    durable update cart-7 add '"apple"' [--update-id ID] [--wait SECONDS]
    durable cancel order-1
    durable terminate order-1 --reason "bad data"
    durable retry order-1
    durable fork order-1 --at-seq 7 --id order-1-again
    durable workers
    durable schedule create|list|show|pause|resume|trigger|backfill|delete ...
    durable prune --older-than 30d
    durable queue list
    durable queue limits media --concurrency 10 --key-concurrency 2 --rate 100/1m
    durable server --host 127.0.0.1 --port 8233 [--token TOKEN]
    durable logs order-1 [--step 4] [--follow]
    durable export order-1 --output order-1.json
    durable replay myapp.workflows [--file order-1.json] [--name N] [--limit K]
    durable demo

The database comes from ``--db``, else ``$DURABLE_DB``, else ``sqlite:///durable.db``.
Read commands take ``--json`` and print one JSON document. This module parses arguments
and runs workers; `commands` does the rest, `render` shows it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from .. import __version__, telemetry
from ..client import DEFAULT_URL, Client
from ..definition import ActivityDefinition
from ..errors import DurableError
from ..store import STATUSES
from ..urls import redact_url
from ..worker import Worker
from . import (
    commands,
    logs,
    messaging,
    queries,
    queues,
    repair,
    replaying,
    retention,
    schedules,
    serve,
)

__all__ = ["STATUSES", "collect", "main"]


def collect(modules: Sequence[ModuleType]) -> tuple[list[Any], list[Any]]:
    """The workflows and activities the given modules define (by their decorators).

    Method activities are found on the module's objects: ``payments = Payments(pool)`` at
    module level serves ``payments.charge`` (the class alone has no object to call them on).
    """
    workflows: list[Any] = []
    activities: list[Any] = []
    for module in modules:
        for value in vars(module).values():
            if getattr(value, "__durable_workflow__", None) is not None and value not in workflows:
                workflows.append(value)
                continue
            for found in _activities_of(value):
                if found not in activities:
                    activities.append(found)
    return workflows, activities


def _activities_of(value: Any) -> list[Any]:
    """The activities a module-level value is: an ``@activity`` function, a bound method
    activity, or an object whose class defines method activities (its bound methods)."""
    defn = getattr(value, "__durable_activity__", None)
    if isinstance(defn, ActivityDefinition):
        # A method taken from its class has no object: its objects' methods are found below.
        return [] if defn.method and not inspect.ismethod(value) else [value]
    if isinstance(value, type | ModuleType) or inspect.isroutine(value):
        return []
    found: dict[str, Any] = {}
    for cls in type(value).__mro__:
        for attr, member in vars(cls).items():
            member_defn = getattr(member, "__durable_activity__", None)
            if isinstance(member_defn, ActivityDefinition) and member_defn.method:
                found.setdefault(attr, getattr(value, attr))
    return list(found.values())


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


def _json_argument(text: str) -> Any:
    """An argument given as JSON; argparse names the argument when this refuses it."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): {text!r}. "
            """Give a JSON value: a string needs its quotes, e.g. '"ada"' or '["ada", 3]'."""
        ) from None


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
            retention=args.retention,
        )
        if args.metrics_port is not None:
            token = args.metrics_token or os.environ.get("DURABLE_TOKEN") or None
            try:
                telemetry.serve(args.metrics_port, args.metrics_host, token)
            except ValueError as exc:
                raise SystemExit(f"durable: {exc}") from None
        where = redact_url(client.url)  # never print a password
        # The banner comes once the worker runs, with its SIGTERM/SIGINT handlers in place:
        # a supervisor that stops it as soon as it says it is up gets a graceful stop.
        async with worker, asyncio.TaskGroup() as tasks:
            print(
                f"durable worker {worker.worker_id} on {where}: queues {list(worker.queues)}, "
                f"{len(workflows)} workflow(s), {len(activities)} activity(ies). Ctrl-C stops.",
                flush=True,
            )
            if args.metrics_port is not None:
                # The queue figures, read every few seconds while the worker runs.
                store = await client._open()
                refresher = tasks.create_task(telemetry.refresh_queues(store, client.clock.now))
                print(
                    f"Metrics at http://{args.metrics_host}:{args.metrics_port}/metrics",
                    flush=True,
                )
            assert worker._background is not None
            await worker._background  # until a signal (or stop()) ends it
            if args.metrics_port is not None:
                refresher.cancel()
    return 0


async def _replay(args: argparse.Namespace) -> int:
    workflows, _ = collect(_import(args.modules))
    if not workflows:
        raise SystemExit(f"durable: no @workflow functions found in {', '.join(args.modules)}.")
    return await replaying.replay_runs(args, workflows)


async def _demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    await run_demo(args.db)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="durable", description="Durable execution: run workers, start and steer workflows."
    )
    parser.add_argument("--version", action="version", version=f"durable {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, help: str, *, json: bool = False, under: Any = None
    ) -> argparse.ArgumentParser:
        p = (under or sub).add_parser(name, help=help, description=help)
        p.add_argument(
            "--db",
            default=None,
            help=f"database URL (default: $DURABLE_DB or {DEFAULT_URL})",
        )
        if json:
            p.add_argument("--json", action="store_true", help="print one JSON document")
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
    p.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (default: none)",
    )
    p.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address of the metrics endpoint (default: 127.0.0.1; any other needs a token)",
    )
    p.add_argument(
        "--metrics-token",
        metavar="TOKEN",
        help="scrapes must send 'Authorization: Bearer TOKEN' (default: $DURABLE_TOKEN)",
    )
    p.add_argument(
        "--retention",
        type=retention.age,
        metavar="AGE",
        help="also delete runs closed longer ago than AGE (e.g. 30d), at start and every "
        "10 minutes (as durable prune does)",
    )
    p.set_defaults(run=_worker)

    p = command("start", "start a workflow by name", json=True)
    p.add_argument("name")
    p.add_argument(
        "--input", type=_json_argument, help="JSON: a list of arguments, or one argument"
    )
    p.add_argument("--id", help="workflow id (default: random)")
    p.add_argument("--queue", help="queue (default: 'default')")
    p.add_argument(
        "--if-exists",
        choices=("return", "error", "restart"),
        default="return",
        help="when the id is taken: return that run (default), fail, or start it again "
        "if it has closed",
    )
    p.add_argument(
        "--tag", action="append", type=_tag, metavar="KEY=VALUE", help="label the run (repeatable)"
    )
    p.set_defaults(run=commands.start)

    p = command("list", "list workflow runs, newest first", json=True)
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--name", help="only runs of this workflow")
    p.add_argument("--limit", type=_at_least_one, default=50, help="at most this many (50)")
    p.add_argument(
        "--after",
        metavar="RUN_ID",
        help="the next page: the runs after this one (the last run id of the previous page)",
    )
    p.add_argument(
        "--tag",
        action="append",
        type=_tag,
        metavar="KEY=VALUE",
        help="only runs with this tag (repeatable: all must match)",
    )
    p.add_argument(
        "--created-after",
        type=retention.moment,
        metavar="TIME",
        help="only runs started then or later (ISO 8601)",
    )
    p.add_argument(
        "--created-before",
        type=retention.moment,
        metavar="TIME",
        help="only runs started before (ISO 8601)",
    )
    p.set_defaults(run=commands.list_runs)

    p = command("show", "a run: status, error, steps, published values, history", json=True)
    p.add_argument("id")
    p.add_argument(
        "--follow", action="store_true", help="then print steps as they change until it closes"
    )
    p.set_defaults(run=commands.show)

    p = command(
        "result",
        "wait for a run's result and print it as JSON (exit 1 if it failed or was "
        "cancelled, 2 if --wait ran out)",
        json=True,
    )
    p.add_argument("id")
    p.add_argument(
        "--wait", type=_wait, metavar="SECONDS", help="give up after this long (default: never)"
    )
    p.set_defaults(run=commands.result)

    p = command("read", "print the latest value a run published under KEY", json=True)
    p.add_argument("id")
    p.add_argument("key")
    p.add_argument(
        "--wait",
        type=_wait,
        metavar="SECONDS",
        help="if nothing is published yet, wait this long (default: until it is)",
    )
    p.set_defaults(run=commands.read)

    p = command("workers", "list the live workers and what they serve", json=True)
    p.set_defaults(run=commands.workers)

    p = command("signal", "send a signal to a workflow")
    p.add_argument("id")
    p.add_argument("name")
    p.add_argument("value", nargs="?", type=_json_argument, help="JSON value (default: null)")
    p.set_defaults(run=commands.signal)

    queries.add_command(command, _json_argument)

    p = command("update", "send an update to a workflow and print its result", json=True)
    p.add_argument("id")
    p.add_argument("name")
    p.add_argument(
        "args", nargs="*", type=_json_argument, help="JSON values: the handler's arguments"
    )
    p.add_argument(
        "--update-id", help="makes it idempotent: sent again, the same id gets the same outcome"
    )
    p.add_argument(
        "--wait", type=_wait, metavar="SECONDS", help="give up after this long (default: never)"
    )
    p.set_defaults(run=messaging.update)

    p = command("cancel", "request cancellation of a workflow")
    p.add_argument("id")
    p.set_defaults(run=commands.cancel)

    p = command("terminate", "close a workflow now, running no more of its code")
    p.add_argument("id")
    p.add_argument("--reason")
    p.set_defaults(run=commands.terminate)

    p = command("logs", "print what a run's activities and workflow code logged", json=True)
    p.add_argument("id")
    p.add_argument("--step", type=int, metavar="SEQ", help="only the records of this step")
    p.add_argument(
        "--follow", action="store_true", help="then print new records until the run closes"
    )
    p.set_defaults(run=logs.logs)

    p = command("export", "write a run (its journal) as JSON, for `durable replay --file`")
    p.add_argument("id")
    p.add_argument("--run-id", help="an older run of that id (default: the current run)")
    p.add_argument("--output", "-o", metavar="FILE", help="write here (default: stdout)")
    p.set_defaults(run=replaying.export)

    p = command(
        "replay",
        "replay recorded runs against the current code (exit 1 and a diff at the first "
        "divergence): the gate before a deploy",
    )
    p.add_argument("modules", nargs="+", metavar="MODULE")
    p.add_argument(
        "--file",
        action="append",
        metavar="FILE",
        help="a run exported by `durable export` (repeatable; default: runs in --db)",
    )
    p.add_argument("--name", help="only runs of this workflow")
    p.add_argument(
        "--limit",
        type=_at_least_one,
        default=100,
        help="the newest runs of each workflow to replay (default: 100)",
    )
    p.set_defaults(run=_replay)

    repair.add_commands(command)

    p = command("server", "serve the HTTP API and the console on uvicorn")
    p.add_argument(
        "--host",
        default=serve.DEFAULT_HOST,
        help=f"address to listen on (default: {serve.DEFAULT_HOST}); any other than "
        "loopback needs a token",
    )
    p.add_argument(
        "--port", type=_port, default=serve.DEFAULT_PORT, help=f"(default: {serve.DEFAULT_PORT})"
    )
    p.add_argument(
        "--token",
        help="every request must send 'Authorization: Bearer TOKEN' (default: $DURABLE_TOKEN)",
    )
    p.set_defaults(run=serve.serve)

    p = command(
        "prune",
        "delete the runs closed longer ago than AGE, with their journals (never an open "
        "run, nor the child of an open parent)",
        json=True,
    )
    p.add_argument(
        "--older-than",
        type=retention.age,
        required=True,
        metavar="AGE",
        help="e.g. 30d, 12h, 90m, 2w or 1d12h (units: s, m, h, d, w)",
    )
    p.set_defaults(run=retention.prune)

    p = command("demo", "run a sample workflow end to end on a SQLite file")
    p.set_defaults(run=_demo)
    schedules.add_commands(sub, command, _json_argument)
    queues.add_commands(sub)
    return parser


def _tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, like customer=acme, got {text!r}")
    return key, value


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def _wait(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `durable` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "follow", False) and args.json:
        parser.error(
            "show --follow prints text as the run goes on; to wait for the outcome as JSON, "
            "use: durable result ID --json"
        )
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "worker" and not args.verbose:
        # INFO records are made (and kept as step logs: durable.steplogs); only warnings
        # are printed.
        root = logging.getLogger()
        root.setLevel(logging.INFO)
        for handler in root.handlers:
            handler.setLevel(logging.WARNING)
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
    except commands.Refused as exc:
        return commands.report(exc)

    except DurableError as exc:
        print(f"durable: {exc}", file=sys.stderr)
        return 1
