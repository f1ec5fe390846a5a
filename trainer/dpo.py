"""DPO on the student's own answers, paired by the tests they pass (issue 32, item 2).

The samples stage judged every answer with its package's tests; for one prompt some answers
pass and some fail. A pair is a passing answer (chosen) and a failing one (rejected) to the
same prompt, and the loss is DPO's: ``-log sigmoid(beta * (d_chosen - d_rejected))`` where
``d`` is the answer's log-probability under the LoRA student minus under its frozen base
(peft's ``disable_adapter``: the reference costs one forward pass without gradients, no
second model in memory).

Why pairs by tests passed rather than at random: a random pair of two answers to one prompt
teaches noise (two failing answers, or two equally good ones); a pair whose members differ
in what the tests say carries the one signal the student cannot get from the teacher's
scores. Each passing answer is paired with the failing answer that passed the fewest tests
(the widest margin), no failing answer is used twice while another is left, answers with
the same tokens are never paired, and a prompt gives at most ``dpo_pairs`` pairs.

Both members are the student's own samples (on-policy): the move DPO makes is measured where
the student already goes, the same argument as for the reverse KL (``trainer.onpolicy``).
The teacher's top-k reverse KL of both members is logged beside the loss (``kl``), so a run
shows whether preference training pulls the student away from the teacher.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from plancode.trainer.onpolicy import (
    OnPolicyBatch,
    OnPolicyExample,
    answer_logits,
    collate,
    token_logps,
    topk_reverse_kl,
)


@dataclass
class DPOPair:
    """Two answers to one prompt: ``chosen`` passed its tests, ``rejected`` did not."""

    chosen: OnPolicyExample
    rejected: OnPolicyExample


def make_pairs(examples: list[OnPolicyExample], per_prompt: int) -> list[DPOPair]:
    """The DPO pairs among ``examples`` (see the module's docstring for the rule), in the
    order their prompts first appear."""
    by_problem: dict[str, list[OnPolicyExample]] = defaultdict(list)
    for e in examples:
        by_problem[e.problem_id].append(e)
    pairs = []
    for group in by_problem.values():
        chosen = _distinct([e for e in group if e.passed])
        rejected = _distinct([e for e in group if not e.passed])
        if not rejected:
            continue
        used: dict[str, int] = defaultdict(int)
        for c in chosen[:per_prompt]:
            r = min(rejected, key=lambda r: (used[r.key], r.tests_passed, r.key))
            used[r.key] += 1
            pairs.append(DPOPair(c, r))
    return pairs


def _distinct(examples: list[OnPolicyExample]) -> list[OnPolicyExample]:
    seen, out = set(), []
    for e in examples:
        answer = tuple(e.answer)
        if answer not in seen:
            seen.add(answer)
            out.append(e)
    return out


def collate_pairs(pairs: list[DPOPair], pad_id: int) -> OnPolicyBatch:
    """One batch of the pairs' answers, chosen then rejected for each pair (rows 2i, 2i+1)."""
    return collate([e for p in pairs for e in (p.chosen, p.rejected)], pad_id)


def sequence_logps(logits: torch.Tensor, batch: OnPolicyBatch) -> torch.Tensor:
    """Each row's answer log-probability (the sum over its tokens): [B]."""
    logp_y = token_logps(logits, batch.targets)
    rows = batch.pred.sum(-1)
    index = torch.repeat_interleave(torch.arange(len(rows), device=logits.device), rows)
    return torch.zeros(len(rows), dtype=logp_y.dtype, device=logits.device) \
        .index_add(0, index, logp_y)


def dpo_loss(policy: torch.Tensor, reference: torch.Tensor, beta: float
             ) -> tuple[torch.Tensor, dict[str, float]]:
    """DPO's loss over pairs laid out as (chosen, rejected) rows of ``policy`` and
    ``reference`` (answer log-probabilities, [2P]); logged besides: the mean reward margin
    and the share of pairs where the chosen answer's reward is the higher."""
    reward = beta * (policy - reference)
    margin = reward[0::2] - reward[1::2]
    loss = -F.logsigmoid(margin).mean()
    return loss, {"dpo": float(loss.detach()), "margin": float(margin.detach().mean()),
                  "accuracy": float((margin.detach() > 0).float().mean())}


def pair_loss(student, batch: OnPolicyBatch, beta: float, sft_weight: float
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """The DPO loss of a batch of pairs (``collate_pairs``), plus ``sft_weight`` times the
    cross-entropy on the chosen answers; the teacher's top-k reverse KL is logged as ``kl``."""
    logits = answer_logits(student, batch)
    with torch.no_grad(), student.disable_adapter():
        reference = sequence_logps(answer_logits(student, batch), batch)
    policy = sequence_logps(logits, batch)
    total, parts = dpo_loss(policy, reference, beta)
    w = batch.weights
    parts["kl"] = float((w * topk_reverse_kl(logits.detach(), batch.top_ids, batch.top_lp))
                        .sum() / w.sum())
    if sft_weight > 0:
        chosen_tokens = batch.pred.sum(-1)[0::2].sum()
        sft = -policy[0::2].sum() / chosen_tokens
        parts["sft"] = float(sft.detach())
        total = total + sft_weight * sft
    parts["total"] = float(total.detach())
    return total, parts
