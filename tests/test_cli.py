"""The `durable` command: starting and steering runs, listing them, its errors.

Run as a person runs it: a `durable worker cli_app` process serves `tests/cli_app.py`;
every other command is a short-lived `python -m durable ...` beside it, on every backend
(see tests/clikit.py). `tests/test_cli_show.py` covers what the read commands show.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clikit import WAIT, Cli, env, history_kinds, serve, stop

import durable
from durable.cli import STATUSES
from durable.store import CLOSED_STATUSES

pytestmark = pytest.mark.slow  # real processes: a few seconds in all

RUN_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture
def cli(store_url: str, tmp_path: Path) -> Cli:
    """Commands against a fresh database of each backend (SQLite file, PostgreSQL schema)."""
    return Cli(db=store_url, cwd=tmp_path)


@pytest.fixture
def worker(cli: Cli, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """`durable worker cli_app` in the background; stopped with SIGTERM, must exit 0."""
    with serve(cli, tmp_path) as proc:
        yield proc


def _run_id(line: str) -> str:
    found = re.search(RUN_ID, line)
    assert found is not None, line
    return found.group()


def test_start_list_signal_show(cli: Cli, worker: subprocess.Popen[str]) -> None:
    started = cli.ok("start", "greet_when_told", "--input", '["ada"]', "--id", "wf-1")
    run_id = _run_id(started)
    assert started == f"started wf-1 (run {run_id})\n"
    # Idempotent on the id: the same run comes back and nothing new is started.
    again = cli.ok("start", "greet_when_told", "--input", '["bob"]', "--id", "wf-1")
    assert again.startswith(f"wf-1 already exists (run {run_id}, ")
    assert again.endswith("); returned it\n")

    waiting = cli.wait_for("wf-1", "published:\n  state  ")
    assert f"  run          {run_id}\n" in waiting
    assert "  status       running\n" in waiting
    assert '  input        ["ada"]\n' in waiting

    listing = cli.ok("list").splitlines()
    assert listing[0].split() == ["ID", "RUN", "ID", "NAME", "STATUS", "CREATED", "CLOSED"]
    assert [row.split()[:4] for row in listing[1:]] == [
        ["wf-1", run_id, "greet_when_told", "running"]
    ]

    assert cli.ok("signal", "wf-1", "go", '{"fast": true}') == (
        f"signal 'go' sent to wf-1 (run {run_id})\n"
    )
    done = cli.wait_for("wf-1", "workflow_completed")
    assert done.splitlines()[0] == "greet_when_told wf-1"
    assert "  status       completed\n" in done
    assert '  result       {"greeting": "hello ada", "go": {"fast": true}}\n' in done
    assert history_kinds(done) == [
        "workflow_started",
        "activity_scheduled",
        "activity_completed",
        "published",
        "signal_wait_started",
        "signal_received",
        "workflow_completed",
    ]
    assert re.search(r'signal_received +\{"name": "go", "value": \{"fast": true\}\}', done)

    assert [
        row.split()[:4] for row in cli.ok("list", "--status", "completed").splitlines()[1:]
    ] == [["wf-1", run_id, "greet_when_told", "completed"]]
    # A closed workflow takes no more signals, and says so.
    late = cli.refused("signal", "wf-1", "go", "1")
    assert late == (
        f"durable: wf-1 has already closed (run {run_id}, completed); signal 'go' was not sent.\n"
    )


def test_start_json_and_if_exists(cli: Cli) -> None:
    # No worker: starting, refusing and terminating need none.
    long_id = "order-" + "x" * 70  # ids of any length are shown whole
    first = cli.json("start", "greet_when_told", "--input", '"ada"', "--id", long_id)
    assert first == {"id": long_id, "run_id": first["run_id"], "created": True}
    again = cli.json("start", "greet_when_told", "--id", long_id)
    assert again == {**first, "created": False}

    refused = cli.refused("start", "greet_when_told", "--id", long_id, "--if-exists", "error")
    assert refused == (
        f"durable: {long_id} already exists (run {first['run_id']}, pending); nothing was "
        "started. Use --if-exists return to get it, or --if-exists restart to start it "
        "again once it has closed.\n"
    )
    # An id taken by another workflow is refused, whatever --if-exists says.
    for mode in ("return", "restart"):
        other = cli.refused("start", "fail_with", "--id", long_id, "--if-exists", mode)
        assert other == (
            f"durable: workflow id {long_id!r} belongs to a 'greet_when_told' workflow (run "
            f"{first['run_id']}, pending), not 'fail_with'; nothing was started. "
            "Choose another --id.\n"
        )
    # restart on an open run hands it back; on a closed one it starts afresh.
    still = cli.ok("start", "greet_when_told", "--id", long_id, "--if-exists", "restart")
    assert (
        still == f"{long_id} is still pending (run {first['run_id']}); returned it, not restarted\n"
    )
    cli.ok("terminate", long_id)
    restarted = cli.ok("start", "greet_when_told", "--id", long_id, "--if-exists", "restart")
    new_run = _run_id(restarted)
    assert new_run != first["run_id"]
    assert restarted == f"started {long_id} (run {new_run})\n"

    rows = cli.ok("list").splitlines()
    assert [row.split()[:4] for row in rows[1:]] == [
        [long_id, new_run, "greet_when_told", "pending"],
        [long_id, first["run_id"], "greet_when_told", "terminated"],
    ]
    assert [r["run_id"] for r in cli.json("list")] == [new_run, first["run_id"]]


def test_start_without_id_makes_a_fresh_one(cli: Cli, worker: subprocess.Popen[str]) -> None:
    started = cli.json("start", "greet_when_told", "--input", '"grace"')
    workflow_id = started["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", workflow_id)
    assert started["created"] is True
    cli.wait_for(workflow_id, "published:\n  state")
    cli.ok("signal", workflow_id, "go")  # no value: null
    done = cli.wait_for(workflow_id, "workflow_completed")
    assert '  result       {"greeting": "hello grace", "go": null}\n' in done


def test_cancel(cli: Cli, worker: subprocess.Popen[str]) -> None:
    run_id = _run_id(cli.ok("start", "greet_when_told", "--input", '["ada"]', "--id", "wf-c"))
    cli.wait_for("wf-c", "published:\n  state")
    assert cli.ok("cancel", "wf-c") == f"cancellation requested for wf-c (run {run_id})\n"
    done = cli.wait_for("wf-c", "workflow_cancelled")
    assert "  status       cancelled\n" in done
    assert history_kinds(done)[-2:] == ["cancel_requested", "workflow_cancelled"]
    assert cli.refused("cancel", "wf-c") == (
        f"durable: wf-c has already closed (run {run_id}, cancelled); nothing to cancel.\n"
    )


def test_terminate_with_reason(cli: Cli, worker: subprocess.Popen[str]) -> None:
    run_id = _run_id(cli.ok("start", "greet_when_told", "--input", '["ada"]', "--id", "wf-t"))
    cli.wait_for("wf-t", "published:\n  state")
    assert cli.ok("terminate", "wf-t", "--reason", "bad data") == (
        f"wf-t terminated (run {run_id})\n"
    )
    # Closed when the command returns: no waiting needed.
    done = cli.show("wf-t")
    assert "  status       terminated\n" in done
    assert "  error        Terminated: bad data\n" in done
    assert history_kinds(done)[-1] == "workflow_terminated"
    assert done.rstrip().endswith('workflow_terminated  {"reason": "bad data"}')
    assert cli.refused("terminate", "wf-t") == (
        f"durable: wf-t has already closed (run {run_id}, terminated); nothing to terminate.\n"
    )


@pytest.mark.parametrize(
    "command",
    [
        ["show", "nope"],
        ["show", "nope", "--json"],
        ["result", "nope", "--wait", "0"],
        ["read", "nope", "key", "--wait", "0"],
        ["signal", "nope", "go"],
        ["cancel", "nope"],
        ["terminate", "nope"],
    ],
)
def test_an_unknown_workflow_id_says_so(cli: Cli, command: list[str]) -> None:
    stderr = cli.refused(*command)
    assert stderr.startswith("durable: No workflow with id 'nope' in ")
    assert stderr.count("\n") == 1


def test_unserved_workflow_says_why_it_waits(cli: Cli, worker: subprocess.Popen[str]) -> None:
    cli.ok("start", "no_such_workflow", "--id", "wf-u")
    # (Polled: the worker registers itself just after printing its banner.)
    shown = cli.wait_for("wf-u", "No live worker registers workflow 'no_such_workflow'")
    assert "  status       pending\n" in shown
    # (durable.map.batch: the batches of durable.map(..., batch_size=), built into workers.)
    assert (
        "serve ['approve_then_sleep', 'crawl_pages', 'durable.map.batch', 'fail_slowly', "
        "'fail_with', 'greet_when_told']" in shown
    )
    assert "  progress     0/0 steps done, waiting for a worker to pick it up\n" in shown
    assert "steps: none yet\n" in shown
    # A worker stopped with SIGTERM deregisters at once: nobody serves the queue now.
    assert stop(worker) == 0
    shown = cli.show("wf-u")
    assert "No live worker serves queue 'default' for workflow 'no_such_workflow'" in shown


def test_list_filters_and_limits(cli: Cli) -> None:
    assert cli.ok("list") == "no workflow runs\n"
    assert cli.json("list") == []
    for n in range(3):
        cli.ok("start", "greet_when_told", "--id", f"g-{n}")
    cli.ok("start", "fail_with", "--id", "a-much-longer-workflow-id-than-the-others")
    rows = cli.ok("list", "--name", "greet_when_told").splitlines()
    assert [row.split()[0] for row in rows[1:]] == ["g-2", "g-1", "g-0"]  # newest first
    assert cli.ok("list", "--name", "nothing", "--status", "failed") == (
        "no workflow runs with status 'failed' and name 'nothing'\n"
    )
    limited = cli.ok("list", "--limit", "2").splitlines()
    assert [row.split()[0] for row in limited[1:3]] == [
        "a-much-longer-workflow-id-than-the-others",
        "g-2",
    ]
    last_run_id = limited[2].split()[1]
    assert limited[3:] == [f"(there may be more: add --after {last_run_id} for the next page)"]
    following = cli.ok("list", "--limit", "2", "--after", last_run_id).splitlines()
    assert [row.split()[0] for row in following[1:3]] == ["g-1", "g-0"]
    last_page = cli.ok("list", "--limit", "2", "--after", following[2].split()[1])
    assert last_page == "no workflow runs\n"
    # Columns are as wide as their widest cell: every row's run id starts where the header's does.
    column = limited[0].index("RUN ID")
    assert all(re.match(RUN_ID, row[column:]) for row in limited[1:3])
    docs = cli.json("list", "--status", "pending", "--limit", "1")
    assert [(d["id"], d["name"], d["status"]) for d in docs] == [
        ("a-much-longer-workflow-id-than-the-others", "fail_with", "pending")
    ]
    assert set(docs[0]) >= {"id", "run_id", "created_at", "closed_at", "input", "error"}


def test_tags_at_start_and_as_list_filters(cli: Cli) -> None:
    cli.ok("start", "greet_when_told", "--id", "t-1", "--tag", "customer=acme", "--tag", "tier=2")
    cli.ok("start", "greet_when_told", "--id", "t-2", "--tag", "customer=acme")
    cli.ok("start", "greet_when_told", "--id", "t-3")
    docs = cli.json("list", "--tag", "customer=acme")
    assert [(d["id"], d["tags"]) for d in docs] == [
        ("t-2", {"customer": "acme"}),
        ("t-1", {"customer": "acme", "tier": "2"}),
    ]
    assert cli.ok("list", "--tag", "customer=acme", "--tag", "tier=3") == (
        "no workflow runs with tag customer=acme and tag tier=3\n"
    )
    assert "Tag key 'a:b' must be non-empty and without ':'" in cli.refused(
        "start", "greet_when_told", "--tag", "a:b=c"
    )


def test_list_statuses_are_every_status() -> None:
    assert set(STATUSES) == {"pending", "running", *CLOSED_STATUSES}


def test_version(cli: Cli) -> None:
    for argv in (["--version"], ["--version", "list"]):
        done = subprocess.run(
            [*cli.command()[:3], *argv], capture_output=True, text=True, check=True
        )
        assert done.stdout == f"durable {durable.__version__}\n"


def test_worker_for_a_module_that_cannot_be_imported(cli: Cli) -> None:
    stderr = cli.refused("worker", "no_such_module")
    assert "durable: cannot import module 'no_such_module'" in stderr
    assert "importable from the current directory" in stderr


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current directory, for modules `main` imports in this process; sys.path and
    sys.modules are restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "modules", dict(sys.modules))
    return tmp_path


@pytest.mark.parametrize(
    ("module", "says"),
    [
        ("no_such_module", "durable: cannot import module 'no_such_module': No module named"),
        ("shop.no_such_module", "durable: cannot import module 'shop.no_such_module': No module"),
        ("no_such_pkg.orders", "durable: cannot import module 'no_such_pkg.orders': No module"),
    ],
)
def test_a_module_name_that_is_wrong(app_dir: Path, module: str, says: str) -> None:
    from durable.cli import main

    (app_dir / "shop").mkdir()
    (app_dir / "shop" / "__init__.py").write_text("")
    with pytest.raises(SystemExit) as info:
        main(["worker", module, "--db", f"sqlite:///{app_dir / 'app.db'}"])
    assert str(info.value.code).startswith(says)
    assert "Give a dotted module name importable from the current directory" in str(info.value.code)


@pytest.mark.parametrize(
    ("module", "missing"),
    [("orders", "nonexistent_pkg"), ("shop.orders", "nonexistent_pkg"), ("shop.uses", "shop.gone")],
)
def test_a_module_whose_own_import_fails_says_so(app_dir: Path, module: str, missing: str) -> None:
    """The module is there; what it imports is not. It used to say "give a dotted module
    name", sending the user after the wrong problem."""
    from durable.cli import main

    (app_dir / "orders.py").write_text("import nonexistent_pkg\n")
    (app_dir / "shop").mkdir()
    (app_dir / "shop" / "__init__.py").write_text("")
    (app_dir / "shop" / "orders.py").write_text("import nonexistent_pkg.sub\n")
    (app_dir / "shop" / "uses.py").write_text("import shop.gone\n")
    with pytest.raises(SystemExit) as info:
        main(["worker", module, "--db", f"sqlite:///{app_dir / 'app.db'}"])
    assert str(info.value.code) == (
        f"durable: module {module!r} failed to import: No module named {missing!r} (a "
        f"dependency of {module}? Install it in this environment, or fix the import.)"
    )


