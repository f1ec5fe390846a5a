"""Two or more pipeline runs of one problem set, side by side, problem by problem.

    python -m benchmarks.runs_compare --mode select \
        product=benchmarks/results/heldout-product/heldout-qwen*.jsonl \
        escalate=benchmarks/results/heldout-escalate/heldout-qwen*.jsonl

Each run is ``LABEL=FILE`` (a shell glob may name several files). Over the problems every run
answered, each run's line says how many answers were right, how many were labelled
``verified`` / ``passes-tests`` and how many of those were wrong (issue 30's "wrong among
answers that passed the user's tests"), how often the pool held an eligible right answer
(the choice's ceiling), how often a larger model's candidate joined the pool and was chosen,
and the final times; every run after the first is compared with the first (problems lost and
won, McNemar's exact p).
"""

from __future__ import annotations

import argparse
import glob
import statistics
from pathlib import Path

from benchmarks.choosers import eligible
from benchmarks.rows import read_rows
from benchmarks.ttfv import _task
from plancode.trainer.gates import compare

PASSED = ("verified", "passes-tests")


def _larger(candidate: dict) -> bool:
    """A candidate another model wrote: its strategy is named ``MODEL:strategy``."""
    return ":" in (candidate.get("strategy") or "")


def summarise(rows: list[dict]) -> dict:
    """One run's counts over ``rows`` (one row per problem)."""
    passed = [r for r in rows if r.get("status") in PASSED]
    pools = [r.get("pool") or [] for r in rows]
    larger_chosen = [any(_larger(c) and c.get("chosen") for c in p) for p in pools]
    return {
        "problems": len(rows),
        "right": sum(bool(r["passed"]) for r in rows),
        "passed_user_tests": len(passed),
        "wrong_among_passed": sum(not r["passed"] for r in passed),
        "verified": sum(r.get("status") == "verified" for r in rows),
        "verified_right": sum(r.get("status") == "verified" and bool(r["passed"]) for r in rows),
        "failing": sum(r.get("status") == "failing" for r in rows),
        "pool_right": sum(any(c.get("hidden") for c in eligible(p)) for p in pools),
        "larger_joined": sum(any(_larger(c) for c in p) for p in pools),
        "larger_chosen": sum(larger_chosen),
        "larger_chosen_right": sum(chosen and bool(r["passed"])
                                   for r, chosen in zip(rows, larger_chosen, strict=True)),
        "final_p50": statistics.median(r["seconds"] for r in rows) if rows else float("nan"),
        "final_max": max((r["seconds"] for r in rows), default=float("nan")),
        "budget_reached": sum(bool(r.get("budget_reached")) for r in rows),
    }


def table(runs: dict[str, dict[str, dict]]) -> str:
    """The markdown table of ``runs`` (label -> problem -> row) on their common problems."""
    common = sorted(set.intersection(*(set(by_task) for by_task in runs.values())))
    first = next(iter(runs))
    head = ("| run | problems | right | lost / won vs " + first + " | McNemar p | passed the "
            "user's tests (wrong) | verified (right) | failing | pool holds a right one | "
            "larger model joined (chosen, right) | final p50 / max | budget hit |")
    lines = [head, "|" + "---|" * 12]
    base = {t: bool(runs[first][t]["passed"]) for t in common}
    for label, by_task in runs.items():
        s = summarise([by_task[t] for t in common])
        cmp = compare(base, {t: bool(by_task[t]["passed"]) for t in common})
        share = s["wrong_among_passed"] / s["passed_user_tests"] if s["passed_user_tests"] else 0
        versus = "-" if label == first else f"{len(cmp['lost'])} / {len(cmp['gained'])}"
        p = "-" if label == first else f"{cmp['p_value']:.3g}"
        lines.append(
            f"| {label} | {s['problems']} | {s['right']} | {versus} | {p} | "
            f"{s['passed_user_tests']} ({s['wrong_among_passed']}, {share:.0%}) | "
            f"{s['verified']} ({s['verified_right']}) | {s['failing']} | {s['pool_right']} | "
            f"{s['larger_joined']} ({s['larger_chosen']}, {s['larger_chosen_right']}) | "
            f"{s['final_p50']:.1f} / {s['final_max']:.1f} s | {s['budget_reached']} |")
    return "\n".join(lines)


def load(spec: str, mode: str) -> tuple[str, dict[str, dict]]:
    """``LABEL=GLOB`` -> the label and its rows of ``mode`` by problem."""
    label, sep, pattern = spec.partition("=")
    if not sep or not label:
        raise SystemExit(f"runs_compare: {spec!r} is not LABEL=FILE (e.g. base=rows.jsonl)")
    files = sorted(glob.glob(pattern)) or [pattern]
    missing = [f for f in files if not Path(f).exists()]
    if missing:
        raise SystemExit(f"runs_compare: {missing[0]} does not exist (run {label} first)")
    return label, {_task(r): r for r in read_rows([Path(f) for f in files])
                   if r.get("mode") == mode}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="LABEL=FILE, the first is the baseline")
    ap.add_argument("--mode", default="select", help="the rows' mode (select, weak)")
    args = ap.parse_args(argv)
    runs = dict(load(spec, args.mode) for spec in args.runs)
    print(table(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
