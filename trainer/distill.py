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
import time
from collections.abc import Callable
from pathlib import Path

from server.errors import PlancodeError
from trainer import plan_tidy
from trainer.config import DistillConfig
from trainer.data import Problem, dedupe, load_jsonl, python_problem, split
from trainer.jsonl_cache import JsonlCache
from trainer.stage import (
    STAGES,
    digest_of,
    file_digest,
    is_main_process,
    model_identity,
    open_stage,
    stage_fingerprint,
)


def read_problems(path: Path, split_name: str | None = None,
                  roots: list[str] | None = None) -> tuple[list[Problem], list[Problem]]:
    """(train, validation) problems of a data stage's ``problems.jsonl``; with ``split_name``,
    only that split's problems as the first list. Mined problems' roots are re-pointed at the
    config's ``roots`` of the same folder name, so a moved run finds its codebases."""
    by_name = {Path(r).name: r for r in roots or []}
    train, val = [], []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        meta = row["meta"]
        if "root" in meta and Path(meta["root"]).name in by_name:
            meta = {**meta, "root": by_name[Path(meta["root"]).name]}
        p = Problem(row["id"], row["problem"], row["solution"], tuple(row["tests"]),
                    row["source"], meta)
        if split_name is not None:
            if row["split"] == split_name:
                train.append(p)
        elif row["split"] == "val":
            val.append(p)
        elif row["split"] == "train":
            train.append(p)
    return train, val


def problems_of(cfg: DistillConfig) -> tuple[list[Problem], list[Problem]]:
    """(train, validation) problems written by the data stage."""
    return read_problems(cfg.out_dir / "data" / "problems.jsonl", roots=cfg.data.mine)


def heldout_of(cfg: DistillConfig) -> list[Problem]:
    """The held-out mined problems: never planned, never trained on (evaluation only)."""
    return read_problems(cfg.out_dir / "data" / "problems.jsonl", "heldout", cfg.data.mine)[0]


def heldout_split(problems: list[Problem], fraction: float,
                  seed: int) -> tuple[list[Problem], list[Problem]]:
    """(kept, held out): whole mined *files* are held out (a function's neighbours share its
    helpers and style, so holding out single functions would leak), chosen by a hash of the
    codebase folder name and file path; standalone problems by their id."""
    if fraction <= 0:
        return problems, []
    kept, held = [], []
    for p in problems:
        group = (f"{Path(str(p.meta['root'])).name}/{p.meta['file']}" if "root" in p.meta
                 else p.id)
        digest = hashlib.sha256(f"{seed}\0{group}".encode()).digest()
        (held if int.from_bytes(digest[:8], "big") / 2**64 < fraction else kept).append(p)
    return kept, held


def stage_data(cfg: DistillConfig, progress: bool) -> dict:
    """Load, mine, normalise, deduplicate, decontaminate and split the problems."""
    from trainer.mine import mine

    stage, done = open_stage(cfg, "data")
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
    if cfg.data.max_chars:
        long = [p for p in problems if len(p.problem) + len(p.solution) > cfg.data.max_chars]
        problems = [p for p in problems if len(p.problem) + len(p.solution) <= cfg.data.max_chars]
        report["too_long"] = [p.id for p in long]
    if cfg.data.decontaminate:
        from trainer.decontam import Decontaminator

        problems, decontam = Decontaminator().decontaminate(problems)
        report["decontamination"] = decontam.to_json()
        report["contaminated"] = report["decontamination"].pop("contaminated")
    if cfg.data.max_problems:
        problems = sorted(problems, key=lambda p: p.id)[: cfg.data.max_problems]
    problems, heldout = heldout_split(problems, cfg.data.heldout_fraction, cfg.data.seed)
    train, val = split(problems, cfg.data.val_fraction, cfg.data.seed)
    with (stage.dir / "problems.jsonl").open("w") as fh:
        for name, part in (("train", train), ("val", val), ("heldout", heldout)):
            for p in part:
                fh.write(json.dumps({**p.to_json(), "split": name}) + "\n")
    report.update(train=len(train), val=len(val), heldout=len(heldout),
                  by_source=_by_source(train, val, heldout))
    return stage.finish(report)


