"""What the `durable` read commands show: `show` (and `--follow`), `result`, `read`,
`workers`, and their ``--json`` documents, as real processes on every backend."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from pathlib import Path
from uuid import UUID

import pytest
from clikit import WAIT, Cli, env, history_kinds, section, serve, stop

from durable.cli.render import RunView, jsonable, progress, relative, run_lines
from durable.client import Event, WorkflowDescription
from durable.errors import RemoteError
from durable.steps import Step

pytestmark = pytest.mark.slow  # real processes: a few seconds in all

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"  # a time as shown (TZ=UTC)


@pytest.fixture
def cli(store_url: str, tmp_path: Path) -> Cli:
    """Commands against a fresh database of each backend (SQLite file, PostgreSQL schema)."""
    return Cli(db=store_url, cwd=tmp_path)


@pytest.fixture
def worker(cli: Cli, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """`durable worker cli_app` in the background; stopped with SIGTERM, must exit 0."""
    with serve(cli, tmp_path) as proc:
        yield proc


def _steps(show_output: str) -> list[list[str]]:
    """The rows of the steps table (details left out), split on whitespace."""
    rows = section(show_output, "steps (")
    return [row.split() for row in rows[1:] if re.match(r"  \d", row)]


def test_show_a_failed_run_with_its_traceback(cli: Cli, worker: subprocess.Popen[str]) -> None:
    cli.ok("start", "fail_with", "--input", '"kaboom"', "--id", "wf-f")
    shown = cli.wait_for("wf-f", "workflow_failed")
    lines = shown.splitlines()
    assert lines[0] == "fail_with wf-f"
    assert re.fullmatch(r"  run          [0-9a-f-]{36}", lines[1])
    assert lines[2:4] == ["  status       failed", "  queue        default"]
    ago = r"(now|\d+ seconds? ago) \(" + ISO + r"\)"
    assert re.fullmatch(r"  created      " + ago, lines[4])
    assert re.fullmatch(r"  closed       " + ago, lines[5])
    assert lines[6] == '  input        ["kaboom"]'
    error = (
        "ActivityError: Activity 'explode' (step 2 of workflow 'wf-f') failed after "
        "2 attempt(s): ValueError: kaboom"
    )
    assert f"  error        {error}\n" in shown
    # The workflow's traceback, then the activity's, where it was raised, indented.
    assert "                 Traceback (most recent call last):\n" in shown
    assert "               caused by:\n               ValueError: kaboom\n" in shown
    assert "                     raise ValueError(why)\n" in shown
    (row,) = _steps(shown)
    assert row[:6] == ["2", "activity", "explode", "0", "failed", "2"]
    assert re.fullmatch(ISO, row[6])
    assert re.fullmatch(r"\d+ms|\d+\.\ds", row[7])  # how long it took, both attempts
    steps = section(shown, "steps (")
    assert steps[2] == "       last error (attempt 2): ValueError: kaboom"
    assert re.fullmatch(r'         at File ".*cli_app\.py", line \d+, in explode', steps[3])
    assert "published: nothing\n" in shown
    # The history says what happened, without the tracebacks.
    assert history_kinds(shown) == [
        "workflow_started",
        "activity_scheduled",
        "activity_retrying",
        "activity_failed",
        "workflow_failed",
    ]
    history = shown.split("history:\n")[1]
    assert "Traceback" not in history
    assert '"error": "ValueError: kaboom"' in history

    done = cli("result", "wf-f")
    assert done.returncode == 1
    assert done.stdout == ""
    stderr = done.stderr.splitlines()
    assert stderr[0] == f"durable: Workflow 'fail_with' (wf-f) failed: {error}"
    assert stderr[1] == "    Traceback (most recent call last):"
    assert "  ValueError: kaboom" in stderr
    assert "        raise ValueError(why)" in stderr

    failed = cli("result", "wf-f", "--json")
    assert failed.returncode == 1
    doc = json.loads(failed.stdout)
    assert doc["status"] == "failed"
    assert doc["error"]["type"] == "ActivityError"
    assert doc["error"]["cause"]["type"] == "ValueError"
    assert "raise ValueError(why)" in doc["error"]["cause"]["traceback"]


def test_show_an_activity_waiting_to_retry(cli: Cli, worker: subprocess.Popen[str]) -> None:
    cli.ok("start", "fail_slowly", "--input", '"not yet"', "--id", "wf-r")
    shown = cli.wait_for("wf-r", "activity_retrying")
    assert (
        "  progress     0/1 steps done, activity 'explode' retrying after ValueError: not yet\n"
        in shown
    )
    steps = section(shown, "steps (")
    assert steps[1].split()[:6] == ["2", "activity", "explode", "0", "retrying", "1"]
    assert re.fullmatch(r"       next attempt in 10 minutes \(" + ISO + r"\)", steps[2])
    assert steps[3] == "       last error (attempt 1): ValueError: not yet"
    assert re.fullmatch(r'         at File ".*cli_app\.py", line \d+, in explode', steps[4])
    assert re.search(
        r"pending:\n  activity explode, attempt 2, since " + ISO + "; last error: "
        r"ValueError: not yet\n",
        shown,
    )
    cli.ok("terminate", "wf-r")


def test_show_signal_deadline_timer_and_published(cli: Cli, worker: subprocess.Popen[str]) -> None:
    cli.ok("start", "approve_then_sleep", "--id", "wf-a")
    shown = cli.wait_for("wf-a", "signal_wait_started")
    assert re.search(
        r"  progress     1/2 steps done, waiting for signal 'approve' since \d\d:\d\d:\d\d\n",
        shown,
    )
    steps = section(shown, "steps (")
    assert [row.split()[:6] for row in steps if re.match(r"  \d", row)] == [
        ["2", "publish", "stage", "0", "completed", "-"],
        ["3", "signal", "approve", "0", "waiting", "-"],
    ]
    assert steps[2] == '       = {"waiting": "approval"}'
    assert re.fullmatch(r"       deadline in 2 days \(" + ISO + r"\)", steps[4])
    assert section(shown, "published:") == ['  stage  {"waiting": "approval"}']
    assert re.search(r"pending:\n  signal approve until \S+, since " + ISO + "\n", shown)
    # Times are local, with their offset: here India's.
    india = cli("show", "wf-a", tz="Asia/Kolkata").stdout
    assert re.search(r"  created      .*\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+05:30\)\n", india)

    assert cli.ok("read", "wf-a", "stage") == '{\n  "waiting": "approval"\n}\n'
    cli.ok("signal", "wf-a", "approve")
    shown = cli.wait_for("wf-a", "sleeping until")
    steps = section(shown, "steps (")
    assert [row.split()[:5] for row in steps if re.match(r"  \d", row)][-2:] == [
        ["6", "publish", "stage", "0", "completed"],
        ["7", "timer", "timer", "0", "waiting"],
    ]
    assert re.fullmatch(r"       due in 3 days \(" + ISO + r"\)", steps[-1])
    assert re.search(r"  progress     3/4 steps done, sleeping until " + ISO + "\n", shown)
    assert cli.json("read", "wf-a", "stage") == {
        "id": "wf-a",
        "key": "stage",
        "value": {"waiting": "timer"},
    }
    # Nothing published under a key: wait, then say so (2: still running, 1: closed).
    assert cli.refused("read", "wf-a", "nope", "--wait", "0.2", code=2) == (
        "durable: wf-a published nothing under 'nope' within 0.2s.\n"
    )
    cli.ok("terminate", "wf-a")
    assert cli.refused("read", "wf-a", "nope") == (
        "durable: Workflow 'wf-a' closed without publishing 'nope'\n"
    )


def test_show_a_running_activity_and_the_workers(cli: Cli, worker: subprocess.Popen[str]) -> None:
    (live,) = cli.json("workers")
    assert live["pid"] == worker.pid
    assert live["queues"] == ["default"]
    assert live["workflows"] == [
        "approve_then_sleep",
        "crawl_pages",
        "durable.map.batch",  # built in: the batches of durable.map(..., batch_size=)
        "fail_slowly",
        "fail_with",
        "greet_when_told",
    ]
    assert live["activities"] == ["crawl", "explode", "greet"]
    started = datetime.fromisoformat(live["started_at"])
    assert abs(datetime.now(UTC) - started) < timedelta(seconds=WAIT)
    text = cli.ok("workers").splitlines()
    assert text[0] == f"{live['id']}  (host {live['host']}, pid {worker.pid})"
    assert text[1:4] == [
        "  queues       default",
        "  workflows    approve_then_sleep, crawl_pages, durable.map.batch, fail_slowly, "
        "fail_with, greet_when_told",
        "  activities   crawl, explode, greet",
    ]
    assert re.fullmatch(r"  heartbeat    (now|\d+ seconds? ago) \(" + ISO + r"\)", text[5])

    cli.ok("start", "crawl_pages", "--input", "100000", "--id", "wf-c")
    # Heartbeat details reach the database at the worker's next lease renewal.
    shown = cli.wait_for("wf-c", "heartbeat {")
    steps = section(shown, "steps (")
    assert steps[1].split()[:6] == ["2", "activity", "crawl", "0", "running", "1"]
    assert re.fullmatch(
        rf'       attempt 1 running on {re.escape(live["id"])}, heartbeat \{{"page": \d+\}}',
        steps[2],
    )
    assert re.search(
        r"  progress     0/1 steps done, running activity 'crawl' \(attempt 1, heartbeat "
        r'\{"page": \d+\}\)\n',
        shown,
    )
    doc = cli.json("show", "wf-c")
    (step,) = doc["steps"]
    assert step["status"] == "running"
    assert step["attempts"][-1]["heartbeat"]["page"] >= 0
    cli.ok("terminate", "wf-c")
    # A stopped worker is gone from the list at once.
    assert stop(worker) == 0
    assert cli.ok("workers") == "no live workers\n"
    assert cli.json("workers") == []


def _follow(cli: Cli, workflow_id: str, out: Path) -> subprocess.Popen[str]:
    """`durable show ID --follow` in the background, printing into ``out`` (and its
    stderr into ``out.err``)."""
    with out.open("w") as stdout, out.with_suffix(".err").open("w") as stderr:
        return subprocess.Popen(
            cli.command("show", workflow_id, "--follow"),
            cwd=cli.cwd,
            env=env(),
            stdout=stdout,
            stderr=stderr,
            text=True,
        )


def _wait_text(path: Path, text: str) -> str:
    deadline = time.monotonic() + WAIT
    while text not in path.read_text():
        assert time.monotonic() < deadline, f"no {text!r} within {WAIT}s:\n{path.read_text()}"
        time.sleep(0.05)
    return path.read_text()


def test_follow_until_completed(cli: Cli, worker: subprocess.Popen[str], tmp_path: Path) -> None:
    cli.ok("start", "greet_when_told", "--input", '"ada"', "--id", "wf-1")
    out = tmp_path / "follow.out"
    follow = _follow(cli, "wf-1", out)
    try:
        _wait_text(out, "waiting for signal 'go' since")
        cli.ok("signal", "wf-1", "go", "42")
        assert follow.wait(timeout=WAIT) == 0
    finally:
        stop(follow)
    assert out.with_suffix(".err").read_text() == ""
    lines = out.read_text().splitlines()
    start = lines.index("following wf-1 until it closes (Ctrl-C stops)")
    assert lines[0] == "greet_when_told wf-1"  # the whole `show` first
    after = [line[10:] for line in lines[start + 1 : -1]]  # without the time of day
    progress = r"2/3 steps done, waiting for signal 'go' since \d\d:\d\d:\d\d"
    assert any(re.fullmatch(progress, line) for line in after)
    assert "#5 signal go: completed (42)" in after
    assert all(re.match(r"\d\d:\d\d:\d\d  ", line) for line in lines[start + 1 : -1])
    assert lines[-1] == 'wf-1 completed: {"greeting": "hello ada", "go": 42}'


def test_follow_a_failing_run_exits_1(
    cli: Cli, worker: subprocess.Popen[str], tmp_path: Path
) -> None:
    cli.ok("start", "fail_with", "--input", '"kaboom"', "--id", "wf-f")
    out = tmp_path / "follow.out"
    follow = _follow(cli, "wf-f", out)
    try:
        assert follow.wait(timeout=WAIT) == 1
    finally:
        stop(follow)
    text = out.read_text()
    tail = text.split("following wf-f until it closes (Ctrl-C stops)\n")[1]
    assert "wf-f failed\n  ActivityError: Activity 'explode'" in tail
    assert "  caused by:\n  ValueError: kaboom\n" in tail
    assert "raise ValueError(why)" in tail


def test_show_and_result_as_json(cli: Cli, worker: subprocess.Popen[str]) -> None:
    cli.ok("start", "greet_when_told", "--input", '["ada"]', "--id", "wf-j")
    cli.wait_for("wf-j", "signal_wait_started")
    assert cli.refused("result", "wf-j", "--wait", "0", code=2).startswith(
        "durable: wf-j is still running after 0s (run "
    )
    cli.ok("signal", "wf-j", "go", '{"n": 1}')
    assert json.loads(cli.ok("result", "wf-j", "--wait", "20")) == {
        "greeting": "hello ada",
        "go": {"n": 1},
    }
    doc = cli.json("show", "wf-j")
    assert doc["id"] == "wf-j"
    assert doc["status"] == "completed"
    assert doc["input"] == ["ada"]
    assert doc["result"] == {"greeting": "hello ada", "go": {"n": 1}}
    assert doc["error"] is None
    assert datetime.fromisoformat(doc["created_at"]).tzinfo is not None
    assert [(s["kind"], s["name"], s["status"]) for s in doc["steps"]] == [
        ("activity", "greet", "completed"),
        ("publish", "state", "completed"),
        ("signal", "go", "completed"),
    ]
    assert doc["steps"][2]["output"] == {"n": 1}
    assert doc["published"] == {"state": "waiting"}
    assert [e["kind"] for e in doc["history"]][-1] == "workflow_completed"
    result = cli.json("result", "wf-j")
    assert result == {
        "id": "wf-j",
        "run_id": doc["run_id"],
        "status": "completed",
        "result": {"greeting": "hello ada", "go": {"n": 1}},
    }


class Colour(Enum):
    RED = "red"


@dataclass
class Point:
    x: int
    at: datetime


def test_jsonable_makes_every_value_json() -> None:
    when = datetime(2026, 12, 4, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    error = RemoteError("ValueError", "bad", "Traceback ...", cause=RemoteError("OSError", "x"))
    value = {
        "when": when,
        "took": timedelta(seconds=90),
        "raw": b"\x00\xff",
        "error": error,
        "point": Point(1, when),
        "tags": {"b", "a"},
        "pair": (1, 2),
        "money": Decimal("1.10"),
        "id": UUID(int=1),
        "colour": Colour.RED,
        3: float("nan"),
    }
    assert jsonable(value) == {
        "when": "2026-12-04T10:00:00+01:00",
        "took": 90.0,
        "raw": "AP8=",
        "error": {
            "type": "ValueError",
            "message": "bad",
            "traceback": "Traceback ...",
            "details": None,
            "non_retryable": False,
            "cause": {
                "type": "OSError",
                "message": "x",
                "traceback": "",
                "details": None,
                "non_retryable": False,
                "cause": None,
            },
        },
        "point": {"x": 1, "at": "2026-12-04T10:00:00+01:00"},
        "tags": ["a", "b"],
        "pair": [1, 2],
        "money": "1.10",
        "id": "00000000-0000-0000-0000-000000000001",
        "colour": "red",
        "3": "nan",
    }
    json.dumps(jsonable(value), allow_nan=False)  # strict JSON


def _description(**changes: object) -> WorkflowDescription:
    base = WorkflowDescription(
        id="wf-big",
        run_id="r-1",
        name="fan_out",
        status="running",
        queue="default",
        input=[],
        result=None,
        error=None,
        created_at=NOW,
        closed_at=None,
        history_length=0,
        pending=[],
        problem=None,
    )
    return replace(base, **changes)


NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC in this process (times are shown in local time)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_progress_counts_failed_steps_apart() -> None:
    """A run that caught its steps' failures completes: the line still says they failed."""
    steps = [
        Step(seq, "activity", f"a{seq}", "0", None, "failed" if seq % 2 else "completed")
        for seq in range(1, 6)
    ]
    assert progress("completed", steps) == "5/5 steps done (3 failed), completed"
    assert progress("completed", steps[1:2]) == "1/1 steps done, completed"


