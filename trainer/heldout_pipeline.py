"""plancode's whole pipeline (``select``) on a held-out mined problem, as a user meets one.

The user's file holds the function's signature and docstring and no body, in a copy of its
codebase without the tests: the package's tests are the hidden judges, as HumanEval's hidden
tests are, while the function's own docstring examples stay visible, as HumanEval's do. The
pipeline gets what the server would get in that file (the docstring's examples as the user's
tests, or tests it writes itself where there are none; candidates, repairs, selection), and
the file it chooses is judged by the package's own tests
(:class:`plancode.trainer.checker.Checker`),
like the ``direct`` and ``plan`` answers of :mod:`plancode.trainer.heldout`.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from plancode.pipeline.result import Candidate
from plancode.pipeline.run import Pipeline
from plancode.testing.index import pytest_options
from plancode.trainer import pools
from plancode.trainer.checker import Checker, target_function
from plancode.trainer.data import Problem
from plancode.trainer.mine import is_test_file

# never copied into the user's workspace: version control, caches, built files
_JUNK = {".git", ".hg", ".tox", ".nox", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache",
         "build", "dist", "docs", "doc"}


def stubbed(source: str, qualname: str) -> tuple[str, int]:
    """``source`` with ``qualname``'s body replaced by ``...`` (signature and docstring kept),
    and the 0-based line of that ``...``: the file as a user asks plancode to fill it in."""
    info = target_function(source, qualname)
    head = source[:info.body_start]
    return head + info.body_indent + "..." + info.newline + source[info.body_end:], \
        head.count("\n")


def _hidden(root: Path, patterns: list[str], folder: str, names: list[str]) -> set[str]:
    """The entries of ``folder`` (under ``root``) a user's copy leaves out: junk and tests."""
    rel = Path(folder).relative_to(root)

    def hidden(name: str) -> bool:
        if name in _JUNK:
            return True
        if name in {"tests", "test"}:
            return (root / rel / name).is_dir()
        return (name.endswith(".py") and name != "conftest.py"
                and is_test_file((rel / name).as_posix(), patterns))

    return {name for name in names if hidden(name)}


class Workspaces:
    """One copy per codebase without its tests (``tests``/``test`` folders, ``test_*.py`` and
    the other files pytest collects; ``conftest.py`` outside them stays, as doctests may need
    it), made on first use and removed on close."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="plancode-heldout-ws-"))
        self._copies: dict[Path, Path] = {}

    def of(self, root: Path) -> Path:
        root = Path(root)
        if root not in self._copies:
            patterns = pytest_options(root)["python_files"]
            dest = self._dir / root.name

            shutil.copytree(root, dest, ignore=partial(_hidden, root, patterns), symlinks=True)
            self._copies[root] = dest
        return self._copies[root]

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Workspaces:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pipeline_row(pipeline: Pipeline, checker: Checker, workspaces: Workspaces,
                 problem: Problem) -> dict:
    """The pipeline's answer to a mined ``problem`` and the package tests' verdict on it (the
    row :mod:`plancode.trainer.heldout` caches for mode ``select``)."""
    root, rel = Path(problem.meta["root"]), problem.meta["file"]
    original = (root / rel).read_text(encoding="utf-8")
    text, line = stubbed(original, problem.meta["qualname"])
    ws = workspaces.of(root)
    (ws / rel).write_text(text, encoding="utf-8")  # no copy of the solution stays readable
    start = time.perf_counter()
    result = pipeline.run(ws / rel, line, source=text, root=ws)
    seconds = time.perf_counter() - start
    chosen, first = result.chosen, result.first_answer
    verdicts: dict[str, bool] = {}  # by file text: each distinct file judged once

    def judged(text: str | None) -> bool:
        if text is None:
            return False
        if text not in verdicts:
            verdicts[text] = checker.check_file(problem, text).all_passed
        return verdicts[text]

    passed = judged(chosen.spliced_text) if chosen is not None else False
    return {"key": f"{problem.id}#select", "id": problem.id, "mode": "select",
            "passed": passed, "code": chosen.function_code if chosen else "",
            "seconds": round(seconds, 2), "candidates": len(result.candidates),
            "strategy": chosen.strategy if chosen else None,
            "tests_source": result.tests_source, "user_tests": len(result.tests),
            "passed_user_tests": bool(chosen and chosen.all_passed),
            # what the label said ("verified", "passes-tests", ...) and the first answer shown
            "status": result.status, "budget_reached": result.budget_reached,
            "first_seconds": (round(result.first_answer_seconds, 3)
                              if result.first_answer_seconds is not None else None),
            "first_passed": judged(first.spliced_text) if first is not None else None,
            "timings": {k: round(v, 2) for k, v in result.timings.items()},
            "pool": pool_row(result.candidates, chosen, judged),
            "settings": {"candidates": pipeline.settings.candidates,
                         "repair_rounds": pipeline.settings.repair_rounds,
                         "budget": pipeline.settings.budget,
                         "escalate_model": pipeline.settings.escalate_model}}


def pool_row(candidates: list[Candidate], chosen: Candidate | None,
             judged: Callable[[str | None], bool]) -> list[dict]:
    """The pool, for comparing choosers offline (``benchmarks/choosers.py``): every
    candidate's code and evidence, and the package tests' verdict (``hidden``) on those a
    chooser could pick (the ones passing the most user tests; None for the rest)."""
    usable = [c for c in candidates if c.function_code and not c.error and c.run]
    best = max((c.passed for c in usable), default=-1)
    return [{**pools.entry(c, chosen),
             "hidden": judged(c.spliced_text) if c in usable and c.passed == best else None}
            for c in candidates]
