"""`durable export` and `durable replay`: the replay gate before a deploy (`durable.replayer`).

    durable export order-7 --output order-7.json
    durable replay myapp.workflows --file order-7.json
    durable replay myapp.workflows --db "$PROD_DB_READONLY" --limit 200

`replay` exits 0 when every run replays, 1 with a readable diff at the first divergence
(or when a history cannot be replayed at all), so it can gate a deploy in CI.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import anyio

from ..client import Client
from ..errors import NonDeterminismError
from ..replayer import ReplayError, RunHistory, divergence_report, replay
from ..rows import RunRecord
from .commands import Refused

__all__ = ["export", "replay_runs"]


async def export(args: argparse.Namespace) -> int:
    """``durable export ID``: the run (the current one, or ``--run-id``) as export JSON."""
    async with Client(args.db) as client:
        store = await client._open()
        run = await store.get_run(args.id, args.run_id)
        if run is None:
            which = f"run {args.run_id} of " if args.run_id else ""
            raise Refused(f"No {which}workflow {args.id!r} in {client.url}.")
        history = RunHistory.of(run, await store.read_journal(run.run_id))
    text = json.dumps(history.to_json(), indent=1)
    if args.output:
        await anyio.Path(args.output).write_text(text + "\n", encoding="utf-8")
        entries = len(history.entries)
        print(f"Exported {run.workflow_id} (run {run.run_id}, {entries} entries) to {args.output}")
    else:
        print(text)
    return 0


async def replay_runs(args: argparse.Namespace, workflows: Sequence[Any]) -> int:
    """``durable replay MODULE``: replay exported files (``--file``) or the newest runs of
    each workflow in the database against the code; 1 and a diff at the first divergence."""
    names = sorted({w.__durable_workflow__.name for w in workflows})
    if args.name and args.name not in names:
        raise Refused(
            f"{args.name!r} is not a workflow of the given module(s) (they define: "
            f"{', '.join(names) or 'none'})."
        )
    try:
        histories = (
            [RunHistory.load(path) for path in args.file]
            if args.file
            else await _from_database(args, [args.name] if args.name else names)
        )
    except ReplayError as err:
        raise Refused(str(err)) from None
    replayed = 0
    skipped: dict[str, int] = {}
    for history in histories:
        if history.name not in names or (args.name and history.name != args.name):
            skipped[history.name] = skipped.get(history.name, 0) + 1
            continue
        try:
            replay(history, workflows)
        except NonDeterminismError as err:
            print(divergence_report(history, err), file=sys.stderr)
            print(f"{replayed} run(s) replayed before this one.", file=sys.stderr)
            return 1
        except ReplayError as err:
            print(f"durable replay: {err}", file=sys.stderr)
            return 1
        replayed += 1
    others = ", ".join(f"{n} ({k})" for n, k in sorted(skipped.items()))
    print(
        f"{replayed} run(s) replayed against this code: all match."
        + (f" Skipped, of workflows not in the module: {others}." if others else "")
    )
    return 0


async def _from_database(args: argparse.Namespace, names: Sequence[str]) -> list[RunHistory]:
    histories = []
    async with Client(args.db) as client:
        store = await client._open()
        for name in names:
            runs: list[RunRecord] = await store.list_runs(name=name, limit=args.limit)
            for run in runs:
                histories.append(RunHistory.of(run, await store.read_journal(run.run_id)))
    return histories
