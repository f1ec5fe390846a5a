"""Mine training problems from a real Python codebase.

A problem is a function that has a docstring, a real body and at least one test that exercises
it: a doctest in its docstring, or a pytest/unittest test that reaches it through imports. The
function's *problem* text is exactly what the server prompts with (``FunctionInfo.problem``:
module imports, signature, docstring), its *solution* is the function as written, and its tests
stay in the workspace: ``meta`` records where (root, file, qualname) so plan verification can
splice a candidate into that file and run the tests in the server's sandbox. This is how a team
distills a student for its own code.

Nothing is re-implemented here: functions come from ``plancode.analysis.functions`` (tree-sitter)
and tests from ``plancode.testing.discovery`` (doctests) and one ``WorkspaceIndex`` built for the
whole run (workspace tests). No user code is imported or executed while mining.

What is skipped, and why (each skip is counted in the ``MineReport``):

* files: test files and test-support files (``tests/`` or ``test/`` directories, conftest.py,
  pytest's ``python_files`` patterns: functions there are tests, not problems); unreadable or
  non-UTF-8 files (the sandbox writes spliced files as UTF-8); files that do not parse
  (``ast.parse``: pytest could not import them); files over the index's size limit (generated).
  Directories skipped are the index's: ``.git``, ``.venv``/``venv``, ``node_modules``,
  ``build``, ``dist``, ``site-packages``, hidden ones, ``*.egg-info`` and any virtualenv.
* functions: nested in another function (a closure cannot be called or spliced on its own);
  dunder methods other than ``__init__`` (discovery counts every test that merely names the
  class as exercising ``__eq__``, ``__repr__`` ..., so their tests would verify nothing;
  ``__init__`` does run whenever the class is instantiated); a qualname defined more than once
  in its file (property setters, ``if``/``else`` definitions: a splice by qualname would be
  ambiguous); no docstring; a placeholder body (empty, ``pass``, ``...``,
  ``raise NotImplementedError``, also next to other statements: unfinished); no test found.
  A one-statement body such as a single ``return`` is kept.
"""

from __future__ import annotations

import ast
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

from tqdm import tqdm

from plancode.analysis import pyparse
from plancode.analysis.functions import FunctionInfo, functions
from plancode.errors import PlancodeError
from plancode.testing.discovery import discover
from plancode.testing.index import MAX_FILE_BYTES, SKIP_DIRS, WorkspaceIndex, pytest_options
from plancode.testing.types import TestCase
from plancode.trainer.data import Problem

SOURCE = "mined"

# File-level skip reasons (counted per file).
TEST_FILE = "test file"
UNREADABLE = "unreadable"
PARSE_ERROR = "parse error"
TOO_LARGE = "too large"
# Function-level skip reasons (counted per function), in the order they are checked.
NESTED = "nested function"
DUNDER = "dunder method"
DUPLICATE = "duplicate name"
NO_DOCSTRING = "no docstring"
PLACEHOLDER = "placeholder body"
NO_TESTS = "no tests"
DISCOVERY_ERROR = "discovery error"


@dataclass
class MineReport:
    """What a mining run looked at and why it dropped what it dropped.

    ``files_scanned`` counts every ``.py`` file outside skipped directories (test files
    included); ``functions_seen`` counts the functions in the files that were read and parsed.
    ``skipped_files`` and ``skipped_functions`` map a reason to a count; ``reasons`` maps each
    skipped file (``rel``) or function (``rel::qualname``) to its reason, so a user can check
    why a function they expected is missing (a qualname defined twice has one entry and counts
    twice). ``errors`` holds the message of each unexpected discovery failure.
    """

    root: str
    files_scanned: int = 0
    functions_seen: int = 0
    kept: int = 0
    skipped_files: Counter[str] = field(default_factory=Counter)
    skipped_functions: Counter[str] = field(default_factory=Counter)
    reasons: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def skip_file(self, rel: str, reason: str) -> None:
        self.skipped_files[reason] += 1
        self.reasons[rel] = reason

    def skip_function(self, problem_id: str, reason: str) -> None:
        self.skipped_functions[reason] += 1
        self.reasons[problem_id] = reason

    def to_json(self) -> dict:
        """Plain JSON types, reason counts sorted by reason, for the CLI and run logs."""
        return {
            "root": self.root,
            "files_scanned": self.files_scanned,
            "functions_seen": self.functions_seen,
            "kept": self.kept,
            "skipped_files": dict(sorted(self.skipped_files.items())),
            "skipped_functions": dict(sorted(self.skipped_functions.items())),
            "reasons": dict(self.reasons),
            "errors": dict(self.errors),
            "seconds": round(self.seconds, 3),
        }


