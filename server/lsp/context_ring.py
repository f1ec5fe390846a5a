"""Context beyond the FIM window: chunks of the other files the user has open or just edited.

As llama.vim's ring buffer: a few chunks of lines from other files, gathered when a file is
opened or saved and when the user leaves a file (the lines around where they were working).
A new chunk evicts any chunk it mostly repeats (line similarity above ``EVICT_SIMILARITY``),
then the oldest beyond ``max_chunks``. The chunks are sent before the FIM prompt (Qwen2.5-
Coder's repository-level format, one ``<|file_sep|>`` per chunk), and they change only on
those events, not on keystrokes, so the KV cache keeps them: a keystroke still evaluates only
what it changed.

Definitions the cursor's code uses (Tabby's declarations) come from the same files: a name
typed near the cursor that another open file defines gets that definition's signature and
docstring as one more chunk (:func:`definitions`).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

from plancode.analysis.functions import top_level_summaries
from plancode.lsp.fim_context import FimRequest, split_lines

CHUNK_LINES = 32
MAX_CHUNKS = 4
MAX_CHARS = 1500  # per chunk: about 400 tokens
EVICT_SIMILARITY = 0.5
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Chunk:
    uri: str
    name: str  # the file's name as the model sees it
    text: str


def similarity(a: str, b: str) -> float:
    """How much two chunks repeat each other: 2 * shared lines / all lines (llama.vim)."""
    la = [ln for ln in a.splitlines() if ln.strip()]
    lb = [ln for ln in b.splitlines() if ln.strip()]
    if not la or not lb:
        return 0.0
    common = len(set(la) & set(lb))
    return 2 * common / (len(la) + len(lb))


def display_name(uri: str) -> str:
    path = unquote(urlparse(uri).path) or uri
    parts = PurePosixPath(path).parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else path


def chunk_around(text: str, line: int, size: int = CHUNK_LINES) -> str:
    """``size`` lines of ``text`` centred on ``line``, at most ``MAX_CHARS`` characters."""
    lines = split_lines(text)
    start = max(0, min(line - size // 2, len(lines) - size))
    body = "\n".join(lines[start : start + size]).strip("\n")
    return body[:MAX_CHARS]


class ContextRing:
    """The ring of other files' chunks (thread-safe)."""

    def __init__(self, max_chunks: int = MAX_CHUNKS) -> None:
        self.max_chunks = max_chunks
        self._chunks: list[Chunk] = []
        self._defs: dict[str, dict[str, str]] = {}  # uri -> name -> definition summary
        self._lock = threading.Lock()
        self.added = 0
        self.evicted = 0

    def add(self, uri: str, text: str, line: int = 0) -> None:
        """The chunk of ``text`` around ``line`` (a file opened, saved, or left)."""
        body = chunk_around(text, line)
        if not body.strip():
            return
        new = Chunk(uri, display_name(uri), body)
        with self._lock:
            kept = [c for c in self._chunks if similarity(c.text, body) <= EVICT_SIMILARITY]
            self.evicted += len(self._chunks) - len(kept)
            kept.append(new)
            while len(kept) > self.max_chunks:
                kept.pop(0)
                self.evicted += 1
            self._chunks = kept
            self.added += 1

    def index_definitions(self, uri: str, text: str) -> None:
        """Remember the top-level definitions of ``uri`` (signature + docstring)."""
        found = definitions(text)
        with self._lock:
            self._defs[uri] = found

    def drop(self, uri: str) -> None:
        """A closed file's definitions go (its chunks stay: recently edited code)."""
        with self._lock:
            self._defs.pop(uri, None)

    def extra(self, uri: str, req: FimRequest) -> tuple[tuple[str, str], ...]:
        """(name, text) snippets for a request in ``uri``: other files' chunks, oldest first
        (so a new chunk only appends), then the definitions the cursor's code names."""
        used = set(NAME.findall(req.prefix[-600:] + req.suffix[:200]))
        with self._lock:
            out = [(c.name, c.text) for c in self._chunks if c.uri != uri]
            shown = {text for _, text in out}
            for other, defs in self._defs.items():
                if other == uri:
                    continue
                picked = [defs[n] for n in sorted(used & defs.keys())]
                # a definition already in a chunk (its def line is there) is not repeated
                picked = [d for d in picked
                          if not any(d.splitlines()[0] in s for s in shown)]
                if picked:
                    out.append((display_name(other), "\n\n".join(picked)[:MAX_CHARS]))
        return tuple(out)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"chunks": len(self._chunks), "added": self.added,
                    "evicted": self.evicted, "indexed_files": len(self._defs)}


def definitions(text: str) -> dict[str, str]:
    """Top-level functions and classes of Python ``text``: name -> ``def``/``class`` line(s)
    and the docstring's first line, the body elided (what a caller needs to know)."""
    return top_level_summaries(text)
