"""The installed artifact: build the wheel, check what it holds, install it into a fresh
directory, and run the CLI, the demo and every sample from there.

The wheel is built from a copy of the sources (pyproject.toml, README.md, durable/,
backends/), so setuptools' build/ and *.egg-info never land in the work tree. Commands run
with ``PYTHONPATH=<install dir>`` on this interpreter (whose site-packages has the
dependencies) and ``-P`` (no current directory on sys.path), and a probe in the same
environment checks that ``durable`` really comes from the install directory, not the repo.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import durable

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"durable", "durable_sqlite", "durable_postgres"}
SAMPLES = sorted(
    [p.stem for p in (REPO / "samples").glob("*.py") if p.stem != "__init__"]
    + [p.parent.name for p in (REPO / "samples").glob("*/__main__.py")]
)


def _build_requirements_met() -> bool:
    """Whether this interpreter already has every [build-system] requirement, so the wheel
    builds offline without an isolated environment."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    for line in pyproject["build-system"]["requires"]:
        req = Requirement(line)
        try:
            version = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            return False
        if not req.specifier.contains(version, prereleases=True):
            return False
    return True


def _run(args: list[str], *, cwd: Path, pythonpath: list[Path]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DURABLE_DB", "PYTHONPATH")}
    env["PYTHONPATH"] = os.pathsep.join(map(str, pythonpath))
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=90)


