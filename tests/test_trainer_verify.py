"""Plan verification (``trainer.plans.verify_plans``) with a scripted coder and checker: the
plan that is verified is the tidied one, and a resumed run never re-runs the reference
solutions it already judged (on the real run those are 1,313 sandboxed test runs)."""

from __future__ import annotations

from pathlib import Path

from server.engine.types import SamplingParams
from server.errors import PlancodeError
from server.testing.types import RunResult, TestVerdict
from trainer.data import Problem
from trainer.jsonl_cache import JsonlCache
from trainer.plan_tidy import tidy
from trainer.plans import plan_key, reference_key, verify_plans


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
