"""The stages of a distillation run, each cached in its own folder of ``out_dir``.

    data/     problems.jsonl (with split), report.json (dedupe, decontamination, mining)
    plans/    plans.jsonl (K backward plans per train problem), report.json
    verify/   verified.jsonl (one verdict per plan), report.json (yield)
    train/    checkpoints/, adapter/, loss.png, report.json
    export/   *.gguf (f16, Q8_0, Q4_K_M), export_report.json
    eval/     eval.json, distill-eval.md, distill-eval.png (when [eval] enabled)

A stage whose ``done.json`` carries the fingerprint of its settings and inputs is skipped.
A stage interrupted half-way resumes: plans and verdicts are appended row by row, training
resumes from its last checkpoint. When a stage's settings change, its old folder is moved
aside (``NAME.stale-N``), never deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from server.errors import PlancodeError
from trainer.config import DistillConfig
from trainer.data import Problem, dedupe, load_jsonl, python_problem, split
from trainer.jsonl_cache import JsonlCache

STAGES = ("data", "plans", "verify", "train", "export", "eval")


def is_main_process() -> bool:
    """Rank 0 (or no launcher): the one process that writes stage folders and reports."""
    return int(os.environ.get("RANK", "0")) == 0


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Stage:
    """One stage's folder: its fingerprint, its done marker and report."""

    def __init__(self, run: Path, name: str, fingerprint: str) -> None:
        self.name = name
        self.dir = run / name
        self.fingerprint = fingerprint
        stamp = self.dir / "fingerprint.txt"
        if not is_main_process():
            return
        if self.dir.exists() and stamp.exists() and stamp.read_text() != fingerprint:
            n = 1
            while (run / f"{name}.stale-{n}").exists():
                n += 1
            self.dir.rename(run / f"{name}.stale-{n}")
        self.dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(fingerprint)

    @property
    def done(self) -> dict | None:
        path = self.dir / "done.json"
        return json.loads(path.read_text()) if path.exists() else None

    def finish(self, report: dict) -> dict:
        if not is_main_process():
            return report
        (self.dir / "report.json").write_text(json.dumps(report, indent=1))
        (self.dir / "done.json").write_text(json.dumps({"fingerprint": self.fingerprint,
                                                         "finished": time.time()}))
        return report


def read_problems(path: Path) -> tuple[list[Problem], list[Problem]]:
    train, val = [], []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        p = Problem(row["id"], row["problem"], row["solution"], tuple(row["tests"]),
                    row["source"], row["meta"])
        (val if row["split"] == "val" else train).append(p)
    return train, val


def open_stage(cfg: DistillConfig, name: str, section: str,
               after: str | None = None) -> tuple[Stage, dict | None]:
    """Stage ``name``'s folder, fingerprinted by its settings (and the finished stage it
    follows), with its report when it has already finished."""
    parts: tuple = (cfg.section(section),)
    if after is not None:
        parts += ((cfg.out_dir / after / "done.json").read_text(),)
    stage = Stage(cfg.out_dir, name, _fingerprint(*parts))
    done = json.loads((stage.dir / "report.json").read_text()) if stage.done else None
    return stage, done


def problems_of(cfg: DistillConfig) -> tuple[list[Problem], list[Problem]]:
    """(train, validation) problems written by the data stage."""
    return read_problems(cfg.out_dir / "data" / "problems.jsonl")


def stage_data(cfg: DistillConfig, progress: bool) -> dict:
    """Load, mine, normalise, deduplicate, decontaminate and split the problems."""
    from trainer.mine import mine

    stage, done = open_stage(cfg, "data", "data")
    if done is not None:
        return done
    problems: list[Problem] = []
    report: dict = {"sources": {}}
    for path in cfg.data.jsonl:
        rows = [python_problem(p) for p in load_jsonl(Path(path))]
        report["sources"][path] = len(rows)
        problems += rows
    for root in cfg.data.mine:
        mined, mreport = mine(Path(root), progress=progress)
        report["sources"][root] = len(mined)
        report.setdefault("mined", {})[root] = mreport.to_json()
        problems += mined
    problems, dropped = dedupe(problems)
    report["duplicates"] = [p.id for p in dropped]
    if cfg.data.decontaminate:
        from trainer.decontam import Decontaminator

        problems, hits = Decontaminator().filter(problems)
        report["contaminated"] = [{"id": h.problem_id, "humaneval": h.humaneval_task,
                                   "field": h.field, "overlap": h.overlap} for h in hits]
    if cfg.data.max_problems:
        problems = sorted(problems, key=lambda p: p.id)[: cfg.data.max_problems]
    train, val = split(problems, cfg.data.val_fraction, cfg.data.seed)
    with (stage.dir / "problems.jsonl").open("w") as fh:
        for name, part in (("train", train), ("val", val)):
            for p in part:
                fh.write(json.dumps({**p.to_json(), "split": name}) + "\n")
    report.update(train=len(train), val=len(val))
    return stage.finish(report)


