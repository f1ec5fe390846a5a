"""What a problem's own solution says about its tests: which of them can judge an answer.

A mined problem's tests are its codebase's own, run in plancode's sandbox; some fail or skip
the problem's own solution there (pydash's pytest-mypy-testing cases are checks for a type
checker that fail as plain tests, an optional dependency is missing, a test needs the network).
Such a test tells a right answer from a wrong one no better than a coin, so what judges an
answer is decided by running the solution first. The verdict is kept as one row per problem
in a JSONL cache (``reference_key``), so a resumed run never re-runs it::

    {"key", "id", "passed": every test passed, "judges": ids of the tests it passes,
     "tests": how many tests ran, "isolation", "error" (only when it could not run)}

A row from before ``judges`` were recorded ("passed" only) that passed had every test pass;
one that failed is run again: most of those failed on sandbox defects fixed since.

Two rules (``plancode.trainer.config.JUDGE_RULES``, set by ``verify.judges``) say which tests judge:

* ``"all"``: every test; a problem whose solution fails any test is broken (the rule the first
  distillation run verified its plans by);
* ``"reference"``: the tests the solution passes; broken only when it passes none (the
  held-out evaluation's rule, and the default).
"""

from __future__ import annotations

import hashlib

from plancode.errors import PlancodeError
from plancode.trainer.checker import Checker, cases_of, judged_by
from plancode.trainer.data import Problem
from plancode.trainer.jsonl_cache import JsonlCache


def problem_digest(problem: Problem) -> str:
    """Changes when the problem's text or its solution does."""
    return hashlib.sha256(f"{problem.problem}\0{problem.solution}".encode()).hexdigest()[:12]


def reference_key(problem: Problem) -> str:
    """Cache key of the verdict on a problem's own solution (changes with the problem)."""
    return f"{problem.id}#reference#{problem_digest(problem)}"


def settled(row: dict | None) -> bool:
    """Whether a cached row is final (an older row that failed is run again)."""
    return row is not None and ("judges" in row or bool(row.get("passed")))


def reference_row(checker: Checker, problem: Problem, refs: JsonlCache | None) -> dict:
    """The verdict row on ``problem``'s own solution: read from ``refs`` when it holds one
    that says which tests judge (or an older row in which every test passed), else run and
    added to ``refs``."""
    key = reference_key(problem)
    row = refs.get(key) if refs is not None else None
    if row is not None and "judges" in row:
        return row
    if row is not None and row.get("passed"):
        ids = [t.id for t in cases_of(problem)]
        return {**row, "judges": ids, "tests": len(ids)}
    row = _run_reference(checker, problem, key)
    if refs is not None:
        refs.add(row)
    return row


def _run_reference(checker: Checker, problem: Problem, key: str) -> dict:
    try:
        run = checker.check(problem, problem.solution)
    except PlancodeError as exc:  # the problem itself cannot be run: broken, not fatal
        return {"key": key, "id": problem.id, "passed": False, "judges": [],
                "tests": len(cases_of(problem)), "isolation": "", "error": exc.message}
    return {"key": key, "id": problem.id, "passed": run.all_passed,
            "judges": [v.id for v in run.verdicts if v.outcome == "passed"],
            "tests": len(run.verdicts), "isolation": run.isolation}


def judged(problem: Problem, row: dict, rule: str) -> Problem | None:
    """``problem`` with only the tests that judge answers under ``rule`` (a row from
    :func:`reference_row`), or None when no test can (the problem is broken)."""
    judges = list(row.get("judges") or [])
    if not judges:
        return None
    if len(judges) >= row.get("tests", 0):
        return problem
    return None if rule == "all" else judged_by(problem, judges)


def known_broken(row: dict | None, rule: str) -> bool:
    """Whether a cached row already says the problem is broken under ``rule`` (an older row
    that failed is not known: it is run again)."""
    if row is None or "judges" not in row:
        return False
    if rule == "all":
        return not row["judges"] or len(row["judges"]) < row.get("tests", 0)
    return not row["judges"]


def partly_judged(row: dict | None) -> bool:
    """A problem judged by some of its tests only (its solution failed or skipped others)."""
    return bool(row and row.get("judges") and len(row["judges"]) < row.get("tests", 0))
