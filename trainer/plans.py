"""Stages 2 and 3: backward-reasoning plans from the teacher, then their verification.

Stage 2 (CodePLAN's backward reasoning): the teacher sees the problem *and* its correct
solution and writes the plan a programmer would have followed; K plans per problem (the first
greedy, the rest sampled), each appended to ``plans.jsonl`` as soon as it exists.

Stage 3: each plan is turned back into code from the plan alone — by the *student* by default
(the model being trained; the teacher on request), with the same code-from-plan prompt the
server uses — and that code runs against the problem's tests in the sandbox. Only plans whose
code passes become training data: a plan that does not lead the student to working code
teaches it nothing it can use. Which tests judge is decided by the problem's own solution
first (``plancode.trainer.references``). Results go to ``verified.jsonl``.

Both stages skip work already on disk, so an interrupted run resumes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from tqdm import tqdm

from plancode.engine.types import SamplingParams
from plancode.errors import PlancodeError
from plancode.prompts import backward_plan_messages, code_from_plan_messages, parse_code, parse_plan
from plancode.trainer.checker import Checker
from plancode.trainer.data import Problem
from plancode.trainer.jsonl_cache import JsonlCache
from plancode.trainer.references import judged as judged_problem
from plancode.trainer.references import (
    known_broken,
    partly_judged,
    problem_digest,
    reference_key,
    reference_row,
    settled,
)
from plancode.trainer.teacher import ChatModel, TeacherConfig


def plan_key(problem: Problem, k: int) -> str:
    """Cache key: changes when the problem's text or solution does, so edits are re-planned."""
    return f"{problem.id}#{k}#{problem_digest(problem)}"


def _context(problem: Problem) -> str:
    return str(problem.meta.get("context", ""))


@dataclass
class PlanReport:
    problems: int = 0
    requested: int = 0
    from_cache: int = 0
    generated: int = 0
    empty: int = 0  # replies with no plan steps in them
    seconds: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)


def write_plans(teacher: ChatModel, problems: list[Problem], cfg: TeacherConfig,
                cache: JsonlCache, progress: bool = True,
                limit: int | None = None) -> PlanReport:
    """Fill ``cache`` with K backward plans per problem; ``limit`` stops after that many new
    generations (used to test resuming)."""
    report = PlanReport(problems=len(problems))
    start = time.perf_counter()
    # plan k of every problem before plan k+1 of any: a run stopped early has a greedy plan
    # for as many problems as possible
    todo = [(p, k) for k in range(cfg.plans_per_problem) for p in problems]
    report.requested = len(todo)
    missing = [(p, k) for p, k in todo if plan_key(p, k) not in cache]
    report.from_cache = len(todo) - len(missing)
    if limit is not None:
        missing = missing[:limit]
    many = getattr(teacher, "chat_many", None)
    group = cfg.batch if many is not None else 1
    with tqdm(total=len(todo), initial=report.from_cache, desc="teacher plans", unit="plan",
              disable=not progress) as bar:
        for at in range(0, len(missing), group):
            part = missing[at:at + group]
            t = time.perf_counter()
            conversations = [backward_plan_messages(p.problem, p.solution) for p, _ in part]
            params = [cfg.plan_params(k) for _, k in part]
            replies = (many(conversations, params) if many is not None and len(part) > 1
                       else [teacher.chat(m, q) for m, q in zip(conversations, params,
                                                                 strict=True)])
            seconds = round((time.perf_counter() - t) / len(part), 3)
            for (problem, k), reply in zip(part, replies, strict=True):
                plan = parse_plan(reply)
                report.generated += 1
                report.empty += not plan
                cache.add({"key": plan_key(problem, k), "id": problem.id, "k": k, "plan": plan,
                           "reply": reply, "seconds": seconds})
            bar.update(len(part))
    report.seconds = round(time.perf_counter() - start, 3)
    return report


@dataclass
class VerifyReport:
    plans: int = 0
    passed: int = 0
    failed: int = 0
    from_cache: int = 0
    broken_problems: list[str] = field(default_factory=list)  # no test can judge (references)
    partly_judged: int = 0  # problems judged by the tests their solution passes, not all
    untested_problems: list[str] = field(default_factory=list)
    problems_with_a_plan: int = 0
    tests_run: int = 0
    isolation: str = ""
    seconds: float = 0.0

    @property
    def yield_(self) -> float:
        return self.passed / self.plans if self.plans else 0.0

    def to_json(self) -> dict:
        return {**asdict(self), "yield": round(self.yield_, 4)}


def _verdict_row(key: str, problem: Problem, plan_row: dict, code: str, run, error: str) -> dict:
    return {
        "key": key, "id": problem.id, "k": plan_row["k"], "plan": plan_row["plan"],
        "code": code, "passed": bool(run is not None and run.all_passed and not error),
        "error": error,
        "verdicts": [v.to_json() for v in run.verdicts] if run is not None else [],
        "isolation": run.isolation if run is not None else "",
    }


def _check_code(checker: Checker, report: VerifyReport, problem: Problem, key: str,
                row: dict, code: str) -> dict:
    """The verdict row of ``code`` (written from ``row``'s plan) on ``problem``'s tests."""
    run, error = None, ""
    try:
        run = checker.check(problem, code)
        report.tests_run += len(run.verdicts)
        report.isolation = run.isolation
    except PlancodeError as exc:
        error = exc.message
    return _verdict_row(key, problem, row, code, run, error)


