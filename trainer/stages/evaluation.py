"""The eval stage: base vs distilled on HumanEval and on the run's held-out mined problems,
same harness; and the held-out cache files ``benchmarks.heldout`` and
``benchmarks.distill_compare`` share with it."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from plancode.errors import PlancodeError
from plancode.trainer.config import DistillConfig
from plancode.trainer.stages.chat import LazyChat
from plancode.trainer.stages.data import heldout_of
from plancode.trainer.stages.stage import (
    digest_of,
    file_digest,
    model_identity,
    open_stage,
    stage_fingerprint,
)

if TYPE_CHECKING:
    from plancode.pipeline.run import Pipeline


def eval_models(cfg: DistillConfig) -> dict[str, tuple[str, Path | None]]:
    """The two models evaluation compares, like with like (see ``EvalSection.compare``)."""
    from plancode.trainer.student import resolve_student

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
                            progress: bool = True,
                            modes: tuple[str, ...] | None = None,
                            only: set[str] | None = None) -> dict[str, dict]:
    """pass@1 of ``models`` (label -> (GGUF, adapter)) on the run's held-out mined problems
    (``only``: those with these ids), in ``modes`` (default: the eval section's modes that
    apply there, of ``direct``, ``plan`` and ``select``) and with the section's settings; rows
    cached per model (:func:`heldout_rows_file`), so the eval stage and ``python -m
    benchmarks.heldout`` share and split them."""
    from plancode.engine.factory import load_engine
    from plancode.pipeline.run import Pipeline
    from plancode.trainer.evaluate import eval_settings
    from plancode.trainer.heldout import ALL_MODES, evaluate_heldout
    from plancode.trainer.teacher import EngineChat

    e = cfg.eval
    chats = {k: LazyChat(lambda spec=spec: EngineChat(load_engine(eval_settings(spec[0], e),
                                                                  adapter=spec[1])))
             for k, spec in models.items()}

    def pipeline(label: str) -> Callable[[], Pipeline]:
        return cache(lambda: Pipeline(chats[label].model.engine,
                                      eval_settings(models[label][0], e)))

    caches = {k: heldout_rows_file(cfg, v) for k, v in models.items()}
    problems = only_problems(heldout_of(cfg), only)
    return evaluate_heldout(chats, problems, caches, cfg.verify.isolation,
                            cfg.verify.timeout, e.max_tokens, progress, e.prefill_code,
                            references=heldout_references_file(cfg),
                            modes=modes or tuple(m for m in ALL_MODES if m in e.modes),
                            pipelines={k: pipeline(k) for k in models})


def only_problems(problems: list, only: set[str] | None) -> list:
    """``problems`` with these ids (all of them for None); an id that is not one of them is
    refused with its fix."""
    if only is None:
        return problems
    unknown = sorted(only - {p.id for p in problems})
    if unknown:
        raise PlancodeError(f"{len(unknown)} of the ids asked for are not held-out problems "
                            f"of this run (e.g. {unknown[0]})",
                            "copy the ids from a rows file's \"id\" field")
    return [p for p in problems if p.id in only]


def heldout_references_file(cfg: DistillConfig) -> Path:
    """Where the held-out problems' reference verdicts are cached (one file per data stage,
    shared by every model): the problems whose own solution fails are left out."""
    return eval_rows_dir(cfg) / f"heldout-references-{stage_fingerprint(cfg, 'data')[:16]}.jsonl"


def stage_eval(cfg: DistillConfig, progress: bool) -> dict:
    """HumanEval (and the held-out mined problems) for base and distilled, same harness."""
    from plancode.trainer.evaluate import run_eval

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
