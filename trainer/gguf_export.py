"""Export a merged Hugging Face causal LM (Qwen2 or Llama) to GGUF, and quantize it.

``write_gguf`` does in-process what llama.cpp's ``convert_hf_to_gguf.py`` does for these two
architectures: hyperparameters from ``model.config``, tensors renamed through gguf's
``TensorNameMap`` (2-D weights as F16, norms and biases as F32), Llama's q/k rows permuted
into llama.cpp's rotary layout, a tied output head left out so llama.cpp reuses
``token_embd``, and tokenizer metadata copied from the student's source GGUF or built from the
tokenizer (``plancode.trainer.gguf_vocab``). ``quantize`` then runs llama.cpp's own quantizer
through
llama-cpp-python, so a Q8_0 or Q4_K_M file is exactly what ``llama-quantize`` would write.

Both write to ``<out>.partial`` and rename at the end: a crash never leaves a half-written
file under the final name, where the server would try to load it.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gguf

# isort: off
import plancode.engine  # noqa: F401 - sets OpenMP's wait policy before llama_cpp loads
import llama_cpp
# isort: on
import numpy as np
import torch

from plancode.errors import PlancodeError
from plancode.models.assemble import is_gguf
from plancode.trainer.gguf_adapter import write_file
from plancode.trainer.gguf_vocab import add_tokenizer_metadata, copy_tokenizer_metadata

ARCHS = {"qwen2": gguf.MODEL_ARCH.QWEN2, "llama": gguf.MODEL_ARCH.LLAMA}

QUANT_TYPES: dict[str, int] = {
    "Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
    "Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    "F16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16,
}

_SKIP_SUFFIXES = (".rotary_emb.inv_freq", ".attention.masked_bias", ".attention.bias")


def write_gguf(model: Any, tokenizer: Any, out: Path, source_gguf: Path | None = None,
               name: str = "") -> Path:
    """Write ``model`` (a plain, merged ``Qwen2ForCausalLM`` or ``LlamaForCausalLM``) as an F16
    GGUF at ``out``. Tokenizer keys are copied verbatim from ``source_gguf`` when given (the
    student came from a GGUF), otherwise built from ``tokenizer``. Returns ``out``."""
    config = model.config
    arch = _arch(model)
    out = Path(out)
    writer = gguf.GGUFWriter(path=None, arch=gguf.MODEL_ARCH_NAMES[arch])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name or _default_name(config))
    _add_hparams(writer, config, arch)
    if source_gguf is not None:
        copy_tokenizer_metadata(writer, Path(source_gguf), int(config.vocab_size))
    elif tokenizer is not None:
        add_tokenizer_metadata(writer, tokenizer, config)
    else:
        raise PlancodeError("write_gguf needs the tokenizer or the student's source GGUF",
                            "pass tokenizer=..., or source_gguf=<the GGUF it was loaded from>")
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for tensor_name, data in _tensors(model, arch):
        writer.add_tensor(tensor_name, data)
    return write_file(writer, out)


def quantize(src: Path, dst: Path, kind: str, threads: int = 0) -> Path:
    """Quantize the GGUF ``src`` to ``dst`` with llama.cpp's quantizer; ``kind`` is a key of
    QUANT_TYPES. Tensors whose rows do not fit the k-quant block size (256) get llama.cpp's
    fallback types, as with ``llama-quantize``. Returns ``dst``."""
    ftype = QUANT_TYPES.get(kind.upper())
    if ftype is None:
        raise PlancodeError(f"unknown quantization type {kind!r}",
                            f"use one of: {', '.join(QUANT_TYPES)}")
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise PlancodeError(f"cannot quantize {src}: the file does not exist",
                            "export the model first (write_gguf) or check the path")
    if not is_gguf(src):
        raise PlancodeError(f"cannot quantize {src}: it is not a GGUF file",
                            "give the F16 GGUF written by write_gguf")
    if dst.resolve() == src.resolve():
        raise PlancodeError(f"quantizing {src} onto itself", "choose a different output path")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    _backend_init()
    dst.parent.mkdir(parents=True, exist_ok=True)
    with _atomic(dst) as tmp, _quiet_llama():
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(),
                                            ctypes.byref(params))
        if rc != 0:
            raise PlancodeError(f"llama.cpp failed to quantize {src} to {kind} (code {rc})",
                                "check that the file loads in llama.cpp and that the disk "
                                "has room for the output")
    return dst


def _arch(model: Any) -> gguf.MODEL_ARCH:
    if hasattr(model, "peft_config"):
        raise PlancodeError("the model still carries LoRA adapters",
                            "call merge_and_unload() before exporting")
    model_type = getattr(model.config, "model_type", None)
    if model_type not in ARCHS:
        raise PlancodeError(f"cannot export model type {model_type!r} to GGUF",
                            f"export one of: {', '.join(ARCHS)}")
    return ARCHS[model_type]


def _default_name(config: Any) -> str:
    source = str(getattr(config, "_name_or_path", "") or "").rstrip("/")
    return Path(source).name or f"plancode-student-{config.model_type}"


def _add_hparams(w: gguf.GGUFWriter, cfg: Any, arch: gguf.MODEL_ARCH) -> None:
    """convert_hf_to_gguf's ``set_gguf_parameters`` for TextModel, LlamaModel and Qwen2Model."""
    n_head = int(cfg.num_attention_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // n_head)
    w.add_block_count(int(cfg.num_hidden_layers))
    w.add_context_length(int(cfg.max_position_embeddings))
    w.add_embedding_length(int(cfg.hidden_size))
    w.add_feed_forward_length(int(cfg.intermediate_size))
    w.add_head_count(n_head)
    w.add_head_count_kv(int(getattr(cfg, "num_key_value_heads", None) or n_head))
    rope = dict(getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {})
    w.add_rope_freq_base(float(rope.get("rope_theta") or getattr(cfg, "rope_theta", 10000.0)))
    w.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    if getattr(cfg, "head_dim", None):
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    if arch == gguf.MODEL_ARCH.LLAMA:
        w.add_vocab_size(int(cfg.vocab_size))
        w.add_rope_dimension_count(head_dim)
    _add_rope_scaling(w, rope)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)