def test_a_module_importing_a_missing_name_says_so(app_dir: Path) -> None:
    from durable.cli import main

    (app_dir / "orders.py").write_text("from json import no_such_name\n")
    with pytest.raises(SystemExit) as info:
        main(["worker", "orders", "--db", f"sqlite:///{app_dir / 'app.db'}"])
    assert str(info.value.code).startswith(
        "durable: module 'orders' failed to import: cannot import name 'no_such_name' from 'json'"
    )


def test_worker_for_a_module_without_workflows(cli: Cli) -> None:
    stderr = cli.refused("worker", "json")
    assert "durable: no @workflow or @activity functions found in json." in stderr


SECONDS = "expected a number of seconds"


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["worker", "cli_app", "--lease", "0"], f"argument --lease: {SECONDS} > 0, got '0'"),
        (["worker", "cli_app", "--lease", "inf"], f"argument --lease: {SECONDS} > 0, got 'inf'"),
        (
            ["worker", "cli_app", "--concurrency", "0"],
            "argument --concurrency: expected a whole number >= 1, got '0'",
        ),
        (["list", "--limit", "0"], "argument --limit: expected a whole number >= 1, got '0'"),
        (
            ["list", "--status", "done"],
            "argument --status: invalid choice: 'done' (choose from 'pending', 'running', "
            "'completed', 'failed', 'cancelled', 'terminated', 'continued_as_new')",
        ),
        (["result", "wf", "--wait", "-1"], f"argument --wait: {SECONDS} >= 0, got '-1'"),
        (["start", "w", "--if-exists", "keep"], "argument --if-exists: invalid choice: 'keep'"),
        (["start", "w", "--tag", "acme"], "argument --tag: expected KEY=VALUE, like customer=acme"),
        (
            ["show", "wf", "--follow", "--json"],
            "show --follow prints text as the run goes on; to wait for the outcome as JSON, "
            "use: durable result ID --json",
        ),
    ],
)
def test_options_are_checked(cli: Cli, command: list[str], message: str) -> None:
    stderr = cli.refused(*command, code=2)
    assert message in stderr


