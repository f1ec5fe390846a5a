"""The onpolicy stage: the student's LoRA trained on its own answers towards the teacher
(``plancode.trainer.onpolicy``: per-token reverse KL on the teacher's top-k, structure
weights on code tokens; ``plancode.trainer.onpolicy_train``: the loop).

    onpolicy/  rows.json (the samples rows it trains on, fixed at its first start),
               checkpoints/, portable/ (resumable), adapter/, loss.png, report.json, done.json

(``onpolicy.folder`` names another folder: variants of the run share the data, the samples
and the gate's rows of one ``out_dir``.)

It reads the samples stage's rows (``samples/samples.jsonl``) as they are when it first
starts: the samples job may still be adding rows, so the keys used are written to
``rows.json`` and a resumed run trains on exactly those (``onpolicy.max_rows`` caps them).
Each row's prompt is rebuilt with the Hugging Face tokenizer and must hash to the row's
``prompt_sha``; rows that do not are refused and counted in the report (``rows``).
``plancode onpolicy --config FILE`` runs it (not part of ``plancode distill``'s chain).
Its fingerprint: its ``[onpolicy]`` settings (speed knobs left out), the student by name, the
direct prompt's digest and the samples stage's fingerprint.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from plancode.errors import PlancodeError
from plancode.trainer import blobs
from plancode.trainer.config import DistillConfig
from plancode.trainer.stages.stage import (
    Stage,
    is_main_process,
    onpolicy_fingerprint,
    onpolicy_student,
)

student_of = onpolicy_student  # the model this stage trains (name kept for its callers)
__all__ = ["onpolicy_fingerprint", "stage_onpolicy", "student_of"]


def _rows(cfg: DistillConfig, stage: Stage) -> list[dict]:
    """The rows this run trains on: those named in ``rows.json``, else the samples file's
    rows now (the first ``max_rows``), whose keys are then written there."""
    from plancode.trainer.onpolicy import read_rows

    path = cfg.out_dir / "samples" / "samples.jsonl"
    blobs.ensure(path)  # a run packed at its last commit keeps the file in distill/blobs
    if not path.exists():
        raise PlancodeError(f"{path} does not exist: no samples to learn from",
                            "run plancode samples --config FILE first")
    rows = read_rows(path)
    fixed = stage.dir / "rows.json"
    if fixed.exists():
        keys = json.loads(fixed.read_text())["keys"]
        by_key = {r["key"]: r for r in rows}
        lost = [k for k in keys if k not in by_key]
        if lost:
            raise PlancodeError(f"{len(lost)} of the {len(keys)} rows this run started on are "
                                f"gone from {path} (e.g. {lost[0]})",
                                f"restore the samples file, or remove {stage.dir} to start "
                                "over on the rows there now")
        return [by_key[k] for k in keys]
    if cfg.onpolicy.max_rows:
        rows = rows[:cfg.onpolicy.max_rows]
    if is_main_process():
        fixed.write_text(json.dumps({"keys": [r["key"] for r in rows]}))
    return rows


def stage_onpolicy(cfg: DistillConfig, progress: bool = True, stop_after: int | None = None,
                   log: Callable[[str], None] | None = None) -> dict:
    """Train the student's LoRA on the samples rows; resumable from its last checkpoint.
    ``stop_after`` stops after that many optimizer steps as if killed (the stage stays
    unfinished). The data stage runs first (or is copied from ``reuse_from``) if it has not."""
    from plancode.trainer.dpo import make_pairs
    from plancode.trainer.onpolicy import build_examples
    from plancode.trainer.onpolicy_train import train_onpolicy
    from plancode.trainer.plots import loss_curve
    from plancode.trainer.stages.data import problems_of, stage_data
    from plancode.trainer.student import load_model, load_tokenizer, resolve_student
    from plancode.trainer.train import base_dtype

    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    stage_data(cfg, progress)
    stage = Stage(cfg.out_dir, cfg.onpolicy.folder, onpolicy_fingerprint(cfg))
    if stage.done:
        return json.loads((stage.dir / "report.json").read_text())
    rows = _rows(cfg, stage)
    train_p, val_p = problems_of(cfg)
    problems = {p.id: p for p in [*train_p, *val_p]}
    src = resolve_student(student_of(cfg))
    tokenizer = load_tokenizer(src)
    examples, stats = build_examples(tokenizer, rows, problems, cfg.samples.prefill_code,
                                     cfg.onpolicy)
    if stats.prompt_mismatch:
        log(f"[onpolicy] refused {stats.prompt_mismatch} of {stats.rows} rows: their prompt, "
            "rebuilt with the student's tokenizer, does not match prompt_sha "
            f"(e.g. {stats.mismatched[0]})")
    if not examples:
        raise PlancodeError(f"none of the {stats.rows} samples rows can be trained on: "
                            f"{json.dumps(stats.to_json())}",
                            "check that the student's tokenizer is the one that sampled "
                            "(prompt_mismatch) and that the rows were scored (unscored)")
    # fixed rows for the distance from the base: the first few by key (a stable choice)
    anchors = sorted(examples, key=lambda e: e.key)[:cfg.onpolicy.anchor_prompts]
    log(f"[onpolicy] {stats.used} rows ({stats.passed} passed), {stats.answer_tokens} answer "
        f"tokens, {stats.structural_tokens} structural; student {student_of(cfg)}")
    items, extra = examples, {}
    if cfg.onpolicy.objective == "dpo":
        items = make_pairs(examples, cfg.onpolicy.dpo_pairs)
        if not items:
            raise PlancodeError(f"no DPO pairs among the {stats.used} rows: no prompt has both "
                                "a passing and a failing answer",
                                "sample more problems (plancode samples) or use objective "
                                "= 'topk'")
        extra = {"pairs": len(items), "pair_prompts": len({p.chosen.problem_id
                                                            for p in items})}
        log(f"[onpolicy] DPO: {len(items)} pairs over {extra['pair_prompts']} prompts")
    model = load_model(src, dtype=base_dtype(cfg.onpolicy))
    result = train_onpolicy(model, tokenizer, items, anchors, cfg.onpolicy, stage.dir,
                            progress, stop_after)
    report = {**result.to_json(), **extra, "anchor_history": result.val_history,
              "rows": stats.to_json(), "anchors": [e.key for e in anchors],
              "student": student_of(cfg), "objective": cfg.onpolicy.objective}
    report.pop("val_history")
    if result.history and is_main_process():
        history = [{**r, "total": r["kl"]} for r in result.history]
        anchor = [{"step": r["step"], "total": r["anchor_teacher_kl"]}
                  for r in result.val_history]
        loss_curve(history, anchor, stage.dir / "loss.png",
                   f"on-policy reverse KL ({student_of(cfg)})",
                   points=f"KL to the teacher on {len(anchors)} fixed training rows")
    if not (result.adapter_dir / "adapter_config.json").exists():
        return report  # stopped early (stop_after): resumes from its checkpoint
    return stage.finish(report)
