"""Reading benchmark rows files (JSON lines, one row per (problem, mode) with its ``key``)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path


def _text(path: Path) -> str:
    """A rows file's text; a finished run's rows may be kept gzipped (``.jsonl.gz``) to keep
    the checkout small."""
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes()).decode()
    return path.read_text()


def read_rows(files: list[Path]) -> list[dict]:
    """The rows of ``files``, one per key: a later file's row replaces an earlier one's, so a
    rerun of some problems (``ttfv-v5``) is read over the run it amends (``ttfv-v4``)."""
    rows: dict[str, dict] = {}
    for f in files:
        for line in _text(Path(f)).splitlines():
            if line:
                row = json.loads(line)
                rows[row["key"]] = row
    return list(rows.values())
