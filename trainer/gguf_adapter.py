"""The student as a GGUF LoRA adapter, and a merge of such an adapter into a GGUF — no torch.

``export_adapter`` turns the adapter the train stage saves (peft's ``adapter_config.json`` +
``adapter_model.safetensors``) into llama.cpp's LoRA adapter GGUF, as llama.cpp's
``convert_lora_to_gguf.py`` does: ``general.type = adapter``, ``adapter.type = lora``,
``adapter.lora.alpha``, and per adapted weight ``<gguf name>.lora_a`` (r x in) and
``.lora_b`` (out x r). llama.cpp applies ``alpha / r * B @ A`` over the base weights at run
time, so the *untouched* Q4_K_M base serves the student (``Llama(..., lora_path=...)``, or
the ``plancode-student-0.5b`` catalog model). The architecture and layer count come from the
base GGUF's own metadata; safetensors are read as numpy, so neither torch nor transformers
is needed.

``merge_adapter`` folds an adapter GGUF into its base GGUF: every base tensor is dequantized
with gguf-py, ``alpha / r * B @ A`` is added where the adapter has a pair, and the result is
written as F16 (matrices) / F32 (vectors) with the base's metadata; llama.cpp's quantizer
(``plancode.trainer.gguf_export.quantize``) then makes a Q4_K_M of it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from plancode.errors import PlancodeError

PEFT_PREFIX = "base_model.model."
_ADAPTER_KEYS = ("general.type", "adapter.type", "adapter.lora.alpha")


def _field(reader: gguf.GGUFReader, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return None
    return field.contents()


def base_layout(base_gguf: Path) -> tuple[str, int, int, int]:
    """(architecture, block count, heads, kv heads) from a GGUF's metadata."""
    try:
        reader = gguf.GGUFReader(base_gguf)
    except (OSError, ValueError) as exc:
        raise PlancodeError(f"cannot read {base_gguf} as GGUF: {exc}",
                            "give the base model's .gguf file") from exc
    arch = _field(reader, "general.architecture")
    blocks = _field(reader, f"{arch}.block_count")
    heads = _field(reader, f"{arch}.attention.head_count") or 0
    kv = _field(reader, f"{arch}.attention.head_count_kv") or heads
    if not arch or blocks is None:
        raise PlancodeError(f"{base_gguf} has no architecture/block count metadata",
                            "give the base model's .gguf file")
    return str(arch), int(blocks), int(heads), int(kv)


def _arch_enum(arch: str) -> gguf.MODEL_ARCH:
    for enum, name in gguf.MODEL_ARCH_NAMES.items():
        if name == arch:
            return enum
    raise PlancodeError(f"unknown GGUF architecture {arch!r}", "use a qwen2 or llama base")


