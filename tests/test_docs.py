"""The documentation beside the code, checked: the README files' Python blocks run, their
relative links (and headings linked) resolve, the CLI reference shows the real ``--help``
of every command, every ``durable ...`` line shown in a shell block parses, the HTTP
reference lists exactly the paths the server serves, and every ``curl`` example names one.

How a README's code blocks run (one session per file, blocks in order, in a fresh
temporary directory that is the working directory, with ``DURABLE_DB`` pointing at
``app.db`` there):

- a ```` ```python ```` block is executed in the file's shared namespace, in this test's
  event loop (top-level ``await`` works); ``test_*`` functions it defines are then called
  (awaited if ``async``), as pytest would;
- a block whose first line is ``# NAME.py`` is instead saved as that file in the
  directory, which is on ``sys.path``, for later blocks to import;
- a ```` ```python program ```` block is saved and run as ``python FILE`` in a
  subprocess, and must exit 0 (a whole program with ``asyncio.run``, or one that needs a
  process of its own);
- a ```` ```python no-run ```` block is not run (a fragment, or an API still being built:
  say why in the text).

``python tests/test_docs.py --write`` rewrites the ``$ durable ... --help`` blocks of
durable/cli/README.md from the CLI itself.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import inspect
import io
import os
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent

#: The README files whose Python blocks run.
RUN = [
    "durable/README.md",
    "durable/testing/README.md",
    "durable/server/README.md",
    "durable/cli/README.md",
    "backends/durable_postgres/README.md",
]
#: The README files whose relative links must resolve.
LINKED = ["README.md", *RUN, "samples/README.md", "benchmarks/README.md"]
CLI_README = REPO / "durable/cli/README.md"
HELP_COLUMNS = "100"  # the terminal width the help blocks are rendered at
HELP_PYTHON = (3, 11)  # the Python whose argparse rendered them (the oldest supported)


@dataclass(frozen=True)
class Block:
    """A fenced code block: its info string's words, its text, the line it starts on."""

    info: tuple[str, ...]
    text: str
    line: int

    @property
    def language(self) -> str:
        return self.info[0] if self.info else ""


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text (``` fences, not nested)."""
    out: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            info = tuple(line[3:].split())
            start = i + 1
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                i += 1
            out.append(Block(info, "\n".join(lines[start:i]) + "\n", start + 1))
        i += 1
    return out


# ---- running the Python blocks --------------------------------------------------------


@contextlib.contextmanager
def _session_dir(tmp_path: Path) -> Iterator[Path]:
    old_cwd, old_path = os.getcwd(), list(sys.path)
    old_db = os.environ.get("DURABLE_DB")
    os.chdir(tmp_path)
    sys.path.insert(0, str(tmp_path))
    os.environ["DURABLE_DB"] = f"sqlite:///{tmp_path / 'app.db'}"
    try:
        yield tmp_path
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path
        if old_db is None:
            os.environ.pop("DURABLE_DB", None)
        else:
            os.environ["DURABLE_DB"] = old_db


@contextlib.contextmanager
def _registered(module: types.ModuleType, directory: Path) -> Iterator[None]:
    """``module`` in ``sys.modules`` meanwhile; the modules imported from ``directory``
    are forgotten after it (another README may have one of the same name)."""
    sys.modules[module.__name__] = module
    try:
        yield
    finally:
        del sys.modules[module.__name__]
        for name, loaded in list(sys.modules.items()):
            if Path(getattr(loaded, "__file__", None) or "/").is_relative_to(directory):
                del sys.modules[name]


def _file_name(block: Block) -> str | None:
    first = block.text.splitlines()[0] if block.text.strip() else ""
    match = re.fullmatch(r"#\s*([\w/]+\.py)\b.*", first.strip())
    return match.group(1) if match else None


async def _run_in_process(block: Block, namespace: dict[str, Any], where: str) -> None:
    before = set(namespace)
    # Padded so that tracebacks name the README's own lines.
    source = "\n" * (block.line - 1) + block.text
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    code = compile(source, where, "exec", flags=flags, dont_inherit=True)
    # The repository's own documentation, run as written: that is what this test is for.
    # As asyncio's REPL runs what it is given: the module code as a function of the
    # namespace, a coroutine when the block awaits at top level.
    result = types.FunctionType(code, namespace)()
    if inspect.iscoroutine(result):
        await result
    for name in [n for n in namespace if n not in before and n.startswith("test_")]:
        fn = namespace[name]
        if callable(fn):
            outcome = fn()
            if inspect.iscoroutine(outcome):
                await outcome


def _run_program(path: Path, where: str) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "backends")]))
    done = subprocess.run(
        [sys.executable, str(path)],
        cwd=path.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{where} exited {done.returncode}:\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize("readme", RUN)
async def test_python_blocks_run(readme: str, tmp_path: Path) -> None:
    text = (REPO / readme).read_text()
    runnable = [b for b in blocks(text) if b.language == "python"]
    # The blocks' namespace is a module's, registered, as dataclasses and type hints expect.
    module = types.ModuleType("docs_" + re.sub(r"\W", "_", readme))
    namespace: dict[str, Any] = module.__dict__
    with _session_dir(tmp_path), _registered(module, tmp_path):
        for n, block in enumerate(runnable):
            where = f"{readme}:{block.line}"
            if "no-run" in block.info:
                continue
            name = _file_name(block)
            if name is not None:
                (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / name).write_text(block.text)
            if "program" in block.info:
                path = tmp_path / (name or f"block_{n}.py")
                if name is None:
                    path.write_text(block.text)
                _run_program(path, where)
            elif name is None:  # a module (# NAME.py) is imported by the blocks that use it
                await _run_in_process(block, namespace, str(REPO / readme))


def test_every_readme_here_is_checked() -> None:
    """A README added beside the code is run by this module (or deliberately not)."""
    found = {
        str(p.relative_to(REPO))
        for root in ("durable", "backends")
        for p in (REPO / root).rglob("README.md")
    }
    assert found <= set(RUN), f"add to test_docs.RUN: {sorted(found - set(RUN))}"


# ---- links ----------------------------------------------------------------------------

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("readme", LINKED)
def test_relative_links_resolve(readme: str) -> None:
    path = REPO / readme
    text = path.read_text()
    # Links inside code blocks are code, not links.
    for block in blocks(text):
        text = text.replace(block.text, "")
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        if target.startswith("#"):
            if target[1:] not in _anchors(path):
                broken.append(target)
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve()
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(target)
    assert not broken, f"{readme}: links that do not resolve: {broken}"


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    out = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            title = re.sub(r"[^\w\- ]", "", title)
            out.add(title.replace(" ", "-"))
    return out


def test_the_readme_links_the_docs_beside_the_code() -> None:
    text = (REPO / "README.md").read_text()
    for readme in RUN:
        assert f"({readme})" in text or f"({readme}#" in text, f"README.md does not link {readme}"


# ---- the CLI reference ----------------------------------------------------------------


def cli_commands() -> list[list[str]]:
    """Every command of ``durable``, as argument lists: [], ["worker"], ["queue", "list"]..."""
    from durable.cli import _parser

    out: list[list[str]] = []

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        out.append(prefix)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*prefix, name])

    walk(_parser(), [])
    return out


def cli_help(command: list[str]) -> str:
    """What ``durable COMMAND --help`` prints, at `HELP_COLUMNS` columns."""
    from durable.cli import main

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            main([*command, "--help"])
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return out.getvalue()


def _help_blocks(text: str) -> dict[str, Block]:
    found = {}
    for block in blocks(text):
        first = block.text.splitlines()[0] if block.text else ""
        if first.startswith("$ durable") and first.endswith("--help"):
            found[first] = block
    return found


def _prompt(command: list[str]) -> str:
    return " ".join(["$ durable", *command, "--help"])


def test_cli_reference_shows_every_commands_real_help() -> None:
    documented = _help_blocks(CLI_README.read_text())
    for command in cli_commands():
        prompt = _prompt(command)
        assert prompt in documented, (
            f"durable/cli/README.md has no block for {prompt!r}: run python tests/test_docs.py "
            "--write, then describe the command"
        )
        shown = documented[prompt].text.split("\n", 1)[1]
        real = cli_help(command)
        if sys.version_info[:2] != HELP_PYTHON:
            # argparse lays help out a little differently from one Python to the next:
            # elsewhere, check that the block names every option the command has.
            for option in re.findall(r"(?<![\w-])--?[a-z][\w-]*", real):
                assert option in shown, f"durable/cli/README.md: {prompt!r} lacks {option}"
            continue
        assert shown == real, (
            f"durable/cli/README.md: {prompt!r} differs from the CLI's; run python "
            "tests/test_docs.py --write"
        )
    stale = set(documented) - {_prompt(c) for c in cli_commands()}
    assert not stale, f"durable/cli/README.md documents commands that do not exist: {stale}"


def write_cli_help() -> None:
    """Rewrite the help blocks of durable/cli/README.md from the CLI."""
    text = CLI_README.read_text()
    for command in cli_commands():
        prompt = _prompt(command)
        block = _help_blocks(text).get(prompt)
        if block is None:
            print(f"no block for {prompt!r}; add one (```text, then that line)")
            continue
        text = text.replace(block.text, f"{prompt}\n{cli_help(command)}", 1)
    CLI_README.write_text(text)


