"""A/B of prefilling the code reply with the function's signature and docstring.

    python -m benchmarks.prefill_ab --start 0 --end 30 [--model qwen2.5-coder-0.5b]

The raw models copy the whole docstring back into every piece of code they write, whatever
the request says, and the splice throws that copy away: on HumanEval it is about half of a
candidate's tokens. Prefilled, the reply already holds the problem's function up to the end of
its docstring and the model writes only the body. Both variants answer the same problems with
the same engine, interleaved problem by problem (load falls on both alike), greedy, in the
``direct`` and ``plan`` modes of ``trainer.humaneval``; the hidden tests score. Writes a JSON
with every row and prints pass counts, median seconds, median code tokens and their ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from server.config import Settings
from server.engine.factory import load_engine
from server.pipeline import candidates as cands
from trainer import humaneval

REPO = Path(__file__).resolve().parent.parent
VARIANTS = {"plain": False, "prefill": True}
MODES = {"direct": cands.DIRECT, "plan": cands.PLAN_GREEDY}


def summarise(rows: list[dict]) -> dict[str, dict]:
    return {k: {"solved": sum(r[k]["passed"] for r in rows), "n": len(rows),
                "median_seconds": statistics.median(r[k]["seconds"] for r in rows),
                "median_tokens": statistics.median(r[k]["tokens"] for r in rows)}
            for k in rows[0] if k != "task_id"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--end", type=int, default=30)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--out", type=Path,
                    default=REPO / "benchmarks" / "results" / "prefill-ab.json")
    args = ap.parse_args()
    engine = load_engine(Settings.from_mapping({"model": args.model}, Settings.from_env()))
    rows: list[dict] = []
    for p in humaneval.problems(args.start, args.end):
        row: dict = {"task_id": p["task_id"]}
        with tempfile.TemporaryDirectory(prefix="plancode-ab-") as tmp:
            for mode, strategy in MODES.items():
                for label, prefill in VARIANTS.items():
                    engine.reset_cache()
                    out = humaneval.single(engine, p, strategy, args.max_tokens, prefill)
                    text = out.pop("text")
                    out["body"] = humaneval.body_of(p, text)
                    out["passed"] = humaneval.score(Path(tmp), p, text, "auto")
                    row[f"{label}/{mode}"] = out
        rows.append(row)
        print(p["task_id"], " ".join(f"{k}={'PASS' if v['passed'] else 'fail'}"
                                     f"({v['seconds']:.1f}s,{v['tokens']}t)"
                                     for k, v in row.items() if k != "task_id"),
              file=sys.stderr, flush=True)
        args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)},
                                        "summary": summarise(rows), "rows": rows}, indent=1))
    summary = summarise(rows)
    print(json.dumps(summary, indent=1))
    for mode in MODES:
        new, old = summary[f"prefill/{mode}"], summary[f"plain/{mode}"]
        print(f"{mode}: solved {new['solved']} vs {old['solved']} of {old['n']}; median "
              f"seconds prefill/plain = {new['median_seconds'] / old['median_seconds']:.2f}, "
              f"tokens = {new['median_tokens'] / old['median_tokens']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
