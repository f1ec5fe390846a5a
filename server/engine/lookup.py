"""Prompt-lookup drafting: guess the next tokens by copying what followed the same n-gram before.

Greedy decoding on a CPU is memory-bound: one ``llama_decode`` of a single token streams all
the weights through the cores, and a batch of a few tokens costs little more. When the reply
copies text it has seen -- a repair prompt shows the failed code, and the corrected function
repeats most of it; a function repeats its own names -- the tokens that followed the last few
tokens' earlier occurrence are a cheap, often right guess of what comes next. The engine
evaluates the guess in the same batch as the token before it and keeps the longest prefix the
model itself would have picked (:meth:`plancode.engine.llama_engine.LlamaEngine._decode`), so
the output is the greedy output; only the number of ``llama_decode`` calls changes.

The drafter here only proposes. It keeps, for every n-gram length from ``max_n`` down to
``min_n``, where each n-gram of the history last occurred (with at least one token after it),
so a proposal is a few dictionary look-ups, whatever the prompt's length. The longest n-gram
that ends the history and occurred before wins (longer contexts copy more reliably); within
one length the most recent occurrence wins (the code being rewritten is usually the last
copy of it). This is the scheme of llama.cpp's ``examples/lookup`` and of
``llama_cpp.llama_speculative.LlamaPromptLookupDecoding`` (which only works through the
high-level ``Llama.generate`` loop this engine does not use), with an index instead of a scan.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# Only long matches draft. On 2 CPU cores a batch of 2 tokens costs ~2.3 single-token decodes
# and one of 16 ~7 (benchmarks/lookup_ab.py), so a draft pays only inside a verbatim copy;
# replaying recorded repairs (benchmarks/lookup_sim.py) put 6..8-token matches ahead of the
# 2..3 of llama.cpp's examples/lookup, which draft often and are mostly rejected.
DEFAULT_MAX_N = 8
DEFAULT_MIN_N = 6


class NgramDrafter:
    """Proposes up to ``k`` tokens that followed the most recent earlier occurrence of the
    history's last n tokens (n from ``max_n`` down to ``min_n``)."""

    def __init__(self, tokens: Sequence[int] = (), k: int = 15, max_n: int = DEFAULT_MAX_N,
                 min_n: int = DEFAULT_MIN_N) -> None:
        if not 1 <= min_n <= max_n:
            raise ValueError(f"need 1 <= min_n <= max_n (got {min_n}, {max_n})")
        self.k = k
        self.max_n = max_n
        self.min_n = min_n
        self.history: list[int] = []
        # per n: n-gram -> the index just after its latest occurrence that has a successor
        self._seen: dict[int, dict[tuple[int, ...], int]] = {
            n: {} for n in range(min_n, max_n + 1)}
        self.extend(tokens)

    def push(self, token: int) -> None:
        """Append one token. The n-grams that end just before it now have a successor, so
        they become matchable; the n-grams ending at it wait for the next token."""
        h = self.history
        end = len(h)
        for n, seen in self._seen.items():
            if end >= n:
                seen[tuple(h[end - n:end])] = end
        h.append(token)

    def extend(self, tokens: Iterable[int]) -> None:
        for token in tokens:
            self.push(token)

    def propose(self, limit: int | None = None) -> list[int]:
        """Up to ``min(k, limit)`` tokens that followed the longest matching n-gram's latest
        earlier occurrence; empty when nothing matches."""
        k = self.k if limit is None else min(self.k, limit)
        h = self.history
        if k <= 0:
            return []
        for n in range(self.max_n, self.min_n - 1, -1):
            if len(h) < n:
                continue
            at = self._seen[n].get(tuple(h[-n:]))
            if at is not None:
                return h[at:at + k]
        return []
