"""The base model and every distilled student side by side, from the rows their runs cached.

    python -m benchmarks.distill_compare [--config configs/distill-real.toml ...]

Each distillation's eval stage (and ``benchmarks.humaneval`` for the same model and settings)
appends one row per (problem, mode) to a file in ``eval.rows_dir`` named for the model file,
its adapter and the answer settings; the held-out evaluation does the same per model and data
stage. This reads those files, without loading a model, and compares each model with the base
on the problems every compared model has answered in that mode (so a run still in progress
gives a fair partial table): pass@1, problems won and lost against the base, CodeBLEU syntax
and data-flow match of what it wrote, median seconds. It rewrites its subsection of
docs/results.md and a plot beside it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.docs_section import write_section
from plancode.trainer import humaneval
from plancode.trainer.codebleu import corpus_scores
from plancode.trainer.config import DistillConfig
from plancode.trainer.decontam import function_name
from plancode.trainer.evaluate import eval_settings
from plancode.trainer.heldout import ALL_MODES, broken_problems, written_body
from plancode.trainer.jsonl_cache import JsonlCache
from plancode.trainer.plots import eval_bars
from plancode.trainer.stages.data import heldout_of
from plancode.trainer.stages.evaluation import (
    eval_models,
    eval_rows_dir,
    heldout_references_file,
    heldout_rows_file,
)

REPO = Path(__file__).resolve().parent.parent
CONFIGS = ("configs/distill-real.toml", "configs/distill-real-nostruct.toml",
           "configs/distill-real-v2.toml")
PARENT = "## Distilled student (issue 11): status and what is measured so far"
TITLE = "### Base vs students, side by side (`benchmarks.distill_compare`)"

Rows = dict[str, dict[str, dict]]  # mode -> problem id -> row


@dataclass
class Model:
    """One compared model: its label and its cached rows on HumanEval and the held-out set."""

    label: str
    humaneval: Rows
    heldout: Rows


def _by_mode(path: Path, problem_key: str) -> Rows:
    out: Rows = {}
    if path.exists():
        for row in JsonlCache(path):
            out.setdefault(row["mode"], {})[row[problem_key]] = row
    return out


def _with_bodies(rows: Rows, names: dict[str, str]) -> Rows:
    """Held-out rows with the body each answer wrote (HumanEval's rows carry theirs);
    ``names``: each problem's function name."""
    return {mode: {p: {**r, "body": written_body(r.get("code") or "", names[p])}
                   for p, r in by_id.items()}
            for mode, by_id in rows.items()}


def models_of(configs: list[Path]) -> list[Model]:
    """The base of the first config, then the student of each config whose export exists."""
    models: list[Model] = []
    for path in configs:
        cfg = DistillConfig.load(path)
        if not (cfg.out_dir / "export" / "export_report.json").exists():
            print(f"{path}: no exported student yet, left out", file=sys.stderr)
            continue
        rows_dir = eval_rows_dir(cfg)
        for role, (model, adapter) in eval_models(cfg).items():
            if role == "base" and models:
                continue  # every run shares the first one's base
            label = "base" if role == "base" else f"student ({path.name})"
            he = humaneval.rows_file(rows_dir, model, adapter, eval_settings(model, cfg.eval))
            held = _by_mode(heldout_rows_file(cfg, (model, adapter)), "id")
            broken = broken_problems(heldout_references_file(cfg))
            held = {mode: {p: r for p, r in rows.items() if p not in broken}
                    for mode, rows in held.items()}
            models.append(Model(label, _by_mode(he, "task_id"), held))
    return models


def compare(models: list[Model], rows_of: str, modes: list[str],
            references: dict[str, str] | None = None) -> dict[str, dict[str, dict]]:
    """Per mode, per model that has rows in it: the tally on the problems all of those
    models have answered in that mode, against the first model (the base)."""
    out: dict[str, dict[str, dict]] = {}
    for mode in modes:
        having = [m for m in models if getattr(m, rows_of).get(mode)]
        if not having:
            continue
        common = sorted(set.intersection(*(set(getattr(m, rows_of)[mode]) for m in having)),
                        key=_problem_order)
        if not common:
            continue
        base = getattr(models[0], rows_of).get(mode, {})
        out[mode] = {}
        for m in having:
            rows = [getattr(m, rows_of)[mode][p] for p in common]
            passed = {p for p, r in zip(common, rows, strict=True) if r["passed"]}
            entry = {"n": len(common), "solved": len(passed),
                     "pass@1": len(passed) / len(common),
                     "median_seconds": statistics.median(r["seconds"] for r in rows)}
            if base and m is not models[0]:
                base_passed = {p for p in common if base[p]["passed"]}
                entry["won"] = len(passed - base_passed)
                entry["lost"] = len(base_passed - passed)
            if references is not None and all("body" in r for r in rows):
                entry.update(corpus_scores([r["body"] for r in rows],
                                           [references[p] for p in common]))
            out[mode][m.label] = entry
    return out


def _problem_order(problem: str) -> tuple:
    head, _, tail = problem.rpartition("/")
    return (head, int(tail)) if tail.isdigit() else (problem, 0)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def table(title: str, tally: dict[str, dict[str, dict]]) -> list[str]:
    if not tally:
        return [title, "", "(no rows yet)", ""]
    lines = [title, "",
             "| mode | model | solved | pass@1 | won / lost vs base | syntax match "
             "| data-flow match | median s |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for mode, per_model in tally.items():
        for label, e in per_model.items():
            vs = f"{e['won']} / {e['lost']}" if "won" in e else "-"
            lines.append(f"| {mode} | {label} | {e['solved']}/{e['n']} | {e['pass@1']:.1%} | "
                         f"{vs} | {_fmt(e.get('syntax_match'))} | "
                         f"{_fmt(e.get('dataflow_match'))} | {e['median_seconds']:.1f} |")
    return lines + [""]


def plot(he: dict, held: dict, path: Path) -> Path:
    """pass@1 and CodeBLEU's syntax and data-flow match, HumanEval and held-out modes."""
    summary: dict[str, dict[str, dict]] = {}
    for prefix, tally in (("HE ", he), ("held-out ", held)):
        for mode, per_model in tally.items():
            for label, e in per_model.items():
                summary.setdefault(label, {})[prefix + mode] = e
    return eval_bars(summary, ("pass@1", "syntax_match", "dataflow_match"), path,
                     "base vs distilled students (problems every model answered)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, nargs="*", default=[REPO / c for c in CONFIGS])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results.md")
    args = ap.parse_args()
    models = models_of([c for c in args.config if c.exists()])
    if len(models) < 2:
        print("nothing to compare yet: no run has an exported student", file=sys.stderr)
        return 1
    refs = {p["task_id"]: humaneval.reference_body(p) for p in humaneval.problems(0, 164)}
    he = compare(models, "humaneval", list(humaneval.MODES), refs)
    first = DistillConfig.load(next(c for c in args.config if c.exists()))
    held_problems = heldout_of(first)
    names = {p.id: function_name(p) for p in held_problems}
    held_refs = {p.id: written_body(p.solution, names[p.id]) for p in held_problems}
    for m in models:
        m.heldout = _with_bodies(m.heldout, names)
    held = compare(models, "heldout", list(ALL_MODES), held_refs)
    image = args.out.parent / "distill-compare.png"
    lines = [
        TITLE, "",
        f"Regenerated {time.strftime('%Y-%m-%d %H:%M')} UTC from the rows the runs cached "
        "(`python -m benchmarks.distill_compare`). Each mode counts only the problems every "
        "model listed under it has answered, so a run in progress gives a fair partial "
        "table; won / lost count problems the model solved and the base did not, and the "
        "reverse. Greedy, same harness and settings for every model (`eval` section of each "
        "config); CodeBLEU components of the body each model wrote against the canonical "
        "solution (HumanEval's, or the function's own in its package). Median seconds are "
        "only comparable between rows made under the same load "
        "(the runs shared 2 cores with other jobs).", "",
        *table("HumanEval:", he),
        *table("Held-out mined problems (never planned or trained on), judged by their "
               "packages' own tests:", held),
    ]
    if he or held:
        lines += [f"![pass@1 and CodeBLEU by model and mode]({plot(he, held, image).name})",
                  ""]
    write_section(args.out, TITLE, "\n".join(lines), PARENT)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
