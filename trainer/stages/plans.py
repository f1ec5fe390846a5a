"""The plans stage (backward plans from the teacher) and the verify stage (each plan turned
into code by the coder and judged by its problem's tests); and the triples training and
export read back from them."""

from __future__ import annotations

import dataclasses

from plancode.trainer import plan_tidy
from plancode.trainer.config import DistillConfig
from plancode.trainer.data import Problem
from plancode.trainer.jsonl_cache import JsonlCache
from plancode.trainer.stages.chat import LazyChat, coder_for
from plancode.trainer.stages.data import problems_of
from plancode.trainer.stages.stage import Stage, model_identity, open_stage, stage_fingerprint


def stage_plans(cfg: DistillConfig, teacher: LazyChat, progress: bool,
                limit: int | None = None) -> dict:
    """K backward plans per training problem from the teacher, appended row by row;
    ``limit`` stops after that many new plans (the stage then stays unfinished)."""
    from plancode.trainer.plans import write_plans

    stage, done = open_stage(cfg, "plans")
    if done is not None:
        return done
    train, _ = problems_of(cfg)
    cache = JsonlCache(stage.dir / "plans.jsonl")
    report = write_plans(teacher, train, cfg.teacher, cache, progress, limit).to_json()
    if limit is not None and report["generated"] >= limit:
        return report  # stopped early on purpose: not done
    return stage.finish(report)


def stage_verify(cfg: DistillConfig, teacher: LazyChat, progress: bool,
                 coder: LazyChat | None = None) -> dict:
    """Every plan turned into code by the coder (the student by default) and judged by its
    problem's tests; then a greedy teacher plan per validation problem."""
    from plancode.trainer.checker import Checker
    from plancode.trainer.plans import verify_plans

    stage, done = open_stage(cfg, "verify")
    if done is not None:
        return done
    seeded = seed_verdicts(cfg, stage)
    train, val = problems_of(cfg)
    plans = JsonlCache(cfg.out_dir / "plans" / "plans.jsonl")
    out = JsonlCache(stage.dir / "verified.jsonl")
    coder = coder or coder_for(cfg, teacher)
    with Checker(cfg.verify.isolation, cfg.verify.timeout) as checker:
        report = verify_plans(coder, train, cfg.teacher.plans_per_problem,
                              cfg.verify.code_params(), plans, out, checker, progress,
                              batch=cfg.verify.batch, tidy=tidy_of(cfg),
                              references=JsonlCache(stage.dir / "references.jsonl"),
                              rule=cfg.verify.judges)
    write_val_plans(cfg, teacher, val)
    return stage.finish({**report.to_json(), "coder": cfg.verify.coder,
                         "coder_model": model_identity(cfg.coder_model),
                         "judges": cfg.verify.judges, "seeded_from": seeded})


SEEDED = ("verified.jsonl", "references.jsonl", "val_plans.jsonl")


def seed_verdicts(cfg: DistillConfig, stage: Stage) -> str | None:
    """Start a ``judges = "reference"`` verification from the verdicts of ``reuse_from``'s
    verify stage when that stage finished the same plans with the same coder under the
    ``"all"`` rule: every problem it verified had its solution pass every test, so its
    verdicts stand under the new rule too, and only the problems it found broken are run
    again (their reference first). Returns the stage copied from (run folder name/verify),
    or None."""
    if cfg.reuse_from is None or cfg.verify.judges != "reference":
        return None
    source = cfg.reuse_from / "verify"
    before = dataclasses.replace(cfg, verify=dataclasses.replace(cfg.verify, judges="all"))
    stamp = source / "fingerprint.txt"
    if not (source / "done.json").exists() or not stamp.exists() or \
            stamp.read_text() != stage_fingerprint(before, "verify"):
        return None
    for name in SEEDED:
        target = JsonlCache(stage.dir / name)
        for row in JsonlCache(source / name):
            if row["key"] not in target:
                target.add(row)
    return f"{cfg.reuse_from.name}/verify"


def verified_triples(cfg: DistillConfig, problems: list[Problem]) -> list[dict]:
    """(problem, plan, solution) for every plan whose code passed its problem's tests; the
    solution is the problem's own or that passing code (``train.code_target``)."""
    by_id = {p.id: p for p in problems}
    rows = JsonlCache(cfg.out_dir / "verify" / "verified.jsonl")
    own = cfg.train.code_target == "verified"
    return [{"id": r["id"], "problem": by_id[r["id"]].problem, "plan": r["plan"],
             "solution": r["code"] if own else by_id[r["id"]].solution,
             "context": str(by_id[r["id"]].meta.get("context", ""))}
            for r in rows if r["passed"] and r["id"] in by_id]


def write_val_plans(cfg: DistillConfig, teacher: LazyChat, val: list[Problem]) -> None:
    """A greedy backward plan per validation problem (held-out loss and export agreement)."""
    from plancode.prompts import backward_plan_messages, parse_plan

    cache = JsonlCache(cfg.out_dir / "verify" / "val_plans.jsonl")
    for p in val:
        if p.id not in cache:
            reply = teacher.chat(backward_plan_messages(p.problem, p.solution),
                                 cfg.teacher.plan_params(0))
            cache.add({"key": p.id, "plan": parse_plan(reply)})


def tidy_of(cfg: DistillConfig):
    """The plan tidier the verify stage applies (``verify.tidy_plans``), or None."""
    return plan_tidy.tidy if cfg.verify.tidy_plans else None


def val_triples(cfg: DistillConfig, val: list[Problem]) -> list[dict]:
    """Validation triples (problem, its backward plan, its solution), plans tidied as the
    training plans are."""
    cache = JsonlCache(cfg.out_dir / "verify" / "val_plans.jsonl")
    tidy = tidy_of(cfg) or (lambda plan: plan)
    out = []
    for p in val:
        plan = tidy((cache.get(p.id) or {}).get("plan", ""))
        if plan:
            out.append({"id": p.id, "problem": p.problem, "plan": plan, "solution": p.solution,
                        "context": str(p.meta.get("context", ""))})
    return out
