"""The checkout stays small: plancode must be usable on itself (its sandbox copies the
workspace) and fit onto a GPU machine for a training check (64 MiB per call). Finished
distillation runs keep reports and result rows; their data lives once in distill/blobs/ and
their checkpoints leave the tree (``python -m plancode.trainer.blobs pack RUN``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from plancode.testing.copying import MAX_COPY_MB, workspace_size

REPO = Path(__file__).resolve().parent.parent
LIMIT_MB = 40


def _tracked() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    return [REPO / p for p in out.stdout.decode().split("\0") if p]


def test_tracked_tree_is_under_40_mb():
    sizes = sorted(((p.stat().st_size, p) for p in _tracked() if p.is_file()), reverse=True)
    total = sum(s for s, _ in sizes)
    biggest = ", ".join(f"{p.relative_to(REPO)} {s / 1e6:.1f} MB" for s, p in sizes[:5])
    assert total < LIMIT_MB * 1e6, f"tracked tree {total / 1e6:.1f} MB; biggest: {biggest}"


def test_no_checkpoint_is_tracked():
    bad = [p.relative_to(REPO).as_posix() for p in _tracked()
           if p.suffix in {".safetensors", ".bin", ".pt"} or
           (p.suffix == ".gguf" and "server/models/adapters" not in p.as_posix())]
    assert not bad, f"checkpoints belong outside the tree (pack the run): {bad}"


def test_plancode_can_test_its_own_checkout():
    assert workspace_size(REPO) < MAX_COPY_MB * 1e6
