"""``plancode`` subcommands of the trainer, registered through the ``plancode.commands`` entry
point so the server's CLI never imports the trainer (or torch) itself.

    plancode distill --config FILE.toml            every stage, each cached and resumable
    plancode data|plans|verify-plans|train|export --config FILE.toml   one stage
    plancode mine ROOT [--out FILE.jsonl]          problems mined from a codebase
    plancode eval --model BASE.gguf --model STUDENT.gguf [--start 0 --end 164]
    plancode samples --config FILE.toml            the student's own answers, judged and
                                                   scored by the teacher (llama.cpp only)
    plancode onpolicy --config FILE.toml           the student's LoRA trained on them towards
                                                   the teacher (reverse KL, resumable)
    plancode gate --config FILE.toml [--checkpoint DIR]   a checkpoint against its base on
                                                   fixed slices: refused when it forgot

Registering imports nothing heavy; a command that needs ``plancode[train]`` says so.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from plancode.errors import PlancodeError

STAGE_COMMANDS = {"data": "data", "plans": "plans", "verify-plans": "verify", "train": "train",
                  "export": "export"}


def _need_train_extra() -> None:
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise PlancodeError(f"training needs packages that are not installed ({exc.name})",
                            "pip install 'plancode[train]'") from None


def _load(args: argparse.Namespace):
    from plancode.trainer.config import DistillConfig

    return DistillConfig.load(Path(args.config))


def _distill(args: argparse.Namespace) -> int:
    _need_train_extra()
    from plancode.trainer.distill import run_distill
    from plancode.trainer.stages.stage import STAGES

    stages = tuple(args.stage) if args.stage else STAGES
    reports = run_distill(_load(args), stages, progress=not args.quiet,
                          log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(reports, indent=1) if args.json else f"done: {', '.join(reports)}")
    return 0


def _stage(name: str):
    def run(args: argparse.Namespace) -> int:
        args.stage = [name]
        return _distill(args)

    return run


def _samples(args: argparse.Namespace) -> int:
    """The samples stage alone (``plancode.trainer.stages.samples``): llama.cpp, no torch."""
    from plancode.trainer.stages.samples import stage_samples

    report = stage_samples(_load(args), progress=not args.quiet, limit=args.limit or None,
                           log=(lambda m: None) if args.quiet else None)
    print(json.dumps(report, indent=1) if args.json else
          f"samples: {report['samples']} answers to {report['answered']} problems, "
          f"{report['passed']} passed; seconds per new answer {report['seconds_per_sample']}")
    return 0


def _onpolicy(args: argparse.Namespace) -> int:
    """The onpolicy stage alone (``plancode.trainer.stages.onpolicy``)."""
    _need_train_extra()
    from plancode.trainer.stages.onpolicy import stage_onpolicy

    report = stage_onpolicy(_load(args), progress=not args.quiet,
                            stop_after=args.stop_after or None,
                            log=(lambda m: None) if args.quiet else None)
    rows = report["rows"]
    print(json.dumps(report, indent=1) if args.json else
          f"onpolicy: {report['steps']} steps on {rows['used']} of {rows['rows']} rows "
          f"({rows['prompt_mismatch']} refused: prompt mismatch) in {report['seconds']} s")
    return 0


def _gate(args: argparse.Namespace) -> int:
    """The gates against forgetting (``plancode.trainer.stages.gate``); exit status 1 when a
    checkpoint is refused."""
    from plancode.trainer.stages.gate import default_checkpoints, gate_checkpoint

    cfg = _load(args)
    checkpoints = [Path(c) for c in args.checkpoint] or default_checkpoints(cfg)
    reports = [gate_checkpoint(cfg, c, progress=not args.quiet) for c in checkpoints]
    if args.json:
        print(json.dumps(reports, indent=1))
    else:
        from plancode.trainer.gates import log_line

        for r in reports:
            print(log_line(r))
    return 0 if all(r["accepted"] for r in reports) else 1


def _mine(args: argparse.Namespace) -> int:
    from plancode.trainer.mine import mine

    problems, report = mine(Path(args.root), progress=not args.quiet)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            for p in problems:
                fh.write(json.dumps(p.to_json()) + "\n")
    print(json.dumps(report.to_json(), indent=1))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from plancode.trainer.evaluate import EvalConfig, run_eval

    labels = args.label or (["base", "distilled"] if len(args.model) == 2 else
                            [Path(m).stem for m in args.model])
    if len(labels) != len(args.model):
        raise PlancodeError("give one --label per --model", "or leave --label out")
    cfg = EvalConfig(start=args.start, end=args.end, modes=tuple(args.modes),
                     candidates=args.candidates, n_gpu_layers=args.n_gpu_layers,
                     tasks=args.tasks or [])
    command = "plancode " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    out = run_eval(dict(zip(labels, args.model, strict=True)), cfg, Path(args.out),
                   Path(args.docs) if args.docs else None, command, log=not args.quiet)
    print(out["markdown"])
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the trainer's subcommands to ``plancode``'s parser."""
    p = sub.add_parser("distill", help="distill a teacher's plans into a student (all stages)",
                       description="Run data -> plans -> verify -> train -> export (-> eval) "
                       "as FILE.toml says; finished stages are skipped, interrupted ones resume.")
    p.add_argument("--config", required=True, help="the run's TOML config")
    p.add_argument("--stage", action="append", choices=["data", "plans", "verify", "train",
                                                         "export", "eval"],
                   help="run only this stage (repeatable)")
    p.add_argument("--json", action="store_true", help="print every stage's report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_distill)
    for command, stage in STAGE_COMMANDS.items():
        p = sub.add_parser(command, help=f"distillation stage '{stage}' only (see distill)")
        p.add_argument("--config", required=True, help="the run's TOML config")
        p.add_argument("--json", action="store_true", help="print the report as JSON")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.set_defaults(func=_stage(stage))

    p = sub.add_parser("samples", help="the student's own answers to the training problems, "
                       "judged by their tests and scored by the teacher (on-policy data)",
                       description="Run the samples stage of FILE.toml ([samples]): resumable, "
                       "row by row; llama.cpp only.")
    p.add_argument("--config", required=True, help="the run's TOML config")
    p.add_argument("--limit", type=int, default=0,
                   help="stop after this many problems with new answers (0: all)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_samples)

    p = sub.add_parser("onpolicy", help="on-policy distillation: the student's LoRA trained "
                       "on its own answers towards the teacher (after plancode samples)",
                       description="Run the onpolicy stage of FILE.toml ([onpolicy]): per-token "
                       "reverse KL to the teacher on the samples rows; resumes from its last "
                       "checkpoint.")
    p.add_argument("--config", required=True, help="the run's TOML config")
    p.add_argument("--stop-after", type=int, default=0,
                   help="stop after this many optimizer steps, as if killed (0: run to the end)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    p.set_defaults(func=_onpolicy)

    p = sub.add_parser("gate", help="gates against forgetting: a checkpoint of the on-policy "
                       "student against its base on fixed HumanEval and held-out slices",
                       description="Export the checkpoint's adapter to GGUF, score base and "
                       "checkpoint in direct mode through llama.cpp ([gate]), compare them "
                       "problem by problem; write gate.json beside it. Exit status 1 when one "
                       "is refused (the export never ships it).")
    p.add_argument("--config", required=True, help="the run's TOML config")
    p.add_argument("--checkpoint", action="append", default=[],
                   help="an adapter or checkpoint folder (repeatable; default: onpolicy/adapter,"
                   " else every kept checkpoint)")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_gate)

    p = sub.add_parser("mine", help="mine training problems (documented, tested functions) "
                       "from a codebase")
    p.add_argument("root", help="the codebase's root directory")
    p.add_argument("--out", help="write the problems here as JSONL")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_mine)

    p = sub.add_parser("eval", help="HumanEval pass@1 and CodeBLEU syntax/data-flow match of "
                       "GGUF models, side by side")
    p.add_argument("--model", action="append", required=True,
                   help="a GGUF path or catalog name (repeat: base first, then distilled)")
    p.add_argument("--label", action="append", help="a name per --model")
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--end", type=int, default=164)
    p.add_argument("--tasks", type=int, nargs="*", help="only these HumanEval task numbers")
    p.add_argument("--modes", nargs="+", default=["direct", "plan", "select"],
                   choices=["direct", "plan", "select"])
    p.add_argument("--candidates", type=int, default=4)
    p.add_argument("--n-gpu-layers", type=int, default=0)
    p.add_argument("--out", default="eval-results", help="folder for eval.json")
    p.add_argument("--docs", help="folder for distill-eval.md and distill-eval.png")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_eval)
