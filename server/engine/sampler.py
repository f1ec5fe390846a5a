"""Token selection from logits, in numpy, seeded: greedy or top-k / min-p / top-p sampling.

Sampling here rather than in llama.cpp's sampler chain keeps every candidate reproducible
from its seed, works the same for one sequence or many decoded in one batch, and yields the
model's own log-probability of each chosen token (used to rank candidates).
"""

from __future__ import annotations

import numpy as np

from plancode.engine.types import SamplingParams


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - float(np.max(logits))
    return shifted - np.log(np.exp(shifted).sum())


class TokenSampler:
    """Picks tokens for one sequence; deterministic for a given seed."""

    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        self.rng = np.random.default_rng(params.seed)

    def pick(self, logits: np.ndarray) -> tuple[int, float]:
        """The next token and its log-probability under the untempered model."""
        logprobs = log_softmax(logits)
        if self.params.greedy:
            token = int(np.argmax(logits))
            return token, float(logprobs[token])
        token = self._sample(logprobs)
        return token, float(logprobs[token])

    def _sample(self, logprobs: np.ndarray) -> int:
        p = self.params
        k = p.top_k if 0 < p.top_k < logprobs.size else logprobs.size
        ids = np.argpartition(-logprobs, k - 1)[:k] if k < logprobs.size else np.arange(k)
        ids = ids[np.argsort(-logprobs[ids], kind="stable")]
        lp = logprobs[ids]
        if p.min_p > 0:
            keep = lp >= lp[0] + np.log(p.min_p)
            ids, lp = ids[keep], lp[keep]
        if p.top_p < 1.0:
            probs = np.exp(lp - lp[0])
            probs /= probs.sum()
            cut = int(np.searchsorted(np.cumsum(probs), p.top_p)) + 1
            ids, lp = ids[:cut], lp[:cut]
        scaled = (lp - lp[0]) / p.temperature
        probs = np.exp(scaled)
        probs /= probs.sum()
        return int(ids[self.rng.choice(len(ids), p=probs)])
