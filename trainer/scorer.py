"""A GGUF model's log-probabilities of given token sequences, through llama.cpp (no torch).

On-policy distillation trains the student on its *own* samples, judged token by token by the
teacher: for every token the student sampled, the teacher's log-probability of that token and
the teacher's most likely tokens at that position (top-k, for a top-k reverse KL). The teacher
needs one forward pass over prompt + answer with logits at every answer position; llama.cpp
gives them when a batch asks for logits at each position (``llama_get_logits_ith``). The
prompt, shared by a problem's K answers, is evaluated once; each answer is then evaluated
after it (the answer's cells are dropped before the next one).

The two models must share one vocabulary, id for id (the teacher reads the student's token
ids): :func:`vocabulary` and :func:`compare_vocabularies` check that token by token.
"""

from __future__ import annotations

import ctypes
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# isort: off
import plancode.engine  # noqa: F401 - sets OpenMP's wait policy before llama_cpp loads
import llama_cpp
# isort: on
import numpy as np
from llama_cpp import Llama

from plancode.errors import PlancodeError

CHUNK = 64  # answer tokens per llama_decode when every position's logits are wanted


@dataclass
class TokenScores:
    """One answer scored: per answer token, the model's log-probability of that token and its
    ``top`` most likely tokens there (ids and log-probabilities, best first)."""

    logprobs: list[float] = field(default_factory=list)
    top_ids: list[list[int]] = field(default_factory=list)
    top_logprobs: list[list[float]] = field(default_factory=list)


def top_of(rows: np.ndarray, tokens: Sequence[int], k: int,
           mass: float = 1.0) -> TokenScores:
    """Scores from logit ``rows`` (row i: the logits before ``tokens[i]``): each token's
    log-probability and the ``k`` best tokens, cut once they hold ``mass`` of the probability
    (at least one kept). Computed in float64 from the float32 logits."""
    out = TokenScores()
    if not len(tokens):
        return out
    x = rows.astype(np.float64)
    top = np.max(x, axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(x - top).sum(axis=1))
    idx = np.arange(len(tokens))
    out.logprobs = (x[idx, np.asarray(tokens)] - lse).tolist()
    k = max(1, min(k, x.shape[1]))
    best = np.argpartition(-x, k - 1, axis=1)[:, :k]
    best_lp = np.take_along_axis(x, best, axis=1) - lse[:, None]
    order = np.argsort(-best_lp, axis=1, kind="stable")
    best = np.take_along_axis(best, order, axis=1)
    best_lp = np.take_along_axis(best_lp, order, axis=1)
    cum = np.cumsum(np.exp(best_lp), axis=1)
    keep = 1 + np.sum(cum[:, :-1] < mass, axis=1)  # entries until the mass is reached
    for i in range(len(tokens)):
        out.top_ids.append(best[i, :keep[i]].tolist())
        out.top_logprobs.append(best_lp[i, :keep[i]].tolist())
    return out


