"""Prompt-evaluation and decode speed of each catalog model on this machine.

    python -m benchmarks.speed [--models smollm2-135m qwen2.5-coder-0.5b ...] [--runs 5]
                               [--out docs/performance.md]

For each model: prompt tokens/s over a ~400-token code prompt evaluated from a cold cache,
decode tokens/s over 128 greedy tokens, and the same prompt re-sent after a one-line edit at
its end (KV prefix reuse), all as medians over ``--runs`` runs in one process. Writes a
markdown table (with the command and the machine) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

from benchmarks.machine import cpu_name
from plancode.engine.llama_engine import LlamaEngine
from plancode.engine.types import SamplingParams
from plancode.models.catalog import CATALOG
from plancode.models.store import ModelStore

CODE = (Path(__file__).resolve().parent.parent / "server" / "models" / "store.py").read_text()


def measure(engine: LlamaEngine, runs: int) -> dict[str, float]:
    base = engine.tokenize(CODE)[:400]
    prompt_tps, decode_tps, reuse_s, cold_s, reused, sizes = [], [], [], [], [], []
    for run in range(runs):
        # a different first token each run makes the cache cold for the whole prompt
        cold = engine.tokenize(f"# run {run} {time.time_ns()}\n") + base
        g = engine.generate(cold, SamplingParams(max_tokens=1))
        prompt_tps.append(g.prompt_tokens_per_second)
        sizes.append(g.prompt_tokens)
        cold_s.append(g.prompt_seconds)
        edited = cold + engine.tokenize("\n# one more line typed by the user\n")
        g2 = engine.generate(edited, SamplingParams(max_tokens=1))
        reuse_s.append(g2.prompt_seconds)
        reused.append(g2.reused_tokens)
        d = engine.complete("Count from 1 to 400, separated by commas: 1, 2, 3,",
                            SamplingParams(max_tokens=128))
        decode_tps.append(d.decode_tokens_per_second)
    return {
        "prompt_tps": statistics.median(prompt_tps),
        "decode_tps": statistics.median(decode_tps),
        "cold_prompt_s": statistics.median(cold_s),
        "edited_prompt_s": statistics.median(reuse_s),
        "reused_tokens": statistics.median(reused),
        "prompt_tokens": statistics.median(sizes),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=[  # an unreleased student cannot load
        name for name, e in CATALOG.items() if e.adapter is None or e.adapter.released])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="0 = one per core")
    ap.add_argument("--out", type=Path, default=Path("docs/performance.md"))
    ap.add_argument("--json", action="store_true",
                    help="print the measurements as JSON instead of writing --out "
                    "(benchmarks.builds compares llama.cpp builds with it)")
    args = ap.parse_args()

    rows = []
    store = ModelStore()
    for name in args.models:
        print(f"{name}: loading", file=sys.stderr)
        engine = LlamaEngine(store.fetch(name), n_ctx=2048, n_threads=args.threads)
        r = measure(engine, args.runs)
        print(f"{name}: {r}", file=sys.stderr)
        rows.append((name, r))
        del engine
    if args.json:
        print(json.dumps({name: r for name, r in rows}))
        return 0

    threads = args.threads or os.cpu_count()
    lines = [
        "# Performance",
        "",
        "## Model speed on CPU",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, {threads} threads; "
        f"llama-cpp-python {version('llama-cpp-python')} (CPU build); "
        f"medians of {args.runs} runs in one process.",
        "",
        "| model | prompt eval tok/s | decode tok/s | ~410-token prompt, cold | "
        "same prompt + one line (KV reuse) | speed-up |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['prompt_tps']:.0f} | {r['decode_tps']:.1f} | "
            f"{r['cold_prompt_s'] * 1000:.0f} ms | {r['edited_prompt_s'] * 1000:.0f} ms "
            f"({r['reused_tokens']:.0f} tokens reused) | "
            f"{r['cold_prompt_s'] / max(r['edited_prompt_s'], 1e-9):.1f}x |"
        )
    lines += [
        "",
        "Reproduce:",
        "",
        "```",
        "python -m benchmarks.speed --models " + " ".join(args.models)
        + f" --runs {args.runs}",
        "```",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
