"""Load the student: a Hugging Face id/path, or a GGUF that transformers dequantizes.

A GGUF student (a catalog name such as ``qwen2.5-coder-0.5b`` or a ``.gguf`` path) is resolved
through the server's model store, so the trainer starts from exactly the file the server
serves, and export can reuse that file's tokenizer metadata and chat template.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from plancode.errors import PlancodeError
from plancode.models.catalog import CATALOG


@dataclass
class StudentSource:
    spec: str
    hf_path: str  # what from_pretrained takes (a directory or a hub id)
    gguf_file: str | None = None  # set when the student comes from a GGUF

    @property
    def gguf_path(self) -> Path | None:
        return Path(self.hf_path) / self.gguf_file if self.gguf_file else None


def resolve_student(spec: str) -> StudentSource:
    """Where ``spec`` lives: a GGUF (catalog name, path, hf: spec) or a transformers model."""
    if spec in CATALOG or spec.endswith(".gguf") or spec.startswith("hf:"):
        from plancode.models.store import ModelStore

        path = ModelStore().resolve(spec)
        return StudentSource(spec, str(path.parent), path.name)
    if os.path.isdir(spec) and not (Path(spec) / "config.json").is_file():
        raise PlancodeError(f"{spec} has no config.json: it is not a transformers model",
                            "give a directory written by save_pretrained, a hub id, a .gguf "
                            "file or a catalog model name")
    return StudentSource(spec, spec)


def load_tokenizer(src: StudentSource):
    from transformers import AutoTokenizer

    try:
        if src.gguf_file:
            return AutoTokenizer.from_pretrained(src.hf_path, gguf_file=src.gguf_file)
        return AutoTokenizer.from_pretrained(src.hf_path)
    except OSError as exc:
        raise PlancodeError(f"cannot load the student's tokenizer from {src.spec!r}: {exc}",
                            "check the student path (or network access for a hub id)") from exc


def load_model(src: StudentSource, dtype=None):
    """The student as a trainable transformers causal LM (fp32 unless ``dtype`` says)."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": dtype or torch.float32}
    if src.gguf_file:
        kwargs["gguf_file"] = src.gguf_file
    try:
        return AutoModelForCausalLM.from_pretrained(src.hf_path, **kwargs)
    except OSError as exc:
        raise PlancodeError(f"cannot load the student model {src.spec!r}: {exc}",
                            "check the student path (or network access for a hub id)") from exc
