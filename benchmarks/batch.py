"""Candidates per second: k sequences in one llama.cpp batch vs k decoded one after another.

    python -m benchmarks.batch [--model qwen2.5-coder-0.5b] [--k 1 2 4 8] [--repeats 3]
                               [--each]

Both sides decode the same direct-code prompt (HumanEval/0) with the same seeded sampling
settings and ``--max-tokens``; the sequential side is the engine's own ``chat`` from a cold
cache (it reuses the prompt's KV cells between its calls, so the prompt is evaluated once on
both sides). The
two sides alternate within each repeat so machine load hits both alike; the medians and their
ratio are printed and written to benchmarks/results/batch-MODEL.json.

``--each``: k *different* prompts (HumanEval/0..k-1, greedy), as the teacher's plans for k
problems: one after another from a cold cache each, vs ``BatchDecoder.generate_each``
(results in batch-each-MODEL-tT.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from benchmarks.machine import cpu_name
from plancode import prompts
from plancode.config import Settings
from plancode.engine.batch import BatchDecoder
from plancode.engine.factory import load_engine
from plancode.engine.types import SamplingParams
from plancode.trainer.decontam import load_humaneval

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--k", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--max-tokens", type=int, default=192)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0 = all cores)")
    ap.add_argument("--each", action="store_true",
                    help="k different prompts (generate_each) instead of k samples of one")
    args = ap.parse_args()
    engine = load_engine(Settings.from_mapping({"model": args.model,
                                                "n_threads": args.threads}))
    decoder = BatchDecoder(engine, n_seq=max(args.k), n_ctx=max(args.k) * 1024)
    problems = load_humaneval()
    messages = prompts.direct_code_messages(problems[0]["prompt"])
    rows = []
    for k in args.k:
        if args.each:
            rows.append(each_row(engine, decoder, problems[:k], args))
            print(rows[-1], flush=True)
            continue
        params = [SamplingParams(max_tokens=args.max_tokens, temperature=0.7, seed=s,
                                 stop=("\n```\n",)) for s in range(1, k + 1)]
        seq_times, batch_times, seq_tokens, batch_tokens = [], [], [], []
        for _ in range(args.repeats):
            engine.reset_cache()  # both sides evaluate the prompt once per group
            start = time.perf_counter()
            gens = [engine.chat(messages, p) for p in params]
            seq_times.append(time.perf_counter() - start)
            seq_tokens.append(sum(g.completion_tokens for g in gens))
            start = time.perf_counter()
            gens = decoder.chat(messages, params)
            batch_times.append(time.perf_counter() - start)
            batch_tokens.append(sum(g.completion_tokens for g in gens))
        seq, bat = statistics.median(seq_times), statistics.median(batch_times)
        rows.append({"k": k, "sequential_s": round(seq, 2), "batched_s": round(bat, 2),
                     "sequential_cand_per_s": round(k / seq, 3),
                     "batched_cand_per_s": round(k / bat, 3),
                     "sequential_tok_per_s": round(statistics.median(seq_tokens) / seq, 1),
                     "batched_tok_per_s": round(statistics.median(batch_tokens) / bat, 1),
                     "speedup": round(seq / bat, 2)})
        print(rows[-1], flush=True)
    kind = "batch-each" if args.each else "batch"
    out = REPO / "benchmarks" / "results" / f"{kind}-{args.model}-t{args.threads}.json"
    out.write_text(json.dumps({"model": args.model, "cpu": cpu_name(), "threads": args.threads,
                               "max_tokens": args.max_tokens, "repeats": args.repeats,
                               "date": time.strftime("%Y-%m-%d %H:%M"), "rows": rows}, indent=1))
    print(out)
    return 0


def each_row(engine, decoder: BatchDecoder, problems: list[dict],
             args: argparse.Namespace) -> dict:
    """k different prompts: one after another (cold cache each) vs decoded together."""
    k = len(problems)
    conversations = [prompts.direct_code_messages(p["prompt"]) for p in problems]
    tokens = [engine.tokenize(engine.info.render_chat(m), special=True) for m in conversations]
    greedy = SamplingParams(max_tokens=args.max_tokens, stop=("\n```\n",))
    seq_times, batch_times, seq_tokens, batch_tokens, same = [], [], [], [], 0
    for _ in range(args.repeats):
        start = time.perf_counter()
        alone = []
        for m in conversations:
            engine.reset_cache()
            alone.append(engine.chat(m, greedy))
        seq_times.append(time.perf_counter() - start)
        seq_tokens.append(sum(g.completion_tokens for g in alone))
        start = time.perf_counter()
        together = decoder.generate_each(tokens, [greedy] * k)
        batch_times.append(time.perf_counter() - start)
        batch_tokens.append(sum(g.completion_tokens for g in together))
        same = sum(a.text == b.text for a, b in zip(alone, together, strict=True))
    seq, bat = statistics.median(seq_times), statistics.median(batch_times)
    return {"k": k, "sequential_s": round(seq, 2), "batched_s": round(bat, 2),
            "sequential_tok_per_s": round(statistics.median(seq_tokens) / seq, 1),
            "batched_tok_per_s": round(statistics.median(batch_tokens) / bat, 1),
            "speedup": round(seq / bat, 2), "same_text": f"{same}/{k}"}


if __name__ == "__main__":
    sys.exit(main())