class _Teacher:
    """The teacher, loaded on first use (a run whose plans are cached never loads it)."""

    def __init__(self, cfg: DistillConfig) -> None:
        self.cfg = cfg
        self._model = None

    def chat(self, messages, params) -> str:
        if self._model is None:
            from trainer.teacher import load_teacher

            self._model = load_teacher(self.cfg.teacher)
        return self._model.chat(messages, params)


def stage_plans(cfg: DistillConfig, teacher: _Teacher, progress: bool,
                limit: int | None = None) -> dict:
    from trainer.plans import write_plans

    stage, done = open_stage(cfg, "plans", "teacher", after="data")
    if done is not None:
        return done
    train, _ = problems_of(cfg)
    cache = JsonlCache(stage.dir / "plans.jsonl")
    report = write_plans(teacher, train, cfg.teacher, cache, progress, limit).to_json()
    if limit is not None and report["generated"] >= limit:
        return report  # stopped early on purpose: not done
    return stage.finish(report)


def stage_verify(cfg: DistillConfig, teacher: _Teacher, progress: bool) -> dict:
    from trainer.checker import Checker
    from trainer.plans import verify_plans

    stage, done = open_stage(cfg, "verify", "verify", after="plans")
    if done is not None:
        return done
    train, val = problems_of(cfg)
    plans = JsonlCache(cfg.out_dir / "plans" / "plans.jsonl")
    out = JsonlCache(stage.dir / "verified.jsonl")
    with Checker(cfg.verify.isolation, cfg.verify.timeout) as checker:
        report = verify_plans(teacher, train, cfg.teacher, plans, out, checker, progress)
    write_val_plans(cfg, teacher, val)
    return stage.finish(report.to_json())


def verified_triples(cfg: DistillConfig, problems: list[Problem]) -> list[dict]:
    """(problem, plan, solution) for every plan whose code passed its problem's tests."""
    by_id = {p.id: p for p in problems}
    rows = JsonlCache(cfg.out_dir / "verify" / "verified.jsonl")
    return [{"id": r["id"], "problem": by_id[r["id"]].problem, "plan": r["plan"],
             "solution": by_id[r["id"]].solution,
             "context": str(by_id[r["id"]].meta.get("context", ""))}
            for r in rows if r["passed"] and r["id"] in by_id]


def write_val_plans(cfg: DistillConfig, teacher: _Teacher, val: list[Problem]) -> None:
    """A greedy backward plan per validation problem (held-out loss and export agreement)."""
    from server.prompts import backward_plan_messages, parse_plan

    cache = JsonlCache(cfg.out_dir / "verify" / "val_plans.jsonl")
    for p in val:
        if p.id not in cache:
            reply = teacher.chat(backward_plan_messages(p.problem, p.solution),
                                 cfg.teacher.plan_params(0))
            cache.add({"key": p.id, "plan": parse_plan(reply)})


def val_triples(cfg: DistillConfig, val: list[Problem]) -> list[dict]:
    """Validation triples (problem, its backward plan, its solution)."""
    cache = JsonlCache(cfg.out_dir / "verify" / "val_plans.jsonl")
    out = []
    for p in val:
        plan = (cache.get(p.id) or {}).get("plan", "")
        if plan:
            out.append({"id": p.id, "problem": p.problem, "plan": plan, "solution": p.solution,
                        "context": str(p.meta.get("context", ""))})
    return out


def stage_train(cfg: DistillConfig, progress: bool, stop_after: int | None = None) -> dict:
    """Train; safe under ``accelerate launch``/``torchrun`` (only rank 0 writes reports)."""
    from trainer.examples import build_examples
    from trainer.plots import loss_curve
    from trainer.student import load_model, load_tokenizer, resolve_student
    from trainer.train import train

    stage, done = open_stage(cfg, "train", "train", after="verify")
    if done is not None:
        return done
    train_p, val_p = problems_of(cfg)
    src = resolve_student(cfg.train.student)
    tokenizer = load_tokenizer(src)
    triples = verified_triples(cfg, train_p)
    if not triples:
        raise PlancodeError("no verified plans to train on",
                            f"see {cfg.out_dir / 'verify' / 'report.json'}: every plan's code "
                            "failed its tests (try a stronger teacher or more plans)")
    train_set, stats = build_examples(tokenizer, triples, cfg.train.tasks, cfg.train.max_len)
    val_set, _ = build_examples(tokenizer, val_triples(cfg, val_p), cfg.train.tasks,
                                cfg.train.max_len)
    model = load_model(src)
    result = train(model, tokenizer, train_set, val_set, cfg.train, stage.dir, progress,
                   stop_after)
    report = {**result.to_json(), "examples": stats.to_json(), "val_examples": len(val_set),
              "student": cfg.train.student}
    if result.history and is_main_process():
        loss_curve(result.history, result.val_history, stage.dir / "loss.png",
                   f"distillation loss ({cfg.train.student})")
    if not (result.adapter_dir / "adapter_config.json").exists():
        return report  # interrupted on purpose (stop_after): resumes from its checkpoint
    return stage.finish(report)


