"""Why a distillation's problems were *broken* (their own solution failed their tests), now.

    python -m benchmarks.broken_references --config configs/distill-real.toml [--limit N]

Every problem whose cached reference verdict (the verify stage's ``references.jsonl`` for the
training split, the eval rows' ``heldout-references-*.jsonl`` for the held-out split) says
"failed" is run again in today's sandbox: does its solution now pass all of its tests, some
(the tests it passes can judge answers, :meth:`plancode.trainer.checker.Checker.judges`) or none?
Counts by split and source, and the most common reasons a test still does not pass, go to
stdout as JSON; nothing is written. It re-runs tests only (no model), a few seconds a problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from plancode.errors import PlancodeError
from plancode.trainer.checker import Checker
from plancode.trainer.config import DistillConfig
from plancode.trainer.data import Problem
from plancode.trainer.jsonl_cache import JsonlCache
from plancode.trainer.stages.data import heldout_of, problems_of
from plancode.trainer.stages.evaluation import heldout_references_file


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, required=True, help="the distillation's TOML")
    ap.add_argument("--limit", type=int, default=None, help="problems per split at most")
    args = ap.parse_args(argv)
    try:
        cfg = DistillConfig.load(args.config)
        splits = {"train": (problems_of(cfg)[0], cfg.out_dir / "verify" / "references.jsonl"),
                  "heldout": (heldout_of(cfg), heldout_references_file(cfg))}
        with Checker(cfg.verify.isolation, cfg.verify.timeout) as checker:
            report = {name: recheck(checker, problems, refs, args.limit)
                      for name, (problems, refs) in splits.items()}
    except PlancodeError as e:
        print(f"plancode: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=1))
    return 0


def recheck(checker: Checker, problems: list[Problem], references: Path,
            limit: int | None) -> dict:
    """The broken problems of one split run again: {"broken", "now": {source: {all, some,
    none}}, "reasons": [[count, outcome: message], ...]}."""
    failed = _failed_ids(references)
    broken = [p for p in problems if p.id in failed][:limit]
    now: dict[str, Counter] = {}
    reasons: Counter = Counter()
    for i, p in enumerate(broken):
        run = checker.check(p, p.solution)
        outcomes = [v.outcome for v in run.verdicts]
        state = "all" if run.all_passed else "some" if "passed" in outcomes else "none"
        now.setdefault(_source(p), Counter())[state] += 1
        reasons.update(f"{v.outcome}: {v.message[:70]}" for v in run.verdicts
                       if v.outcome != "passed")
        print(f"[{i + 1}/{len(broken)}] {p.id}: {state}", file=sys.stderr, flush=True)
    return {"broken": len(broken), "now": {k: dict(v) for k, v in sorted(now.items())},
            "reasons": [[n, why] for why, n in reasons.most_common(12)]}


def _failed_ids(references: Path) -> set[str]:
    if not references.exists():
        raise PlancodeError(f"no reference verdicts at {references}",
                            "run the verify stage (and the held-out evaluation) first")
    return {r["id"] for r in JsonlCache(references) if not r.get("passed")}


def _source(p: Problem) -> str:
    return Path(str(p.meta["root"])).name if "root" in p.meta else p.source


if __name__ == "__main__":
    sys.exit(main())