class TokenScorer:
    """Scores token sequences with one GGUF model (its own llama.cpp context)."""

    def __init__(self, model_path: str | Path, n_ctx: int = 4096, n_threads: int = 0,
                 n_gpu_layers: int = 0) -> None:
        import os

        self._batch = None
        threads = n_threads or (os.cpu_count() or 1)
        self.model_path = Path(model_path)
        try:
            self._llm = Llama(model_path=str(model_path), n_ctx=n_ctx, n_batch=256,
                              n_ubatch=256, n_threads=threads, n_threads_batch=threads,
                              n_gpu_layers=n_gpu_layers, logits_all=False, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise PlancodeError(f"llama.cpp could not load {model_path}: {exc}",
                                "check the file with `plancode model verify NAME`") from exc
        self.n_ctx = n_ctx
        self.n_vocab = self._llm.n_vocab()
        self._memory = llama_cpp.llama_get_memory(self._llm.ctx)
        self._batch = llama_cpp.llama_batch_init(256, 0, 1)

    def close(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
            self._llm.close()

    def __del__(self) -> None:
        self.close()

    @property
    def llm(self) -> Llama:
        return self._llm

    def _decode(self, tokens: Sequence[int], pos: int, logits: bool) -> None:
        """One llama_decode of ``tokens`` at ``pos...``: logits at every position when
        ``logits``, else at the last one only."""
        b = self._batch
        b.n_tokens = len(tokens)
        for i, token in enumerate(tokens):
            b.token[i] = token
            b.pos[i] = pos + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = logits or i == len(tokens) - 1
        code = llama_cpp.llama_decode(self._llm.ctx, b)
        if code != 0:
            raise PlancodeError(f"llama_decode failed while scoring (code {code})",
                                "lower the answer length or raise n_ctx")

    def _rows(self, n: int) -> np.ndarray:
        """The logits of the last decode's ``n`` outputs, copied (n x vocabulary)."""
        ptr = llama_cpp.llama_get_logits(self._llm.ctx)
        flat = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)),
                                     shape=(n * self.n_vocab,))
        return flat.reshape(n, self.n_vocab).copy()

    def score(self, prompt: Sequence[int], answers: Sequence[Sequence[int]], top_k: int = 8,
              top_mass: float = 1.0) -> list[TokenScores]:
        """Each answer's tokens scored after ``prompt`` (one forward pass over prompt +
        answer; the prompt is evaluated once for all answers)."""
        longest = max((len(a) for a in answers), default=0)
        if not prompt or len(prompt) + longest > self.n_ctx:
            raise PlancodeError(f"{len(prompt)} prompt + {longest} answer tokens do not fit "
                                f"the scorer's {self.n_ctx}-token context",
                                "raise n_ctx or leave the problem out")
        llama_cpp.llama_memory_clear(self._memory, True)
        n = len(prompt)
        for at in range(0, n, 256):
            self._decode(prompt[at:at + 256], at, logits=False)
        first = self._rows(1)  # the logits before the answer's first token
        out = []
        for answer in answers:
            llama_cpp.llama_memory_seq_rm(self._memory, 0, n, -1)
            rows = [first]
            body = list(answer[:-1])  # the last token's logits predict nothing scored
            for at in range(0, len(body), CHUNK):
                chunk = body[at:at + CHUNK]
                self._decode(chunk, n + at, logits=True)
                rows.append(self._rows(len(chunk)))
            out.append(top_of(np.concatenate(rows)[:len(answer)], answer, top_k, top_mass))
        return out


@dataclass
class Vocabulary:
    """A model's vocabulary, token by token: each id's text (bytes) and attributes."""

    texts: list[bytes]
    attrs: list[int]

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for text, attr in zip(self.texts, self.attrs, strict=True):
            h.update(text + b"\0" + str(attr).encode() + b"\n")
        return h.hexdigest()[:16]


def vocabulary(llm: Llama) -> Vocabulary:
    """Every token of ``llm``'s vocabulary (llama.cpp's own text and attributes per id)."""
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n = llama_cpp.llama_vocab_n_tokens(vocab)
    texts = [llama_cpp.llama_vocab_get_text(vocab, i) or b"" for i in range(n)]
    attrs = [int(llama_cpp.llama_vocab_get_attr(vocab, i)) for i in range(n)]
    return Vocabulary(texts, attrs)


def compare_vocabularies(student: Llama, teacher: Llama) -> dict:
    """Whether the teacher can score the student's token ids: the same number of tokens and,
    id for id, the same text and attributes. A report (``identical``, sizes, digests, the
    first ids that differ)."""
    a, b = vocabulary(student), vocabulary(teacher)
    n = min(len(a.texts), len(b.texts))
    differ = [i for i in range(n) if a.texts[i] != b.texts[i] or a.attrs[i] != b.attrs[i]]
    return {"identical": len(a.texts) == len(b.texts) and not differ,
            "student_tokens": len(a.texts), "teacher_tokens": len(b.texts),
            "student_digest": a.digest, "teacher_digest": b.digest,
            "differing_ids": len(differ), "first_differing_ids": differ[:10]}
