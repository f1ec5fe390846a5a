"""On-policy distillation: the student's own answers, the teacher's per-token scores, and the
loss that pulls the one towards the other (issue 32, item 1).

The samples stage (``plancode.trainer.samples``) had the student GGUF answer training problems
and the teacher GGUF score every answer token: its log-probability of the sampled token and
its best tokens there (at most 8, cut at 95% of its probability). Here each row becomes a
teacher-forced example (the prompt rebuilt with the Hugging Face tokenizer and checked
against the row's ``prompt_sha``, then the student's own tokens), and the loss is the
per-token **reverse KL** ``KL(student || teacher)`` on those tokens.

Why reverse KL on the student's own samples: supervised training on the teacher's text
(forward KL on off-policy data) moved the first students far from their own distribution and
they forgot (HumanEval direct 92 -> 78). Reverse KL is mode-seeking and is measured where the
student actually goes, so it corrects the student's own mistakes and leaves alone what it
already does as the teacher would (on-policy distillation, GKD; Thinking Machines' write-up).

Why the teacher's top-k with a "rest" bucket (:func:`topk_reverse_kl`, the main loss) rather
than the sampled-token estimator (:func:`sampled_token_loss`): the full teacher distribution
is not stored (151,936 log-probabilities a token), but its best tokens hold 95% of its mass.
Coarse-graining both distributions to those tokens plus one bucket for everything else gives
an *exact* KL between two small distributions, differentiable in closed form over every
listed token at once: a low-variance gradient that also uses what the teacher would have
said instead, where the single-sample estimator ``log p_s(y) - log p_t(y)`` (used as a
REINFORCE advantage with stop-gradient) sees one token a position and is noisy. The rest
bucket keeps the KL honest: student mass on tokens the teacher did not list is penalised
against the teacher's unlisted mass (floored at ``REST_FLOOR``, since 3-decimal rounding can
make the listed mass reach 1). Both are here; ``onpolicy.objective`` picks one.

Code tokens keep the structure-aware weights of the SFT loss (``plancode.trainer.structure``):
the answer (prefilled start + the student's text) is parsed like the tests judged it, and a
token inside a structural span weighs ``1 + alpha``; others (and every token outside the code:
the closing fence, an appended test harness) weigh 1. The loss is normalised by the weight sum.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from plancode.prompts import parse_code
from plancode.trainer.config import OnPolicyConfig
from plancode.trainer.data import Problem
from plancode.trainer.examples import render_prompt
from plancode.trainer.samples import direct_prompt, tokens_digest

REST_FLOOR = 1e-4  # the teacher's unlisted mass is at least this (its listed mass is rounded)


@dataclass
class OnPolicyExample:
    """One answer, teacher-forced: ``input_ids`` = prompt + the student's answer tokens."""

    key: str
    problem_id: str
    input_ids: list[int]
    n_prompt: int
    top_ids: list[list[int]]  # per answer token: the teacher's best token ids
    top_lp: list[list[float]]  # and their log-probabilities
    teacher_lp: list[float]  # the teacher's log-probability of each answer token
    weights: list[float]  # 1 + alpha on structural code tokens, 1 elsewhere
    passed: bool
    tests_passed: int = 0  # how many of its package's tests it passed (DPO's pairs)

    @property
    def answer(self) -> list[int]:
        return self.input_ids[self.n_prompt:]

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class RowStats:
    """What became of the samples rows (the stage report's ``rows``)."""

    rows: int = 0
    used: int = 0
    passed: int = 0  # used rows whose answer passed its tests (the SFT term's rows)
    prompt_mismatch: int = 0  # refused: the rebuilt prompt's digest differs from prompt_sha
    mismatched: list[str] = field(default_factory=list)  # their keys (the first 20)
    unknown_problem: int = 0  # the row's problem is not in the data stage
    unscored: int = 0  # no teacher scores (samples.score was off)
    malformed: int = 0  # teacher lists of another length than the tokens
    too_long: int = 0  # prompt + answer > max_len
    empty: int = 0  # no answer tokens
    answer_tokens: int = 0
    structural_tokens: int = 0
    unparsed_code: int = 0  # answers whose code was not found in the reply (weights all 1)

    def to_json(self) -> dict:
        return asdict(self)


