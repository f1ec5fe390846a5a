"""The harness of the HumanEval A/B benchmarks (``prompt_ab``, ``prefill_ab``).

Every variant answers the same problems with the same engine, interleaved problem by problem
(load falls on all alike), greedy, in the ``direct`` and ``plan`` modes of
``plancode.trainer.humaneval``, each from a cold KV cache; the hidden tests score. The JSON of
every row
and the summary is rewritten after each problem, so an interrupted run keeps what it did.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from plancode.config import Settings
from plancode.engine.factory import load_engine
from plancode.pipeline import candidates as cands
from plancode.trainer import humaneval

REPO = Path(__file__).resolve().parent.parent
MODES = {"direct": cands.DIRECT, "plan": cands.PLAN_GREEDY}

# answer(engine, problem, strategy, max_tokens) -> a row of plancode.trainer.humaneval.single
Answer = Callable[[object, dict, str, int], dict]


def arguments(doc: str, out_name: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--end", type=int, default=40)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / out_name)
    return ap.parse_args()


def summarise(rows: list[dict]) -> dict[str, dict]:
    """Per ``variant/mode``: problems solved, median seconds and median code tokens."""
    return {k: {"solved": sum(r[k]["passed"] for r in rows), "n": len(rows),
                "median_seconds": statistics.median(r[k]["seconds"] for r in rows),
                "median_tokens": statistics.median(r[k].get("tokens", 0) for r in rows)}
            for k in rows[0] if k != "task_id"}


def run(args: argparse.Namespace, variants: dict[str, Answer]) -> dict[str, dict]:
    """Answer and score every problem in every variant and mode; the summary."""
    engine = load_engine(Settings.from_mapping({"model": args.model}, Settings.from_env()))
    rows: list[dict] = []
    for p in humaneval.problems(args.start, args.end):
        row: dict = {"task_id": p["task_id"]}
        with tempfile.TemporaryDirectory(prefix="plancode-ab-") as tmp:
            for mode, strategy in MODES.items():
                for label, answer in variants.items():
                    engine.reset_cache()
                    out = answer(engine, p, strategy, args.max_tokens)
                    text = out.pop("text")
                    out["body"] = humaneval.body_of(p, text)
                    out["passed"] = humaneval.score(Path(tmp), p, text, "auto")
                    row[f"{label}/{mode}"] = out
        rows.append(row)
        print(p["task_id"], " ".join(f"{k}={'PASS' if v['passed'] else 'fail'}"
                                     f"({v['seconds']:.1f}s,{v.get('tokens', 0)}t)"
                                     for k, v in row.items() if k != "task_id"),
              file=sys.stderr, flush=True)
        args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)},
                                        "summary": summarise(rows), "rows": rows}, indent=1))
    summary = summarise(rows)
    print(json.dumps(summary, indent=1))
    return summary


def compare(summary: dict[str, dict], new: str, old: str) -> None:
    """Print solved counts and the median seconds and tokens of ``new`` over ``old``."""
    for mode in MODES:
        a, b = summary[f"{new}/{mode}"], summary[f"{old}/{mode}"]
        tokens = a["median_tokens"] / b["median_tokens"] if b["median_tokens"] else float("nan")
        print(f"{mode}: solved {a['solved']} ({new}) vs {b['solved']} ({old}) of {b['n']}; "
              f"median seconds {new}/{old} = {a['median_seconds'] / b['median_seconds']:.2f}, "
              f"tokens = {tokens:.2f}")