def test_bad_json_is_refused_before_anything_is_written(cli: Cli) -> None:
    stderr = cli.refused("start", "greet_when_told", "--input", "{bad", "--id", "wf-j", code=2)
    assert stderr.splitlines()[-1] == (
        "durable start: error: argument --input: not valid JSON (Expecting property name "
        "enclosed in double quotes at line 1 column 2): '{bad'. Give a JSON value: a "
        """string needs its quotes, e.g. '"ada"' or '["ada", 3]'."""
    )
    missing = cli.refused("show", "wf-j")
    assert "No workflow with id 'wf-j'" in missing

    cli.ok("start", "greet_when_told", "--input", '["ada"]', "--id", "wf-j")
    stderr = cli.refused("signal", "wf-j", "go", "ada", code=2)
    assert "argument value: not valid JSON (Expecting value at line 1 column 1): 'ada'" in stderr
    assert "signal_received" not in cli.show("wf-j")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (
            "postgresql://app:secret1@127.0.0.1:1/x?password=secret2",
            "durable: Cannot connect to PostgreSQL at "
            "postgresql://app:***@127.0.0.1:1/x?password=***: ",
        ),
        (
            "postgresql://app:secret1@db/x?schema=pg_catalog&token=secret2",
            "durable: Schema 'pg_catalog' in "
            "'postgresql://app:***@db/x?schema=pg_catalog&token=***' belongs to PostgreSQL",
        ),
        (
            "mysql://app:secret1@db/x?password=secret2",
            "durable: Unknown database URL 'mysql://app:***@db/x?password=***'",
        ),
        (
            "sqlite:///app.db?password=secret2",
            "durable: Unsupported option password=*** in 'sqlite:///app.db?password=***'",
        ),
    ],
)
def test_errors_show_no_password(capsys: pytest.CaptureFixture[str], url: str, says: str) -> None:
    from durable.cli import main

    assert main(["list", "--db", url]) == 1
    out, err = capsys.readouterr()
    assert err.startswith(says)
    assert "secret" not in out + err


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_the_worker_banner_shows_no_password(store_url: str, tmp_path: Path) -> None:
    scheme, rest = store_url.split("://", 1)
    userinfo, at, hosts = rest.rpartition("@")
    user = userinfo.partition(":")[0] if at else "postgres"
    # The test server trusts local connections: the passwords are carried, and ignored.
    url = f"{scheme}://{user}:secret1@{hosts}&password=secret2"
    out, err = tmp_path / "worker.out", tmp_path / "worker.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "durable", "--verbose", "worker", "cli_app", "--db", url],
            cwd=tmp_path,
            env=env(),
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    try:
        deadline = time.monotonic() + WAIT
        while "Ctrl-C stops." not in out.read_text():
            assert proc.poll() is None, f"the worker exited early:\n{err.read_text()}"
            assert time.monotonic() < deadline, "the worker printed no banner"
            time.sleep(0.05)
        cli = Cli(db=url, cwd=tmp_path)
        started = cli.ok("start", "greet_when_told", "--input", '["ada"]', "--id", "wf-s")
        assert started.startswith("started wf-s (run ")
        shown = cli.wait_for("wf-s", "published")  # served: the worker runs on that URL
        assert "secret" not in shown
    finally:
        assert stop(proc) == 0
    banner, logs = out.read_text(), err.read_text()
    assert f"on {scheme}://{user}:***@{hosts}&password=***: queues" in banner
    assert "Migrating " in logs  # --verbose: the migration's log line names the database
    assert "secret" not in banner + logs


def test_a_worker_stopped_as_soon_as_it_says_it_is_up_stops_gracefully(
    cli: Cli, tmp_path: Path
) -> None:
    """The banner used to come before the worker had opened its database and installed its
    SIGTERM handler: a supervisor stopping it right after the banner killed it (exit -15)
    instead of a graceful stop. SIGTERM here follows the banner at once (read from a pipe)."""
    for _ in range(3):
        proc = subprocess.Popen(
            cli.command("worker", "cli_app"),
            cwd=cli.cwd,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert "Ctrl-C stops." in proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, err


def test_start_by_name_checks_the_arguments_against_the_live_worker(
    cli: Cli, worker: subprocess.Popen[str]
) -> None:
    stderr = cli.refused("start", "greet_when_told", "--input", "[1, 2]", "--id", "wrong")
    assert stderr.startswith("durable: Cannot start workflow 'greet_when_told': 2 argument(s)")
    assert "(name: str)" in stderr
    assert "Nothing was written." in stderr
    cli.refused("show", "wrong")  # nothing was started
