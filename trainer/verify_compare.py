"""Who should verify a plan: the teacher or the student? Yield of both on the same plans.

``python -m plancode.trainer.verify_compare --config configs/distill-real.toml --sample 40``

For a deterministic sample of training problems and the teacher's greedy backward plan for each
(the plans stage's cached row, or written now; tidied as the verify stage tidies it), the
teacher (1.5B) and the student (0.5B) each write code from the plan alone
with the server's code-from-plan prompt, and the problem's own tests judge both. The student's
side is the verify stage's own verdict on that plan where it has one (same prompt, same
settings: the comparison is with what the run actually kept), written now otherwise. The report
gives each coder's yield (passing plans / plans tried), how often they agree, and the plans
only one of them turns into passing code. Student verification keeps only plans the model
being trained can follow; this measures how much training data that choice costs or saves.

Rows are cached in ``out_dir/compare/verify_compare.jsonl`` (resumable); the summary goes to
``out_dir/compare/report.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from plancode.errors import PlancodeError
from plancode.prompts import code_from_plan_messages, parse_code
from plancode.trainer.checker import Checker
from plancode.trainer.config import DistillConfig
from plancode.trainer.jsonl_cache import JsonlCache
from plancode.trainer.plans import plan_key
from plancode.trainer.references import judged, reference_row
from plancode.trainer.stages.chat import LazyChat, Teacher, coder_for
from plancode.trainer.stages.data import problems_of
from plancode.trainer.stages.plans import tidy_of


def sample_plans(cfg: DistillConfig, n: int, teacher: LazyChat | None = None,
                 ) -> list[tuple[object, dict]]:
    """(problem, greedy plan row) for ``n`` training problems chosen by a hash of their ids.

    The plan is the plans stage's cached row when it exists; otherwise the teacher writes it
    now (same prompt, same settings, same key) into ``compare/plans.jsonl``, so the comparison
    does not wait for the plans stage to reach the sample."""
    from plancode.prompts import backward_plan_messages, parse_plan

    train, _ = problems_of(cfg)
    train.sort(key=lambda p: hashlib.sha256(p.id.encode()).hexdigest())
    stage_plans = JsonlCache(cfg.out_dir / "plans" / "plans.jsonl")
    own = JsonlCache(cfg.out_dir / "compare" / "plans.jsonl")
    out = []
    for problem in train[:n]:
        key = plan_key(problem, 0)
        row = stage_plans.get(key) or own.get(key)
        if row is None and teacher is not None:
            reply = teacher.chat(backward_plan_messages(problem.problem, problem.solution),
                                 cfg.teacher.plan_params(0))
            row = {"key": key, "id": problem.id, "k": 0, "plan": parse_plan(reply),
                   "reply": reply}
            own.add(row)
        if row is not None and row["plan"]:
            out.append((problem, row))
    return out


def _judge(coder: LazyChat, checker: Checker, problem, plan: str, cfg: DistillConfig) -> dict:
    start = time.perf_counter()
    reply = coder.chat(code_from_plan_messages(problem.problem, plan,
                                               str(problem.meta.get("context", ""))),
                       cfg.verify.code_params())
    code = parse_code(reply)
    try:
        passed = checker.check(problem, code).all_passed
    except PlancodeError:
        passed = False
    return {"passed": passed, "code": code, "seconds": round(time.perf_counter() - start, 2)}


def _stage_verdict(verdicts: JsonlCache, key: str) -> dict | None:
    """The verify stage's verdict on the plan ``key`` (its code and whether it passed)."""
    row = verdicts.get(key)
    if row is None:
        return None
    return {"passed": bool(row["passed"]), "code": row.get("code", ""), "seconds": None,
            "from": "verify stage"}


def compare(cfg: DistillConfig, n: int, log: bool = True) -> dict:
    out_dir = cfg.out_dir / "compare"
    cache = JsonlCache(out_dir / "verify_compare.jsonl")
    teacher = Teacher(cfg)
    student = coder_for(cfg, teacher) if cfg.verify.coder == "student" else None
    if student is None:
        raise PlancodeError("the comparison needs verify.coder = 'student'",
                            "set it in the config (the teacher is the other coder)")
    sample = sample_plans(cfg, n, teacher)
    tidy = tidy_of(cfg) or (lambda plan: plan)  # the plan as the verify stage judges it
    judged_as: dict[str, object] = {}  # each problem with the tests that judge (or None)
    references = JsonlCache(cfg.out_dir / "verify" / "references.jsonl")
    verdicts = JsonlCache(cfg.out_dir / "verify" / "verified.jsonl")
    with Checker(cfg.verify.isolation, cfg.verify.timeout) as checker:
        for problem, row in sample:
            if row["key"] in cache or not checker.has_tests(problem):
                continue
            if problem.id not in judged_as:  # the verify stage's cached verdicts
                judged_as[problem.id] = judged(
                    problem, reference_row(checker, problem, references), cfg.verify.judges)
            if judged_as[problem.id] is None:
                continue
            problem = judged_as[problem.id]
            plan = tidy(row["plan"])
            if not plan:
                continue
            result = {"key": row["key"], "id": problem.id, "plan": plan,
                      "teacher": _judge(teacher, checker, problem, plan, cfg),
                      "student": _stage_verdict(verdicts, row["key"])
                      or _judge(student, checker, problem, plan, cfg)}
            cache.add(result)
            if log:
                print(f"{row['key']}: teacher={'PASS' if result['teacher']['passed'] else 'fail'}"
                      f" student={'PASS' if result['student']['passed'] else 'fail'}",
                      file=sys.stderr, flush=True)
    keys = {r["key"] for _, r in sample}
    rows = [r for r in cache if r["key"] in keys]
    report = summarise(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    return report


def summarise(rows: list[dict]) -> dict:
    n = len(rows)
    t = sum(r["teacher"]["passed"] for r in rows)
    s = sum(r["student"]["passed"] for r in rows)
    both = sum(r["teacher"]["passed"] and r["student"]["passed"] for r in rows)
    return {"plans": n, "teacher_yield": round(t / n, 4) if n else 0.0,
            "student_yield": round(s / n, 4) if n else 0.0, "teacher_passed": t,
            "student_passed": s, "both": both, "teacher_only": t - both, "student_only": s - both,
            "agreement": round(sum(r["teacher"]["passed"] == r["student"]["passed"]
                                   for r in rows) / n, 4) if n else 0.0,
            "median_seconds": {who: _median([r[who]["seconds"] for r in rows])
                               for who in ("teacher", "student")},
            "student_from_verify_stage": sum(r["student"].get("from") == "verify stage"
                                             for r in rows)}


def _median(values: list[float | None]) -> float | None:
    """Median of the timed rows (a verdict taken from the verify stage has no time here)."""
    timed = sorted(v for v in values if v is not None)
    return timed[len(timed) // 2] if timed else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--sample", type=int, default=40, help="plans compared")
    args = ap.parse_args(argv)
    try:
        report = compare(DistillConfig.load(Path(args.config)), args.sample)
    except PlancodeError as exc:
        print(f"error: {exc.message}\nfix: {exc.fix}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
