"""A training checkpoint small enough to commit: the trainable weights and the loop's state.

accelerate's checkpoints (``train/checkpoints/``) hold the whole model, the frozen 0.5B base
included (about 1 GB), and the optimizer, so they stay on the machine that wrote them. A CPU
training run spans sessions, and a session may continue on another machine with only what was
committed. So every checkpoint also writes ``train/portable/``: the trainable parameters (LoRA
and the AST head: about 35 MB in fp32 for the real run), the step, the data position, the loss
history and the learning-rate schedule. A run that finds no local checkpoint resumes from it;
the optimizer's moments start again (AdamW rebuilds them within a few steps), and the training
report says so (``resumed_portable``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

STATE = "train_state.json"  # written last: it names the weights file it belongs to


def save(module: nn.Module, scheduler, state: dict, folder: Path) -> Path:
    """Write the trainable parameters of ``module`` and ``state`` (plus the schedule) into
    ``folder``; older weight files are removed once the new state points at the new one."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    weights = f"trainable_{state['step']}.safetensors"
    tensors = {name: p.detach().to("cpu").contiguous()
               for name, p in module.named_parameters() if p.requires_grad}
    save_file(tensors, str(folder / f"{weights}.tmp"))
    os.replace(folder / f"{weights}.tmp", folder / weights)
    meta = {"weights": weights, "state": state, "scheduler": scheduler.state_dict()}
    (folder / f"{STATE}.tmp").write_text(json.dumps(meta, default=_plain))
    os.replace(folder / f"{STATE}.tmp", folder / STATE)
    for old in folder.glob("trainable_*.safetensors"):
        if old.name != weights:
            old.unlink(missing_ok=True)
    return folder / weights


def exists(folder: Path) -> bool:
    return (folder / STATE).is_file()


def load(module: nn.Module, optimizer, scheduler, folder: Path) -> dict:
    """Restore the trainable parameters and the schedule from ``folder``; the loop's state."""
    from safetensors.torch import load_file

    meta = json.loads((folder / STATE).read_text())
    tensors = load_file(str(folder / meta["weights"]))
    params = dict(module.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in tensors]
    if missing:
        raise ValueError(f"the portable checkpoint lacks {len(missing)} trainable parameters "
                         f"(e.g. {missing[0]}): it was written by another configuration")
    with torch.no_grad():
        for name, value in tensors.items():
            params[name].copy_(value.to(params[name].dtype))
    scheduler.load_state_dict(meta["scheduler"])
    for group, lr in zip(optimizer.param_groups, scheduler.get_last_lr(), strict=False):
        group["lr"] = lr  # the schedule's rate now, not its first warm-up value
    return meta["state"]


def _plain(value):
    """JSON for what a scheduler's state may hold besides numbers (e.g. tensors)."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return str(value)