# ---- the HTTP reference ---------------------------------------------------------------


def test_http_reference_lists_exactly_the_served_paths() -> None:
    """Every ``METHOD /path`` of the server's endpoint table, and nothing else."""
    from durable.server.app import ENDPOINTS

    text = (REPO / "durable/server/README.md").read_text()
    rows = re.findall(r"^\| `(GET|POST|PUT|DELETE) (/[^`?\s]*)`", text, re.MULTILINE)
    table = set(rows)
    served = {(e.method, e.path) for e in ENDPOINTS}
    served |= {("GET", "/metrics"), ("GET", "/openapi.json")}
    assert served - table == set(), f"not in the table: {sorted(served - table)}"
    unserved = table - served
    assert unserved == set(), f"in the table, not served: {sorted(unserved)}"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_cli_help()
    else:
        raise SystemExit("usage: python tests/test_docs.py --write")


# ---- commands shown in shell blocks ---------------------------------------------------


def _shell_commands(text: str, program: str) -> list[str]:
    """The ``program ...`` commands of a Markdown text's sh/bash/console blocks, with
    continuation lines joined (``$ `` prompts dropped, output lines skipped)."""
    out = []
    for block in blocks(text):
        if block.language not in ("sh", "bash", "console", "shell"):
            continue
        current = ""
        for line in block.text.splitlines():
            line = line.removeprefix("$ ")
            if not current and not line.startswith(program + " "):
                continue
            current += line.rstrip("\\").strip() + " "
            if not line.endswith("\\") and _complete(current):
                out.append(current.strip())
                current = ""
    return out