def _by_source(train: list[Problem], val: list[Problem], heldout: list[Problem]) -> dict:
    """Problem counts per source (mined codebase folder or JSONL source) and split."""
    out: dict[str, dict[str, int]] = {}
    for name, part in (("train", train), ("val", val), ("heldout", heldout)):
        for p in part:
            src = Path(str(p.meta["root"])).name if "root" in p.meta else p.source
            row = out.setdefault(src, {"train": 0, "val": 0, "heldout": 0})
            row[name] += 1
    return out


class LazyChat:
    """A chat model loaded on first use (a run whose plans or verdicts are cached never loads
    it)."""

    def __init__(self, load: Callable[[], object]) -> None:
        self._load = load
        self._model = None

    def chat(self, messages, params) -> str:
        return self.model.chat(messages, params)

    def chat_many(self, conversations, params) -> list[str]:
        """Several conversations at once: batched when the model can (EngineChat), else one
        by one."""
        many = getattr(self.model, "chat_many", None)
        if many is not None:
            return many(conversations, params)
        return [self.model.chat(m, q) for m, q in zip(conversations, params, strict=True)]

    @property
    def model(self):  # noqa: ANN201 - whatever the loader returns (a ChatModel)
        if self._model is None:
            self._model = self._load()
        return self._model


class _Teacher(LazyChat):
    """The teacher of ``cfg``, loaded on first use."""

    def __init__(self, cfg: DistillConfig) -> None:
        from trainer.teacher import load_teacher

        super().__init__(lambda: load_teacher(cfg.teacher))
        self.cfg = cfg


def coder_for(cfg: DistillConfig, teacher: LazyChat) -> LazyChat:
    """Who writes code from plans at verification: the teacher itself, or the student's GGUF
    (``verify.coder = "student"``) through the server's llama.cpp engine."""
    if cfg.verify.coder == "teacher":
        return teacher
    spec = cfg.coder_model

    def load():
        from server.config import Settings
        from server.engine.factory import load_engine
        from trainer.teacher import EngineChat

        if not (spec.endswith(".gguf") or _is_catalog(spec)):
            raise PlancodeError(
                f"verify.coder = 'student' needs the student as a GGUF; {spec!r} is not one",
                "set verify.coder_model to the student's GGUF (path or catalog name), or "
                "verify.coder = 'teacher'")
        return EngineChat(load_engine(Settings(model=spec, n_threads=cfg.verify.n_threads,
                                               n_gpu_layers=cfg.verify.n_gpu_layers,
                                               n_ctx=cfg.teacher.n_ctx)),
                          batch=cfg.verify.batch)

    return LazyChat(load)


def _is_catalog(spec: str) -> bool:
    from server.models.catalog import CATALOG

    return spec in CATALOG or spec.startswith("hf:")


def stage_plans(cfg: DistillConfig, teacher: LazyChat, progress: bool,
                limit: int | None = None) -> dict:
    from trainer.plans import write_plans

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
    from trainer.checker import Checker
    from trainer.plans import verify_plans

    stage, done = open_stage(cfg, "verify")
    if done is not None:
        return done
    train, val = problems_of(cfg)
    plans = JsonlCache(cfg.out_dir / "plans" / "plans.jsonl")
    out = JsonlCache(stage.dir / "verified.jsonl")
    coder = coder or coder_for(cfg, teacher)
    with Checker(cfg.verify.isolation, cfg.verify.timeout) as checker:
        report = verify_plans(coder, train, cfg.teacher.plans_per_problem,
                              cfg.verify.code_params(), plans, out, checker, progress,
                              batch=cfg.verify.batch, tidy=tidy_of(cfg),
                              references=JsonlCache(stage.dir / "references.jsonl"))
    write_val_plans(cfg, teacher, val)
    return stage.finish({**report.to_json(), "coder": cfg.verify.coder,
                         "coder_model": model_identity(cfg.coder_model)})


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
    from server.prompts import backward_plan_messages, parse_plan

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


