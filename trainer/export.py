"""Stage 5: merge the adapter, write an f16 GGUF, quantize it, and prove it is the same model.

The merged PyTorch model is the reference. Its top-1 next-token predictions on held-out
sequences (validation examples, teacher-forced) are compared with llama.cpp's on the f16 GGUF
(must agree on at least ``min_agreement`` of positions, near-ties counted as agreeing, or the
export fails: a converter bug is worse than no model) and on each quantized file (reported:
quantization is expected to cost a little). Everything lands in ``export_report.json``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from plancode.errors import PlancodeError
from plancode.models.assemble import sha256_file
from plancode.trainer.config import ExportConfig
from plancode.trainer.gguf_export import quantize, write_gguf


def merge(model: torch.nn.Module, adapter_dir: Path) -> torch.nn.Module:
    """The base ``model`` with the LoRA adapter folded into its weights (a plain model)."""
    from peft import PeftModel

    if not (adapter_dir / "adapter_config.json").is_file():
        raise PlancodeError(f"no LoRA adapter in {adapter_dir}",
                            "run the train stage first (plancode train or plancode distill)")
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    return merged.eval()


# Top-1 flips between two faithful copies of a model happen only where its two best logits
# are nearly tied: float16 storage moves a tiny student's logits by up to ~0.02 against torch's
# float32 (measured on the distill test's student: its one flip in 1,200 positions had a gap of
# 0.004). A converter bug (a wrong tensor layout) moves them by far more and flips clear
# winners, so positions within this margin count as agreeing when the export is judged.
TIE_MARGIN = 0.05
TOP_K = 8  # the reference keeps each position's best logits, not the whole vocabulary


@dataclass
class Reference:
    """The reference model's best ``TOP_K`` tokens and logits at each position of one
    sequence (best first)."""

    ids: np.ndarray  # (positions, TOP_K)
    logits: np.ndarray  # (positions, TOP_K)

    @property
    def top1(self) -> np.ndarray:
        return self.ids[:, 0]


def torch_reference(model: torch.nn.Module, ids: list[int]) -> Reference:
    with torch.no_grad():
        logits = model(torch.tensor([ids]), use_cache=False).logits[0].float()
    best = logits.topk(TOP_K, dim=-1)
    return Reference(best.indices.numpy(), best.values.numpy())


def _near_tie(ref: Reference, got: np.ndarray) -> np.ndarray:
    """Per position: ``got`` is the reference's top token, or one of its best within
    ``TIE_MARGIN`` of the top logit."""
    close = (ref.logits[:, :1] - ref.logits) <= TIE_MARGIN
    return ((ref.ids == got[:, None]) & close).any(-1)


def agreement(model: torch.nn.Module, gguf: Path, sequences: list[list[int]],
              reference: list[Reference] | None = None, lora: Path | None = None) -> dict:
    """How often llama.cpp on ``gguf`` (with the LoRA adapter ``lora`` applied, when given)
    and ``model`` pick the same next token: ``agreement`` (strict top-1) and
    ``agreement_ties`` (near-ties counted as agreeing, :data:`TIE_MARGIN`)."""
    from llama_cpp import Llama

    n_ctx = max(len(s) for s in sequences) + 8
    llm = Llama(model_path=str(gguf), n_ctx=n_ctx, logits_all=True, verbose=False,
                n_threads=max(1, os.cpu_count() or 1), lora_path=str(lora) if lora else None)
    same = near = total = 0
    try:
        for i, ids in enumerate(sequences):
            ref = reference[i] if reference is not None else torch_reference(model, ids)
            llm.reset()
            llm.eval(ids)
            got = np.asarray(llm.scores[: len(ids)]).argmax(-1)
            same += int((got == ref.top1).sum())
            near += int(_near_tie(ref, got).sum())
            total += len(ids)
    finally:
        llm.close()
    return {"positions": total, "agreement": round(same / total, 5) if total else 0.0,
            "agreement_ties": round(near / total, 5) if total else 0.0}


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
    reference = [torch_reference(model, s) for s in seqs]
    result = ExportResult()
    f16 = write_gguf(model, tokenizer, out_dir / f"{cfg.name}-f16.gguf", source_gguf, cfg.name)
    files = [("F16", f16)] + [
        (kind, quantize(f16, out_dir / f"{cfg.name}-{kind.lower()}.gguf", kind))
        for kind in cfg.quantize]
    for kind, path in files:
        agree = agreement(model, path, seqs, reference)
        result.files[kind] = {"path": str(path), "bytes": path.stat().st_size,
                              "sha256": sha256_file(path), **agree}
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
    if result.files["F16"]["agreement_ties"] < cfg.min_agreement:
        raise PlancodeError(
            f"the f16 GGUF agrees with the PyTorch model on only "
            f"{result.files['F16']['agreement_ties']:.2%} of next tokens, near-ties counted "
            f"(need {cfg.min_agreement:.0%}); see {result.report_path}",
            "this is a conversion bug: report it with the export report attached")
    return result
