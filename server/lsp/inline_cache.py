"""Suggestions remembered by the text around the cursor, so typing through one costs nothing.

Keys are ``(hash(prefix[-2000:]), hash(suffix[:500]))``: the text near the cursor decides the
suggestion, and moving away and back (or an editor re-asking) finds it again. Besides exact
hits there are *typed-ahead* hits, as in llama.vim: when the user types the first characters
of a suggestion they were shown, the request at the new position is answered with the rest of
that suggestion instead of a new generation. Each entry keeps the text its key was hashed from,
so a hash collision can never serve a suggestion made for other text.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from plancode.lsp.fim_context import FimRequest

PREFIX_KEY_CHARS = 2000
SUFFIX_KEY_CHARS = 500

Key = tuple[int, int]


@dataclass(frozen=True)
class _Entry:
    prefix_tail: str
    suffix_head: str
    suggestion: str
    origin: str = "model"  # "model" (asked for) or "prefetch" (made before it was asked for)


def _tails(prefix: str, suffix: str) -> tuple[str, str]:
    return prefix[-PREFIX_KEY_CHARS:], suffix[:SUFFIX_KEY_CHARS]


class SuggestionCache:
    """An LRU of suggestions (thread-safe) with exact and typed-ahead lookups."""

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self.hits = 0
        self.typed_ahead_hits = 0
        self.prefetch_hits = 0
        self.misses = 0
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._suffixes: dict[int, int] = {}  # suffix hash -> entries with it (skips probing)
        self._longest = 0  # the longest suggestion stored: how far back typed-ahead looks
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, req: FimRequest) -> str | None:
        """The suggestion for this position, or the untyped rest of one made just before it.

        A typed-ahead hit needs an entry for the same suffix at ``prefix[:-n]`` whose
        suggestion starts with exactly the ``n`` characters typed since (``prefix[-n:]``) and
        goes on beyond them; the nearest such position wins.
        """
        prefix_tail, suffix_head = _tails(req.prefix, req.suffix)
        suffix_hash = hash(suffix_head)
        with self._lock:
            entry = self._lookup((hash(prefix_tail), suffix_hash), prefix_tail, suffix_head)
            if entry is not None:
                self.hits += 1
                self.prefetch_hits += entry.origin == "prefetch"
                return entry.suggestion
            if self._suffixes.get(suffix_hash):
                size = len(req.prefix)
                for n in range(1, min(self._longest, size) + 1):
                    earlier = req.prefix[max(0, size - n - PREFIX_KEY_CHARS) : size - n]
                    entry = self._lookup((hash(earlier), suffix_hash), earlier, suffix_head)
                    typed = req.prefix[-n:]
                    if (entry is not None and len(entry.suggestion) > n
                            and entry.suggestion.startswith(typed)):
                        self.hits += 1
                        self.typed_ahead_hits += 1
                        self.prefetch_hits += entry.origin == "prefetch"
                        return entry.suggestion[n:]
            self.misses += 1
            return None

    def contains(self, req: FimRequest) -> bool:
        """Whether an exact entry exists for ``req`` (not counted as a lookup)."""
        prefix_tail, suffix_head = _tails(req.prefix, req.suffix)
        with self._lock:
            entry = self._entries.get((hash(prefix_tail), hash(suffix_head)))
            return (entry is not None and entry.prefix_tail == prefix_tail
                    and entry.suffix_head == suffix_head)

    def put(self, req: FimRequest, suggestion: str, origin: str = "model") -> None:
        """Remember ``suggestion`` for this position (evicting the least recently used)."""
        prefix_tail, suffix_head = _tails(req.prefix, req.suffix)
        key = (hash(prefix_tail), hash(suffix_head))
        with self._lock:
            if key in self._entries:
                self._forget(key)
            self._entries[key] = _Entry(prefix_tail, suffix_head, suggestion, origin)
            self._suffixes[key[1]] = self._suffixes.get(key[1], 0) + 1
            self._longest = max(self._longest, len(suggestion))
            while len(self._entries) > self.capacity:
                self._forget(next(iter(self._entries)))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._suffixes.clear()
            self._longest = 0

    def stats(self) -> dict[str, int | float]:
        """Counters for the server's status report."""
        looked_up = self.hits + self.misses
        return {
            "entries": len(self._entries),
            "capacity": self.capacity,
            "hits": self.hits,
            "typed_ahead_hits": self.typed_ahead_hits,
            "prefetch_hits": self.prefetch_hits,
            "misses": self.misses,
            "hit_rate": round(self.hits / looked_up, 3) if looked_up else 0.0,
        }

    # -- internals (called with the lock held) ---------------------------------------------
    def _lookup(self, key: Key, prefix_tail: str, suffix_head: str) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None or entry.prefix_tail != prefix_tail or entry.suffix_head != suffix_head:
            return None
        self._entries.move_to_end(key)
        return entry

    def _forget(self, key: Key) -> None:
        self._entries.pop(key)
        left = self._suffixes[key[1]] - 1
        if left:
            self._suffixes[key[1]] = left
        else:
            del self._suffixes[key[1]]
