"""Token healing: let the model re-choose the last token of text it must continue.

Ghost text continues the cursor line, and the cursor often sits inside a word: ``if p`` with
``pos`` meant. Tokenized alone, that line ends in the token `` p``, a split the model never
saw in training (there ``pos`` is one token), so it continues as if the word were complete:
measured on the typing replay, ``    if p`` got ``.is_end_of_line:`` and ``raise J`` got
``RpcInvalidParams(...)``. Healing backs the prompt up by that last token and constrains the
first generated tokens to spell it again (any token that starts with it, or a shorter token
that is a prefix of it, then the rest), so the model picks `` pos`` itself; the healed
bytes are not part of the answer. When the word began in an earlier token (``.ch`` + ``a``),
the tokens back to the word's start are healed together (:func:`tokens_to_heal`). The same
fix as Microsoft guidance's token healing and llama.cpp's ``--token-healing`` proposal.

:class:`PieceIndex` answers "which tokens fit these bytes" from a sorted list of every
token's bytes (built once per model, about 0.4 s for a 152k vocabulary); :func:`heal_step`
advances the healing by one chosen token. Both are pure, so they are tested without a model.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence

import numpy as np

MAX_HEALED = 4  # tokens backed off at most
_WORD_TAIL = re.compile(rb"[A-Za-z0-9_]*$")


def tokens_to_heal(tail: Sequence[bytes]) -> int:
    """How many of the prompt's last tokens (their bytes, in order) to back off: the last one,
    and more while the word the cursor is in began before them (``.ch`` + ``a`` for ``.cha``:
    healing only ``a`` leaves the split ``.ch|a`` the model never saw); none when the line is
    only indentation so far."""
    if not tail or not tail[-1].strip():
        return 0  # only indentation so far: no word to finish (and, measured, healing it
        # let the model wander after an Enter: an empty suggestion after 1.9 s)
    text = b"".join(tail)
    word = len(_WORD_TAIL.search(text).group())  # type: ignore[union-attr]
    k, healed = 1, len(tail[-1])
    while k < min(len(tail), MAX_HEALED) and healed < word:
        k += 1
        healed += len(tail[-k])
    return k


class PieceIndex:
    """Every token's bytes, searchable by prefix."""

    def __init__(self, pieces: Sequence[bytes]) -> None:
        self.pieces = list(pieces)
        pairs = sorted((p, i) for i, p in enumerate(self.pieces) if p)
        self._keys = [p for p, _ in pairs]
        self._ids = np.array([i for _, i in pairs], dtype=np.int64)
        self._exact: dict[bytes, int] = {}
        for p, i in pairs:
            self._exact.setdefault(p, i)

    def allowed(self, rest: bytes) -> np.ndarray:
        """Ids of the tokens that may come next while ``rest`` is still to be spelled: those
        whose bytes start with all of ``rest``, and those that are a shorter prefix of it."""
        lo = bisect_left(self._keys, rest)
        hi = lo
        if rest and rest[-1] < 255:
            hi = bisect_left(self._keys, rest[:-1] + bytes([rest[-1] + 1]), lo)
        else:  # pragma: no cover - a trailing 0xff byte: walk the range
            while hi < len(self._keys) and self._keys[hi].startswith(rest):
                hi += 1
        shorter = [self._exact[rest[:j]] for j in range(1, len(rest)) if rest[:j] in self._exact]
        return np.concatenate([self._ids[lo:hi], np.array(shorter, dtype=np.int64)])


def heal_step(rest: bytes, piece: bytes) -> tuple[bytes, bytes]:
    """After choosing a token with bytes ``piece`` while ``rest`` was still to be spelled:
    (what is still to be spelled, the bytes that go into the answer)."""
    if piece.startswith(rest):
        return b"", piece[len(rest):]
    return rest[len(piece):], b""


def mask(logits: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """``logits`` with every token outside ``allowed`` ruled out."""
    out = np.full_like(logits, -np.inf)
    out[allowed] = logits[allowed]
    return out
