"""The `durable` command, run as a person runs it: real processes, on every backend.

A `durable worker cli_app` process serves `tests/cli_app.py`; every other command is a
short-lived `python -m durable ...` beside it. The worker is stopped with SIGTERM at the
end of each test and must exit 0 (graceful).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real processes: a few seconds in all

TESTS = Path(__file__).resolve().parent
WAIT = 20.0  # seconds a test waits for a workflow to get somewhere


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DURABLE_DB"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    return env


@dataclass
class Cli:
    """Runs `durable` commands against one database, from one directory."""

    db: str
    cwd: Path

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "durable", *args, "--db", self.db],
            cwd=self.cwd,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def ok(self, *args: str) -> str:
        """Run a command that must succeed; its stdout."""
        done = self(*args)
        assert done.returncode == 0, f"durable {' '.join(args)} failed:\n{done.stderr}"
        assert done.stderr == ""
        return done.stdout

    def show(self, workflow_id: str) -> str:
        return self.ok("show", workflow_id)

    def wait_for(self, workflow_id: str, text: str) -> str:
        """Poll `durable show` until its output contains ``text``; that output."""
        deadline = time.monotonic() + WAIT
        while True:
            out = self.show(workflow_id)
            if text in out:
                return out
            assert time.monotonic() < deadline, f"no {text!r} within {WAIT}s:\n{out}"
            time.sleep(0.05)


def _history_kinds(show_output: str) -> list[str]:
    history = show_output.split("history:\n", 1)[1]
    return [line.split()[2] for line in history.splitlines()]


@pytest.fixture
def cli(store_url: str, tmp_path: Path) -> Cli:
    """Commands against a fresh database of each backend (SQLite file, PostgreSQL schema)."""
    return Cli(db=store_url, cwd=tmp_path)


@pytest.fixture
def worker(cli: Cli, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """`durable worker cli_app` in the background; stopped with SIGTERM, must exit 0."""
    out, err = tmp_path / "worker.out", tmp_path / "worker.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "durable", "worker", "cli_app", "--db", cli.db],
            cwd=cli.cwd,
            env=_env(),
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
        banner = out.read_text()
        assert f"on {cli.db}" in banner
        assert "1 workflow(s), 1 activity(ies)" in banner
        yield proc
    finally:
        code = _stop(proc)
    assert code == 0, f"the worker did not stop gracefully (exit {code}):\n{err.read_text()}"
    assert "Traceback" not in err.read_text()


def _stop(proc: subprocess.Popen[str]) -> int:
    """SIGTERM the worker (unless it has exited) and wait for it; its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def test_start_list_signal_show(cli: Cli, worker: subprocess.Popen[str]) -> None:
    assert cli.ok("start", "greet_when_told", "--input", '["ada"]', "--id", "wf-1") == "wf-1\n"
    # Idempotent on the id: the same id comes back and nothing new is started.
    assert cli.ok("start", "greet_when_told", "--input", '["bob"]', "--id", "wf-1") == "wf-1\n"

    waiting = cli.wait_for("wf-1", "published")
    assert "  status   running\n" in waiting
    assert "  input    ['ada']\n" in waiting

    listing = cli.ok("list").splitlines()
    assert listing[0].split() == ["ID", "NAME", "STATUS", "CREATED"]
    assert [row.split()[:3] for row in listing[1:]] == [["wf-1", "greet_when_told", "running"]]

    assert cli.ok("signal", "wf-1", "go", '{"fast": true}') == ""
    done = cli.wait_for("wf-1", "workflow_completed")
    assert done.splitlines()[0].startswith("greet_when_told wf-1 (run ")
    assert "  status   completed\n" in done
    assert "  result   {'greeting': 'hello ada', 'go': {'fast': True}}\n" in done
    assert _history_kinds(done) == [
        "workflow_started",
        "activity_scheduled",
        "activity_completed",
        "published",
        "signal_wait_started",
        "signal_received",
        "workflow_completed",
    ]
    assert re.search(r"signal_received +\{'name': 'go', 'value': \{'fast': True\}\}", done)

    assert [
        row.split()[:3] for row in cli.ok("list", "--status", "completed").splitlines()[1:]
    ] == [["wf-1", "greet_when_told", "completed"]]
    # A closed workflow takes no more signals, and says so.
    late = cli("signal", "wf-1", "go", "1")
    assert late.returncode == 1
    assert "durable: Workflow 'wf-1' has closed; signal 'go' was not delivered." in late.stderr


