"""Stage 6 / ``plancode eval``: base student against distilled student, side by side.

For each model (GGUF, served by the server's own engine and pipeline): HumanEval pass@1 in the
``direct``, ``plan`` and ``select`` (plan+select) modes, and the seed paper's structural
metrics on what each mode wrote: CodeBLEU's average syntax match and data-flow match against
the canonical solution. Writes a markdown table and a bar chart into docs/ and every row as
JSON, so a reader can check any number against the code each model wrote.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from plancode.config import Settings
from plancode.engine.factory import load_engine
from plancode.pipeline import Pipeline
from plancode.trainer import humaneval
from plancode.trainer.codebleu import corpus_scores
from plancode.trainer.config import EvalConfig
from plancode.trainer.jsonl_cache import JsonlCache
from plancode.trainer.plots import eval_bars


def summarise(rows: list[dict], chosen: list[dict], modes) -> dict[str, dict]:
    """Per mode: pass@1, solved, median seconds, CodeBLEU syntax and data-flow match."""
    refs = [humaneval.reference_body(p) for p in chosen]
    out = {}
    for mode in modes:
        solved = sum(r[mode]["passed"] for r in rows)
        bleu = corpus_scores([r[mode]["body"] for r in rows], refs)
        out[mode] = {"pass@1": solved / len(rows) if rows else 0.0, "solved": solved,
                     "n": len(rows),
                     "median_seconds": statistics.median(r[mode]["seconds"] for r in rows)
                     if rows else 0.0,
                     "syntax_match": bleu["syntax_match"],
                     "dataflow_match": bleu["dataflow_match"]}
    return out


ModelSpec = str | tuple[str, Path | None]  # a GGUF/catalog name, or (base GGUF, LoRA adapter)


def _split_spec(model: ModelSpec) -> tuple[str, Path | None]:
    return (model, None) if isinstance(model, str) else (model[0], model[1])


def eval_settings(model: str, cfg: EvalConfig) -> Settings:
    """The server settings each evaluated model runs under (they also name its rows file)."""
    # escalate_model "" by default: each model is measured on its own (escalation's "auto"
    # would bring the 1.5B's candidates into both sides of a comparison whenever it is in the
    # store); a product-like run names the larger model in the config
    return Settings.from_mapping({"model": model, "candidates": cfg.candidates,
                                  "repair_rounds": cfg.repair_rounds,
                                  "max_tokens": cfg.max_tokens, "test_timeout": 20.0,
                                  "n_gpu_layers": cfg.n_gpu_layers,
                                  "escalate_model": cfg.escalate_model,
                                  "n_threads": cfg.threads(),
                                  "prefill_code": cfg.prefill_code,
                                  "budget": cfg.budget})


def evaluate_model(model: ModelSpec, cfg: EvalConfig, chosen: list[dict],
                   log: bool = True, rows_dir: Path | None = None) -> dict:
    """HumanEval rows and summary of one model (a GGUF, or a base GGUF with an adapter);
    with ``rows_dir``, rows are cached there per model and settings (and reused)."""
    path, adapter = _split_spec(model)
    settings = eval_settings(path, cfg)
    engine = load_engine(settings, adapter=adapter)
    cache = (JsonlCache(humaneval.engine_rows_file(rows_dir, engine, settings))
             if rows_dir is not None else None)
    rows = humaneval.run(Pipeline(engine, settings), chosen, cfg.modes, cfg.max_tokens, log,
                         cache)
    return {"model": path, "adapter": str(adapter) if adapter else None, "rows": rows,
            "summary": summarise(rows, chosen, cfg.modes)}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def markdown(results: dict[str, dict], cfg: EvalConfig, seconds: float, plot: Path | None,
             command: str) -> str:
    n = next(iter(results.values()))["summary"][cfg.modes[0]]["n"]
    lines = [
        "## Base vs distilled student (plancode eval)",
        "",
        f"HumanEval/{cfg.start}-{cfg.end - 1} ({n} problems), {time.strftime('%Y-%m-%d')}; "
        f"{seconds / 60:.1f} min of answering and scoring in all (every row's seconds: a "
        "resumed run counts each row once). Syntax/data-flow match: CodeBLEU components of "
        "the body each mode wrote against the canonical solution.",
        "",
        "| model | mode | pass@1 | solved | syntax match | data-flow match | median s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for label, res in results.items():
        for mode, s in res["summary"].items():
            lines.append(f"| {label} | {mode} | {s['pass@1']:.1%} | {s['solved']}/{s['n']} | "
                         f"{_fmt(s['syntax_match'])} | {_fmt(s['dataflow_match'])} | "
                         f"{s['median_seconds']:.1f} |")
    if plot is not None:
        lines += ["", f"![base vs distilled]({plot.name})"]
    lines += ["", "Reproduce:", "", "```", command, "```", ""]
    return "\n".join(lines)


def run_eval(models: dict[str, ModelSpec], cfg: EvalConfig, out_dir: Path, docs: Path | None,
             command: str, log: bool = True) -> dict:
    """Evaluate each labelled model; JSON in out_dir, table + plot in ``docs`` when given.
    Rows are cached in ``cfg.rows_dir`` (default ``out_dir``): a rerun resumes."""
    start = time.perf_counter()
    chosen = humaneval.problems(cfg.start, cfg.end, cfg.tasks or None)
    rows_dir = Path(cfg.rows_dir) if cfg.rows_dir else out_dir
    results = {label: evaluate_model(m, cfg, chosen, log, rows_dir)
               for label, m in models.items()}
    wall = time.perf_counter() - start
    seconds = sum(r[m]["seconds"] for res in results.values() for r in res["rows"]
                  for m in cfg.modes)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "eval.json").write_text(json.dumps(results, indent=1))
    target = docs if docs is not None else out_dir
    target.mkdir(parents=True, exist_ok=True)
    plot = eval_bars({label: r["summary"] for label, r in results.items()},
                     ("pass@1", "syntax_match", "dataflow_match"), target / "distill-eval.png",
                     f"HumanEval/{cfg.start}-{cfg.end - 1}: " + " vs ".join(results))
    md = markdown(results, cfg, seconds, plot, command)
    (target / "distill-eval.md").write_text(md)
    return {"results": results, "markdown": md, "seconds": seconds, "wall_seconds": wall}
