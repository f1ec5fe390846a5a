"""Reading benchmark rows files (JSON lines, one row per (problem, mode) with its ``key``)."""

from __future__ import annotations

import json
from pathlib import Path

from plancode.trainer import blobs


def read_rows(files: list[Path]) -> list[dict]:
    """The rows of ``files``, one per key: a later file's row replaces an earlier one's, so a
    rerun of some problems (``ttfv-v5``) is read over the run it amends (``ttfv-v4``). A
    finished run's rows packed into the blob store (``plancode.trainer.blobs``) come back
    first."""
    rows: dict[str, dict] = {}
    for f in map(Path, files):
        blobs.ensure(f)
        for line in f.read_text().splitlines():
            if line:
                row = json.loads(line)
                rows[row["key"]] = row
    return list(rows.values())
