"""Mutation testing of durable's critical paths, with mutmut, one campaign per target.

Not run in CI: it takes minutes and mutmut is not a dev dependency (install it with
``pip install -e '.[mutation]'`` or ``pip install mutmut``). Run from the repository root:

    nice -n 19 python benchmarks/mutation.py                 # every target
    nice -n 19 python benchmarks/mutation.py --only plan,retry
    nice -n 19 python benchmarks/mutation.py --survivors     # also list the survivors

Each target is a set of functions (mutmut names its mutants ``module.x_function__mutmut_N``
or ``module.xǁClassǁmethod__mutmut_N``) and the fast tests that cover them. The campaign
runs in a scratch copy of the tree (mutmut rewrites the source it mutates), so the working
tree is never touched. mutmut runs each mutant against the tests that reached the mutated
function when it ran the selection once; a mutant is *killed* when a test fails, *survived*
when they all pass, *timeout* when they ran longer than mutmut's budget (15 x the clean
duration + 1 s). The score is killed / (killed + survived + timeout); timeouts count as
detected in mutmut's own summary, but here they are shown apart.

The results and the survivors accepted as equivalent are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    """One campaign: the functions mutated and the tests that judge them."""

    name: str
    files: tuple[str, ...]  # the source files mutmut rewrites
    mutants: tuple[str, ...]  # mutant-name globs: which of their functions are mutated
    tests: tuple[str, ...]  # pytest arguments selecting the tests


TARGETS = (
    Target(
        "plan",
        ("durable/plan.py",),
        ("durable.plan.*",),
        ("tests/test_plan.py",),
    ),
    Target(
        "journal",
        ("durable/journal.py",),
        ("durable.journal.x_same_command__*", "durable.journal.x_describe_command__*"),
        ("tests/test_engine.py",),
    ),
    Target(
        "engine",
        ("durable/engine.py",),
        ("durable.engine.xǁWorkflowRunǁ_emit__*", "durable.engine.xǁWorkflowRunǁapply__*"),
        ("tests/test_engine.py",),
    ),
    Target(
        "retry",
        ("durable/retry.py", "durable/definition.py"),
        ("durable.retry.*", "durable.definition.xǁRetryPolicyǁ*"),
        ("tests/test_retry.py", "tests/test_worker.py", "-k", "retry and not postgres"),
    ),
    Target(
        "hints",
        ("durable/hints.py",),
        ("durable.hints.*",),
        ("tests/test_hints.py", "tests/test_payload.py"),
    ),
    Target(
        "stepping",
        ("durable/stepping.py",),
        ("durable.stepping.xǁRunSteppingǁ_close__*",),
        (
            "tests/test_worker.py",
            "tests/test_closing.py",
            "-k",
            "(continue_as_new or child or closing) and not postgres",
        ),
    ),
)

# mutmut's exit codes (mutmut.stats.status_by_exit_code), folded into three outcomes.
KILLED = {1, 3, 37}
SURVIVED = {0}
TIMEOUT = {36, 24, -24, 152, 255}


# mutmut forks every mutant from a process that ran the tests once with the original code,
# so module-level caches (durable.hints keeps its plans and converters in lru_caches) would
# hand a mutant the original's results and its code would never run: the scratch copy's
# tests clear durable's caches before each test.
FRESH_CACHES = """

@pytest.fixture(autouse=True)
def _mutation_fresh_caches() -> None:
    import sys

    for name, module in list(sys.modules.items()):
        if name == "durable" or name.startswith("durable."):
            for value in list(vars(module).values()):
                clear = getattr(value, "cache_clear", None)
                if callable(clear):
                    clear()