def stage_export(cfg: DistillConfig, progress: bool) -> dict:
    from trainer.examples import build_examples
    from trainer.export import export, merge
    from trainer.student import load_model, load_tokenizer, resolve_student

    stage, done = open_stage(cfg, "export", "export", after="train")
    if done is not None:
        return done
    src = resolve_student(cfg.train.student)
    tokenizer = load_tokenizer(src)
    model = merge(load_model(src), cfg.out_dir / "train" / "adapter")
    train_p, val_p = problems_of(cfg)
    # held-out prompts; without a validation split, the training problems' verified plans
    triples = val_triples(cfg, val_p) or verified_triples(cfg, train_p)
    examples, _ = build_examples(tokenizer, triples, ("plan", "code"), cfg.train.max_len)
    result = export(model, tokenizer, [e.input_ids for e in examples], stage.dir, cfg.export,
                    src.gguf_path, {"student": cfg.train.student})
    return stage.finish(json.loads(result.report_path.read_text()))


def stage_eval(cfg: DistillConfig, progress: bool) -> dict:
    from trainer.evaluate import run_eval
    from trainer.student import resolve_student

    e = cfg.eval
    stage, done = open_stage(cfg, "eval", "eval", after="export")
    if done is not None:
        return done
    files = json.loads((cfg.out_dir / "export" / "export_report.json").read_text())["files"]
    if e.quant not in files:
        raise PlancodeError(f"eval.quant = {e.quant!r} was not exported",
                            f"use one of {sorted(files)}")
    base = resolve_student(cfg.train.student).gguf_path
    if base is None:
        raise PlancodeError("evaluation compares GGUFs; the base student is not one",
                            "evaluate with plancode eval --model BASE.gguf --model DISTILLED.gguf")
    models = {"base": str(base), "distilled": files[e.quant]["path"]}
    command = (f"plancode eval --model {models['base']} --model {models['distilled']} "
               f"--start {e.start} --end {e.end}")
    out = run_eval(models, e, stage.dir, Path(e.docs) if e.docs else None, command, progress)
    return stage.finish({"summary": {k: v["summary"] for k, v in out["results"].items()},
                         "seconds": out["seconds"]})


def run_distill(cfg: DistillConfig, stages: tuple[str, ...] = STAGES, progress: bool = True,
                log: Callable[[str], None] = print) -> dict:
    """Run ``stages`` in order (skipping finished ones); the reports, by stage."""
    teacher = _Teacher(cfg)
    reports: dict[str, dict] = {}
    steps: dict[str, Callable[[], dict]] = {
        "data": lambda: stage_data(cfg, progress),
        "plans": lambda: stage_plans(cfg, teacher, progress),
        "verify": lambda: stage_verify(cfg, teacher, progress),
        "train": lambda: stage_train(cfg, progress),
        "export": lambda: stage_export(cfg, progress),
        "eval": lambda: stage_eval(cfg, progress),
    }
    for name in stages:
        if name == "eval" and not cfg.eval.enabled:
            continue
        needed = STAGES[STAGES.index(name) - 1] if name != "data" else None
        if needed and needed in STAGES[:5] and not (cfg.out_dir / needed / "done.json").exists():
            raise PlancodeError(f"stage {name!r} needs stage {needed!r} to have finished",
                                f"run plancode distill --config FILE --stage {needed} first")
        start = time.perf_counter()
        reports[name] = steps[name]()
        log(f"[{name}] done in {time.perf_counter() - start:.1f}s: "
            f"{json.dumps(_headline(name, reports[name]))}")
    (cfg.out_dir / "distill_report.json").write_text(json.dumps(reports, indent=1))
    return reports


def _headline(name: str, report: dict) -> dict:
    keys = {"data": ("train", "val"), "plans": ("requested", "generated", "from_cache", "empty"),
            "verify": ("plans", "passed", "yield", "isolation"), "train": ("steps",),
            "eval": ("seconds",)}
    if name == "export":
        return {k: {"bytes": v["bytes"], "agreement": v["agreement"]}
                for k, v in report.get("files", {}).items()}
    return {k: report.get(k) for k in keys.get(name, ())}
