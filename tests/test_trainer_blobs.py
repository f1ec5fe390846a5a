"""Finished distillation runs keep their data once, by content (``plancode.trainer.blobs``):
the checkout stays small and a run still finds every cache it reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from plancode.errors import PlancodeError
from plancode.trainer import blobs
from plancode.trainer.jsonl_cache import JsonlCache


def test_a_packed_run_restores_its_caches_byte_for_byte(tmp_path: Path):
    """A finished run keeps its JSONL caches once, by content, in the shared blob store; two
    runs with the same cache share one blob, and readers get the exact bytes back."""
    rows = "".join(f'{{"key": "k{i}", "plan": "step {i}"}}\n' for i in range(50))
    for run in ("a", "b"):
        (tmp_path / run / "plans").mkdir(parents=True)
        (tmp_path / run / "plans" / "plans.jsonl").write_text(rows)
        (tmp_path / run / "train" / "portable").mkdir(parents=True)
        (tmp_path / run / "train" / "portable" / "trainable_9.safetensors").write_bytes(b"x" * 99)
    first = blobs.pack(tmp_path / "a", drop_checkpoints=True)
    second = blobs.pack(tmp_path / "b")
    assert (first.new_blobs, second.new_blobs) == (1, 0)
    assert not (tmp_path / "a" / "train" / "portable" / "trainable_9.safetensors").exists()
    assert (tmp_path / "b" / "train" / "portable" / "trainable_9.safetensors").exists()
    assert not (tmp_path / "a" / "plans" / "plans.jsonl").exists()
    assert "/plans/plans.jsonl" in (tmp_path / "a" / ".gitignore").read_text()
    cache = JsonlCache(tmp_path / "a" / "plans" / "plans.jsonl")  # restores on demand
    assert len(cache.rows) == 50
    assert (tmp_path / "a" / "plans" / "plans.jsonl").read_text() == rows
    blob = next((tmp_path / "blobs").iterdir())
    blob.write_bytes(b"not gzip")
    with pytest.raises(PlancodeError, match="does not hold plans/plans.jsonl"):
        blobs.restore(tmp_path / "b")
    assert not (tmp_path / "b" / "plans" / "plans.jsonl").exists()


def test_a_cache_packed_again_after_it_grew_keeps_one_blob_and_the_hand_written_ignores(
        tmp_path: Path):
    """A run still going (on-policy samples) is packed at each commit: the store keeps only the
    newest copy of its cache, and the lines a person wrote in the run's .gitignore survive."""
    run = tmp_path / "onpolicy"
    (run / "samples").mkdir(parents=True)
    (run / ".gitignore").write_text("# checkpoints are not committed\nonpolicy*/done.json\n")
    cache_path = run / "samples" / "samples.jsonl"
    cache = JsonlCache(cache_path)
    for i in range(20):
        cache.add({"key": f"k{i}", "text": "x" * 50})
    blobs.pack(run, globs=("samples/*.jsonl",))
    first = {p.name for p in (tmp_path / "blobs").iterdir()}
    cache = JsonlCache(cache_path)  # restored from the store, then it grows
    cache.add({"key": "k20", "text": "y"})
    blobs.pack(run, globs=("samples/*.jsonl",))
    second = {p.name for p in (tmp_path / "blobs").iterdir()}
    assert len(first) == len(second) == 1 and first != second
    assert len(JsonlCache(cache_path).rows) == 21
    ignore = (run / ".gitignore").read_text()
    assert ignore.startswith("# checkpoints are not committed\nonpolicy*/done.json\n")
    assert ignore.count(blobs.MARK) == 1 and ignore.endswith("/samples/samples.jsonl\n")
