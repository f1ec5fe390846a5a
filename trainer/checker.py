"""Run a candidate solution of a training problem against the problem's tests, sandboxed.

Two kinds of problem, one answer (a ``RunResult`` from the server's sandbox):

* *standalone* problems (JSONL rows) carry their tests as assert statements or test functions:
  the candidate is spliced under the problem's own signature into ``solution.py`` and the tests
  run from ``test_problem.py`` in an empty throw-away workspace;
* *mined* problems live in a real codebase (``meta`` names the root, file and function): the
  candidate is spliced into the file exactly as the server's implement command would, and the
  discovered tests run in a copy of that codebase.

Splicing and sandboxing are the server's own code, so a plan verified here is verified the
way the user's editor would verify it.
"""

from __future__ import annotations

import shutil
import tempfile
import textwrap
from dataclasses import replace
from pathlib import Path

from plancode.analysis.functions import FunctionInfo, functions
from plancode.analysis.splice import splice
from plancode.errors import PlancodeError
from plancode.testing.sandbox import Sandbox
from plancode.testing.types import RunResult, TestCase
from plancode.trainer.data import Problem

SOLUTION = "solution.py"
TEST_FILE = "test_problem.py"


def target_function(source: str, qualname: str | None = None) -> FunctionInfo:
    """The function a problem asks for: ``qualname``, else the last top-level def."""
    found = functions(source)
    if qualname:
        match = [f for f in found if f.qualname == qualname]
    else:
        match = [f for f in found if f.def_indent == "" and "." not in f.qualname]
    if not match:
        raise PlancodeError(f"no function {qualname or ''} in the problem text".replace("  ", " "),
                            "a problem must state one Python function (signature + docstring)")
    return match[-1]


def standalone_tests(problem: Problem) -> tuple[str, list[TestCase]]:
    """The test module for a standalone problem, and one TestCase per test statement."""
    parts = ["from solution import *  # noqa: F403\n"]
    cases: list[TestCase] = []
    for i, test in enumerate(problem.tests):
        body = textwrap.dedent(test).strip("\n")
        if body.lstrip().startswith(("def test", "async def test")):
            name = body.split("(", 1)[0].split()[-1]
            parts.append(body)
        else:
            name = f"test_{i}"
            parts.append(f"def {name}():\n{textwrap.indent(body, '    ')}")
        cases.append(TestCase(f"{TEST_FILE}::{name}", "pytest", TEST_FILE, name))
    return "\n\n\n".join(parts) + "\n", cases


def cases_of(problem: Problem) -> list[TestCase]:
    """Every test of ``problem``: a mined problem's workspace tests, one per test statement of
    a standalone one."""
    if "root" in problem.meta:
        from plancode.trainer.mine import test_cases

        return test_cases(problem)
    return standalone_tests(problem)[1]


def judged_by(problem: Problem, judges: list[str]) -> Problem:
    """``problem`` with only the tests named in ``judges`` (test ids, as a run's verdicts
    name them)."""
    keep = set(judges)
    if "root" in problem.meta:
        tests = [t for t in problem.meta.get("tests", []) if t.get("id") in keep]
        return replace(problem, meta={**problem.meta, "tests": tests})
    _, cases = standalone_tests(problem)
    return replace(problem, tests=tuple(t for t, c in zip(problem.tests, cases, strict=True)
                                        if c.id in keep))


class Checker:
    """Splices candidates into their problem and runs its tests; owns the sandboxes."""

    def __init__(self, isolation: str = "auto", timeout: float = 10.0) -> None:
        self.isolation = isolation
        self.timeout = timeout
        self._empty = Path(tempfile.mkdtemp(prefix="plancode-standalone-"))
        self._boxes: dict[Path, Sandbox] = {}
        self._targets: dict[tuple[Path, str, str], tuple[str, FunctionInfo]] = {}

    def _sandbox(self, root: Path) -> Sandbox:
        if root not in self._boxes:
            self._boxes[root] = Sandbox(root, isolation=self.isolation, timeout=self.timeout)
        return self._boxes[root]

    def _target(self, root: Path, rel: str, qualname: str) -> tuple[str, FunctionInfo]:
        """The file's text and the function, read and parsed once per run (K plans each)."""
        key = (root, rel, qualname)
        if key not in self._targets:
            source = (root / rel).read_text(encoding="utf-8")
            self._targets[key] = source, target_function(source, qualname)
        return self._targets[key]

    def has_tests(self, problem: Problem) -> bool:
        return bool(problem.tests or problem.meta.get("tests"))

    def check(self, problem: Problem, code: str) -> RunResult:
        """Run ``code`` (a whole function, as a model writes it) against ``problem``'s tests.

        Raises PlancodeError when the code cannot be spliced (it does not parse, or defines
        something else): a candidate that cannot be placed has failed.
        """
        if "root" in problem.meta:
            root = Path(problem.meta["root"])
            rel = problem.meta["file"]
            source, info = self._target(root, rel, problem.meta["qualname"])
            return self.check_file(problem, splice(source, info, code).text)
        info = target_function(problem.problem)
        test_module, cases = standalone_tests(problem)
        files = {SOLUTION: splice(problem.problem, info, code).text, TEST_FILE: test_module}
        return self._sandbox(self._empty).run_tests(files, cases)

    def check_file(self, problem: Problem, text: str) -> RunResult:
        """Run a mined ``problem``'s tests with its file replaced by ``text`` (a whole file
        with the candidate in it, as the pipeline writes it, imports it added included)."""
        root = Path(problem.meta["root"])
        return self._sandbox(root).run_tests({problem.meta["file"]: text}, cases_of(problem))

    def close(self) -> None:
        for box in self._boxes.values():
            box.close()
        shutil.rmtree(self._empty, ignore_errors=True)

    def __enter__(self) -> Checker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
