"""Which cached KV cells a new prompt can keep, beyond the prefix it shares with the cache.

The engine keeps the tokens a prompt shares with the cache at its start. With a
fill-in-the-middle prompt that is not enough: the text after the cursor (the suffix and the
FIM tokens) comes *after* the prefix in prefix-suffix-middle order, so a keystroke before the
cursor changes a token in the middle of the prompt, and everything after it used to be
re-evaluated. llama-server's ``--cache-reuse`` moves cached chunks that reappear later in the
new prompt to their new positions (``llama_memory_seq_rm`` / ``llama_memory_seq_add``; the
keys are re-rotated by the position delta, "RoPE shifting") instead of re-evaluating them.

:func:`plan_reuse` works out that layout as data: the shared head, the cached chunks that move
(each at least ``min_chunk`` tokens), and the gaps of new tokens between them that must be
evaluated. It is pure (token lists in, plan out), so it is tested without a model; the engine
applies it to the KV cache.

A moved chunk keeps the keys and values it was computed with, which saw the *old* text before
it. That is the approximation llama-server makes too: exact for the shared head, close for the
moved chunks (the edit is a few tokens; the chunk's own tokens are unchanged). ``docs/engine.md``
says how often the greedy text still equals a cold evaluation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher

# a cached run shorter than this is re-evaluated, not moved; PLANCODE_KV_REUSE_CHUNK=0 turns
# moving off (prefix reuse only), for comparisons such as benchmarks/typing.py's ablation
MIN_CHUNK = int(os.environ.get("PLANCODE_KV_REUSE_CHUNK", "8"))


@dataclass(frozen=True)
class Chunk:
    """``size`` cached tokens at positions ``[src, src + size)`` reused at ``[dst, dst + size)``."""

    src: int
    dst: int
    size: int

    @property
    def shift(self) -> int:
        return self.dst - self.src


@dataclass(frozen=True)
class ReusePlan:
    """How to turn the cache into the new prompt's cache.

    ``head``: tokens shared at the start (kept in place). ``chunks``: cached runs moved to new
    positions, in order. ``gaps``: ``[start, end)`` position ranges of the new prompt that must
    be evaluated, in order (they fill everything not covered by the head or a chunk).
    """

    head: int
    chunks: tuple[Chunk, ...] = ()
    gaps: tuple[tuple[int, int], ...] = field(default_factory=tuple)

    @property
    def reused(self) -> int:
        return self.head + sum(c.size for c in self.chunks)

    @property
    def evaluated(self) -> int:
        return sum(end - start for start, end in self.gaps)


def common_prefix(a: Sequence, b: Sequence) -> int:
    """How many leading items (tokens, characters) ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def plan_reuse(cached: Sequence[int], tokens: Sequence[int],
               min_chunk: int = MIN_CHUNK) -> ReusePlan:
    """The layout that keeps the most cached tokens for ``tokens`` (never its last token).

    The last prompt token is always evaluated (the next token's logits come from it), so a
    prompt identical to the cache evaluates one token. Chunks are matched in order (a moved
    chunk never crosses another) with :class:`difflib.SequenceMatcher`; runs shorter than
    ``min_chunk`` are left to evaluation (moving them costs more than it saves, and each moved
    chunk is an approximation). ``min_chunk <= 0`` disables moving: prefix reuse only.
    """
    n = len(tokens)
    if n == 0:
        return ReusePlan(0)
    head = min(common_prefix(cached, tokens), n - 1)
    chunks: list[Chunk] = []
    if min_chunk > 0 and head < n - 1 and head < len(cached):
        old, new = list(cached[head:]), list(tokens[head : n - 1])
        matcher = SequenceMatcher(None, old, new, autojunk=False)
        for a, b, size in matcher.get_matching_blocks():
            if size >= min_chunk:
                chunks.append(Chunk(head + a, head + b, size))
    gaps: list[tuple[int, int]] = []
    pos = head
    for c in chunks:
        if c.dst > pos:
            gaps.append((pos, c.dst))
        pos = c.dst + c.size
    gaps.append((pos, n))  # always at least the last token
    return ReusePlan(head, tuple(chunks), tuple(gaps))