"""


def _toml_list(items: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def _scratch(target: Target, into: Path) -> None:
    """A copy of the tree in ``into`` with a mutmut configuration for ``target``."""
    for part in ("durable", "backends", "tests"):
        shutil.copytree(ROOT / part, into / part, ignore=shutil.ignore_patterns("__pycache__"))
    config = (ROOT / "pyproject.toml").read_text()
    config += (
        "\n[tool.mutmut]\n"
        'source_paths = ["durable"]\n'
        f"only_mutate = {_toml_list(target.files)}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(target.tests)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x"]\n'
        "use_git_change_detection = false\n"
    )
    (into / "pyproject.toml").write_text(config)
    with (into / "tests" / "conftest.py").open("a") as conftest:
        conftest.write(FRESH_CACHES)


def _outcomes(workdir: Path, target: Target) -> dict[str, int | None]:
    """Exit code per mutant of ``target`` (None: not run), from mutmut's .meta files."""
    codes: dict[str, int | None] = {}
    for meta in (workdir / "mutants").rglob("*.meta"):
        data = json.loads(meta.read_text())
        for key, code in data["exit_code_by_key"].items():
            if any(fnmatch(key, pattern) for pattern in target.mutants):
                codes[key] = code
    return codes


def run(target: Target, *, max_children: int, keep: bool) -> dict[str, int | None]:
    """Run ``target``'s campaign; its exit code per mutant."""
    workdir = Path(tempfile.mkdtemp(prefix=f"durable-mutation-{target.name}-"))
    try:
        _scratch(target, workdir)
        env = {k: v for k, v in os.environ.items() if k != "DURABLE_REQUIRE_POSTGRES"}
        command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)]
        done = subprocess.run(
            [*command, *target.mutants],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        codes = _outcomes(workdir, target)
        if done.returncode != 0 and not codes:
            raise SystemExit(f"mutmut failed on {target.name}:\n{done.stderr[-3000:]}")
        return codes
    finally:
        if keep:
            print(f"# {target.name}: kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    """Run the campaigns asked for and print the table (and survivors, if asked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", help="comma-separated targets: " + ",".join(t.name for t in TARGETS)
    )
    parser.add_argument("--max-children", type=int, default=1, help="mutants run at once")
    parser.add_argument("--survivors", action="store_true", help="list surviving mutants")
    parser.add_argument("--keep", action="store_true", help="keep the scratch trees")
    args = parser.parse_args()
    chosen = [t for t in TARGETS if args.only is None or t.name in args.only.split(",")]
    if not chosen:
        parser.error(f"--only names none of {[t.name for t in TARGETS]}")
    if shutil.which("mutmut") is None and not _importable("mutmut"):
        parser.error("mutmut is not installed: pip install -e '.[mutation]'")
    os.nice(19)  # the campaign is a background job: never compete with real work

    totals = [0, 0, 0, 0]
    survivors: list[str] = []
    print(
        f"{'target':<10} {'mutants':>7} {'killed':>7} {'survived':>8} {'timeout':>7} {'score':>6}"
    )
    for target in chosen:
        codes = run(target, max_children=args.max_children, keep=args.keep)
        killed = sum(1 for c in codes.values() if c in KILLED)
        survived = sorted(k for k, c in codes.items() if c in SURVIVED)
        timeout = sum(1 for c in codes.values() if c in TIMEOUT)
        judged = killed + len(survived) + timeout
        survivors += survived
        score = killed / judged if judged else 0.0
        print(
            f"{target.name:<10} {len(codes):>7} {killed:>7} {len(survived):>8} {timeout:>7} "
            f"{score:>6.1%}",
            flush=True,
        )
        for i, value in enumerate((len(codes), killed, len(survived), timeout)):
            totals[i] += value
    judged = totals[1] + totals[2] + totals[3]
    print(
        f"{'total':<10} {totals[0]:>7} {totals[1]:>7} {totals[2]:>8} {totals[3]:>7} "
        f"{(totals[1] / judged if judged else 0.0):>6.1%}"
    )
    if args.survivors:
        print("\nsurvivors (see them with `mutmut show NAME` in a --keep tree):")
        for name in survivors:
            print(f"  {name}")


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    main()
