"""The docs against the product, without booting guests.

- Every `pyro ...` command line in the docs' shell code blocks still
  parses: its subcommand path exists (`pyro <path> --help` exits 0), it
  names a command rather than a group, and every long flag it uses (before
  `--`) is in that command's help.
- docs/public-contract.md is what scripts/gen_public_contract.py generates
  from the current `pyro schema`, `--help`, MCP tools/list and SDK.

Needs `target/debug/pyro` (`make test-python` builds it). Fast: about a
hundred `--help` calls and three MCP servers that only list their tools.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYRO = Path(os.environ.get("PYRO_BIN", ROOT / "target" / "debug" / "pyro"))
# The README and first-run.md must hold; the other docs are checked the same way.
DOCS = [ROOT / "README.md", ROOT / "docs" / "first-run.md", *sorted((ROOT / "docs").glob("*.md"))]
DOCS = list(dict.fromkeys(DOCS))
SHELL_BLOCKS = {"sh", "bash", "shell", "console", "shell-session", ""}
# What may stand before `pyro` on a command line.
LAUNCHERS = {"uvx", "uv", "sudo", "env", "time", "exec", "command"}
OPERATORS = {";", "&&", "||", "|", "&", "(", ")", ";;", "|&"}


def require_pyro() -> None:
    if not os.access(PYRO, os.X_OK):
        pytest.fail(f"{PYRO} is missing: build it with `cargo build -p pyro-cli` (make test-python does)")


def code_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, command line) for each command in the shell code blocks:
    every line of sh/bash blocks, the `$ ` lines of console and bare ones."""
    out: list[tuple[int, str]] = []
    fence: str | None = None
    info = ""
    pending: tuple[int, str] | None = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        m = re.match(r"^(`{3,}|~{3,})\s*([\w+-]*)", stripped)
        if fence is None:
            if m:
                fence, info = m.group(1), m.group(2).lower()
            continue
        if stripped.startswith(fence) and stripped.strip("`~") == "":
            fence = None
            continue
        if info not in SHELL_BLOCKS:
            continue
        if pending is not None:
            start, text = pending
            text += " " + stripped
        else:
            if stripped.startswith("$ "):
                start, text = number, stripped[2:]
            elif info in {"sh", "bash", "shell"}:
                start, text = number, stripped
            else:
                continue
        if text.endswith("\\"):
            pending = (start, text[:-1])
            continue
        pending = None
        if text:
            out.append((start, text))
    return out