def verify_plans(coder: ChatModel, problems: Iterable[Problem], plans_per_problem: int,
                 params: SamplingParams, plans: JsonlCache, out: JsonlCache, checker: Checker,
                 progress: bool = True, batch: int = 1,
                 tidy: Callable[[str], str] | None = None,
                 references: JsonlCache | None = None, rule: str = "reference") -> VerifyReport:
    """Have ``coder`` turn every cached plan into code (greedy, ``params``) and keep a verdict
    per plan in ``out``. The coder is the student by default: a plan is kept only when the
    model being trained can follow it to passing code. With ``batch`` > 1 and a coder that
    has ``chat_many``, that many plans are turned into code together, and their tests run on
    a worker thread while the next group decodes. ``tidy`` rewrites each plan first
    (``plancode.trainer.plan_tidy``): what is verified is what is trained on. Each problem's own
    solution is run before its first plan's code, and ``rule`` (``plancode.trainer.references``)
    says which of its tests then judge the code; ``references`` keeps those verdicts, so a
    resumed run does not re-run them."""
    report = VerifyReport()
    start = time.perf_counter()
    problems = list(problems)
    pending = _to_verify(problems, plans_per_problem, plans, out, checker, report, tidy,
                         references, rule)
    judge = _Judge(checker, report, out, references, rule)
    many = getattr(coder, "chat_many", None)
    group = batch if many is not None else 1
    with (ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-tests") as tests,
          tqdm(total=len(pending), desc="verify plans", unit="plan",
               disable=not progress) as bar):
        judged: Future | None = None
        for at in range(0, len(pending), group):
            part = pending[at:at + group]
            conversations = [code_from_plan_messages(p.problem, row["plan"], _context(p))
                             for p, _, row in part]
            replies = (many(conversations, [params] * len(part))
                       if many is not None and len(part) > 1
                       else [coder.chat(m, params) for m in conversations])
            if judged is not None:
                judged.result()  # one group tested at a time: the report is never shared
            judged = tests.submit(judge.group, part, replies)
            bar.update(len(part))
        if judged is not None:
            judged.result()
    ids = {p.id for p in problems}
    report.problems_with_a_plan = len({r["id"] for r in out if r["passed"] and r["id"] in ids})
    if references is not None and rule == "reference":
        report.partly_judged = sum(partly_judged(references.get(reference_key(p)))
                                   for p in problems)
    report.seconds = round(time.perf_counter() - start, 3)
    return report


def _to_verify(problems: list[Problem], plans_per_problem: int, plans: JsonlCache,
               out: JsonlCache, checker: Checker, report: VerifyReport,
               tidy: Callable[[str], str] | None,
               references: JsonlCache | None, rule: str) -> list[tuple[Problem, str, dict]]:
    """(problem, key, plan row) of every plan still to verify; verdicts already in ``out``
    are counted into ``report``, and problems known to be broken are left out."""
    pending: list[tuple[Problem, str, dict]] = []
    for k in range(plans_per_problem):
        for problem in problems:
            key = plan_key(problem, k)
            row = plans.get(key)
            if row is not None and tidy is not None:
                row = {**row, "plan": tidy(row["plan"])}
            if row is None or not row["plan"]:
                continue
            if not checker.has_tests(problem):
                if problem.id not in report.untested_problems:
                    report.untested_problems.append(problem.id)
                continue
            if key in out:
                done = out.get(key) or {}
                report.plans += 1
                report.from_cache += 1
                report.passed += done.get("passed", False)
                report.failed += not done.get("passed", False)
                continue
            known = references.get(reference_key(problem)) if references is not None else None
            if known_broken(known, rule):
                if problem.id not in report.broken_problems:
                    report.broken_problems.append(problem.id)
                continue
            pending.append((problem, key, row))
    return pending


class _Judge:
    """Runs the tests of a group of plans' code (on the verify stage's test thread)."""

    def __init__(self, checker: Checker, report: VerifyReport, out: JsonlCache,
                 references: JsonlCache | None, rule: str) -> None:
        self.checker, self.report, self.out, self.references = checker, report, out, references
        self.rule = rule
        self.judged: dict[str, Problem | None] = {}  # each problem with the tests that judge

    def _judged(self, problem: Problem) -> Problem | None:
        if problem.id not in self.judged:  # tests failing the reference verify nothing
            ran = self.references is None or not settled(
                self.references.get(reference_key(problem)))
            row = reference_row(self.checker, problem, self.references)
            if ran and "error" not in row:
                self.report.tests_run += row["tests"]
                self.report.isolation = row["isolation"]
            self.judged[problem.id] = judged_problem(problem, row, self.rule)
            if self.judged[problem.id] is None:
                self.report.broken_problems.append(problem.id)
        return self.judged[problem.id]

    def group(self, part: list[tuple[Problem, str, dict]], replies: list[str]) -> None:
        report = self.report
        for (problem, key, row), reply in zip(part, replies, strict=True):
            judged = self._judged(problem)
            if judged is None:
                continue
            verdict = _check_code(self.checker, report, judged, key, row, parse_code(reply))
            self.out.add(verdict)
            report.plans += 1
            report.passed += verdict["passed"]
            report.failed += not verdict["passed"]
