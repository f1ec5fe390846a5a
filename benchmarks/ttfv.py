"""Time to first verified answer (TTFV) against direct greedy, from HumanEval or held-out rows.

    python -m benchmarks.humaneval --modes direct select weak --rows-dir DIR   # makes rows
    python -m benchmarks.ttfv --rows DIR/humaneval-....jsonl [--plot docs/ttfv.png]
    python -m benchmarks.ttfv --rows benchmarks/results/heldout-product/heldout-qwen*.jsonl \
        --modes select --title "held-out mined set"

Per problem, side by side from one run: the direct greedy answer's time (``direct`` mode), the
pipeline's first answer shown (``first_seconds``: the first candidate that passed the user's
tests, delivered at once) and its final answer (``seconds``), with pass@1 of the first and of
the final answer on the hidden tests, and how many answers were labelled ``verified`` /
``passes-tests`` and how many of those were right. Medians and ratios, never one time alone.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from benchmarks.rows import read_rows


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _task(row: dict) -> str:
    """A row's problem: HumanEval's ``task_id``, else the key before ``#mode`` (held-out)."""
    return row.get("task_id") or row["key"].rsplit("#", 1)[0]


def direct_times(rows: list[dict]) -> dict[str, tuple[float, bool | None]]:
    """Per problem, the direct greedy answer's seconds and whether it passed: from a
    ``direct`` row of the same run, else from the pipeline row's own ``timings.direct`` (the
    greedy answer is the pipeline's first candidate, decoded as direct mode decodes it; on
    HumanEval the two agree within 2%), whose pass@1 is then unknown (None)."""
    out: dict[str, tuple[float, bool | None]] = {}
    for r in rows:
        if r.get("mode") != "direct" and (r.get("timings") or {}).get("direct") is not None:
            out.setdefault(_task(r), (r["timings"]["direct"], None))
    for r in rows:
        if r.get("mode") == "direct":
            out[_task(r)] = (r["seconds"], r["passed"])
    return out


def summarise(rows: list[dict], mode: str) -> dict:
    """The TTFV table of ``mode`` (``select`` or ``weak``) over problems with a direct time."""
    direct = direct_times(rows)
    piped = [r for r in rows if r.get("mode") == mode and _task(r) in direct
             and "first_seconds" in r]
    firsts = [r for r in piped if r["first_seconds"] is not None]
    ratios = [r["first_seconds"] / direct[_task(r)][0] for r in firsts]
    labelled = [r for r in piped if r.get("status") in ("verified", "passes-tests")]
    known = [direct[_task(r)][1] for r in piped]
    return {
        "mode": mode,
        "problems": len(piped),
        "with_first_answer": len(firsts),
        "direct_p50": statistics.median(direct[_task(r)][0] for r in piped)
        if piped else float("nan"),
        "ttfv_p50": statistics.median(r["first_seconds"] for r in firsts)
        if firsts else float("nan"),
        "ttfv_p90": _quantile([r["first_seconds"] for r in firsts], 0.9),
        "ttfv_over_direct_p50": statistics.median(ratios) if ratios else float("nan"),
        "final_p50": statistics.median(r["seconds"] for r in piped) if piped else float("nan"),
        "final_max": max((r["seconds"] for r in piped), default=float("nan")),
        "budget_reached": sum(bool(r.get("budget_reached")) for r in piped),
        "direct_passed": (sum(bool(k) for k in known)
                          if piped and None not in known else None),
        "first_passed": sum(bool(r.get("first_passed")) for r in firsts),
        "final_passed": sum(r["passed"] for r in piped),
        "verified": sum(r.get("status") == "verified" for r in piped),
        "verified_right": sum(r.get("status") == "verified" and r["passed"] for r in piped),
        "passes_tests": sum(r.get("status") == "passes-tests" for r in piped),
        "passes_tests_right": sum(r.get("status") == "passes-tests" and r["passed"]
                                  for r in piped),
        "labelled_wrong": sum(not r["passed"] for r in labelled),
    }


def table(summaries: list[dict]) -> str:
    lines = ["| mode | problems | direct p50 | TTFV p50 | TTFV p90 | TTFV/direct p50 | final p50 "
             "| final max | budget hit | pass@1 direct / first / final | verified (right) | "
             "passes-tests (right) |", "|" + "---|" * 12]
    for s in summaries:
        lines.append(
            f"| {s['mode']} | {s['problems']} | {s['direct_p50']:.1f} s | {s['ttfv_p50']:.1f} s "
            f"| {s['ttfv_p90']:.1f} s | {s['ttfv_over_direct_p50']:.2f}x | {s['final_p50']:.1f} s "
            f"| {s['final_max']:.1f} s | {s['budget_reached']} | "
            f"{'n/a' if s['direct_passed'] is None else s['direct_passed']} / "
            f"{s['first_passed']} / {s['final_passed']} | {s['verified']} "
            f"({s['verified_right']}) | {s['passes_tests']} ({s['passes_tests_right']}) |")
    return "\n".join(lines)


def plot(rows: list[dict], modes: list[str], out: Path, title: str = "HumanEval") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    direct = {task: seconds for task, (seconds, _) in direct_times(rows).items()}
    fig, ax = plt.subplots(figsize=(7, 4))
    series = {"direct greedy": sorted(direct.values())}
    for mode in modes:
        got = [r for r in rows if r.get("mode") == mode and r.get("first_seconds") is not None]
        series[f"{mode}: first verified answer"] = sorted(r["first_seconds"] for r in got)
        series[f"{mode}: final answer"] = sorted(r["seconds"] for r in rows
                                                 if r.get("mode") == mode)
    for label, values in series.items():
        if values:
            ax.plot(values, [(i + 1) / len(values) for i in range(len(values))], label=label)
    ax.set_xscale("log")
    ax.set_xlabel("seconds (log)")
    ax.set_ylabel("share of problems answered")
    ax.set_title(f"{title}: time to the answer shown, 0.5B on 2 cores")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=Path, nargs="+", required=True,
                   help="HumanEval rows files; a later file's rows replace an earlier one's")
    p.add_argument("--modes", nargs="+", default=["select", "weak"])
    p.add_argument("--plot", type=Path, help="write the TTFV distribution plot here")
    p.add_argument("--title", default="HumanEval", help="the set's name on the plot")
    args = p.parse_args(argv)
    rows = read_rows(args.rows)
    summaries = [summarise(rows, m) for m in args.modes]
    print(table([s for s in summaries if s["problems"]]))
    if args.plot:
        plot(rows, args.modes, args.plot, args.title)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