def test_start_without_id_prints_a_fresh_one(cli: Cli, worker: subprocess.Popen[str]) -> None:
    workflow_id = cli.ok("start", "greet_when_told", "--input", '"grace"').strip()
    assert re.fullmatch(r"[0-9a-f]{32}", workflow_id)
    cli.wait_for(workflow_id, "published")
    cli.ok("signal", workflow_id, "go")  # no value: null
    done = cli.wait_for(workflow_id, "workflow_completed")
    assert "  result   {'greeting': 'hello grace', 'go': None}\n" in done


def test_cancel(cli: Cli, worker: subprocess.Popen[str]) -> None:
    cli.ok("start", "greet_when_told", "--input", '["ada"]', "--id", "wf-c")
    cli.wait_for("wf-c", "published")
    assert cli.ok("cancel", "wf-c") == ""
    done = cli.wait_for("wf-c", "workflow_cancelled")
    assert "  status   cancelled\n" in done
    assert _history_kinds(done)[-2:] == ["cancel_requested", "workflow_cancelled"]


def test_terminate_with_reason(cli: Cli, worker: subprocess.Popen[str]) -> None:
    cli.ok("start", "greet_when_told", "--input", '["ada"]', "--id", "wf-t")
    cli.wait_for("wf-t", "published")
    assert cli.ok("terminate", "wf-t", "--reason", "bad data") == ""
    # Closed when the command returns: no waiting needed.
    done = cli.show("wf-t")
    assert "  status   terminated\n" in done
    assert "  error    Terminated: bad data\n" in done
    assert _history_kinds(done)[-1] == "workflow_terminated"
    assert done.rstrip().endswith("workflow_terminated  {'reason': 'bad data'}")


def test_unserved_workflow_says_why_it_waits(cli: Cli, worker: subprocess.Popen[str]) -> None:
    cli.ok("start", "no_such_workflow", "--id", "wf-u")
    # (Polled: the worker registers itself just after printing its banner.)
    shown = cli.wait_for("wf-u", "No live worker registers workflow 'no_such_workflow'")
    assert "  status   pending\n" in shown
    assert "serve ['greet_when_told']" in shown
    # A worker stopped with SIGTERM deregisters at once: nobody serves the queue now.
    assert _stop(worker) == 0
    shown = cli.show("wf-u")
    assert "No live worker serves queue 'default' for workflow 'no_such_workflow'" in shown


def test_worker_for_a_module_that_cannot_be_imported(cli: Cli) -> None:
    done = cli("worker", "no_such_module")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "durable: cannot import module 'no_such_module'" in done.stderr
    assert "importable from the current directory" in done.stderr


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
    done = cli("worker", "json")
    assert done.returncode == 1
    assert "durable: no @workflow or @activity functions found in json." in done.stderr


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--lease", "0", "expected a number of seconds > 0, got '0'"),
        ("--lease", "inf", "expected a number of seconds > 0, got 'inf'"),
        ("--concurrency", "0", "expected a whole number >= 1, got '0'"),
    ],
)
def test_worker_options_are_checked(cli: Cli, option: str, value: str, message: str) -> None:
    done = cli("worker", "cli_app", option, value)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"argument {option}: {message}" in done.stderr


def test_bad_json_is_refused_before_anything_is_written(cli: Cli) -> None:
    done = cli("start", "greet_when_told", "--input", "{bad", "--id", "wf-j")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "durable: --input is not valid JSON" in done.stderr
    assert "'{bad'" in done.stderr
    missing = cli("show", "wf-j")
    assert missing.returncode == 1
    assert "No workflow with id 'wf-j'" in missing.stderr

    cli.ok("start", "greet_when_told", "--input", '["ada"]', "--id", "wf-j")
    done = cli("signal", "wf-j", "go", "not json")
    assert done.returncode == 1
    assert "durable: the value is not valid JSON" in done.stderr
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
            env=_env(),
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
        assert cli.ok("start", "greet_when_told", "--input", '["ada"]', "--id", "wf-s") == "wf-s\n"
        shown = cli.wait_for("wf-s", "published")  # served: the worker runs on that URL
        assert "secret" not in shown
    finally:
        assert _stop(proc) == 0
    banner, logs = out.read_text(), err.read_text()
    assert f"on {scheme}://{user}:***@{hosts}&password=***: queues" in banner
    assert "Migrating " in logs  # --verbose: the migration's log line names the database
    assert "secret" not in banner + logs
