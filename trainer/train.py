"""Stage 4: LoRA distillation of the student on the multi-task, structure-aware loss.

Runs through Hugging Face ``accelerate``: one process on a CPU or one GPU as ``python -m``
/ ``plancode train``, and the same code under ``accelerate launch`` or ``torchrun`` with DDP or
FSDP on several GPUs. bf16 and gradient checkpointing switch on by themselves on a GPU; the
CPU trains in fp32. Checkpoints (``accelerate``'s own state: adapter, AST head, optimizer,
scheduler, RNG) are written every ``save_every`` optimizer steps, and a run that finds one
resumes from it, skipping the batches it had already seen.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from server.errors import PlancodeError
from trainer.examples import Example
from trainer.losses import Batch, LossConfig, collate, multitask_loss
from trainer.structure import node_type_count

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class TrainConfig:
    student: str = "qwen2.5-coder-0.5b"  # catalog name, .gguf path, HF directory or hub id
    tasks: tuple[str, ...] = ("plan", "code", "direct")
    max_len: int = 1024
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 10
    epochs: float = 3.0
    max_steps: int = 0  # > 0 overrides epochs
    batch_size: int = 4
    grad_accum: int = 4
    save_every: int = 50
    keep_checkpoints: int = 2
    seed: int = 0
    bf16: str = "auto"  # auto | true | false
    gradient_checkpointing: str = "auto"  # auto | true | false
    loss: LossConfig = field(default_factory=LossConfig)

    def validate(self) -> None:
        self.loss.validate()
        if self.lora_r < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise PlancodeError("train.lora_r, batch_size and grad_accum must be >= 1",
                                "fix the [train] section of the config")
        for key in ("bf16", "gradient_checkpointing"):
            if getattr(self, key) not in ("auto", "true", "false"):
                raise PlancodeError(f"train.{key} must be 'auto', 'true' or 'false'",
                                    "auto picks it for the device")


class DistillModule(nn.Module):
    """Student (with LoRA) + AST alignment head; ``forward`` returns the multi-task loss, so
    DDP/FSDP wrap one module and see one forward."""

    def __init__(self, student: nn.Module, hidden_size: int, loss: LossConfig) -> None:
        super().__init__()
        self.student = student
        self.ast_head = nn.Linear(hidden_size, node_type_count())
        self.loss_cfg = loss

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        out = self.student(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                           output_hidden_states=True, logits_to_keep=1, use_cache=False)
        return multitask_loss(out.hidden_states[-1], self.student.get_output_embeddings(),
                              batch, self.loss_cfg, self.ast_head)


def _flag(value: str, auto: bool) -> bool:
    return auto if value == "auto" else value == "true"


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
    processes: int = 1  # data-parallel processes (accelerate launch / torchrun)
    device: str = "cpu"

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
          stop_after: int | None = None) -> TrainResult:
    """Train ``model`` (a plain causal LM) with LoRA on ``train_set``; adapter in out_dir.

    ``stop_after`` ends the run after that many optimizer steps as if interrupted (tests use it
    to prove that resuming works); the checkpoint at that step is written first.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_cosine_schedule_with_warmup

    cfg.validate()
    if not train_set:
        raise PlancodeError("no training examples", "check the verification yield; every plan "
                            "failed its tests or every example exceeded train.max_len")
    cuda = torch.cuda.is_available()
    bf16 = _flag(cfg.bf16, cuda and torch.cuda.is_bf16_supported())
    ckpt_dir = out_dir / "checkpoints"
    accelerator = Accelerator(gradient_accumulation_steps=cfg.grad_accum,
                              mixed_precision="bf16" if bf16 else "no",
                              cpu=not cuda)  # cpu=True: several CPU processes form a gloo group
    set_seed(cfg.seed)
    if _flag(cfg.gradient_checkpointing, cuda):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    student = add_lora(model, cfg)
    module = DistillModule(student, model.config.hidden_size, cfg.loss)
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
    resumed_from = 0
    if latest is not None:
        accelerator.load_state(str(latest))
        state = json.loads((latest / "train_state.json").read_text())
        resumed_from = state["step"]

    def save_checkpoint() -> None:
        """accelerate's full state (every rank takes part), then the loop's own state; the
        newest ``keep_checkpoints`` are kept. ``train_state.json`` is written last, so a
        checkpoint without it (killed mid-save) is never resumed from."""
        path = ckpt_dir / f"checkpoint_{state['step']}"
        accelerator.save_state(str(path))
        if accelerator.is_main_process:
            (path / "train_state.json").write_text(json.dumps(state))
            for old in _checkpoints(ckpt_dir)[:-cfg.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()

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
            if val_set and (state["step"] % cfg.save_every == 0 or last or interrupt):
                val = evaluate_loss(accelerator.unwrap_model(module), val_set, pad_id,
                                    cfg.batch_size, accelerator.device)
                state["val_history"].append({"step": state["step"], **val})
            if state["step"] % cfg.save_every == 0 or last or interrupt:
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
                       round(time.perf_counter() - start, 2), resumed_from,
                       accelerator.num_processes, str(accelerator.device))


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
