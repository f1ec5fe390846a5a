"""Two or more pipeline settings on the held-out mined set, interleaved problem by problem.

    python -m benchmarks.heldout_ab --config configs/heldout-escalate.toml \
        --rows-dir benchmarks/results/ab-reserve [--only IDS] \
        --arm now= --arm no-reserve=plancode.pipeline.pool.LARGER_MODEL_RESERVE_SECONDS=0

The pipeline runs under a time budget, so its score depends on the machine's speed, and this
machine's speed drifts 10-30% between runs an hour apart (docs/results.md, eighth session):
two separate runs cannot tell a change worth a few problems from the drift. Here every arm
answers each problem right after the others, in an order that rotates from problem to problem,
each from a cold KV cache (every pipeline run and escalation starts cold), so a slow hour
falls on every arm alike.

An arm is ``NAME=OVERRIDES``: comma-separated ``key=value`` pairs, where ``key`` is a field of
the pipeline's settings (``budget=40``, ``escalate_model=``) or a module constant by its
dotted path (``plancode.pipeline.pool.LARGER_MODEL_RESERVE_SECONDS=0``), set for that arm's
runs and restored after; an empty ``NAME=`` is the config as it stands. Each arm's rows go to
``DIR/ab-NAME.jsonl`` (rows of mode ``select``, as ``benchmarks.heldout`` writes them), the
run resumes where it stopped, and at the end ``benchmarks.runs_compare`` puts the arms side by
side (right, wrong among answers that passed the user's tests, lost / won, McNemar's p).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import runs_compare
from plancode.config import Settings
from plancode.errors import PlancodeError


@dataclass
class Arm:
    """One setting under test: overrides of the pipeline's settings and of module constants."""

    name: str
    settings: dict[str, object] = field(default_factory=dict)
    constants: dict[str, object] = field(default_factory=dict)

    def apply(self, base: Settings) -> Settings:
        return dataclasses.replace(base, **self.settings)

    @contextmanager
    def constants_set(self) -> Iterator[None]:
        """The arm's module constants, set for the duration and restored after."""
        saved = []
        try:
            for path, value in self.constants.items():
                module, attr = _constant(path)
                saved.append((module, attr, getattr(module, attr)))
                setattr(module, attr, value)
            yield
        finally:
            for module, attr, old in reversed(saved):
                setattr(module, attr, old)


def _constant(path: str) -> tuple[object, str]:
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except (ImportError, ValueError):  # no such module, or no module named at all
        module = None
    if module is None or not hasattr(module, attr):
        raise PlancodeError(f"{path!r} is neither a settings field nor a module constant",
                            "name a field of plancode.config.Settings or a constant as "
                            "package.module.NAME")
    return module, attr


