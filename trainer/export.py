"""Stage 5: merge the adapter, write an f16 GGUF, quantize it, and prove it is the same model.

The merged PyTorch model is the reference. Its top-1 next-token predictions on held-out
sequences (validation examples, teacher-forced) are compared with llama.cpp's on the f16 GGUF
(must agree on at least ``min_agreement`` of positions, or the export fails: a converter bug
is worse than no model) and on each quantized file (reported: quantization is expected to
cost a little). Everything lands in ``export_report.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from server.errors import PlancodeError
from trainer.config import ExportConfig
from trainer.gguf_export import quantize, write_gguf


def merge(model: torch.nn.Module, adapter_dir: Path) -> torch.nn.Module:
    """The base ``model`` with the LoRA adapter folded into its weights (a plain model)."""
    from peft import PeftModel

    if not (adapter_dir / "adapter_config.json").is_file():
        raise PlancodeError(f"no LoRA adapter in {adapter_dir}",
                            "run the train stage first (plancode train or plancode distill)")
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    return merged.eval()


def _torch_top1(model: torch.nn.Module, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        logits = model(torch.tensor([ids]), use_cache=False).logits[0]
    return logits.float().argmax(-1).numpy()


def agreement(model: torch.nn.Module, gguf: Path, sequences: list[list[int]],
              reference: list[np.ndarray] | None = None, lora: Path | None = None) -> dict:
    """Fraction of positions where llama.cpp on ``gguf`` (with the LoRA adapter ``lora``
    applied, when given) and ``model`` pick the same token."""
    from llama_cpp import Llama

    n_ctx = max(len(s) for s in sequences) + 8
    llm = Llama(model_path=str(gguf), n_ctx=n_ctx, logits_all=True, verbose=False,
                n_threads=max(1, os.cpu_count() or 1), lora_path=str(lora) if lora else None)
    same = total = 0
    try:
        for i, ids in enumerate(sequences):
            want = reference[i] if reference is not None else _torch_top1(model, ids)
            llm.reset()
            llm.eval(ids)
            got = np.asarray(llm.scores[: len(ids)]).argmax(-1)
            same += int((got == want).sum())
            total += len(ids)
    finally:
        llm.close()
    return {"positions": total, "agreement": round(same / total, 5) if total else 0.0}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class ExportResult:
    files: dict[str, dict] = field(default_factory=dict)  # kind -> {path, bytes, agreement}
    report_path: Path | None = None

    def path(self, kind: str) -> Path:
        return Path(self.files[kind]["path"])


def export(model: torch.nn.Module, tokenizer, sequences: list[list[int]], out_dir: Path,
           cfg: ExportConfig, source_gguf: Path | None = None, extra: dict | None = None,
           ) -> ExportResult:
    """Write, quantize and validate; raises PlancodeError when the f16 file disagrees."""
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    seqs = [s[: cfg.max_positions] for s in sequences[: cfg.agreement_sequences] if s]
    if not seqs:
        raise PlancodeError("no held-out sequences to validate the export on",
                            "keep a validation split (data.val_fraction > 0)")
    reference = [_torch_top1(model, s) for s in seqs]
    result = ExportResult()
    f16 = write_gguf(model, tokenizer, out_dir / f"{cfg.name}-f16.gguf", source_gguf, cfg.name)
    files = [("F16", f16)] + [
        (kind, quantize(f16, out_dir / f"{cfg.name}-{kind.lower()}.gguf", kind))
        for kind in cfg.quantize]
    for kind, path in files:
        agree = agreement(model, path, seqs, reference)
        result.files[kind] = {"path": str(path), "bytes": path.stat().st_size,
                              "sha256": _sha256(path), **agree}
    report = {
        "source_gguf": str(source_gguf) if source_gguf else None,
        "min_agreement": cfg.min_agreement,
        "sequences": len(seqs),
        "files": result.files,
        "seconds": round(time.perf_counter() - start, 2),
        **(extra or {}),
    }
    result.report_path = out_dir / "export_report.json"
    result.report_path.write_text(json.dumps(report, indent=1))
    if result.files["F16"]["agreement"] < cfg.min_agreement:
        raise PlancodeError(
            f"the f16 GGUF agrees with the PyTorch model on only "
            f"{result.files['F16']['agreement']:.2%} of next tokens "
            f"(need {cfg.min_agreement:.0%}); see {result.report_path}",
            "this is a conversion bug: report it with the export report attached")
    return result
