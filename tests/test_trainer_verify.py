"""Plan verification (``plancode.trainer.plans.verify_plans``) with a scripted coder and checker:
the
plan that is verified is the tidied one, and a resumed run never re-runs the reference
solutions it already judged (on the real run those are 1,313 sandboxed test runs)."""

from __future__ import annotations

from pathlib import Path

from plancode.engine.types import SamplingParams
from plancode.errors import PlancodeError
from plancode.testing.types import RunResult, TestVerdict
from plancode.trainer.checker import Checker as RealChecker
from plancode.trainer.data import Problem
from plancode.trainer.jsonl_cache import JsonlCache
from plancode.trainer.plan_tidy import tidy
from plancode.trainer.plans import plan_key, verify_plans
from plancode.trainer.references import reference_key
from tests.mined_fixtures import Answers, typecase_problem


class Coder:
    def __init__(self) -> None:
        self.prompts: list[str] = []

    def chat(self, messages, params) -> str:
        self.prompts.append(messages[-1]["content"])
        return "```python\ndef f(x):\n    return x\n```"


class Checker:
    """Every run passes; counts runs of reference solutions and of candidates."""

    def __init__(self) -> None:
        self.references = 0
        self.candidates = 0

    def has_tests(self, problem: Problem) -> bool:
        return True

    def check(self, problem: Problem, code: str) -> RunResult:
        if code == problem.solution:
            self.references += 1
        else:
            self.candidates += 1
        return RunResult([TestVerdict("t", "passed", "")], "rlimit", "", 0.01, runner_ok=True)


PLAN = ("1. Understand the Problem: f returns its argument.\n"
        "2. Return `x` unchanged. It is already the answer.\n"
        "3. Test the Function: call it.")


def problem(i: int) -> Problem:
    return Problem(f"p{i}", f"def f(x):\n    \"\"\"Return x ({i}).\"\"\"\n",
                   "def f(x):\n    return x\n", ("assert f(1) == 1",))


def test_verification_uses_tidied_plans_and_caches_reference_verdicts(tmp_path: Path) -> None:
    problems = [problem(i) for i in range(3)]
    plans = JsonlCache(tmp_path / "plans.jsonl")
    for p in problems[:2]:
        plans.add({"key": plan_key(p, 0), "id": p.id, "k": 0, "plan": PLAN})
    out = JsonlCache(tmp_path / "verified.jsonl")
    refs = JsonlCache(tmp_path / "references.jsonl")
    coder, checker = Coder(), Checker()
    report = verify_plans(coder, problems, 1, SamplingParams(), plans, out, checker,
                          progress=False, tidy=tidy, references=refs)
    assert (report.plans, report.passed, checker.references) == (2, 2, 2)
    assert all(row["plan"] == "1. Return `x` unchanged." for row in out)
    assert "Understand the Problem" not in coder.prompts[0], "the coder saw the tidied plan"

    # the run is resumed with the third problem's plan now written: only its reference runs
    plans.add({"key": plan_key(problems[2], 0), "id": "p2", "k": 0, "plan": PLAN})
    checker = Checker()
    again = verify_plans(coder, problems, 1, SamplingParams(), plans, out, checker,
                         progress=False, tidy=tidy, references=JsonlCache(refs.path))
    assert (again.plans, again.from_cache, checker.references, checker.candidates) == (3, 2, 1, 1)


