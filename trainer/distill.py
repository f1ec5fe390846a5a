"""A distillation run: its stages (``plancode.trainer.stages``) in order, finished ones skipped."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from plancode.errors import PlancodeError
from plancode.trainer.config import DistillConfig
from plancode.trainer.stages.chat import Teacher
from plancode.trainer.stages.data import stage_data
from plancode.trainer.stages.evaluation import stage_eval
from plancode.trainer.stages.export import stage_export
from plancode.trainer.stages.plans import stage_plans, stage_verify
from plancode.trainer.stages.stage import STAGES
from plancode.trainer.stages.train import stage_train


def run_distill(cfg: DistillConfig, stages: tuple[str, ...] = STAGES, progress: bool = True,
                log: Callable[[str], None] = print) -> dict:
    """Run ``stages`` in order (skipping finished ones); the reports, by stage."""
    teacher = Teacher(cfg)
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
