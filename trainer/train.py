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

import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from tqdm import tqdm

from plancode.errors import PlancodeError
from plancode.trainer import portable_checkpoint as portable
from plancode.trainer.config import LossConfig, TrainConfig
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


def _flag(value: str, auto: bool) -> bool:
    return auto if value == "auto" else value == "true"


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
    return torch.bfloat16 if _flag(cfg.bf16, cpu_has_bf16()) else torch.float32


class CheckpointClock:
    """When to checkpoint: every ``every`` optimizer steps and/or every ``minutes``."""

    def __init__(self, every: int, minutes: float, now=time.monotonic) -> None:
        self.every, self.seconds, self.now = every, minutes * 60.0, now
        self.last = now()

    def due(self, step: int) -> bool:
        by_step = self.every > 0 and step % self.every == 0
        by_time = self.seconds > 0 and self.now() - self.last >= self.seconds
        return by_step or by_time

    def saved(self) -> None:
        self.last = self.now()


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


def _epoch_order(n: int, epoch: int, seed: int) -> list[int]:
    order = list(range(n))
    random.Random(seed * 1000 + epoch).shuffle(order)
    return order


def _checkpoints(ckpt_dir: Path) -> list[Path]:
    """Complete checkpoints (``train_state.json`` is written last), oldest first."""
    found = [p for p in ckpt_dir.glob("checkpoint_*") if (p / "train_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("_")[-1]))


@dataclass
class TrainResult:
    steps: int
    history: list[dict]
    val_history: list[dict]
    adapter_dir: Path
    seconds: float
    resumed_from: int = 0
    resumed_portable: bool = False  # resumed from train/portable (optimizer moments restarted)
    processes: int = 1  # data-parallel processes (accelerate launch / torchrun)
    device: str = "cpu"
    base_dtype: str = "float32"
    threads: int = 0

    def to_json(self) -> dict:
        d = asdict(self)
        d["adapter_dir"] = str(self.adapter_dir)
        return d


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
    to prove that resuming works); the checkpoint at that step is written first.
    ``ast_classes``: the AST head's size (:class:`DistillModule`; None: tree-sitter's count).
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_cosine_schedule_with_warmup

    cfg.validate()
    if not train_set:
        raise PlancodeError("no training examples", "check the verification yield; every plan "
                            "failed its tests or every example exceeded train.max_len")
    cuda = torch.cuda.is_available()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    bf16 = cuda and _flag(cfg.bf16, torch.cuda.is_bf16_supported())
    ckpt_dir = out_dir / "checkpoints"
    accelerator = Accelerator(gradient_accumulation_steps=cfg.grad_accum,
                              mixed_precision="bf16" if bf16 else "no",
                              cpu=not cuda)  # cpu=True: several CPU processes form a gloo group
    set_seed(cfg.seed)
    if _flag(cfg.gradient_checkpointing, cuda):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    student = add_lora(model, cfg)
    module = DistillModule(student, model.config.hidden_size, cfg.loss, ast_classes)
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    per_epoch = math.ceil(len(train_set) / cfg.batch_size / accelerator.num_processes)
    steps_per_epoch = max(1, math.ceil(per_epoch / cfg.grad_accum))
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    # accelerate steps a prepared scheduler once per process per optimizer step
    n_proc = accelerator.num_processes
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, min(cfg.warmup_steps, total_steps // 4) * n_proc, total_steps * n_proc)
    module, optimizer, scheduler = accelerator.prepare(module, optimizer, scheduler)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else \
        tokenizer.eos_token_id

    state = {"step": 0, "micro": 0, "history": [], "val_history": []}
    latest = (_checkpoints(ckpt_dir) or [None])[-1]
    portable_dir = out_dir / "portable"
    resumed_from, resumed_portable = 0, False
    if latest is not None:
        accelerator.load_state(str(latest))
        state = json.loads((latest / "train_state.json").read_text())
        resumed_from = state["step"]
    elif portable.exists(portable_dir):  # another machine's run, from what was committed
        state = portable.load(accelerator.unwrap_model(module), optimizer, scheduler,
                              portable_dir)
        resumed_from, resumed_portable = state["step"], True

    clock = CheckpointClock(cfg.save_every, cfg.save_every_minutes)
    val_clock = CheckpointClock(0, cfg.val_every_minutes)

    def save_checkpoint() -> None:
        """accelerate's full state (every rank takes part), the portable checkpoint
        (``plancode.trainer.portable_checkpoint``), then the loop's own state; the newest
        ``keep_checkpoints`` are kept. ``train_state.json`` is written last, so a checkpoint
        without it (killed mid-save) is never resumed from."""
        path = ckpt_dir / f"checkpoint_{state['step']}"
        accelerator.save_state(str(path))
        if accelerator.is_main_process:
            portable.save(accelerator.unwrap_model(module), scheduler, state, portable_dir)
            (path / "train_state.json").write_text(json.dumps(state))
            for old in _checkpoints(ckpt_dir)[:-cfg.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()
        clock.saved()

    start = time.perf_counter()
    bar = tqdm(total=total_steps, initial=state["step"], desc="train", unit="step",
               disable=not progress or not accelerator.is_local_main_process)
    window: dict[str, list[float]] = {}
    micro = state["micro"]  # micro-batches already consumed (per process)
    epoch = micro // (per_epoch or 1)
    done = state["step"] >= total_steps
    while not done:
        order = _epoch_order(len(train_set), epoch, cfg.seed)
        ordered = [train_set[i] for i in order]
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
            bar.set_postfix(loss=f"{row['total']:.3f}")
            last = state["step"] >= total_steps
            interrupt = stop_after is not None and state["step"] >= stop_after
            checkpoint = clock.due(state["step"]) or last or interrupt
            validate = last or not cfg.val_every_minutes or val_clock.due(state["step"])
            if val_set and checkpoint and validate:
                val = evaluate_loss(accelerator.unwrap_model(module), val_set, pad_id,
                                    cfg.batch_size, accelerator.device)
                state["val_history"].append({"step": state["step"], **val})
                val_clock.saved()
            if checkpoint:
                save_checkpoint()
            if last or interrupt:
                done = True
                break
        epoch += 1
    bar.close()
    accelerator.wait_for_everyone()
    adapter_dir = out_dir / "adapter"
    if stop_after is None or state["step"] >= total_steps:
        _save_final(accelerator, module, tokenizer, adapter_dir)
    if accelerator.is_main_process:
        (out_dir / "train_state.json").write_text(json.dumps(state))
    return TrainResult(state["step"], state["history"], state["val_history"], adapter_dir,
                       round(time.perf_counter() - start, 2), resumed_from, resumed_portable,
                       accelerator.num_processes, str(accelerator.device),
                       str(next(model.parameters()).dtype).removeprefix("torch."),
                       torch.get_num_threads())


def _save_final(accelerator, module: nn.Module, tokenizer, adapter_dir: Path) -> None:
    """The LoRA adapter (peft format), the AST head (kept for analysis; export drops it)."""
    state = accelerator.get_state_dict(module)
    if not accelerator.is_main_process:
        return
    inner = accelerator.unwrap_model(module)
    student_sd = {k[len("student."):]: v for k, v in state.items() if k.startswith("student.")}
    inner.student.save_pretrained(str(adapter_dir), state_dict=student_sd)
    head = {k[len("ast_head."):]: v for k, v in state.items() if k.startswith("ast_head.")}
    torch.save(head, adapter_dir / "ast_head.pt")
    tokenizer.save_pretrained(str(adapter_dir))