def test_a_problem_whose_own_solution_fails_is_reported_and_never_decoded_again(
        tmp_path: Path) -> None:
    good, broken = problem(0), problem(1)
    broken = Problem(broken.id, broken.problem, "def f(x):\n    return None\n", broken.tests)

    unrunnable = problem(2)

    class Strict(Checker):
        def check(self, p: Problem, code: str) -> RunResult:
            if p is unrunnable:
                raise PlancodeError("no function f in the problem text", "fix the problem")
            run = super().check(p, code)
            if code == broken.solution:
                run.verdicts[0] = TestVerdict("t", "failed", "AssertionError")
            return run

    plans = JsonlCache(tmp_path / "plans.jsonl")
    for p in (good, broken, unrunnable):
        plans.add({"key": plan_key(p, 0), "id": p.id, "k": 0, "plan": "1. Return x."})
    out, refs = JsonlCache(tmp_path / "verified.jsonl"), JsonlCache(tmp_path / "refs.jsonl")
    coder = Coder()
    report = verify_plans(coder, [good, broken, unrunnable], 1, SamplingParams(), plans, out,
                          Strict(), progress=False, references=refs)
    assert (report.plans, report.passed, report.broken_problems) == (1, 1, ["p1", "p2"])
    assert [r["id"] for r in out] == ["p0"], "no verdict for a plan of a broken problem"
    assert (refs.get(reference_key(unrunnable)) or {})["error"].startswith("no function f")
    coder = Coder()
    again = verify_plans(coder, [good, broken, unrunnable], 1, SamplingParams(), plans, out,
                         Strict(), progress=False, references=JsonlCache(refs.path))
    assert coder.prompts == [] and again.broken_problems == ["p1", "p2"]
    assert again.from_cache == 1


def test_plans_are_judged_by_the_tests_the_solution_passes(tmp_path: Path) -> None:
    """Rule "reference": a problem whose solution fails a type-checker case is verified by
    its real test (a wrong answer still fails); rule "all" calls it broken, as the first run
    did. Real sandbox, real tests."""
    p = typecase_problem(tmp_path)
    plans = JsonlCache(tmp_path / "plans.jsonl")
    plans.add({"key": plan_key(p, 0), "id": p.id, "k": 0, "plan": "1. Return 3 * x."})

    def verify(body: str, rule: str, name: str):
        refs = JsonlCache(tmp_path / f"refs-{rule}.jsonl")
        out = JsonlCache(tmp_path / f"{name}.jsonl")
        with RealChecker("auto", 30.0) as checker:
            return verify_plans(Answers(body), [p], 1, SamplingParams(), plans, out, checker,
                                progress=False, references=refs, rule=rule), out

    right, out = verify("x + x + x", "reference", "right")
    assert (right.plans, right.passed, right.partly_judged) == (1, 1, 1)
    assert [v["id"] for v in next(iter(out))["verdicts"]] == ["tests/test_mod.py::test_triple"]
    wrong, _ = verify("x + x", "reference", "wrong")
    assert (wrong.plans, wrong.passed, wrong.broken_problems) == (1, 0, [])
    strict, out = verify("x + x + x", "all", "strict")
    assert (strict.plans, strict.broken_problems, list(out)) == (0, [p.id], [])


def test_an_old_failed_reference_row_is_run_again_and_an_old_passed_one_trusted(
        tmp_path: Path) -> None:
    """Reference rows from before judges were recorded: one that failed (most failed on
    sandbox defects fixed since) is run again; one that passed had every test pass."""
    old_pass, old_fail = problem(0), problem(1)
    plans = JsonlCache(tmp_path / "plans.jsonl")
    refs = JsonlCache(tmp_path / "refs.jsonl")
    for p, passed in ((old_pass, True), (old_fail, False)):
        plans.add({"key": plan_key(p, 0), "id": p.id, "k": 0, "plan": "1. Return x."})
        refs.add({"key": reference_key(p), "id": p.id, "passed": passed, "tests": 1,
                  "isolation": "bwrap"})
    checker = Checker()
    report = verify_plans(Coder(), [old_pass, old_fail], 1, SamplingParams(), plans,
                          JsonlCache(tmp_path / "verified.jsonl"), checker, progress=False,
                          references=refs)
    assert (report.plans, report.passed, report.broken_problems) == (2, 2, [])
    assert checker.references == 1, "only the old failed row was run again"
    assert JsonlCache(refs.path).get(reference_key(old_fail))["judges"] == ["t"]
