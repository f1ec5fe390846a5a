"""Serving the student: a LoRA adapter applied by llama.cpp vs a merged, re-quantized GGUF.

    python -m benchmarks.adapter_speed [--adapter FILE.lora.gguf] [--runs 5]

Without ``--adapter`` a random adapter of the real run's shape (r = 16 on all seven
projections of every layer of Qwen2.5-Coder-0.5B) is written first: decode speed depends on the
adapter's shape, not its values, so the timing holds for the trained one. The adapter is then
merged without torch (gguf-py dequantize + B @ A, F16, llama.cpp's Q4_K_M quantizer), and three
models are timed in one process, interleaved run by run (median): the base Q4_K_M alone, the
base + adapter, and the merged Q4_K_M. It also reports the merged file's top-1 agreement with
base + adapter on teacher-forced text (what re-quantizing costs). The machine is shared: only
ratios measured side by side in one run mean anything.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from plancode.models.store import ModelStore
from plancode.trainer.gguf_adapter import base_layout, export_adapter, merge_adapter
from plancode.trainer.gguf_export import quantize

PROMPT = "Count from 1 to 400, separated by commas: 1, 2, 3,"
TEXT = (Path(__file__).resolve().parent.parent / "server" / "models" / "store.py").read_text()


def random_adapter(base: Path, folder: Path, r: int = 16, alpha: int = 32) -> Path:
    """A peft-format adapter of the real run's shape for ``base`` (random values)."""
    import gguf
    from safetensors.numpy import save_file

    reader = gguf.GGUFReader(base)
    arch, blocks, heads, kv_heads = base_layout(base)
    hidden = int(reader.fields[f"{arch}.embedding_length"].contents())
    ffn = int(reader.fields[f"{arch}.feed_forward_length"].contents())
    kv = hidden // heads * kv_heads
    shapes = {"self_attn.q_proj": (hidden, hidden), "self_attn.k_proj": (hidden, kv),
              "self_attn.v_proj": (hidden, kv), "self_attn.o_proj": (hidden, hidden),
              "mlp.gate_proj": (hidden, ffn), "mlp.up_proj": (hidden, ffn),
              "mlp.down_proj": (ffn, hidden)}
    rng = np.random.default_rng(0)
    tensors = {}
    for i in range(blocks):
        for module, (d_in, d_out) in shapes.items():
            key = f"base_model.model.model.layers.{i}.{module}"
            tensors[f"{key}.lora_A.weight"] = rng.normal(0, 0.01, (r, d_in)).astype(np.float32)
            tensors[f"{key}.lora_B.weight"] = rng.normal(0, 0.01, (d_out, r)).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": r, "lora_alpha": alpha}))
    return folder


def decode_tps(path: Path, lora: Path | None, threads: int) -> float:
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=512, n_threads=threads, verbose=False,
                lora_path=str(lora) if lora else None)
    try:
        start = time.perf_counter()
        out = llm.create_completion(PROMPT, max_tokens=96, temperature=0.0)
        seconds = time.perf_counter() - start
        return out["usage"]["completion_tokens"] / seconds
    finally:
        llm.close()


def top1(path: Path, lora: Path | None, n_tokens: int = 256) -> np.ndarray:
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=n_tokens + 16, logits_all=True, verbose=False,
                lora_path=str(lora) if lora else None)
    try:
        ids = llm.tokenize(TEXT.encode())[:n_tokens]
        llm.eval(ids)
        return np.asarray(llm.scores[: len(ids)]).argmax(-1)
    finally:
        llm.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--adapter", type=Path, help="a trained GGUF adapter (default: random)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("docs/adapter-speed.json"))
    ap.add_argument("--work", type=Path, help="keep the adapter and merged file here, and "
                    "reuse them when present (time the models again without rebuilding)")
    args = ap.parse_args()
    base = ModelStore(progress=False).fetch("qwen2.5-coder-0.5b")
    with tempfile.TemporaryDirectory(prefix="plancode-adapter-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        timings: dict[str, float] = {}
        start = time.perf_counter()
        adapter = args.adapter or work / "random.lora.gguf"
        if not adapter.is_file():
            export_adapter(random_adapter(base, work / "peft"), base, adapter)
            timings["export_adapter_s"] = time.perf_counter() - start
        merged = work / "merged-q4_k_m.gguf"
        if not merged.is_file():
            start = time.perf_counter()
            f16 = merge_adapter(base, adapter, work / "merged-f16.gguf")
            timings["merge_f16_s"] = time.perf_counter() - start
            start = time.perf_counter()
            quantize(f16, merged, "Q4_K_M", threads=args.threads)
            timings["quantize_s"] = time.perf_counter() - start
            f16.unlink()
        models = {"base": (base, None), "base+adapter": (base, adapter),
                  "merged Q4_K_M": (merged, None)}
        speeds: dict[str, list[float]] = {k: [] for k in models}
        for _ in range(args.runs):  # interleaved: load drifts hit every model alike
            for label, (path, lora) in models.items():
                speeds[label].append(decode_tps(path, lora, args.threads))
        with_adapter = top1(base, adapter)
        result = {
            "adapter": str(args.adapter) if args.adapter else "random r=16, 7 projections",
            "adapter_bytes": adapter.stat().st_size, "merged_bytes": merged.stat().st_size,
            "decode_tps_median": {k: round(statistics.median(v), 2) for k, v in speeds.items()},
            "decode_tps_runs": {k: [round(x, 2) for x in v] for k, v in speeds.items()},
            "top1_merged_vs_adapter": round(float((top1(merged, None) == with_adapter).mean()),
                                            4),
            "seconds": {k: round(v, 1) for k, v in timings.items()},
            "runs": args.runs, "threads": args.threads,
        }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