def _complete(command: str) -> bool:
    """Whether ``command`` has no quote left open (a JSON body may span lines)."""
    import shlex

    try:
        shlex.split(command, comments=True)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("readme", LINKED)
def test_durable_commands_shown_parse(readme: str) -> None:
    """Every ``durable ...`` line of a shell block is a command the CLI accepts."""
    import shlex

    from durable.cli import _parser

    parser = _parser()
    for command in _shell_commands((REPO / readme).read_text(), "durable"):
        argv = shlex.split(command, comments=True)[1:]
        argv = [a for a in argv if a != "&"]
        if "--help" in argv or "--version" in argv:
            continue
        try:
            with contextlib.redirect_stderr(io.StringIO()) as err:
                parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{readme}: {command!r} does not parse: {err.getvalue()}")


def _served(method: str, path: str) -> bool:
    from durable.server.app import ENDPOINTS

    extra = {("GET", "/metrics"), ("GET", "/openapi.json")}
    if (method, path) in extra:
        return True
    for endpoint in ENDPOINTS:
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", endpoint.path)
        if endpoint.method == method and re.fullmatch(pattern, path):
            return True
    return False


@pytest.mark.parametrize("readme", ["README.md", "durable/server/README.md"])
def test_curl_examples_use_served_paths(readme: str) -> None:
    """Every ``curl`` example names a method and path the server serves."""
    import shlex
    from urllib.parse import urlsplit

    commands = _shell_commands((REPO / readme).read_text(), "curl")
    assert commands
    for command in commands:
        argv = shlex.split(command, comments=True)
        method = argv[argv.index("-X") + 1] if "-X" in argv else None
        urls = [a for a in argv if a.startswith(("localhost", "http", "127.0.0.1"))]
        assert len(urls) == 1, command
        path = urlsplit(urls[0] if "://" in urls[0] else "http://" + urls[0]).path
        if method is None:
            method = "POST" if "-d" in argv else "GET"
        assert _served(method, path), f"{readme}: {command!r}: {method} {path} is not served"
