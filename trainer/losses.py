"""The multi-task, structure-aware distillation loss (DESIGN.md, "The method").

    L = (1 - lam) * L_code_struct + lam * L_plan + beta * L_ast

* ``L_code_struct``: cross-entropy on the reply tokens of code examples, each token weighted
  ``1 + alpha`` when ``plancode.trainer.structure`` flags it structural and ``1`` otherwise,
  normalised
  by the sum of the weights (alpha = 0 gives plain cross-entropy: the CodePLAN ``L_code``);
* ``L_plan``: mean cross-entropy on the reply tokens of plan examples (CodePLAN's plan task);
* ``L_ast``: cross-entropy of a linear head on the student's final hidden states predicting
  the tree-sitter node kind of the code token generated at each position (the head is trained
  with the adapter and dropped at export).

Every term switches off on its own (``code``/``plan`` flags, ``alpha = 0``, ``beta = 0``) so the
evaluation can show what each one buys. A term whose tokens are absent from a batch is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from plancode.trainer.config import LossConfig
from plancode.trainer.structure import IGNORE

__all__ = ["Batch", "LossConfig", "collate", "multitask_loss"]


@dataclass
class Batch:
    """Right-padded token tensors; ``is_code`` marks code-task rows."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    structural: torch.Tensor
    node_types: torch.Tensor
    is_code: torch.Tensor

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.labels,
                                              self.structural, self.node_types, self.is_code)))


def _zero(like: torch.Tensor) -> torch.Tensor:
    return like.sum() * 0.0  # keeps the graph (and DDP's used-parameter bookkeeping) intact


def multitask_loss(hidden: torch.Tensor, lm_head: torch.nn.Module, batch: Batch,
                   cfg: LossConfig, ast_head: torch.nn.Module | None = None,
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    """The total loss and its parts (floats, for logging) from the final hidden states.

    Only labelled positions go through the LM head, so long prompts cost no logits memory.
    """
    h = hidden[:, :-1]
    target = batch.labels[:, 1:]
    labelled = target != IGNORE
    code_rows = batch.is_code[:, None].expand_as(target)
    code_tok = labelled & code_rows
    total = _zero(h)
    parts: dict[str, float] = {}

    picked = h[labelled]
    logits = lm_head(picked).float()
    ce = F.cross_entropy(logits, target[labelled], reduction="none")
    is_code_pick = code_tok[labelled]
    if cfg.code and is_code_pick.any():
        w = 1.0 + cfg.alpha * batch.structural[:, 1:][labelled][is_code_pick].float()
        l_code = (ce[is_code_pick] * w).sum() / w.sum()
        total = total + (1.0 - cfg.lam) * l_code
        parts["code"] = float(l_code.detach())
    if cfg.plan and (~is_code_pick).any():
        l_plan = ce[~is_code_pick].mean()
        total = total + cfg.lam * l_plan
        parts["plan"] = float(l_plan.detach())
    nodes = batch.node_types[:, 1:]
    has_node = (nodes != IGNORE) & code_tok
    if cfg.beta > 0 and ast_head is not None and has_node.any():
        node_logits = ast_head(h[has_node].to(ast_head.weight.dtype)).float()
        l_ast = F.cross_entropy(node_logits, nodes[has_node])
        total = total + cfg.beta * l_ast
        parts["ast"] = float(l_ast.detach())
    elif ast_head is not None:  # every parameter joins the graph: DDP waits for all of them
        total = total + sum(_zero(p) for p in ast_head.parameters())
    parts["total"] = float(total.detach())
    return total, parts


def collate(examples: list, pad_id: int) -> Batch:
    """Right-pad a list of ``plancode.trainer.examples.Example`` into one Batch."""
    n = max(len(e) for e in examples)

    def pad(rows: list[list], value: int | float, dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor([r + [value] * (n - len(r)) for r in rows], dtype=dtype)

    return Batch(
        input_ids=pad([e.input_ids for e in examples], pad_id, torch.long),
        attention_mask=pad([[1] * len(e) for e in examples], 0, torch.long),
        labels=pad([e.labels for e in examples], IGNORE, torch.long),
        structural=pad([e.structural for e in examples], 0, torch.long),
        node_types=pad([e.node_types for e in examples], IGNORE, torch.long),
        is_code=torch.tensor([e.task != "plan" for e in examples], dtype=torch.bool),
    )