def prompt_ids(tokenizer, problem: Problem, prefill: bool) -> list[int]:
    """The samples stage's prompt for ``problem``, rebuilt with the Hugging Face tokenizer:
    the server's direct prompt under the student's chat template, then the reply's prefilled
    start (as the engine renders a trailing assistant message), tokenized as one text."""
    messages, start = direct_prompt(problem, prefill)
    if start:
        messages = messages[:-1]
    return tokenizer(render_prompt(tokenizer, messages) + start,
                     add_special_tokens=False)["input_ids"]


def token_spans(tokenizer, tokens: Sequence[int]) -> tuple[str, list[tuple[int, int]]]:
    """The decoded text of ``tokens`` and each token's character span in it (by decoding
    growing prefixes, so a character split over two tokens lands in the second)."""
    ends = [0]
    for i in range(1, len(tokens) + 1):
        ends.append(max(ends[-1], len(tokenizer.decode(tokens[:i]))))
    return tokenizer.decode(list(tokens)), list(zip(ends[:-1], ends[1:], strict=True))


def answer_weights(tokenizer, start: str, tokens: Sequence[int],
                   alpha: float) -> tuple[list[float], int, bool]:
    """Per-token loss weights of an answer: ``1 + alpha`` on structural tokens of its code
    (the code the tests judged: ``parse_code(start + text)``), 1 elsewhere. Also how many
    tokens are structural and whether the code was found in the reply."""
    ones = [1.0] * len(tokens)
    if alpha == 0:
        return ones, 0, True
    from plancode.trainer.structure import token_structure

    text, spans = token_spans(tokenizer, tokens)
    reply = start + text
    code = parse_code(reply)
    at = reply.find(code) if code else -1
    if at < 0:
        return ones, 0, False
    shift = len(start) - at  # reply offset -> code offset
    flags, _ = token_structure(code, [(a + shift, b + shift) for a, b in spans])
    return [1.0 + alpha * f for f in flags], sum(flags), True


def read_rows(path: Path) -> list[dict]:
    """Whole rows of a samples file, read only (the samples job may be appending to it: a
    line still being written is left out, never truncated)."""
    rows = []
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            try:
                rows.append(json.loads(raw))
            except json.JSONDecodeError:
                break
    return rows


def build_examples(tokenizer, rows: Iterable[dict], problems: dict[str, Problem],
                   prefill: bool, cfg: OnPolicyConfig) -> tuple[list[OnPolicyExample],
                                                                 RowStats]:
    """Teacher-forced examples of ``rows``; a row is refused (and counted) when its problem
    is unknown, it has no teacher scores, its prompt rebuilt here does not hash to its
    ``prompt_sha`` (the model would be trained on another prompt than the one it answered),
    or it is longer than ``cfg.max_len``."""
    stats = RowStats()
    out: list[OnPolicyExample] = []
    prompts: dict[str, tuple[list[int], str]] = {}
    for row in rows:
        stats.rows += 1
        problem = problems.get(row["id"])
        if problem is None:
            stats.unknown_problem += 1
            continue
        if "teacher_top" not in row:
            stats.unscored += 1
            continue
        tokens = list(row["tokens"])
        if not tokens:
            stats.empty += 1
            continue
        if not len(row["teacher_top"]) == len(row["teacher_top_lp"]) == \
                len(row["teacher_lp"]) == len(tokens):
            stats.malformed += 1
            continue
        if problem.id not in prompts:
            prompts[problem.id] = (prompt_ids(tokenizer, problem, prefill),
                                   direct_prompt(problem, prefill)[1])
        ids, start = prompts[problem.id]
        if tokens_digest(ids) != row["prompt_sha"]:
            stats.prompt_mismatch += 1
            if len(stats.mismatched) < 20:
                stats.mismatched.append(row["key"])
            continue
        if len(ids) + len(tokens) > cfg.max_len:
            stats.too_long += 1
            continue
        weights, structural, found = answer_weights(tokenizer, start, tokens, cfg.alpha)
        stats.unparsed_code += not found
        stats.structural_tokens += structural
        stats.answer_tokens += len(tokens)
        stats.used += 1
        stats.passed += bool(row.get("passed"))
        out.append(OnPolicyExample(row["key"], problem.id, ids + tokens, len(ids),
                                   [list(t) for t in row["teacher_top"]],
                                   [list(t) for t in row["teacher_top_lp"]],
                                   list(row["teacher_lp"]), weights, bool(row.get("passed")),
                                   int(row.get("tests_passed") or 0)))
    return out, stats