# --- files ------------------------------------------------------------------------------


def python_files(root: Path) -> list[str]:
    """Workspace-relative POSIX paths of the ``.py`` files under ``root``, sorted, walking the
    tree the way ``WorkspaceIndex`` does (same skipped directories, virtualenvs left out)."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        directory = Path(dirpath)
        if "pyvenv.cfg" in filenames and directory != root:
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS
                             and not d.startswith(".") and not d.endswith(".egg-info"))
        reldir = directory.relative_to(root)
        found += [(reldir / name).as_posix() for name in filenames if name.endswith(".py")]
    return sorted(found)


def is_test_file(rel: str, patterns: list[str]) -> bool:
    """Whether the index treats ``rel`` as a test or test-support file: anything under a
    ``tests``/``test`` directory, ``conftest.py``, or a match of pytest's ``python_files``."""
    parts = rel.split("/")
    name = parts[-1]
    if name == "conftest.py" or any(p in {"tests", "test"} for p in parts[:-1]):
        return True
    return any(fnmatch(rel if "/" in p else name, p) for p in patterns)


def _read(path: Path, rel: str, report: MineReport) -> str | None:
    """The file's text, or None after counting why it cannot be used."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            report.skip_file(rel, TOO_LARGE)
            return None
        source = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        report.skip_file(rel, UNREADABLE)
        return None
    try:
        pyparse.parse(source, filename=rel)
    except (SyntaxError, ValueError):  # ValueError: null bytes
        report.skip_file(rel, PARSE_ERROR)
        return None
    return source


# --- functions --------------------------------------------------------------------------


def solution_text(source: str, info: FunctionInfo, line_starts: list[int] | None = None) -> str:
    """The whole function as written (decorators, signature, docstring, body), with LF line
    endings and the ``def``'s indentation removed, so a method starts at column 0 too. Lines
    that do not start with that indentation (inside multi-line strings) are left as they are.
    """
    if line_starts is None:
        line_starts = _line_starts(source)
    chunk = source[line_starts[info.start_line]:info.body_end].replace("\r\n", "\n")
    indent = info.def_indent
    lines = [line[len(indent):] if indent and line.startswith(indent) else line
             for line in chunk.split("\n")]
    return "\n".join(lines).rstrip("\n") + "\n"


def _line_starts(source: str) -> list[int]:
    return [0] + [m.end() for m in re.finditer("\n", source)]


def _is_placeholder(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Pass):
        return True
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return stmt.value.value is Ellipsis
    if isinstance(stmt, ast.Raise) and stmt.exc is not None:
        exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
        return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"
    return False


def _placeholder_body(info: FunctionInfo, solution: str) -> bool:
    """Empty as the server sees it, or a top-level placeholder statement next to real code."""
    if info.body_is_empty:
        return True
    try:
        tree = pyparse.parse(solution)
    except SyntaxError:
        return True  # cannot happen for a file that parsed; never keep what does not parse
    func = next((n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)),
                None)
    if func is None:
        return True
    body = func.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return not body or any(_is_placeholder(s) for s in body)


def _nested(info: FunctionInfo, infos: list[FunctionInfo]) -> bool:
    """Defined inside another function (a method of a class inside a function included)."""
    return any(o is not info and info.qualname.startswith(o.qualname + ".")
               and o.start_line <= info.start_line <= o.end_line for o in infos)


def _skip_reason(info: FunctionInfo, infos: list[FunctionInfo], counts: Counter[str],
                 solution: str) -> str | None:
    """Why ``info`` is not a problem, before looking for tests (cheap checks first)."""
    if _nested(info, infos):
        return NESTED
    if info.name.startswith("__") and info.name.endswith("__") and info.name != "__init__":
        return DUNDER
    if counts[info.qualname] > 1:
        return DUPLICATE
    if not info.docstring:
        return NO_DOCSTRING
    if _placeholder_body(info, solution):
        return PLACEHOLDER
    return None


def _mine_file(root: Path, rel: str, source: str, index: WorkspaceIndex,
               report: MineReport) -> list[Problem]:
    infos = functions(source)
    counts = Counter(i.qualname for i in infos)
    starts = _line_starts(source)
    problems: list[Problem] = []
    for info in infos:
        report.functions_seen += 1
        problem_id = f"{rel}::{info.qualname}"
        solution = solution_text(source, info, starts)
        reason = _skip_reason(info, infos, counts, solution)
        if reason is None:
            try:
                found = discover(root, Path(rel), info.qualname, index, source, refresh=False)
            except Exception as exc:  # one odd definition must not end a long mining run
                found, reason = [], DISCOVERY_ERROR
                report.errors[problem_id] = f"{type(exc).__name__}: {exc}"
            if not found and reason is None:
                reason = NO_TESTS
        if reason is not None:
            report.skip_function(problem_id, reason)
            continue
        problems.append(Problem(
            id=problem_id,
            problem=info.problem,
            solution=solution,
            tests=(),
            source=SOURCE,
            meta={"root": str(root), "file": rel, "qualname": info.qualname,
                  "line": info.start_line, "context": info.context,
                  "tests": [tc.to_json() for tc in found]},
        ))
        report.kept += 1
    return problems


def mine(root: Path, progress: bool = False) -> tuple[list[Problem], MineReport]:
    """Every function under ``root`` with a docstring, a real body and a discovered test, as a
    ``Problem`` (see the module docstring for what is skipped), in file and definition order.

    ``meta`` holds ``root`` (absolute), ``file`` (relative, POSIX), ``qualname``, ``line``
    (0-based first line of the definition, decorators included, when mined), ``context``
    (definitions the function may use, as the server shows them) and ``tests`` (``TestCase``
    JSON; rebuild them with :func:`test_cases`). ``progress`` shows a bar over files.
    """
    started = time.perf_counter()
    path = Path(root).expanduser()
    if not path.exists():
        raise PlancodeError(f"cannot mine {root}: it does not exist",
                            "give the root folder of a Python project")
    if not path.is_dir():
        raise PlancodeError(f"cannot mine {root}: it is not a directory",
                            "give the project's root folder, not a file in it")
    root = path.resolve()
    report = MineReport(str(root))
    patterns = pytest_options(root)["python_files"]
    index = WorkspaceIndex(root)
    index.refresh()
    files = python_files(root)
    problems: list[Problem] = []
    for rel in tqdm(files, desc="mining", unit="file", disable=not progress):
        report.files_scanned += 1
        if is_test_file(rel, patterns):
            report.skip_file(rel, TEST_FILE)
            continue
        source = _read(root / rel, rel, report)
        if source is not None:
            problems += _mine_file(root, rel, source, index, report)
    report.seconds = time.perf_counter() - started
    return problems, report


def test_cases(problem: Problem) -> list[TestCase]:
    """The workspace tests of a mined problem, as ``TestCase`` objects again (from
    ``meta["tests"]``), ready for ``Sandbox(meta["root"]).run_tests``."""
    rows = problem.meta.get("tests")
    if not isinstance(rows, list):
        raise PlancodeError(f"problem {problem.id} has no workspace tests in its meta",
                            "only problems from plancode.trainer.mine.mine carry meta['tests']")
    try:
        return [TestCase(str(r["id"]), str(r["kind"]), str(r["file"]), str(r["name"]))
                for r in rows]
    except (KeyError, TypeError) as exc:
        raise PlancodeError(f"problem {problem.id}: malformed meta['tests'] entry ({exc})",
                            "re-mine the codebase to rebuild the problem") from None


test_cases.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
