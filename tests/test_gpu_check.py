"""benchmarks/gpu_check.py works: its CPU rehearsal here, its CUDA run where a GPU is.

The script is run as the GPU machine runs it (``python benchmarks/gpu_check.py`` from the
repository root, no PYTHONPATH) with plancode's installed distribution, tree-sitter,
llama-cpp-python and pygls hidden (``--hide``): that machine has torch, transformers, peft and
accelerate only, so the import shim and the trainer's lazy imports are what must carry it.
Without a CUDA device the CUDA test is skipped and says where to run it: a skip, not a pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("accelerate")

from benchmarks.gpu_check import CUDA_SKIP, LAST5_TOL, STEP_TOL, compare  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
HIDE = "plancode,tree_sitter,tree_sitter_python,llama_cpp,pygls,lsprotocol"


def _run(device: str, out: Path, timeout: float) -> tuple[subprocess.CompletedProcess, dict]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", device, "--out", str(out),
                           "--hide", HIDE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert out.is_file(), proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


def _check_summary(summary: dict, other: str) -> None:
    runs = summary["runs"]
    assert set(runs) == {"cpu", other}
    for kind, row in runs.items():
        assert "error" not in row, row.get("stderr_tail")
        assert row["plancode_import"] == "shim", kind  # the installed plancode was hidden
        assert row["trainer_file"] == str(ROOT / "trainer" / "train.py")
        assert row["steps"] == 20 and len(row["loss"]) == 20
        assert row["adapter"]["ok"] and row["adapter"]["max_abs_diff_reloaded"] <= 1e-4
        assert row["gguf_adapter"]["status"] in ("written", "skipped: the gguf package is "
                                                 "not installed")
    assert runs["cpu"]["mixed_precision"] == "no" and runs[other]["mixed_precision"] == "bf16"
    assert summary["comparison"]["learns"]
    assert summary["max_rel_deviation"] <= STEP_TOL
    assert summary["last5_mean_rel_deviation"] <= LAST5_TOL
    assert summary["passed"], summary["failures"]


def test_cpu_rehearsal_runs_the_trainer_without_plancode_installed(tmp_path: Path) -> None:
    """fp32 vs bf16 autocast on the CPU, both through plancode.trainer.train.train."""
    proc, summary = _run("cpu", tmp_path / "gpu.json", timeout=300)
    assert proc.returncode == 0, summary["failures"]
    _check_summary(summary, "cpu-bf16")
    assert summary["mode"].startswith("cpu rehearsal")
    assert summary["runs"]["cpu"]["gguf_adapter"]["status"] == "written"  # gguf is here
    kept = tmp_path / "gpu-adapters" / "cpu-bf16"
    assert (kept / "adapter" / "adapter_model.safetensors").is_file()
    assert (kept / "adapter.gguf").is_file()


@pytest.mark.skipif(not torch.cuda.is_available(), reason=CUDA_SKIP)
def test_cuda_bf16_matches_cpu_fp32(tmp_path: Path) -> None:
    proc, summary = _run("cuda", tmp_path / "gpu.json", timeout=900)
    assert proc.returncode == 0, summary["failures"]
    _check_summary(summary, "cuda")
    assert summary["runs"]["cuda"]["gradient_checkpointing"]


def test_compare_catches_a_moved_curve_and_a_flat_one() -> None:
    ref = [6.0 - 0.1 * i for i in range(20)]
    assert compare(ref, [x * 1.005 for x in ref])["ok"]
    moved = list(ref)
    moved[7] *= 1.08  # one step 8% off
    assert not compare(ref, moved)["ok"]
    assert not compare(ref, [x * 1.02 for x in ref])["ok"]  # the tail 2% off
    flat = [6.0] * 20
    assert not compare(flat, flat)["ok"]  # identical but not learning
    assert not compare(ref, ref[:-1])["ok"]
    assert not compare(ref, [*ref[:-1], float("nan")])["ok"]
