"""Teacher-code vs student-code verification on the same plans: both coders' code is judged by
the problems' own tests in the sandbox, the student's side is the verify stage's own verdict
where it has one, and the yields add up."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from plancode.trainer import verify_compare
from plancode.trainer.config import DistillConfig
from plancode.trainer.distill import run_distill
from plancode.trainer.jsonl_cache import JsonlCache
from plancode.trainer.plans import plan_key

REPO = Path(__file__).resolve().parent.parent

CONFIG = """
out_dir = "run"

[data]
jsonl = ["problems.jsonl"]
val_fraction = 0.0

[verify]
coder = "student"
coder_model = "student.gguf"
isolation = "auto"
"""


class Coder:
    """Writes code from a plan: right for the problems in ``solves``, a wrong body otherwise."""

    def __init__(self, solutions: dict[str, str], solves: set[str]) -> None:
        self.solutions, self.solves, self.asked = solutions, solves, []

    def chat(self, messages, params) -> str:
        prompt = messages[-1]["content"]
        name = next(n for n in self.solutions if f"def {n}(" in prompt)
        self.asked.append(name)
        code = self.solutions[name] if name in self.solves else f"def {name}(*a):\n    return 0\n"
        return f"```python\n{code}```"


def test_both_coders_are_judged_on_the_same_plans(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "run.toml").write_text(CONFIG)
    shutil.copy(REPO / "tests" / "fixtures" / "distill_problems.jsonl",
                tmp_path / "problems.jsonl")
    cfg = DistillConfig.load(tmp_path / "run.toml")
    run_distill(cfg, ("data",), progress=False, log=lambda m: None)
    problems = sorted(_train(cfg), key=lambda p: p.id)
    solutions = {p.problem.split("def ")[1].split("(")[0]: p.solution for p in problems}
    plans = JsonlCache(cfg.out_dir / "plans" / "plans.jsonl")
    for p in problems:
        plans.add({"key": plan_key(p, 0), "id": p.id, "k": 0, "plan": "1. Do it.\n2. Return."})
    # the verify stage already judged the student's code for the first two plans
    verdicts = JsonlCache(cfg.out_dir / "verify" / "verified.jsonl")
    for p, passed in zip(problems[:2], (True, False), strict=True):
        verdicts.add({"key": plan_key(p, 0), "id": p.id, "plan": "1. Do it.", "passed": passed,
                      "code": p.solution})
    names = sorted(solutions)
    teacher = Coder(solutions, set(names))           # the teacher solves every problem
    student = Coder(solutions, set(names[::2]))      # the student every other one
    monkeypatch.setattr(verify_compare, "Teacher", lambda cfg: teacher)
    monkeypatch.setattr(verify_compare, "coder_for", lambda cfg, t: student)

    report = verify_compare.compare(cfg, len(problems), log=False)

    assert report["plans"] == len(problems)
    assert report["teacher_passed"] == len(problems) and report["teacher_yield"] == 1.0
    assert report["student_from_verify_stage"] == 2
    first_two = {p.problem.split("def ")[1].split("(")[0] for p in problems[:2]}
    assert not first_two & set(student.asked)  # the stage's verdicts were not redone
    expected = 1 + sum(1 for n in names[::2] if n not in first_two)
    assert report["student_passed"] == expected
    assert report["both"] == expected and report["student_only"] == 0
    assert report["teacher_only"] == len(problems) - expected
    assert json.loads((cfg.out_dir / "compare" / "report.json").read_text()) == report
    # resumable: a second run asks no model
    monkeypatch.setattr(verify_compare, "Teacher", lambda cfg: NoModel())
    monkeypatch.setattr(verify_compare, "coder_for", lambda cfg, t: NoModel())
    assert verify_compare.compare(cfg, len(problems), log=False) == report


class NoModel:
    def chat(self, messages, params) -> str:
        raise AssertionError("a cached comparison asked a model")


def _train(cfg: DistillConfig):
    from plancode.trainer.stages.data import problems_of

    return problems_of(cfg)[0]
