"""Regenerated sections of docs/results.md: a benchmark rewrites its own subsection from its
rows and leaves the rest of the file (the prose written around it) alone."""

from __future__ import annotations

import re
from pathlib import Path


def write_section(path: Path, title: str, block: str, parent: str) -> None:
    """Put ``block`` (starting with ``title``, a ``###`` heading) in ``path``: in place of the
    subsection of that title if there is one, else last in the ``parent`` (``##``) section
    (after the prose written there), else at the end under a new ``parent`` heading."""
    block = block.rstrip() + "\n"
    text = path.read_text() if path.exists() else "# Results\n"
    if f"\n{title}\n" in f"\n{text}":
        head, _, rest = text.partition(title)
        nxt = re.search(r"^#{2,3} ", rest, re.MULTILINE)
        text = head + block + ("\n" + rest[nxt.start():] if nxt else "")
    elif f"\n{parent}\n" in f"\n{text}":
        head, _, rest = text.partition(f"{parent}\n")
        nxt = re.search(r"^## ", rest, re.MULTILINE)  # the section after the parent
        end = nxt.start() if nxt else len(rest)
        text = (head + parent + "\n" + rest[:end].rstrip() + "\n\n" + block
                + ("\n" + rest[end:] if nxt else ""))
    else:
        text = text.rstrip() + f"\n\n{parent}\n\n{block}"
    path.write_text(text)
