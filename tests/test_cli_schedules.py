"""``durable schedule ...`` on a SQLite file: create, list, show, trigger, backfill,
pause, resume, delete, with --json on reads, and bad input refused with what was wrong and
how to fix it. The command's ``main`` runs in this process (a process per command would
cost a second each; tests/test_cli.py covers the command as its own process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from durable.cli import main


class Cli:
    """``durable ARGS --db DB`` through `durable.cli.main`, output captured."""

    def __init__(self, db: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.db, self.capsys = db, capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            code = main([*args, "--db", self.db])
        except SystemExit as exc:  # argparse refusing an argument
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *args: str) -> str:
        code, out, err = self(*args)
        assert code == 0, err
        return out

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def refused(self, *args: str, code: int = 1) -> str:
        got, _, err = self(*args)
        assert got == code, err
        assert "Traceback" not in err
        return err


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(f"sqlite:///{tmp_path / 'cli.db'}", capsys)


def test_schedule_commands(cli: Cli) -> None:
    out = cli.ok(
        "schedule", "create", "etl", "relay", "--cron", "0 * * * *",
        "--timezone", "Europe/Berlin", "--input", "[0, 0]", "--catchup-window", "5m",
    )  # fmt: skip
    assert out.startswith("schedule etl: relay at '0 * * * *' (Europe/Berlin); next ")
    [listed] = cli.json("schedule", "list")
    assert (listed["id"], listed["cron"], listed["timezone"], listed["overlap"]) == (
        "etl",
        "0 * * * *",
        "Europe/Berlin",
        "skip",
    )
    assert listed["catchup_window"] == 300.0
    assert len(listed["next_fire_times"]) == 5
    assert listed["next_fire_times"][0].endswith(":00:00+01:00")  # Berlin time, December
    table = cli.ok("schedule", "list")
    assert table.splitlines()[0].split() == [
        "ID", "WORKFLOW", "CRON", "ZONE", "OVERLAP", "NEXT", "LAST", "RUN",
    ]  # fmt: skip
    started = cli.json("schedule", "backfill", "etl", "2026-12-01T09:00", "2026-12-01T11:00",
                       "--overlap", "allow_all")  # fmt: skip
    assert started == {
        "started": [
            "etl@2026-12-01T09:00:00Z",
            "etl@2026-12-01T10:00:00Z",
            "etl@2026-12-01T11:00:00Z",
        ]
    }
    # The overlap policy (skip) holds a trigger back while a run is open.
    assert "nothing started" in cli.ok("schedule", "trigger", "etl")
    shown = cli.ok("schedule", "show", "etl")
    assert "cron       0 * * * * in Europe/Berlin" in shown
    assert "  etl@2026-12-01T11:00:00Z  pending" in shown
    assert cli.ok("schedule", "pause", "etl") == "schedule etl: paused\n"
    assert cli.json("schedule", "show", "etl")["paused"] is True
    assert cli.ok("schedule", "resume", "etl") == "schedule etl: resumed\n"
    assert cli.ok("schedule", "delete", "etl") == "schedule etl: deleted\n"
    assert cli.ok("schedule", "list") == "no schedules\n"


def test_schedule_bad_input_is_refused(cli: Cli) -> None:
    said = cli.refused("schedule", "create", "s", "wf", "--cron", "0 * * *")
    assert "does not parse" in said
    assert "'0 * * * *' (hourly)" in said
    said = cli.refused("schedule", "create", "s", "wf", "--cron", "0 * * * *", "--timezone", "X/Y")
    assert "Unknown time zone 'X/Y'" in said
    said = cli.refused("schedule", "create", "s", "wf", "--cron", "0 * * * *", "--overlap", "no",
                       code=2)  # fmt: skip
    assert "invalid choice: 'no'" in said
    cli.ok("schedule", "create", "s", "wf", "--cron", "0 * * * *")
    said = cli.refused("schedule", "backfill", "s", "2026-12-02T00:00", "2026-12-01T00:00")
    assert "is after its end" in said
    said = cli.refused("schedule", "backfill", "s", "yesterday", "2026-12-01T00:00", code=2)
    assert "expected an ISO 8601 time" in said
    assert "No schedule with id 'nope'" in cli.refused("schedule", "show", "nope")
    assert "No schedule with id 'nope'" in cli.refused("schedule", "pause", "nope")
