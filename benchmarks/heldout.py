"""pass@1 of a distillation's base and student on its held-out mined problems, alone.

    python -m benchmarks.heldout --config configs/distill-real.toml [--models base distilled]
                                 [--modes direct plan select] [--rows-dir DIR] [--only IDS]

The eval stage runs HumanEval first and the held-out set after it; this runs only the
held-out part, with the same settings and the same rows files (one per model and data
stage), so the eval stage later finds them done. Two of these (or one beside the eval stage)
split the problems between them instead of answering the same ones. Resumable.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from plancode.errors import PlancodeError
from plancode.trainer.config import DistillConfig
from plancode.trainer.heldout import ALL_MODES
from plancode.trainer.stages.data import heldout_of
from plancode.trainer.stages.evaluation import eval_models, evaluate_heldout_models


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, required=True, help="the distillation's TOML")
    ap.add_argument("--models", nargs="+", choices=("base", "distilled"),
                    default=["base", "distilled"], help="which models, in this order")
    ap.add_argument("--modes", nargs="+", choices=ALL_MODES,
                    help="default: the config's eval modes that apply (select: the whole "
                         "pipeline, plancode.trainer.heldout_pipeline)")
    ap.add_argument("--quiet", action="store_true", help="no line per answer")
    ap.add_argument("--rows-dir", type=Path,
                    help="cache the rows here instead of the config's eval.rows_dir (the same "
                         "settings on another machine: its own baseline, side by side)")
    ap.add_argument("--only", type=Path,
                    help="a file of problem ids, one a line: answer only those (a change that "
                         "acts on some problems, measured on them against a full run's rows)")
    args = ap.parse_args(argv)
    try:
        only = set(args.only.read_text().split()) if args.only else None
        summary = _evaluate(args.config, args.models, not args.quiet,
                            tuple(args.modes) if args.modes else None, args.rows_dir, only)
    except PlancodeError as e:
        print(f"plancode: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=1))
    return 0


def _evaluate(config: Path, labels: list[str], log: bool,
              modes: tuple[str, ...] | None, rows_dir: Path | None = None,
              only: set[str] | None = None) -> dict[str, dict]:
    cfg = DistillConfig.load(config)
    if rows_dir is not None:
        cfg.eval.rows_dir = str(rows_dir.resolve())
    for stage in ("data", "export"):
        if not (cfg.out_dir / stage / "done.json").exists():
            raise PlancodeError(f"{config}: its {stage} stage has not finished",
                                f"run plancode distill --config {config} --stage {stage}")
    if not heldout_of(cfg):
        raise PlancodeError(f"{config}: the run has no held-out problems",
                            "set data.heldout_fraction above 0 (a new data stage)")
    every = eval_models(cfg)
    return evaluate_heldout_models(cfg, {k: every[k] for k in labels}, log, modes, only)


if __name__ == "__main__":
    raise SystemExit(main())