def _value(text: str, like: object) -> object:
    """``text`` as the type of the value it replaces (JSON for anything but plain strings)."""
    if isinstance(like, str):
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise PlancodeError(f"{text!r} is not a value for a {type(like).__name__}",
                            "write numbers as 55 or 0.5, booleans as true / false") from None
    if isinstance(like, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if like is not None and not isinstance(value, type(like)):
        raise PlancodeError(f"{text!r} is a {type(value).__name__}, the value it replaces a "
                            f"{type(like).__name__}", "give a value of the same type")
    return value


def parse_arm(spec: str, base: Settings) -> Arm:
    """``NAME=key=value,key=value`` (see the module's docstring) against ``base``."""
    name, sep, rest = spec.partition("=")
    if not sep or not name or not name.replace("-", "").replace("_", "").isalnum():
        raise PlancodeError(f"arm {spec!r} has no name",
                            "write NAME=OVERRIDES, e.g. no-reserve=budget=40 (NAME= for the "
                            "config as it stands)")
    arm = Arm(name)
    fields = {f.name for f in dataclasses.fields(base)}
    if name in fields:
        raise PlancodeError(f"arm {spec!r} is named after the setting {name!r}: the arm's "
                            "name comes first", f"write NAME={spec}")
    for pair in filter(None, rest.split(",")):
        key, sep, text = pair.partition("=")
        if not sep:
            raise PlancodeError(f"arm {name!r}: {pair!r} is not key=value",
                                "separate overrides with commas: a=1,b=2")
        if key in fields:
            arm.settings[key] = _value(text, getattr(base, key))
        else:
            module, attr = _constant(key)
            arm.constants[key] = _value(text, getattr(module, attr))
    return arm


def rotated(arms: list[Arm], index: int) -> list[Arm]:
    """The order the arms answer problem ``index`` in: each arm goes first as often as the
    others, so whatever warms up or slows down over a problem falls on every arm alike."""
    k = index % len(arms)
    return arms[k:] + arms[:k]


def run_ab(arms: list[Arm], problems: list, answer: Callable[[Arm, object], dict],
           caches: dict[str, object], log: bool = True) -> None:
    """Every problem answered by every arm (``answer(arm, problem)`` -> a ``select`` row)
    in rotating order; rows added to ``caches[arm.name]`` as they come, problems an arm
    already answered skipped."""
    for i, problem in enumerate(problems):
        for arm in rotated(arms, i):
            cache = caches[arm.name]
            if f"{problem.id}#select" in cache:
                continue
            with arm.constants_set():
                row = answer(arm, problem)
            cache.add({**row, "arm": arm.name, "order": rotated(arms, i).index(arm)})
            if log:
                print(f"[ab {arm.name}] {row['id']}: {'PASS' if row['passed'] else 'fail'} "
                      f"({row['status']}, {row['seconds']:.1f} s)", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, required=True, help="the held-out run's TOML")
    ap.add_argument("--arm", action="append", required=True, metavar="NAME=OVERRIDES",
                    help="an arm (two or more): NAME=key=value,... (NAME= for the config)")
    ap.add_argument("--rows-dir", type=Path, required=True, help="the arms' rows go here")
    ap.add_argument("--only", type=Path, help="a file of problem ids, one a line")
    ap.add_argument("--quiet", action="store_true", help="no line per answer")
    args = ap.parse_args(argv)
    try:
        if len(args.arm) < 2:
            raise PlancodeError(f"one arm ({args.arm[0]}): an A/B needs two or more",
                                "pass --arm twice or more, e.g. --arm now= --arm tight=budget=40")
        files = _run(args)
    except PlancodeError as e:
        print(f"plancode: {e}", file=sys.stderr)
        return 1
    return runs_compare.main([f"{name}={path}" for name, path in files.items()])


def _run(args: argparse.Namespace) -> dict[str, Path]:
    from plancode.engine.factory import load_engine
    from plancode.pipeline.run import Pipeline
    from plancode.trainer.checker import Checker
    from plancode.trainer.config import DistillConfig
    from plancode.trainer.evaluate import eval_settings
    from plancode.trainer.heldout_pipeline import Workspaces, pipeline_row
    from plancode.trainer.jsonl_cache import JsonlCache
    from plancode.trainer.references import judged, reference_row
    from plancode.trainer.stages.data import heldout_of
    from plancode.trainer.stages.evaluation import (
        eval_models,
        heldout_references_file,
        only_problems,
    )

    cfg = DistillConfig.load(args.config)
    cfg.eval.rows_dir = str(args.rows_dir.resolve())
    args.rows_dir.mkdir(parents=True, exist_ok=True)
    base = eval_settings(eval_models(cfg)["base"][0], cfg.eval)
    arms = [parse_arm(spec, base) for spec in args.arm]
    names = [a.name for a in arms]
    if len(set(names)) < len(names):
        raise PlancodeError(f"arms {names}: each arm needs its own name",
                            "give every --arm a different NAME")
    problems = only_problems(heldout_of(cfg),
                             set(args.only.read_text().split()) if args.only else None)
    files = {a.name: args.rows_dir / f"ab-{a.name}.jsonl" for a in arms}
    caches = {name: JsonlCache(path) for name, path in files.items()}
    refs = JsonlCache(heldout_references_file(cfg))
    engines: dict[str, object] = {}

    with Checker(cfg.verify.isolation, cfg.verify.timeout) as checker, \
            Workspaces() as workspaces:
        judged_problems = []
        for p in problems:
            scored = judged(p, reference_row(checker, p, refs), "reference")
            if scored is not None and checker.has_tests(scored):
                judged_problems.append(scored)

        def answer(arm: Arm, problem: object) -> dict:
            settings = arm.apply(base)
            if settings.model not in engines:
                engines[settings.model] = load_engine(settings)
            return pipeline_row(Pipeline(engines[settings.model], settings), checker,
                                workspaces, problem)

        run_ab(arms, judged_problems, answer, caches, not args.quiet)
    return files


if __name__ == "__main__":
    raise SystemExit(main())
