"""The on-policy distillation trainer: the student's LoRA on :mod:`plancode.trainer.onpolicy`'s
loss, through the loop the SFT trainer uses too (:mod:`plancode.trainer.loop`: accelerate,
checkpoints by step and by clock, resuming where a killed run stopped) and its LoRA targets.

With ``objective = "dpo"`` the items are pairs of the student's answers
(:mod:`plancode.trainer.dpo`) and the loss is DPO's against the frozen base.

Every ``anchor_every`` optimizer steps (and at the start and the end) it measures, on a few
fixed rows, the KL of the LoRA student from its frozen base and its reverse KL to the teacher
(:func:`plancode.trainer.onpolicy.anchor_metrics`); they go to the history beside the loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from plancode.errors import PlancodeError
from plancode.trainer import loop
from plancode.trainer.config import OnPolicyConfig
from plancode.trainer.dpo import DPOPair, collate_pairs, pair_loss
from plancode.trainer.loop import TrainResult
from plancode.trainer.onpolicy import (
    OnPolicyBatch,
    OnPolicyExample,
    anchor_metrics,
    answer_logits,
    collate,
    onpolicy_loss,
)
from plancode.trainer.train import add_lora


class OnPolicyModule(nn.Module):
    """The student with LoRA; ``forward`` returns the on-policy loss and its parts."""

    def __init__(self, student: nn.Module, cfg: OnPolicyConfig) -> None:
        super().__init__()
        self.student = student
        self.cfg = cfg

    def forward(self, batch: OnPolicyBatch) -> tuple[torch.Tensor, dict[str, float]]:
        if self.cfg.objective == "dpo":
            return pair_loss(self.student, batch, self.cfg.dpo_beta, self.cfg.sft_weight)
        return onpolicy_loss(answer_logits(self.student, batch), batch, self.cfg.objective,
                             self.cfg.sft_weight)


def train_onpolicy(model: nn.Module, tokenizer,
                   examples: Sequence[OnPolicyExample] | Sequence[DPOPair],
                   anchors: list[OnPolicyExample], cfg: OnPolicyConfig, out_dir: Path,
                   progress: bool = True, stop_after: int | None = None) -> TrainResult:
    """Train ``model`` (a plain causal LM) with LoRA on ``examples`` (answers, or DPO pairs
    when ``cfg.objective`` is "dpo"); the adapter goes to
    ``out_dir/adapter``. ``stop_after`` ends the run after that many optimizer steps as if
    killed (its checkpoint written first). The result's ``val_history`` holds the anchor
    measurements."""
    cfg.validate()
    if not examples:
        raise PlancodeError("no on-policy examples to train on",
                            "see the stage report's rows: every row was refused")
    job = loop.prepare(model, lambda base: OnPolicyModule(add_lora(base, cfg), cfg),
                       tokenizer, cfg, len(examples), out_dir)

    def measure_anchors(job: loop.Loop) -> None:
        if job.accelerator.is_main_process and anchors:
            row = anchor_metrics(job.unwrapped().student, anchors, job.pad_id,
                                 job.accelerator.device)
            job.state["val_history"].append({"step": job.step, **row})

    def measure(job: loop.Loop, checkpoint: bool, last: bool) -> None:
        if last or (cfg.anchor_every and job.step % cfg.anchor_every == 0):
            measure_anchors(job)

    if job.step == 0 and not job.state["val_history"]:
        measure_anchors(job)  # at step 0: the KL from the base is 0, the teacher's the start
    batches = collate_pairs if cfg.objective == "dpo" else collate
    seconds = loop.run(job, examples, batches, cfg, out_dir, desc="onpolicy", shown="kl",
                       measure=measure, progress=progress, stop_after=stop_after)
    adapter_dir = out_dir / "adapter"
    if job.step >= job.total_steps:
        loop.save_adapter(job, tokenizer, adapter_dir)
    return loop.result(job, model, adapter_dir, seconds)