def stage_train(cfg: DistillConfig, progress: bool, stop_after: int | None = None) -> dict:
    """Train; safe under ``accelerate launch``/``torchrun`` (only rank 0 writes reports)."""
    from trainer.examples import build_examples
    from trainer.plots import loss_curve
    from trainer.student import load_model, load_tokenizer, resolve_student
    from trainer.train import base_dtype, train

    stage, done = open_stage(cfg, "train")
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
    train_set, stats = build_examples(tokenizer, triples, cfg.train.tasks, cfg.train.max_len,
                                      cfg.train.prefill_code)
    val_set, _ = build_examples(tokenizer, val_triples(cfg, val_p), cfg.train.tasks,
                                cfg.train.max_len, cfg.train.prefill_code)
    model = load_model(src, dtype=base_dtype(cfg.train))
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
    """The shipped artefact: the LoRA adapter as a GGUF adapter for the untouched base GGUF
    (its top-1 agreement with the merged PyTorch student measured); with ``export.merge``
    (or ``eval.compare = "requantized"``) also merged F16 + quantized GGUFs, and the base
    exported and quantized by the same code, so evaluation compares like with like."""

    from trainer.examples import build_examples
    from trainer.export import _sha256, agreement, export, merge, torch_reference
    from trainer.student import load_model, load_tokenizer, resolve_student

    stage, done = open_stage(cfg, "export")
    if done is not None:
        return done
    src = resolve_student(cfg.train.student)
    tokenizer = load_tokenizer(src)
    adapter_dir = cfg.out_dir / "train" / "adapter"
    model = merge(load_model(src), adapter_dir)
    train_p, val_p = problems_of(cfg)
    # held-out prompts; without a validation split, the training problems' verified plans
    triples = val_triples(cfg, val_p) or verified_triples(cfg, train_p)
    examples, _ = build_examples(tokenizer, triples, ("plan", "code"), cfg.train.max_len,
                                 cfg.train.prefill_code)
    seqs = [e.input_ids[: cfg.export.max_positions]
            for e in examples[: cfg.export.agreement_sequences]]
    report: dict = {"student": cfg.train.student, "files": {}}
    if cfg.export.adapter and src.gguf_path is None:
        if not cfg.export.merge:
            raise PlancodeError("a GGUF adapter needs the student's base GGUF",
                                "start from a GGUF student (catalog name or .gguf), or set "
                                "export.merge = true")
        report["adapter_skipped"] = "the student is not a GGUF: no base file to adapt"
    elif cfg.export.adapter:
        from trainer.gguf_adapter import export_adapter

        path = export_adapter(adapter_dir, src.gguf_path, stage.dir / f"{cfg.export.name}"
                              ".lora.gguf")
        reference = [torch_reference(model, s) for s in seqs]
        report["adapter"] = {"file": path.name, "bytes": path.stat().st_size,
                             "sha256": _sha256(path), "base": src.gguf_path.name,
                             **agreement(model, src.gguf_path, seqs, reference, lora=path)}
    if cfg.export.merge or cfg.eval.compare == "requantized":
        result = export(model, tokenizer, [list(s) for s in seqs], stage.dir, cfg.export,
                        src.gguf_path, {"student": cfg.train.student})
        report["files"] = json.loads(result.report_path.read_text())["files"]
        if cfg.eval.compare == "requantized":  # the base through the very same path
            from dataclasses import replace

            base = export(load_model(src), tokenizer, [list(s) for s in seqs],
                          stage.dir / "base", replace(cfg.export, name=cfg.export.name +
                                                      "-base", min_agreement=0.0),
                          src.gguf_path, {"student": cfg.train.student, "base": True})
            report["base_files"] = json.loads(base.report_path.read_text())["files"]
    (stage.dir / "export_report.json").write_text(json.dumps(report, indent=1))
    return stage.finish(report)


def eval_models(cfg: DistillConfig) -> dict[str, tuple[str, Path | None]]:
    """The two models evaluation compares, like with like (see ``EvalSection.compare``)."""
    from trainer.student import resolve_student

    e = cfg.eval
    base = resolve_student(cfg.train.student).gguf_path
    report = json.loads((cfg.out_dir / "export" / "export_report.json").read_text())
    if e.compare == "adapter":
        if base is None or "adapter" not in report:
            raise PlancodeError("eval.compare = 'adapter' needs a GGUF student and its "
                                "exported adapter", "set export.adapter = true (and a GGUF "
                                "train.student), or eval.compare = 'requantized'")
        return {"base": (str(base), None),
                "distilled": (str(base), cfg.out_dir / "export" / report["adapter"]["file"])}
    files, base_files = report.get("files", {}), report.get("base_files", {})
    if e.quant not in files or e.quant not in base_files:
        raise PlancodeError(f"eval.quant = {e.quant!r} was not exported for both models",
                            f"use one of {sorted(set(files) & set(base_files))}")
    return {"base": (base_files[e.quant]["path"], None),
            "distilled": (files[e.quant]["path"], None)}


