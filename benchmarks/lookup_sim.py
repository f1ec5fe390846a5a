"""Replay prompt-lookup draft policies on recorded greedy outputs, priced by measured batch costs.

    python -m benchmarks.lookup_sim benchmarks/results/lookup-ab-*.json

A model, not a measurement: ``benchmarks/lookup_ab.py`` records every prompt's token ids, the
plain loop's output ids and one engine's median seconds per ``llama_decode`` of a batch of
1..16 tokens. Where the lookup output equals the plain one (the A/B counts it), which batches
a draft policy makes is a pure function of those ids, so each policy (draft length K, n-gram
lengths) is replayed here with :class:`plancode.engine.lookup.NgramDrafter` and priced with
the batch costs: predicted decode seconds against the plain loop's one decode per token. It
picks the policies worth a real A/B; only the A/B's wall times are claims.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from plancode.engine.lookup import NgramDrafter


def cost(curve: dict[int, float], size: int) -> float:
    """Seconds of a batch of ``size`` tokens, interpolated linearly between measured sizes."""
    sizes = sorted(curve)
    if size in curve:
        return curve[size]
    lo = max((s for s in sizes if s < size), default=sizes[0])
    hi = min((s for s in sizes if s > size), default=sizes[-1])
    if hi == lo:
        return curve[lo] * size / lo
    return curve[lo] + (curve[hi] - curve[lo]) * (size - lo) / (hi - lo)


def replay(prompt: list[int], out: list[int], k: int, max_n: int, min_n: int,
           curve: dict[int, float]) -> tuple[float, int, int]:
    """(predicted decode seconds, decodes, accepted tokens) of the lookup loop on ``out``."""
    drafter = NgramDrafter(prompt, k=k, max_n=max_n, min_n=min_n)
    seconds, decodes, accepted, i = 0.0, 0, 0, 0
    while i < len(out):
        drafter.push(out[i])
        if i + 1 >= len(out):
            break
        draft = drafter.propose(len(out) - i - 1)
        seconds += cost(curve, len(draft) + 1)
        decodes += 1
        n = 0
        while n < len(draft) and draft[n] == out[i + 1 + n]:
            n += 1
        drafter.extend(out[i + 1:i + 1 + n])
        accepted += n
        i += n + 1
    return seconds, decodes, accepted


def main() -> int:
    policies = [(k, max_n, min_n) for k in (3, 7, 11, 15) for max_n, min_n in
                ((2, 1), (3, 2), (4, 3), (6, 4), (8, 6), (12, 8), (16, 12))]
    for path in sys.argv[1:]:
        data = json.loads(Path(path).read_text())
        for model, entry in data["models"].items():
            curve = {int(s): t for s, t in entry["batch_decode_seconds"].items()}
            for name in ("repair", "direct"):
                rows = [r for r in entry.get(name, {}).get("rows", []) if "plain_ids" in r]
                if not rows:
                    continue
                print(f"{model} {name} ({len(rows)} prompts, batch costs {curve})")
                results = []
                for k, max_n, min_n in policies:
                    ratios, acc = [], 0
                    for r in rows:
                        out = r["plain_ids"]
                        plain = cost(curve, 1) * max(0, len(out) - 1)
                        sec, _, a = replay(r["prompt_ids"], out, k, max_n, min_n, curve)
                        ratios.append(plain / sec if sec else 1.0)
                        acc += a
                    tokens = sum(len(r["plain_ids"]) for r in rows)
                    results.append((statistics.median(ratios), k, max_n, min_n, acc / tokens))
                for ratio, k, max_n, min_n, share in sorted(results, reverse=True)[:8]:
                    print(f"  K={k:2d} n={max_n}..{min_n}: predicted speed-up {ratio:.2f}x "
                          f"(median per prompt), {share:.0%} of tokens drafted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