@dataclass
class OnPolicyBatch:
    """Right-padded inputs, and per answer token (flattened in row order): the position of
    the hidden state that predicts it (``pred``), the token, the teacher's scores, its
    weight and whether its row passed."""

    input_ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L]
    pred: torch.Tensor  # [B, L] bool: hidden state at this position predicts an answer token
    targets: torch.Tensor  # [N]
    top_ids: torch.Tensor  # [N, K] (0 where padded)
    top_lp: torch.Tensor  # [N, K] (-inf where padded)
    teacher_lp: torch.Tensor  # [N]
    weights: torch.Tensor  # [N]
    passed: torch.Tensor  # [N] bool

    def to(self, device: torch.device | str) -> OnPolicyBatch:
        return OnPolicyBatch(**{k: v.to(device) for k, v in self.__dict__.items()})


def collate(examples: list[OnPolicyExample], pad_id: int) -> OnPolicyBatch:
    n = max(len(e) for e in examples)
    k = max(len(ids) for e in examples for ids in e.top_ids)
    pred = torch.zeros(len(examples), n, dtype=torch.bool)
    for i, e in enumerate(examples):
        pred[i, e.n_prompt - 1:len(e) - 1] = True
    tops = [ids for e in examples for ids in e.top_ids]
    lps = [lp for e in examples for lp in e.top_lp]
    return OnPolicyBatch(
        input_ids=torch.tensor([e.input_ids + [pad_id] * (n - len(e)) for e in examples]),
        attention_mask=torch.tensor([[1] * len(e) + [0] * (n - len(e)) for e in examples]),
        pred=pred,
        targets=torch.tensor([t for e in examples for t in e.answer]),
        top_ids=torch.tensor([ids + [0] * (k - len(ids)) for ids in tops]),
        top_lp=torch.tensor([lp + [-math.inf] * (k - len(lp)) for lp in lps]),
        teacher_lp=torch.tensor([v for e in examples for v in e.teacher_lp]),
        weights=torch.tensor([w for e in examples for w in e.weights]),
        passed=torch.tensor([e.passed for e in examples for _ in e.answer], dtype=torch.bool),
    )


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, stable at both ends."""
    x = x.clamp(max=-1e-7)
    return torch.where(x > -math.log(2.0), torch.log(-torch.expm1(x)),
                       torch.log1p(-torch.exp(x)))


def bucket_teacher(top_lp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's listed log-probabilities and its "rest" bucket, renormalised: (listed
    [N, K] with 0 where padded, rest [N]). The rest is ``1 - listed mass``, at least
    ``REST_FLOOR``."""
    valid = torch.isfinite(top_lp)
    q = torch.where(valid, top_lp.exp(), torch.zeros_like(top_lp))
    rest = (1.0 - q.sum(-1)).clamp(min=REST_FLOOR)
    log_total = torch.log(q.sum(-1) + rest)
    listed = torch.where(valid, top_lp - log_total[:, None], torch.zeros_like(top_lp))
    return listed, rest.log() - log_total


def topk_reverse_kl(logits: torch.Tensor, top_ids: torch.Tensor,
                    top_lp: torch.Tensor) -> torch.Tensor:
    """Per position, ``KL(student || teacher)`` between the two distributions coarse-grained
    to the teacher's listed tokens plus one bucket for every other token (exact for those
    K + 1 outcomes; see the module's docstring for why). ``logits``: [N, V] student logits;
    ``top_ids`` / ``top_lp``: [N, K] the teacher's listed tokens and log-probabilities
    (-inf where padded). Returns [N]."""
    valid = torch.isfinite(top_lp)
    log_z = torch.logsumexp(logits, dim=-1)
    s_top = logits.gather(1, top_ids) - log_z[:, None]  # finite everywhere (pads too)
    s_in = torch.logsumexp(s_top.masked_fill(~valid, -math.inf), dim=-1)
    s_rest = _log1mexp(s_in)
    t_top, t_rest = bucket_teacher(top_lp)
    listed = (s_top.exp() * (s_top - t_top) * valid).sum(-1)  # pads: exactly 0, no NaN
    return listed + s_rest.exp() * (s_rest - t_rest)