def pyro_invocations(line: str) -> list[list[str]]:
    """The argument lists (after `pyro`) of the pyro commands on one shell line."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    tokens = list(lexer)
    segments: list[list[str]] = [[]]
    for token in tokens:
        if token in OPERATORS:
            segments.append([])
        else:
            segments[-1].append(token)
    found = []
    for seg in segments:
        for i, token in enumerate(seg):
            if os.path.basename(token) != "pyro":
                continue
            before = seg[:i]
            if all(
                t in LAUNCHERS or t.startswith("-") or re.match(r"^\w+=", t) or (i > 0 and seg[0] == "uvx")
                for t in before
            ):
                found.append(seg[i + 1 :])
            break
    return found


@functools.cache
def help_page(path: tuple[str, ...]) -> tuple[int, str]:
    out = subprocess.run([str(PYRO), *path, "--help"], capture_output=True, text=True, timeout=30)
    return out.returncode, out.stdout + out.stderr


def subcommands(page: str) -> set[str]:
    names, inside = set(), False
    for line in page.splitlines():
        if line.rstrip() == "Commands:":
            inside = True
            continue
        if inside:
            m = re.match(r"^  ([a-z][\w-]*)\s", line + " ")
            if not m:
                break
            names.add(m.group(1))
    return names


def check_invocation(args: list[str]) -> str | None:
    """Why `pyro ARGS` would not parse, or None."""
    path: list[str] = []
    flags: list[str] = []
    for token in args:
        if token == "--":
            break
        if token.startswith("--"):
            flags.append(token.split("=", 1)[0])
            continue
        if token.startswith("-"):
            continue
        rc, page = help_page(tuple(path))
        if rc == 0 and token in subcommands(page) and token != "help":
            path.append(token)
    rc, page = help_page(tuple(path))
    shown = "pyro " + " ".join(path + ["--help"])
    if rc != 0:
        return f"`{shown}` exited {rc}: {page.strip()[:300]}"
    if subcommands(page) and not {"--help", "--version"} & set(flags):
        return f"`pyro {' '.join(path)}` is a group: it needs a subcommand ({', '.join(sorted(subcommands(page)))})"
    for flag in flags:
        if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", page):
            return f"`{shown}` does not list {flag}"
    return None


def doc_commands() -> list[tuple[str, int, str, list[str]]]:
    cases = []
    for doc in DOCS:
        if not doc.exists():
            continue
        for number, line in code_lines(doc):
            try:
                invocations = pyro_invocations(line)
            except ValueError as e:  # unbalanced quotes: the doc line is broken shell
                cases.append((doc.relative_to(ROOT).as_posix(), number, line, [f"<shell syntax error: {e}>"]))
                continue
            for args in invocations:
                cases.append((doc.relative_to(ROOT).as_posix(), number, line, args))
    return cases


def test_required_docs_have_commands() -> None:
    cases = doc_commands()
    for name in ("README.md", "docs/first-run.md"):
        assert any(c[0] == name for c in cases), f"no pyro command found in {name}"
    first_run = (ROOT / "docs" / "first-run.md").read_text()
    assert "$ pyro doctor" in first_run and "$ pyro workspace create" in first_run
    assert str(ROOT) not in first_run, "docs/first-run.md leaks the checkout's path: rerun scripts/first_run.sh"


def test_every_documented_command_parses() -> None:
    require_pyro()
    problems = []
    for doc, number, line, args in doc_commands():
        if args and args[0].startswith("<shell syntax error"):
            problems.append(f"{doc}:{number}: {args[0]}: {line}")
            continue
        why = check_invocation(args)
        if why:
            problems.append(f"{doc}:{number}: {why}\n    {line}")
    assert not problems, "documented commands that no longer parse:\n" + "\n".join(problems)


def test_public_contract_is_generated_from_the_product() -> None:
    require_pyro()
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_public_contract.py"), "--check", "--pyro", str(PYRO)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "pyro workspace list --label issue=123          # newest first",
            [["workspace", "list", "--label", "issue=123"]],
        ),
        ("uvx --from pyro-mcp pyro doctor", [["doctor"]]),
        (
            "pyro workspace stop repro && pyro workspace start repro",
            [["workspace", "stop", "repro"], ["workspace", "start", "repro"]],
        ),
        (
            "pyro run debian:12 -- sh -c 'echo out; exit 7'",
            [["run", "debian:12", "--", "sh", "-c", "echo out; exit 7"]],
        ),
        ('export ID="$(pyro workspace create debian:12 --id-only)"', []),
        ("cd pyro", []),
        ("sudo PYRO_CACHE_DIR=/c ~/.venvs/pyro/bin/pyro env pull debian:12", [["env", "pull", "debian:12"]]),
    ],
)
def test_command_extraction(line: str, expected: list[list[str]]) -> None:
    assert pyro_invocations(line) == expected


def test_checker_catches_drift() -> None:
    require_pyro()
    assert check_invocation(["workspace", "list", "--label", "a=b"]) is None
    assert check_invocation(["run", "debian:12", "--json", "--", "git", "--no-such-git-flag"]) is None
    assert check_invocation(["workspace", "frobnicate", "x"]) is not None  # `workspace` is a group
    assert check_invocation(["workspace", "list", "--no-such-flag"]) is not None
    assert check_invocation(["--version"]) is None
