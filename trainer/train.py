"""Stage 4: LoRA distillation of the student on the multi-task, structure-aware loss.

Runs through Hugging Face ``accelerate``: one process on a CPU or one GPU as ``python -m``
/ ``plancode train``, and the same code under ``accelerate launch`` or ``torchrun`` with DDP or
FSDP on several GPUs. bf16 mixed precision and gradient checkpointing switch on by themselves on
a GPU. On a CPU that computes bf16 natively the *frozen base* is held in bf16 (the LoRA
weights, the AST head and the optimizer stay fp32): one step of the real 0.5B measured 10.0 s
against 19.1 s in fp32. ``threads`` sets torch's CPU threads. Checkpoints (``accelerate``'s own
state: adapter, AST head, optimizer, scheduler, RNG) are written every ``save_every`` optimizer
steps and/or every ``save_every_minutes``, and a run that finds one resumes from it, skipping
the batches it had already seen.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from plancode.errors import PlancodeError
from plancode.trainer import loop
from plancode.trainer.config import LossConfig, TrainConfig
from plancode.trainer.loop import CheckpointClock, TrainResult  # noqa: F401 - importable here
from plancode.trainer.losses import Batch, collate, multitask_loss

if TYPE_CHECKING:
    from plancode.trainer.examples import Example


class DistillModule(nn.Module):
    """Student (with LoRA) + AST alignment head; ``forward`` returns the multi-task loss, so
    DDP/FSDP wrap one module and see one forward.

    ``ast_classes`` is the AST head's output size: by default every node kind of the Python
    grammar (tree-sitter's count). benchmarks/gpu_check.py gives its own, so the trainer runs
    on a machine without tree-sitter.
    """

    def __init__(self, student: nn.Module, hidden_size: int, loss: LossConfig,
                 ast_classes: int | None = None) -> None:
        super().__init__()
        if ast_classes is None:
            from plancode.trainer.structure import node_type_count

            ast_classes = node_type_count()
        self.student = student
        self.ast_head = nn.Linear(hidden_size, ast_classes)
        self.loss_cfg = loss

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        out = self.student(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                           output_hidden_states=True, logits_to_keep=1, use_cache=False)
        return multitask_loss(out.hidden_states[-1], self.student.get_output_embeddings(),
                              batch, self.loss_cfg, self.ast_head)


def cpu_has_bf16() -> bool:
    """True when this CPU computes bf16 matrix products natively (AVX512-BF16 or AMX), where
    a bf16 frozen base is faster than fp32; elsewhere bf16 is emulated and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def base_dtype(cfg: TrainConfig) -> torch.dtype:
    """The dtype to load the frozen student in: bf16 on a CPU with native bf16 (or when
    ``bf16 = "true"``), fp32 otherwise; on a GPU the base stays fp32 under mixed precision."""
    if torch.cuda.is_available():
        return torch.float32
    return torch.bfloat16 if loop.flag(cfg.bf16, cpu_has_bf16()) else torch.float32


def add_lora(model: nn.Module, cfg: TrainConfig) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in cfg.target_modules if t in present]
    if not targets:
        raise PlancodeError(f"none of the LoRA target modules {list(cfg.target_modules)} "
                            "exist in the student", "set train.target_modules to module "
                            f"names it has, e.g. {sorted(present)[:8]}")
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def evaluate_loss(module: DistillModule, examples: list[Example], pad_id: int,
                  batch_size: int, device: torch.device) -> dict[str, float]:
    """Mean loss parts over ``examples`` (validation), without gradients."""
    sums: dict[str, float] = {}
    module.eval()
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            _, parts = module(collate(examples[i:i + batch_size], pad_id).to(device))
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
    module.train()
    n = math.ceil(len(examples) / batch_size)
    return {k: v / n for k, v in sums.items()} if n else {}


def train(model: nn.Module, tokenizer, train_set: list[Example], val_set: list[Example],
          cfg: TrainConfig, out_dir: Path, progress: bool = True,
          stop_after: int | None = None, ast_classes: int | None = None) -> TrainResult:
    """Train ``model`` (a plain causal LM) with LoRA on ``train_set``; adapter in out_dir.

    ``stop_after`` ends the run after that many optimizer steps as if interrupted (tests use it
    to prove that resuming works); the checkpoint at that step is written first. The
    validation loss is measured with a checkpoint (at most every ``val_every_minutes``).
    ``ast_classes``: the AST head's size (:class:`DistillModule`; None: tree-sitter's count).
    """
    cfg.validate()
    if not train_set:
        raise PlancodeError("no training examples", "check the verification yield; every plan "
                            "failed its tests or every example exceeded train.max_len")

    def make_module(base: nn.Module) -> nn.Module:
        return DistillModule(add_lora(base, cfg), base.config.hidden_size, cfg.loss,
                             ast_classes)

    job = loop.prepare(model, make_module, tokenizer, cfg, len(train_set), out_dir)
    val_clock = loop.CheckpointClock(0, cfg.val_every_minutes)

    def validate(run: loop.Loop, checkpoint: bool, last: bool) -> None:
        due = last or not cfg.val_every_minutes or val_clock.due(run.step)
        if val_set and checkpoint and due:
            val = evaluate_loss(run.unwrapped(), val_set, run.pad_id, cfg.batch_size,
                                run.accelerator.device)
            run.state["val_history"].append({"step": run.step, **val})
            val_clock.saved()

    seconds = loop.run(job, train_set, collate, cfg, out_dir, desc="train", shown="total",
                       measure=validate, progress=progress, stop_after=stop_after)
    adapter_dir = out_dir / "adapter"
    if stop_after is None or job.step >= job.total_steps:
        _save_final(job, tokenizer, adapter_dir)
    return loop.result(job, model, adapter_dir, seconds)


def _save_final(job: loop.Loop, tokenizer, adapter_dir: Path) -> None:
    """The LoRA adapter (peft format), the AST head (kept for analysis; export drops it)."""
    state = loop.save_adapter(job, tokenizer, adapter_dir)
    if state is not None:
        head = {k[len("ast_head."):]: v for k, v in state.items() if k.startswith("ast_head.")}
        torch.save(head, adapter_dir / "ast_head.pt")