def _permute_rows(rows: np.ndarray, n_head: int) -> np.ndarray:
    """llama's q/k rotary layout (see plancode.trainer.gguf_export._permute), on the output rows."""
    return (rows.reshape(n_head, 2, rows.shape[0] // n_head // 2, *rows.shape[1:])
            .swapaxes(1, 2).reshape(rows.shape))


def read_peft_adapter(adapter_dir: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(adapter_config.json, tensors as float32 numpy) of a peft LoRA adapter folder."""
    from safetensors.numpy import load_file

    config_path = adapter_dir / "adapter_config.json"
    weights = adapter_dir / "adapter_model.safetensors"
    if not config_path.is_file() or not weights.is_file():
        raise PlancodeError(f"{adapter_dir} is not a peft LoRA adapter (adapter_config.json and "
                            "adapter_model.safetensors expected)",
                            "run the train stage first; it saves the adapter there")
    config = json.loads(config_path.read_text())
    if config.get("peft_type", "LORA") != "LORA":
        raise PlancodeError(f"{adapter_dir} holds a {config.get('peft_type')} adapter",
                            "only LoRA adapters export to GGUF")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise PlancodeError("per-module LoRA ranks/alphas cannot be written as one GGUF alpha",
                            "train with one lora_r and lora_alpha for every module")
    try:
        tensors = load_file(str(weights))
    except (TypeError, ValueError) as exc:  # numpy has no bfloat16
        raise PlancodeError(f"cannot read {weights} as numpy ({exc})",
                            "save the adapter in float32 (the trainer does)") from exc
    return config, {k: v.astype(np.float32) for k, v in tensors.items()}


def export_adapter(adapter_dir: Path, base_gguf: Path, out: Path,
                   dtype: str = "f16") -> Path:
    """Write the peft adapter in ``adapter_dir`` as a llama.cpp LoRA GGUF for ``base_gguf``."""
    config, tensors = read_peft_adapter(Path(adapter_dir))
    arch, blocks, heads, kv_heads = base_layout(Path(base_gguf))
    enum = _arch_enum(arch)
    tmap = gguf.get_tensor_name_map(enum, blocks)
    r = int(config["r"])
    alpha = float(config["lora_alpha"])
    if config.get("use_rslora"):
        alpha = alpha * math.sqrt(r)  # rsLoRA scales by alpha/sqrt(r); llama.cpp by alpha/r
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        name = key.removeprefix(PEFT_PREFIX)
        for part, tag in ((".lora_A.weight", "a"), (".lora_B.weight", "b")):
            if name.endswith(part):
                pairs.setdefault(name[: -len(part)], {})[tag] = value
                break
        else:
            raise PlancodeError(f"unexpected tensor {key!r} in the adapter",
                                "export adapters of LoRA-adapted linear layers only "
                                "(no modules_to_save, no embeddings)")
    writer = gguf.GGUFWriter(path=None, arch=arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    np_dtype = np.float16 if dtype == "f16" else np.float32
    for module, pair in sorted(pairs.items()):
        if set(pair) != {"a", "b"}:
            raise PlancodeError(f"{module} has only half a LoRA pair", "re-save the adapter")
        gguf_name = tmap.get_name(module + ".weight", try_suffixes=(".weight",))
        if gguf_name is None:
            raise PlancodeError(f"no GGUF name for the adapted module {module!r}",
                                "adapt the attention/MLP projections only")
        a, b = pair["a"], pair["b"]
        if enum == gguf.MODEL_ARCH.LLAMA and module.endswith("q_proj"):
            b = _permute_rows(b, heads)
        elif enum == gguf.MODEL_ARCH.LLAMA and module.endswith("k_proj"):
            b = _permute_rows(b, kv_heads)
        writer.add_tensor(gguf_name + ".lora_a", np.ascontiguousarray(a.astype(np_dtype)))
        writer.add_tensor(gguf_name + ".lora_b", np.ascontiguousarray(b.astype(np_dtype)))
    return write_file(writer, Path(out))


def write_file(writer: gguf.GGUFWriter, out: Path) -> Path:
    """Write a filled GGUFWriter to ``out`` through ``<out>.partial``, renamed only once it is
    complete (removed on failure): no half-written GGUF ever carries the final name. Shared
    with plancode.trainer.gguf_export; lives here because this module must not import torch."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    tmp.unlink(missing_ok=True)
    try:
        try:
            writer.write_header_to_file(path=tmp)
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
        finally:
            writer.close()
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def read_adapter(adapter_gguf: Path) -> tuple[float, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """(alpha, {base tensor name: (A, B)}) of a LoRA adapter GGUF."""
    reader = gguf.GGUFReader(adapter_gguf)
    if _field(reader, "general.type") != "adapter" or _field(reader, "adapter.type") != "lora":
        raise PlancodeError(f"{adapter_gguf} is not a GGUF LoRA adapter",
                            "give a file written by export_adapter / convert_lora_to_gguf")
    alpha = float(_field(reader, "adapter.lora.alpha") or 0.0)
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for t in reader.tensors:
        base, tag = t.name.rsplit(".lora_", 1)
        data = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        pairs.setdefault(base, {})[tag] = data.reshape(tuple(reversed(
            [int(n) for n in t.shape])))
    return alpha, {k: (v["a"], v["b"]) for k, v in pairs.items()}


def _copy_metadata(reader: gguf.GGUFReader, writer: gguf.GGUFWriter) -> None:
    from plancode.trainer.gguf_vocab import _field_value

    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
            continue
        if len(field.types) > 2:
            continue
        writer.add_key_value(key, _field_value(field), field.types[0],
                             sub_type=field.types[1] if len(field.types) == 2 else None)


def merged_tensors(reader: gguf.GGUFReader, alpha: float,
                   pairs: dict[str, tuple[np.ndarray, np.ndarray]],
                   ) -> Iterator[tuple[str, np.ndarray]]:
    """Every base tensor dequantized, with ``alpha / r * B @ A`` added where adapted."""
    used = set()
    for t in reader.tensors:
        shape = tuple(reversed([int(n) for n in t.shape]))
        data = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)
        if t.name in pairs:
            a, b = pairs[t.name]
            scale = alpha / a.shape[0] if alpha else 1.0
            data = data + scale * (b @ a)
            used.add(t.name)
        yield t.name, data.astype(np.float16 if data.ndim >= 2 else np.float32)
    missing = sorted(set(pairs) - used)
    if missing:
        raise PlancodeError(f"the adapter adapts tensors the base lacks: {missing[:3]}",
                            "merge the adapter into the base model it was trained on")


def merge_adapter(base_gguf: Path, adapter_gguf: Path, out: Path) -> Path:
    """Write ``base_gguf`` with ``adapter_gguf`` folded in, as an F16 GGUF at ``out``."""
    reader = gguf.GGUFReader(base_gguf)
    arch = _field(reader, "general.architecture")
    alpha, pairs = read_adapter(Path(adapter_gguf))
    adapter_arch = _field(gguf.GGUFReader(adapter_gguf), "general.architecture")
    if adapter_arch != arch:
        raise PlancodeError(f"the adapter is for {adapter_arch}, the base is {arch}",
                            "merge the adapter into the base model it was trained on")
    writer = gguf.GGUFWriter(path=None, arch=str(arch))
    _copy_metadata(reader, writer)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    for name, data in merged_tensors(reader, alpha, pairs):
        writer.add_tensor(name, data)
    return write_file(writer, Path(out))