def heldout_rows_name(model: tuple[str, Path | None], data: str, max_tokens: int,
                      prefill: bool = False) -> str:
    """The held-out rows file of a model (base file, adapter by content) on one data stage:
    a run and its ablation share the base's rows."""
    path, adapter = model
    digest = file_digest(adapter) if adapter else ""
    key = digest_of(model_identity(str(path)), digest, data, max_tokens,
                       *(["prefill"] if prefill else []))
    return f"heldout-{Path(path).stem}{'+adapter' if adapter else ''}-{key}.jsonl"


def eval_rows_dir(cfg: DistillConfig) -> Path:
    """Where the eval stage caches its rows: ``eval.rows_dir``, else the stage's folder."""
    return Path(cfg.eval.rows_dir) if cfg.eval.rows_dir else cfg.out_dir / "eval"


def heldout_rows_file(cfg: DistillConfig, model: tuple[str, Path | None]) -> Path:
    """Where the eval stage caches ``model``'s held-out rows."""
    e = cfg.eval
    name = heldout_rows_name(model, stage_fingerprint(cfg, "data"), e.max_tokens,
                             e.prefill_code)
    return eval_rows_dir(cfg) / name


def evaluate_heldout_models(cfg: DistillConfig,
                            models: dict[str, tuple[str, Path | None]],
                            progress: bool = True) -> dict[str, dict]:
    """pass@1 of ``models`` (label -> (GGUF, adapter)) on the run's held-out mined problems,
    with the eval section's settings; rows cached per model (:func:`heldout_rows_file`), so
    the eval stage and ``python -m benchmarks.heldout`` share and split them."""
    from server.config import Settings
    from server.engine.factory import load_engine
    from trainer.heldout import evaluate_heldout
    from trainer.teacher import EngineChat

    e = cfg.eval

    def chat(spec: tuple[str, Path | None]) -> LazyChat:
        return LazyChat(lambda: EngineChat(load_engine(
            Settings(model=spec[0], n_gpu_layers=e.n_gpu_layers), adapter=spec[1])))

    caches = {k: heldout_rows_file(cfg, v) for k, v in models.items()}
    return evaluate_heldout({k: chat(v) for k, v in models.items()}, heldout_of(cfg), caches,
                            cfg.verify.isolation, cfg.verify.timeout, e.max_tokens, progress,
                            e.prefill_code, references=heldout_references_file(cfg))


def heldout_references_file(cfg: DistillConfig) -> Path:
    """Where the held-out problems' reference verdicts are cached (one file per data stage,
    shared by every model): the problems whose own solution fails are left out."""
    return eval_rows_dir(cfg) / f"heldout-references-{stage_fingerprint(cfg, 'data')[:16]}.jsonl"


def stage_eval(cfg: DistillConfig, progress: bool) -> dict:
    """HumanEval (and the held-out mined problems) for base and distilled, same harness."""
    from trainer.evaluate import run_eval

    e = cfg.eval
    stage, done = open_stage(cfg, "eval")
    if done is not None:
        return done
    models = eval_models(cfg)
    (base, _), (student, adapter) = models["base"], models["distilled"]
    command = (f"plancode distill --config CONFIG --stage eval   # base {Path(base).name} vs "
               f"{Path(student).name}" + (f" + {adapter.name}" if adapter else ""))
    out = run_eval(models, e, stage.dir, Path(e.docs) if e.docs else None, command, progress)
    report = {"compare": e.compare, "summary": {k: v["summary"]
                                                for k, v in out["results"].items()},
              "seconds": out["seconds"]}
    if e.heldout and heldout_of(cfg):
        report["heldout"] = evaluate_heldout_models(cfg, models, progress)
    return stage.finish(report)


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
