"""The on-policy distillation loop: the student's LoRA on :mod:`plancode.trainer.onpolicy`'s
loss, through ``accelerate`` like the SFT trainer (``plancode.trainer.train``), whose pieces
it reuses: LoRA targets, the bf16 frozen base on a CPU that computes bf16, checkpoints by
step and by clock (accelerate's full state and the small portable one a fresh machine
resumes from), and resuming where a killed run stopped, skipping the batches it had seen.

Every ``anchor_every`` optimizer steps (and at the start and the end) it measures, on a few
fixed rows, the KL of the LoRA student from its frozen base and its reverse KL to the teacher
(:func:`plancode.trainer.onpolicy.anchor_metrics`); they go to the history beside the loss.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from plancode.errors import PlancodeError
from plancode.trainer import portable_checkpoint as portable
from plancode.trainer.config import OnPolicyConfig
from plancode.trainer.onpolicy import (
    OnPolicyBatch,
    OnPolicyExample,
    anchor_metrics,
    answer_logits,
    collate,
    onpolicy_loss,
)
from plancode.trainer.train import (
    CheckpointClock,
    TrainResult,
    _checkpoints,
    _epoch_order,
    _flag,
    add_lora,
)


class OnPolicyModule(nn.Module):
    """The student with LoRA; ``forward`` returns the on-policy loss and its parts."""

    def __init__(self, student: nn.Module, cfg: OnPolicyConfig) -> None:
        super().__init__()
        self.student = student
        self.cfg = cfg

    def forward(self, batch: OnPolicyBatch) -> tuple[torch.Tensor, dict[str, float]]:
        return onpolicy_loss(answer_logits(self.student, batch), batch, self.cfg.objective,
                             self.cfg.sft_weight)


def train_onpolicy(model: nn.Module, tokenizer, examples: list[OnPolicyExample],
                   anchors: list[OnPolicyExample], cfg: OnPolicyConfig, out_dir: Path,
                   progress: bool = True, stop_after: int | None = None) -> TrainResult:
    """Train ``model`` (a plain causal LM) with LoRA on ``examples``; the adapter goes to
    ``out_dir/adapter``. ``stop_after`` ends the run after that many optimizer steps as if
    killed (its checkpoint written first). The result's ``val_history`` holds the anchor
    measurements."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_cosine_schedule_with_warmup

    cfg.validate()
    if not examples:
        raise PlancodeError("no on-policy examples to train on",
                            "see the stage report's rows: every row was refused")
    cuda = torch.cuda.is_available()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    bf16 = cuda and _flag(cfg.bf16, torch.cuda.is_bf16_supported())
    accelerator = Accelerator(gradient_accumulation_steps=cfg.grad_accum,
                              mixed_precision="bf16" if bf16 else "no", cpu=not cuda)
    set_seed(cfg.seed)
    if _flag(cfg.gradient_checkpointing, cuda):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    module = OnPolicyModule(add_lora(model, cfg), cfg)
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    n_proc = accelerator.num_processes
    per_epoch = math.ceil(len(examples) / cfg.batch_size / n_proc)
    steps_per_epoch = max(1, math.ceil(per_epoch / cfg.grad_accum))
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, min(cfg.warmup_steps, total_steps // 4) * n_proc, total_steps * n_proc)
    module, optimizer, scheduler = accelerator.prepare(module, optimizer, scheduler)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else \
        tokenizer.eos_token_id
    ckpt_dir, portable_dir = out_dir / "checkpoints", out_dir / "portable"

    state = {"step": 0, "micro": 0, "history": [], "val_history": []}
    resumed_from, resumed_portable = 0, False
    latest = (_checkpoints(ckpt_dir) or [None])[-1]
    if latest is not None:
        accelerator.load_state(str(latest))
        state = json.loads((latest / "train_state.json").read_text())
        resumed_from = state["step"]
    elif portable.exists(portable_dir):
        state = portable.load(accelerator.unwrap_model(module), optimizer, scheduler,
                              portable_dir)
        resumed_from, resumed_portable = state["step"], True

    def student() -> nn.Module:
        return accelerator.unwrap_model(module).student

    def measure_anchors() -> None:
        if accelerator.is_main_process and anchors:
            row = anchor_metrics(student(), anchors, pad_id, accelerator.device)
            state["val_history"].append({"step": state["step"], **row})

    clock = CheckpointClock(cfg.save_every, cfg.save_every_minutes)

    def save_checkpoint() -> None:
        """accelerate's state, the portable checkpoint, then ``train_state.json`` (last: a
        checkpoint without it was killed mid-save and is never resumed from)."""
        path = ckpt_dir / f"checkpoint_{state['step']}"
        accelerator.save_state(str(path))
        if accelerator.is_main_process:
            portable.save(accelerator.unwrap_model(module), scheduler, state, portable_dir)
            (path / "train_state.json").write_text(json.dumps(state))
            for old in _checkpoints(ckpt_dir)[:-cfg.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()
        clock.saved()

    if state["step"] == 0 and not state["val_history"]:
        measure_anchors()  # at step 0: the KL from the base is 0, the teacher's the start
    start = time.perf_counter()
    bar = tqdm(total=total_steps, initial=state["step"], desc="onpolicy", unit="step",
               disable=not progress or not accelerator.is_local_main_process)
    window: dict[str, list[float]] = {}
    micro = state["micro"]
    epoch = micro // (per_epoch or 1)
    done = state["step"] >= total_steps
    while not done:
        ordered = [examples[i] for i in _epoch_order(len(examples), epoch, cfg.seed)]
        loader = torch.utils.data.DataLoader(ordered, batch_size=cfg.batch_size,
                                             collate_fn=lambda xs: collate(xs, pad_id))
        loader = accelerator.prepare_data_loader(loader)
        skip = micro - epoch * per_epoch
        if skip > 0:
            loader = accelerator.skip_first_batches(loader, skip)
        for batch in loader:
            with accelerator.accumulate(module):
                loss, parts = module(batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            micro += 1
            state["micro"] = micro
            for k, v in parts.items():
                window.setdefault(k, []).append(v)
            if not accelerator.sync_gradients:
                continue
            state["step"] += 1
            row = {"step": state["step"], "lr": scheduler.get_last_lr()[0],
                   **{k: sum(v) / len(v) for k, v in window.items()}}
            window = {}
            state["history"].append(row)
            bar.update(1)
            bar.set_postfix(kl=f"{row['kl']:.4f}")
            last = state["step"] >= total_steps
            interrupt = stop_after is not None and state["step"] >= stop_after
            if last or (cfg.anchor_every and state["step"] % cfg.anchor_every == 0):
                measure_anchors()
            if clock.due(state["step"]) or last or interrupt:
                save_checkpoint()
            if last or interrupt:
                done = True
                break
        epoch += 1
    bar.close()
    accelerator.wait_for_everyone()
    adapter_dir = out_dir / "adapter"
    if state["step"] >= total_steps:
        _save_adapter(accelerator, module, tokenizer, adapter_dir)
    if accelerator.is_main_process:
        (out_dir / "train_state.json").write_text(json.dumps(state))
    return TrainResult(state["step"], state["history"], state["val_history"], adapter_dir,
                       round(time.perf_counter() - start, 2), resumed_from, resumed_portable,
                       accelerator.num_processes, str(accelerator.device),
                       str(next(model.parameters()).dtype).removeprefix("torch."),
                       torch.get_num_threads())


def _save_adapter(accelerator, module: nn.Module, tokenizer, adapter_dir: Path) -> None:
    """The LoRA adapter in peft's format (what the export stage's GGUF writer reads)."""
    state = accelerator.get_state_dict(module)
    if not accelerator.is_main_process:
        return
    inner = accelerator.unwrap_model(module)
    student_sd = {k[len("student."):]: v for k, v in state.items() if k.startswith("student.")}
    inner.student.save_pretrained(str(adapter_dir), state_dict=student_sd)
    tokenizer.save_pretrained(str(adapter_dir))
