"""A/B of the code request: copy the docstring back, or leave it out.

    python -m benchmarks.prompt_ab --start 0 --end 40 [--model qwen2.5-coder-0.5b]

The splice keeps the user's own docstring and drops the candidate's, so every docstring token a
model writes is decode time (and, at a token limit, the end of the code) spent for nothing.
Both requests answer the same problems with the same engine, interleaved problem by problem
(load falls on both alike), greedy, in the ``direct`` and ``plan`` modes of
``trainer.humaneval``; the hidden tests score. Writes a JSON with every row and prints medians
and the ratio of seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from server import prompts
from server.config import Settings
from server.engine.factory import load_engine
from server.pipeline import candidates as cands
from trainer import humaneval

REPO = Path(__file__).resolve().parent.parent
OLD = ("Reply with the complete function, including its signature, in one ```python code "
       "block.")
VARIANTS = {"with docstring": OLD, "without docstring": prompts.CODE_REQUEST}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--end", type=int, default=40)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--out", type=Path,
                    default=REPO / "benchmarks" / "results" / "prompt-ab-docstring.json")
    args = ap.parse_args()
    if OLD == prompts.CODE_REQUEST:
        print("the code request in server/prompts.py is the old one: nothing to compare",
              file=sys.stderr)
        return 2
    engine = load_engine(Settings.from_mapping({"model": args.model}, Settings.from_env()))
    rows = []
    for p in humaneval.problems(args.start, args.end):
        row: dict = {"task_id": p["task_id"]}
        with tempfile.TemporaryDirectory(prefix="plancode-ab-") as tmp:
            for label, request in VARIANTS.items():
                prompts.CODE_REQUEST = request
                for mode, strategy in (("direct", cands.DIRECT), ("plan", cands.PLAN_GREEDY)):
                    engine.reset_cache()
                    out = humaneval.single(engine, p, strategy, args.max_tokens)
                    out["passed"] = humaneval.score(Path(tmp), p, out.pop("text"), "auto")
                    row[f"{label}/{mode}"] = out
        rows.append(row)
        print(p["task_id"], " ".join(f"{k}={'PASS' if v['passed'] else 'fail'}"
                                     f"({v['seconds']:.1f}s)" for k, v in row.items()
                                     if k != "task_id"), file=sys.stderr, flush=True)
        summary = {k: {"solved": sum(r[k]["passed"] for r in rows), "n": len(rows),
                       "median_seconds": statistics.median(r[k]["seconds"] for r in rows)}
                   for k in rows[0] if k != "task_id"}
        args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)},
                                        "summary": summary, "rows": rows}, indent=1))
    print(json.dumps(summary, indent=1))
    for mode in ("direct", "plan"):
        new = summary[f"without docstring/{mode}"]["median_seconds"]
        old = summary[f"with docstring/{mode}"]["median_seconds"]
        print(f"{mode}: median seconds without/with docstring = {new / old:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