@pytest.mark.usefixtures("utc")
def test_a_long_run_keeps_to_the_newest_and_the_failed() -> None:
    steps = [
        Step(seq, "activity", f"a{seq}", "0", None, "failed" if seq == 1 else "completed")
        for seq in range(1, 251)
    ]
    steps.append(Step(251, "timer", "timer", "0", None, "waiting", input=NOW + timedelta(days=2)))
    events = [Event(seq, "published", NOW, {"key": "k", "value": seq}) for seq in range(1, 261)]
    lines = run_lines(RunView(_description(), steps, {}, events, NOW))
    rows = section("\n".join(lines), "steps (")
    assert rows[0] == "  ... 50 earlier steps not shown (--json has them all)"
    shown = [row.split()[0] for row in rows[2:] if re.match(r"  \d", row)]
    assert shown == ["1", *map(str, range(52, 252))]  # the failed one, then the newest 200
    assert rows[-1] == "       due in 2 days (2026-12-04T10:00:00+00:00)"
    history = "\n".join(lines).split("history:\n")[1].splitlines()
    assert history[0] == "  ... 60 earlier entries not shown (--json has them all)"
    assert history[1].split()[0] == "61"
    assert len(history) == 201


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "now"),
        (timedelta(seconds=1), "in 1 second"),
        (timedelta(seconds=-89), "89 seconds ago"),
        (timedelta(minutes=2), "in 2 minutes"),
        (timedelta(hours=-5), "5 hours ago"),
        (timedelta(days=2) - timedelta(milliseconds=1), "in 2 days"),
        (timedelta(days=-400), "400 days ago"),
    ],
)
def test_relative_times(delta: timedelta, text: str) -> None:
    assert relative(NOW + delta, NOW) == text
