"""The optimisation loop both LoRA trainers share (SFT distillation and on-policy).

Through Hugging Face ``accelerate``: one process on a CPU or a GPU, or several under
``accelerate launch``/``torchrun``. bf16 mixed precision and gradient checkpointing switch on
by themselves on a GPU. Checkpoints (accelerate's full state, then the small portable one a
fresh machine resumes from, then the loop's own ``train_state.json``, written last so a
checkpoint killed mid-save is never resumed from) come every ``save_every`` optimizer steps
and/or every ``save_every_minutes``; a run that finds one resumes from it, skipping the
batches it had already seen. Each trainer brings its module (the loss), the examples and
its ``collate``, and a hook that measures what it watches (validation loss, anchor KL)
before a checkpoint is written, so the measurement is saved with it.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm import tqdm

from plancode.trainer import portable_checkpoint as portable


class LoopConfig(Protocol):
    """The settings the loop reads (``TrainConfig`` and ``OnPolicyConfig`` both have them)."""

    threads: int
    bf16: str
    gradient_checkpointing: str
    grad_accum: int
    seed: int
    learning_rate: float
    weight_decay: float
    batch_size: int
    max_steps: int
    epochs: float
    warmup_steps: int
    save_every: int
    save_every_minutes: float
    keep_checkpoints: int


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


def flag(value: str, auto: bool) -> bool:
    """A true/false/auto setting: ``auto`` is what the hardware suggests."""
    return auto if value == "auto" else value == "true"


def epoch_order(n: int, epoch: int, seed: int) -> list[int]:
    order = list(range(n))
    random.Random(seed * 1000 + epoch).shuffle(order)
    return order


def checkpoints(ckpt_dir: Path) -> list[Path]:
    """Complete checkpoints (``train_state.json`` is written last), oldest first."""
    found = [p for p in ckpt_dir.glob("checkpoint_*") if (p / "train_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("_")[-1]))


@dataclass
class Loop:
    """One run's moving parts (:func:`prepare` makes them) and its state: ``step`` (optimizer
    steps), ``micro`` (batches consumed), ``history`` and ``val_history``."""

    accelerator: Any
    module: nn.Module
    optimizer: Any
    scheduler: Any
    params: list[nn.Parameter]
    total_steps: int
    per_epoch: int  # batches per epoch and process
    pad_id: int
    state: dict = field(default_factory=dict)
    resumed_from: int = 0
    resumed_portable: bool = False

    @property
    def step(self) -> int:
        return self.state["step"]

    def unwrapped(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.module)


def prepare(model: nn.Module, make_module: Callable[[nn.Module], nn.Module], tokenizer,
            cfg: LoopConfig, n_examples: int, out_dir: Path) -> Loop:
    """The accelerator, ``make_module(model)`` (the LoRA student inside the trainer's loss),
    optimizer and cosine schedule, prepared; resumed from ``out_dir``'s newest checkpoint,
    else from its portable checkpoint, when there is one."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_cosine_schedule_with_warmup

    cuda = torch.cuda.is_available()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    bf16 = cuda and flag(cfg.bf16, torch.cuda.is_bf16_supported())
    accelerator = Accelerator(gradient_accumulation_steps=cfg.grad_accum,
                              mixed_precision="bf16" if bf16 else "no",
                              cpu=not cuda)  # cpu=True: several CPU processes form a gloo group
    set_seed(cfg.seed)
    if flag(cfg.gradient_checkpointing, cuda):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    module = make_module(model)
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    n_proc = accelerator.num_processes
    per_epoch = math.ceil(n_examples / cfg.batch_size / n_proc)
    steps_per_epoch = max(1, math.ceil(per_epoch / cfg.grad_accum))
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    # accelerate steps a prepared scheduler once per process per optimizer step
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, min(cfg.warmup_steps, total_steps // 4) * n_proc, total_steps * n_proc)
    module, optimizer, scheduler = accelerator.prepare(module, optimizer, scheduler)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else \
        tokenizer.eos_token_id
    loop = Loop(accelerator, module, optimizer, scheduler, params, total_steps, per_epoch,
                pad_id, {"step": 0, "micro": 0, "history": [], "val_history": []})
    latest = (checkpoints(out_dir / "checkpoints") or [None])[-1]
    if latest is not None:
        accelerator.load_state(str(latest))
        loop.state = json.loads((latest / "train_state.json").read_text())
        loop.resumed_from = loop.step
    elif portable.exists(out_dir / "portable"):  # another machine's run, as committed
        loop.state = portable.load(loop.unwrapped(), optimizer, scheduler, out_dir / "portable")
        loop.resumed_from, loop.resumed_portable = loop.step, True
    return loop


def run(loop: Loop, examples: Sequence, collate: Callable[[list, int], Any], cfg: LoopConfig,
        out_dir: Path, *, desc: str, shown: str, measure: Callable[[Loop, bool, bool], None],
        progress: bool = True, stop_after: int | None = None) -> float:
    """Optimise until ``total_steps`` (or ``stop_after`` steps, as if killed, its checkpoint
    written first). After every optimizer step ``measure(loop, checkpoint, last)`` may add to
    ``val_history``; then the checkpoint is written when due. ``shown`` is the history key the
    progress bar shows. Returns the seconds it ran; ``train_state.json`` is left in
    ``out_dir``."""
    acc, state = loop.accelerator, loop.state
    ckpt_dir = out_dir / "checkpoints"
    clock = CheckpointClock(cfg.save_every, cfg.save_every_minutes)

    def save_checkpoint() -> None:
        path = ckpt_dir / f"checkpoint_{state['step']}"
        acc.save_state(str(path))
        if acc.is_main_process:
            portable.save(loop.unwrapped(), loop.scheduler, state, out_dir / "portable")
            (path / "train_state.json").write_text(json.dumps(state))
            for old in checkpoints(ckpt_dir)[:-cfg.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        clock.saved()

    start = time.perf_counter()
    bar = tqdm(total=loop.total_steps, initial=state["step"], desc=desc, unit="step",
               disable=not progress or not acc.is_local_main_process)
    window: dict[str, list[float]] = {}
    micro = state["micro"]
    epoch = micro // (loop.per_epoch or 1)
    done = state["step"] >= loop.total_steps
    while not done:
        ordered = [examples[i] for i in epoch_order(len(examples), epoch, cfg.seed)]
        loader = torch.utils.data.DataLoader(ordered, batch_size=cfg.batch_size,
                                             collate_fn=lambda xs: collate(xs, loop.pad_id))
        loader = acc.prepare_data_loader(loader)
        skip = micro - epoch * loop.per_epoch
        if skip > 0:
            loader = acc.skip_first_batches(loader, skip)
        for batch in loader:
            with acc.accumulate(loop.module):
                loss, parts = loop.module(batch)
                acc.backward(loss)
                if acc.sync_gradients:
                    acc.clip_grad_norm_(loop.params, 1.0)
                loop.optimizer.step()
                loop.scheduler.step()
                loop.optimizer.zero_grad()
            micro += 1
            state["micro"] = micro
            for k, v in parts.items():
                window.setdefault(k, []).append(v)
            if not acc.sync_gradients:
                continue
            state["step"] += 1
            row = {"step": state["step"], "lr": loop.scheduler.get_last_lr()[0],
                   **{k: sum(v) / len(v) for k, v in window.items()}}
            window = {}
            state["history"].append(row)
            bar.update(1)
            bar.set_postfix({shown: f"{row[shown]:.4f}"})
            last = state["step"] >= loop.total_steps
            interrupt = stop_after is not None and state["step"] >= stop_after
            checkpoint = clock.due(state["step"]) or last or interrupt
            measure(loop, checkpoint, last)
            if checkpoint:
                save_checkpoint()
            if last or interrupt:
                done = True
                break
        epoch += 1
    bar.close()
    acc.wait_for_everyone()
    if acc.is_main_process:
        (out_dir / "train_state.json").write_text(json.dumps(state))
    return round(time.perf_counter() - start, 2)


def result(loop: Loop, model: nn.Module, adapter_dir: Path, seconds: float) -> TrainResult:
    return TrainResult(loop.step, loop.state["history"], loop.state["val_history"], adapter_dir,
                       seconds, loop.resumed_from, loop.resumed_portable,
                       loop.accelerator.num_processes, str(loop.accelerator.device),
                       str(next(model.parameters()).dtype).removeprefix("torch."),
                       torch.get_num_threads())


def save_adapter(loop: Loop, tokenizer, adapter_dir: Path) -> dict | None:
    """The student's LoRA adapter in peft's format (what the export stage reads) and the
    tokenizer, from the module's ``student``. Returns the module's whole state dict on the
    main process (None on the others) for what a trainer keeps beside the adapter."""
    state = loop.accelerator.get_state_dict(loop.module)
    if not loop.accelerator.is_main_process:
        return None
    student = {k[len("student."):]: v for k, v in state.items() if k.startswith("student.")}
    loop.unwrapped().student.save_pretrained(str(adapter_dir), state_dict=student)
    tokenizer.save_pretrained(str(adapter_dir))
    return state