def _add_rope_scaling(w: gguf.GGUFWriter, rope: dict[str, Any]) -> None:
    kind = rope.get("rope_type") or rope.get("type") or "default"
    if kind == "default":
        return
    if kind == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(float(rope["factor"]))
    elif kind == "yarn":
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(float(rope["factor"]))
        if orig := rope.get("original_max_position_embeddings"):
            w.add_rope_scaling_orig_ctx_len(int(orig))
    else:
        raise PlancodeError(f"rope scaling {kind!r} is not supported by the GGUF export",
                            "export a model with default, linear or yarn rope scaling")


def _permute(weights: torch.Tensor, n_head: int) -> torch.Tensor:
    """convert_hf_to_gguf's ``LlamaModel.permute``: HF stores each head's rotary halves
    split; llama.cpp's llama graph wants them interleaved. (Qwen2 needs no permutation.)"""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _tensors(model: Any, arch: gguf.MODEL_ARCH) -> Iterator[tuple[str, np.ndarray]]:
    """(GGUF name, array) for every weight: F16 for matrices, F32 for norms and biases."""
    cfg = model.config
    tmap = gguf.get_tensor_name_map(arch, int(cfg.num_hidden_layers))
    n_head = int(cfg.num_attention_heads)
    n_kv = int(getattr(cfg, "num_key_value_heads", None) or n_head)
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    for hf_name, tensor in model.state_dict().items():
        if hf_name.endswith(_SKIP_SUFFIXES) or (tied and hf_name == "lm_head.weight"):
            continue
        gguf_name = tmap.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise PlancodeError(f"no GGUF name for tensor {hf_name!r}",
                                "drop auxiliary heads and merge adapters before exporting")
        data = tensor.detach().to("cpu", torch.float32)
        if arch == gguf.MODEL_ARCH.LLAMA and hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            data = _permute(data, n_head)
        elif arch == gguf.MODEL_ARCH.LLAMA and hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            data = _permute(data, n_kv)
        array = data.numpy()
        yield gguf_name, array.astype(np.float16 if array.ndim >= 2 else np.float32)


@contextmanager
def _atomic(out: Path) -> Iterator[Path]:
    """Yield ``<out>.partial`` to write; rename it onto ``out`` only if the block succeeds."""
    tmp = out.with_name(out.name + ".partial")
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_BACKEND_READY = False


def _backend_init() -> None:
    global _BACKEND_READY
    if not _BACKEND_READY:
        llama_cpp.llama_backend_init()
        _BACKEND_READY = True


@contextmanager
def _quiet_llama() -> Iterator[None]:
    """llama-cpp-python prints llama.cpp's log through this logger; the quantizer logs every
    tensor, which is noise in a training run."""
    log = logging.getLogger("llama-cpp-python")
    level = log.level
    log.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        log.setLevel(level)
