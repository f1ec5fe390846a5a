"""The train stage: the student's LoRA on the verified triples, multi-task structure-aware
loss (``plancode.trainer.train``), resumable from its last checkpoint."""

from __future__ import annotations

from plancode.errors import PlancodeError
from plancode.trainer.config import DistillConfig
from plancode.trainer.stages.data import problems_of
from plancode.trainer.stages.plans import val_triples, verified_triples
from plancode.trainer.stages.stage import is_main_process, open_stage


def stage_train(cfg: DistillConfig, progress: bool, stop_after: int | None = None) -> dict:
    """Train; safe under ``accelerate launch``/``torchrun`` (only rank 0 writes reports)."""
    from plancode.trainer.examples import build_examples
    from plancode.trainer.plots import loss_curve
    from plancode.trainer.student import load_model, load_tokenizer, resolve_student
    from plancode.trainer.train import base_dtype, train

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