def _ok(args: list[str], *, cwd: Path, pythonpath: list[Path]) -> str:
    done = _run(args, cwd=cwd, pythonpath=pythonpath)
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built offline if this interpreter has the build requirements, else by pip
    in an isolated environment (which downloads them)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in ("durable", "backends"):
        shutil.copytree(REPO / name, src / name, ignore=junk)
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)]
    if _build_requirements_met():
        command[4:4] = ["--no-build-isolation", "--no-index"]
    _ok(command, cwd=src, pythonpath=[])
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def site(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh directory with the wheel installed into it (and nothing else)."""
    target = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q"]
    _ok([*command, "--target", str(target), str(wheel)], cwd=target, pythonpath=[])
    return target


def test_wheel_holds_exactly_the_three_packages_typed(wheel: Path) -> None:
    # The version in pyproject.toml and durable.__version__ agree.
    assert wheel.name == f"durable_flow-{durable.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = f"durable_flow-{durable.__version__}.dist-info"
        record = zf.read(f"{dist_info}/RECORD").decode()
        top_level = zf.read(f"{dist_info}/top_level.txt").decode().split()
        metadata = zf.read(f"{dist_info}/METADATA").decode()
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()

    recorded = {line.split(",")[0] for line in record.splitlines() if line}
    assert recorded == names
    assert {n.split("/")[0] for n in recorded} == {*PACKAGES, dist_info}
    assert sorted(top_level) == sorted(PACKAGES)
    for package in PACKAGES:
        assert f"{package}/py.typed" in names
    # Every module of the source tree made it in, and nothing else did.
    sources = {p.relative_to(REPO).as_posix() for p in (REPO / "durable").rglob("*.py")}
    for package in ("durable_sqlite", "durable_postgres"):
        root = REPO / "backends"
        sources |= {p.relative_to(root).as_posix() for p in (root / package).glob("*.py")}
    assert {n for n in names if n.endswith(".py")} == sources

    assert "\nName: durable-flow\n" in metadata
    assert "\nRequires-Python: >=3.11\n" in metadata
    assert "\nProvides-Extra: postgres\n" in metadata
    assert re.search(r"^Requires-Dist: asyncpg.*extra == \"postgres\"$", metadata, re.M)
    assert "durable = durable.cli:main" in entry_points
    # open_store finds the backends through their entry points
    assert "[durable.backends]" in entry_points
    for line in (
        "sqlite = durable_sqlite:SQLiteStore",
        "postgres = durable_postgres:PostgresStore",
    ):
        assert line in entry_points


def test_installed_durable_comes_from_the_install_dir(site: Path, tmp_path: Path) -> None:
    probe = "import durable, durable_sqlite, durable_postgres; print(durable.__file__)"
    out = _ok([sys.executable, "-P", "-c", probe], cwd=tmp_path, pythonpath=[site])
    assert Path(out.strip()).is_relative_to(site)
    assert (site / "bin" / "durable").is_file()


def test_help(site: Path, tmp_path: Path) -> None:
    out = _ok([sys.executable, "-P", "-m", "durable", "--help"], cwd=tmp_path, pythonpath=[site])
    assert out.startswith("usage: durable ")
    for command in ("worker", "start", "list", "show", "signal", "cancel", "terminate", "demo"):
        assert command in out


def _check_demo_output(out: str, url: str) -> list[list[str]]:
    """Assert the demo told its story; return the commands it suggests trying next."""
    lines = out.splitlines()
    assert lines[0] == f"durable demo on {url}"
    steps = [line.split()[1] for line in lines[1:] if re.match(r"^ +\d+ ", line)]
    assert steps[0] == "workflow_started"
    assert steps[-1] == "workflow_completed"
    for kind in ("activity_scheduled", "activity_retrying", "timer_fired", "signal_received"):
        assert kind in steps
    assert "payment gateway timed out" in out
    assert "  ...  sending signal 'approved' = True" in lines
    assert (
        "result: {'hotel': 'hotel-lisbon', 'flight': 'flight-lisbon', "
        "'receipt': 'receipt-lisbon-42000', 'approved': True}"
    ) in lines
    hints = lines[lines.index("Try next:") + 1 :]
    assert hints == [
        f"  durable list --db {url}",
        f"  durable show demo-trip --db {url}",
        f"  durable server --db {url}",
        "    then open http://127.0.0.1:8233/runs/demo-trip to see the run in the console",
    ]
    return [hint.split() for hint in hints[:2]]


def _check_hints(hints: list[list[str]], site: Path, cwd: Path) -> None:
    """Run the demo's "Try next" commands with the installed `durable` script."""
    script = str(site / "bin" / "durable")
    listing = _ok([script, *hints[0][1:]], cwd=cwd, pythonpath=[site]).splitlines()
    assert listing[0].split() == ["ID", "RUN", "ID", "NAME", "STATUS", "CREATED", "CLOSED"]
    rows = [row.split() for row in listing[1:]]
    assert [(r[0], r[2], r[3]) for r in rows] == [("demo-trip", "book_trip", "completed")]
    shown = _ok([script, *hints[1][1:]], cwd=cwd, pythonpath=[site])
    assert shown.startswith("book_trip demo-trip\n  run          ")
    assert "  status       completed\n" in shown
    assert "activity_retrying" in shown
    assert "workflow_completed" in shown


def test_demo_and_its_hints(site: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    command = [sys.executable, "-P", "-m", "durable", "demo", "--db", url]
    hints = _check_demo_output(_ok(command, cwd=tmp_path, pythonpath=[site]), url)
    _check_hints(hints, site, tmp_path)


def test_demo_as_the_readme_runs_it(site: Path, tmp_path: Path) -> None:
    """`durable demo` with no options: a SQLite file in the current directory."""
    out = _ok([str(site / "bin" / "durable"), "demo"], cwd=tmp_path, pythonpath=[site])
    hints = _check_demo_output(out, "sqlite:///durable-demo.db")
    assert (tmp_path / "durable-demo.db").is_file()
    _check_hints(hints, site, tmp_path)
    # Running it again starts afresh on the same file.
    _check_demo_output(
        _ok([str(site / "bin" / "durable"), "demo"], cwd=tmp_path, pythonpath=[site]),
        "sqlite:///durable-demo.db",
    )


def test_every_sample_is_tested_here() -> None:
    assert SAMPLES == [
        "genomics",
        "hourly_pipeline",
        "media_pipeline",
        "ops_deploy",
        "order_saga",
        "polyglot",
    ]


def _run_sample(name: str, site: Path) -> str:
    # Samples are not in the wheel: they run from the repo, against the installed durable.
    probe = "import durable, samples; print(durable.__file__); print(samples.__file__)"
    paths = _ok([sys.executable, "-P", "-c", probe], cwd=REPO, pythonpath=[site, REPO])
    durable_file, samples_file = map(Path, paths.split())
    assert durable_file.is_relative_to(site)
    assert samples_file.is_relative_to(REPO)
    return _ok([sys.executable, "-P", "-m", f"samples.{name}"], cwd=REPO, pythonpath=[site, REPO])


def test_order_saga_sample(site: Path) -> None:
    lines = _run_sample("order_saga", site).splitlines()
    assert lines[0].startswith("order saga on sqlite:///")
    assert lines[1:] == [
        "  t-1: booked  undone=[]",
        "  t-2: compensated flight for t-2 is overbooked undone=['cancel_hotel', 'refund_card']",
        "  t-3: compensated no approval within the deadline "
        "undone=['cancel_flight', 'cancel_hotel', 'refund_card']",
    ]


def test_media_pipeline_sample(site: Path) -> None:
    lines = _run_sample("media_pipeline", site).splitlines()
    assert lines[0].startswith("media pipeline on sqlite:///")
    assert lines[1:] == [
        "  keynote: 24 frames, faces ['ada', 'grace'], 'hello world' "
        "-> https://cdn.example/keynote.mp4",
        "  interview: 24 frames, faces ['ada', 'grace'], 'hello world' "
        "-> https://cdn.example/interview.mp4",
        "  3 failed attempts were retried for video-keynote",
    ]


def test_genomics_sample(site: Path) -> None:
    """Its batch-large worker processes, started and killed by the sample, run on the
    installed durable too."""
    lines = _run_sample("genomics", site).splitlines()
    assert lines[0].startswith("genomics on sqlite:///")
    assert sum("(SIGKILL) in the middle of the fan-out" in line for line in lines) == 1
    assert lines[-2] == (
        "  NA12878: 24 chromosomes called once each, 2,775,822 variants "
        "-> s3://genomes/NA12878.vcf.gz"
    )


def test_ops_deploy_sample(site: Path) -> None:
    lines = _run_sample("ops_deploy", site).splitlines()
    assert lines[0].startswith("ops deploy on sqlite:///")
    assert "    WARNING activity start_node #17 attempt 2" in "\n".join(lines)
    assert lines[-2:] == [
        "  checkout 2.4.0: deployed on node-1, node-2, node-3, node-4",
        "  checkout 2.5.0: rolled back (node-3 failed its health check); "
        "undone: roll_back_node, roll_back_node, untag_image",
    ]


def test_hourly_pipeline_sample(site: Path) -> None:
    lines = _run_sample("hourly_pipeline", site).splitlines()
    assert lines[0].startswith("hourly pipeline on sqlite:///")
    assert lines[1].startswith("  schedule hourly-usage: next runs ")
    assert lines[2].startswith("  backfilled hourly-usage@")
    assert "failed: durable.map over 'read_shard': 2 of 8 items failed" in lines[3]
    assert lines[4] == "  shard 2 landed; handle.retry() reads it where the run stopped"
    assert [line.split(": ", 1)[1].split(";")[0] for line in lines[5:]] == [
        "8/8 shards read",
        "8/8 shards read",
        "7/8 shards read (shards set aside: [5])",
    ]


def test_polyglot_sample(site: Path) -> None:
    """`python -m samples.polyglot`: durable server, a Python worker and the Node.js worker
    from the installed durable (Node.js required where the sample's test requires it)."""
    if shutil.which("node") is None:
        if os.environ.get("DURABLE_REQUIRE_NODE"):
            raise AssertionError("DURABLE_REQUIRE_NODE is set but 'node' is not on the PATH")
        pytest.skip("Node.js is not installed")
    out = _run_sample("polyglot", site)
    lines = [line for line in out.splitlines() if line.startswith(("polyglot", "  "))]
    assert lines[0].startswith("polyglot sample on sqlite:///")
    assert lines[1:] == [
        "  beach.jpg: 320x240, 1280x960; approved by moderator@node",
        "  nsfw-party.jpg: 320x240, 1280x960; hidden by moderator@node",
    ]


def test_the_installed_console_serves_its_pages_and_assets(site: Path, tmp_path: Path) -> None:
    """Templates and static files ship in the wheel: the console renders from the install."""
    probe = (
        "import asyncio, httpx, durable\n"
        "from durable.server import create_app\n"
        "async def main():\n"
        f"    async with durable.connect('sqlite:///{tmp_path / 'c.db'}') as client:\n"
        "        app = create_app(client)\n"
        "        t = httpx.ASGITransport(app=app)\n"
        "        async with httpx.AsyncClient(transport=t, base_url='http://c') as http:\n"
        "            for path in ('/', '/workers', '/static/console.css', '/static/console.js'):\n"
        "                r = await http.get(path)\n"
        "                print(path, r.status_code, len(r.content) > 100)\n"
        "    print(durable.__file__)\n"
        "asyncio.run(main())\n"
    )
    out = _ok([sys.executable, "-P", "-c", probe], cwd=tmp_path, pythonpath=[site])
    *pages, where = out.splitlines()
    assert pages == [
        "/ 200 True",
        "/workers 200 True",
        "/static/console.css 200 True",
        "/static/console.js 200 True",
    ]
    assert Path(where).is_relative_to(site)