def sampled_token_loss(logp_y: torch.Tensor, teacher_lp: torch.Tensor) -> torch.Tensor:
    """The single-sample reverse-KL estimator as a REINFORCE surrogate: per position
    ``stopgrad(log p_s(y) - log p_t(y)) * log p_s(y)``, whose gradient is the estimator's
    policy gradient (the advantage is the negative per-token reverse KL). [N]."""
    return (logp_y - teacher_lp).detach() * logp_y


def answer_logits(student, batch: OnPolicyBatch) -> torch.Tensor:
    """The student's logits [N, V] (fp32) at the positions that predict answer tokens; only
    those positions go through the LM head, so a long prompt costs no logits memory."""
    out = student(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                  output_hidden_states=True, logits_to_keep=1, use_cache=False)
    hidden = out.hidden_states[-1][batch.pred]
    head = student.get_output_embeddings()
    return head(hidden.to(head.weight.dtype)).float()


def token_logps(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The log-probability of each answer token under ``logits`` ([N, V]): [N]."""
    return logits.gather(1, targets[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)


def onpolicy_loss(logits: torch.Tensor, batch: OnPolicyBatch, kind: str,
                  sft_weight: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The total loss and its parts (floats, for logging): the weighted reverse KL term
    (``kind`` "topk" or "sampled"), plus ``sft_weight`` times the weighted cross-entropy on
    the tokens of passing answers. Logged besides: ``kl_sampled``, the weighted mean of
    ``log p_s(y) - log p_t(y)`` (the sampled-token KL estimate, whichever loss trains)."""
    w = batch.weights
    logp_y = token_logps(logits, batch.targets)
    if kind == "topk":
        per_token = topk_reverse_kl(logits, batch.top_ids, batch.top_lp)
    elif kind == "sampled":
        per_token = sampled_token_loss(logp_y, batch.teacher_lp)
    else:
        raise ValueError(f"unknown on-policy loss {kind!r}")
    kl = (w * per_token).sum() / w.sum()
    total = kl
    parts = {"kl": float(kl.detach()),
             "kl_sampled": float((w * (logp_y - batch.teacher_lp)).sum().detach() / w.sum())}
    if sft_weight > 0:
        if batch.passed.any():
            wp = w[batch.passed]
            sft = -(wp * logp_y[batch.passed]).sum() / wp.sum()
            parts["sft"] = float(sft.detach())
        else:
            sft = logp_y.sum() * 0.0  # keeps the graph whole
        total = total + sft_weight * sft
    parts["total"] = float(total.detach())
    return total, parts


@torch.no_grad()
def anchor_metrics(student, anchors: list[OnPolicyExample], pad_id: int,
                   device: torch.device | str) -> dict[str, float]:
    """On fixed ``anchors``: ``anchor_kl``, the mean per-token KL(LoRA student || frozen base)
    over the full vocabulary (the base is the same model with its adapters disabled: peft's
    ``disable_adapter``), and ``anchor_teacher_kl``, the mean top-k reverse KL to the teacher
    there. The first says how far training has moved the student (forgetting grows with it),
    the second how far it still is from the teacher."""
    if not anchors:
        return {}
    was_training = student.training
    student.eval()
    base_kl, teacher_kl, n = 0.0, 0.0, 0
    for ex in anchors:
        batch = collate([ex], pad_id).to(device)
        logp = F.log_softmax(answer_logits(student, batch), dim=-1)
        with student.disable_adapter():
            logp_base = F.log_softmax(answer_logits(student, batch), dim=-1)
        base_kl += float((logp.exp() * (logp - logp_base)).sum())
        teacher_kl += float(topk_reverse_kl(logp, batch.top_ids, batch.top_lp).sum())
        n += logp.shape[0]
    student.train(was_training)
    return {"anchor_kl": base_kl / n, "anchor_teacher_kl": teacher_kl / n}
