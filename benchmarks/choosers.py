"""Choosers compared offline on the same candidate pools: which rule picks right most often?

    python -m benchmarks.choosers --rows DIR/*.jsonl [--mode weak] [--model qwen2.5-coder-0.5b]
                                  [--scores benchmarks/results/reviewer-scores.jsonl]
    python -m benchmarks.choosers --rows benchmarks/results/heldout-pools/heldout-*.jsonl \
                                  --mode select

The HumanEval runner's ``--pools`` and the held-out pipeline rows (``configs/heldout-pools.toml``)
keep every pipeline answer's whole pool in its row: each
candidate's code, log-probability, visible-test result, behaviour group, the model-written
checks its group passed, and whether it passes the hidden tests (scored after the clock
stopped). Here every chooser picks from the same *eligible* candidates (those passing the most
visible tests, as the pipeline's ``clustering.pool_of``), so the table isolates the rule:

* ``pipeline``      what the pipeline chose (checks, then group size, then direct greedy);
* ``direct``        the direct greedy answer when eligible;
* ``reviewer``      highest reviewer score: log p(docstring | code), ``pipeline.review``;
* ``coder-reviewer`` reviewer + the candidate's own log p(code | prompt) (Zhang et al.);
* ``size``          the largest behaviour group (MBR-exec), then direct greedy;
* ``size+reviewer`` the largest group, ties and the member by reviewer score;
* ``checks+reviewer`` the group passing most model-written checks, then reviewer score;
* ``group-reviewer`` the group whose members hold the most reviewer probability mass
  (log-sum-exp of their scores: agreement and the docstring's likelihood at once);
* ``prose+size``    the group passing most checks written from the docstring's prose
  (``pipeline.prose_checks``; filled by ``benchmarks/prose_checks.py``, else 0 for all),
  then group size, then direct greedy;
* ``checks+prose+size`` the pipeline's order with prose checks between checks and size;
* ``oracle``        right whenever any eligible candidate is (the ceiling).

Reviewer scores cost one forward pass per candidate on the configured model; they are cached
in ``--scores`` by candidate code, so the study resumes and reruns cost nothing.
"""

from __future__ import annotations

import argparse
import ast
import glob
import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path

from benchmarks.rows import read_rows
from plancode.pipeline.kinds import DIRECT

REPO = Path(__file__).resolve().parent.parent
SCORES = REPO / "benchmarks" / "results" / "reviewer-scores.jsonl"


def eligible(pool: list[dict]) -> list[dict]:
    usable = [c for c in pool if c["code"] and not c["error"]]
    if not usable:
        return []
    best = max(c["visible_passed"] for c in usable)
    return [c for c in usable if c["visible_passed"] == best]


def _groups(cands: list[dict]) -> dict:
    out: dict = {}
    for k, c in enumerate(cands):
        out.setdefault(("g", c["group"]) if c["group"] is not None else ("solo", k), []).append(c)
    return out


def _rev(c: dict) -> float:
    return c["reviewer"] if c.get("reviewer") is not None else -math.inf


def _prose(c: dict) -> int:
    return c.get("prose") or 0


def _logsumexp(xs: list[float]) -> float:
    finite = [x for x in xs if x != -math.inf]
    if not finite:
        return -math.inf
    top = max(finite)
    return top + math.log(sum(math.exp(x - top) for x in finite))


def _is_direct(c: dict) -> bool:
    return c["strategy"] == DIRECT


Chooser = Callable[[list[dict]], dict | None]


def _by_group(group_key: Callable[[list[dict]], tuple], member_key: Callable[[dict], tuple]
              ) -> Chooser:
    def choose(cands: list[dict]) -> dict | None:
        if not cands:
            return None
        best = max(_groups(cands).values(), key=group_key)
        return max(best, key=member_key)
    return choose


CHOOSERS: dict[str, Chooser] = {
    "pipeline": lambda cs: next((c for c in cs if c["chosen"]), cs[0] if cs else None),
    "direct": lambda cs: next((c for c in cs if _is_direct(c)), None) or
    (next((c for c in cs if c["chosen"]), cs[0]) if cs else None),
    "reviewer": lambda cs: max(cs, key=lambda c: (_rev(c), _is_direct(c))) if cs else None,
    "coder-reviewer": lambda cs: max(cs, key=lambda c: (
        _rev(c) + c["mean_logprob"] * max(c["tokens"], 1), _is_direct(c))) if cs else None,
    "size": _by_group(lambda g: (len(g), any(map(_is_direct, g))),
                      lambda c: (_is_direct(c), c["mean_logprob"])),
    "size+reviewer": _by_group(lambda g: (len(g), max(map(_rev, g))), _rev),
    "checks+reviewer": _by_group(lambda g: (g[0]["checks"] or 0, max(map(_rev, g))), _rev),
    "group-reviewer": _by_group(lambda g: (_logsumexp([_rev(c) for c in g]),), _rev),
    # prose checks (benchmarks/prose_checks.py fills each candidate's ``prose``: how many of
    # the checks written from the docstring's prose it passes)
    "prose+size": _by_group(lambda g: (max(map(_prose, g)), len(g), any(map(_is_direct, g))),
                            lambda c: (_prose(c), _is_direct(c), c["mean_logprob"])),
    "checks+prose+size": _by_group(
        lambda g: (g[0]["checks"] or 0, max(map(_prose, g)), len(g), any(map(_is_direct, g))),
        lambda c: (_prose(c), _is_direct(c), c["mean_logprob"])),
}


def _key(task: str, code: str) -> str:
    return f"{task}:{hashlib.sha256(code.encode()).hexdigest()[:16]}"


def contested(row: dict) -> bool:
    """Whether the eligible candidates of ``row``'s pool disagree on the hidden tests: only
    there can one chooser beat another."""
    return len({c["hidden"] for c in eligible(row["pool"])}) > 1


def add_scores(rows: list[dict], model: str, path: Path, only_contested: bool = False) -> None:
    """Fill each eligible candidate's ``reviewer`` score, from ``path`` or the model
    (``only_contested``: the model scores only contested pools; every chooser picks a right
    or a wrong answer alike elsewhere, so the table is the same at a fraction of the cost)."""
    known = {}
    if path.exists():
        known = {r["key"]: r["score"] for r in map(json.loads, path.read_text().splitlines())}
    engine = None
    with path.open("a") as out:
        for row in rows:
            task = _task(row)
            wanted = contested(row) or not only_contested
            todo = [c for c in eligible(row["pool"])
                    if wanted and _key(task, c["code"]) not in known]
            if todo and engine is None:
                from plancode.config import Settings
                from plancode.engine.factory import load_engine

                engine = load_engine(Settings.from_mapping({"model": model}, Settings.from_env()))
            if todo:
                from plancode.pipeline.review import scores

                doc = docstring(row["pool"])
                for c, s in zip(todo, scores(engine, [c["code"] for c in todo], doc),
                                strict=True):
                    known[_key(task, c["code"])] = s
                    out.write(json.dumps({"key": _key(task, c["code"]), "score": s}) + "\n")
                out.flush()
            for c in row["pool"]:
                c["reviewer"] = known.get(_key(task, c["code"]))


def _task(row: dict) -> str:
    """A row's problem: HumanEval's ``task_id``, the held-out set's ``id``."""
    return row.get("task_id") or row["id"]


def docstring(pool: list[dict]) -> str:
    """The user's docstring, as every candidate keeps it (only the body is the model's)."""
    for c in pool:
        try:
            tree = ast.parse(c["code"] or "")
        except SyntaxError:
            continue
        func = next((n for n in tree.body
                     if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)), None)
        if func is not None and ast.get_docstring(func, clean=False):
            return ast.get_docstring(func, clean=False) or ""
    return ""


def table(rows: list[dict]) -> dict[str, int]:
    out = {name: 0 for name in CHOOSERS} | {"oracle": 0}
    for row in rows:
        cands = eligible(row["pool"])
        for name, choose in CHOOSERS.items():
            pick = choose(cands)
            out[name] += bool(pick and pick["hidden"])
        out["oracle"] += any(c["hidden"] for c in cands)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", nargs="+", required=True,
                    help="rows files (globs); a later file's rows replace an earlier one's")
    ap.add_argument("--mode", default="weak")
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--scores", type=Path, default=SCORES)
    ap.add_argument("--json", type=Path, help="write the table here too")
    ap.add_argument("--contested-only", action="store_true",
                    help="score only the pools where the eligible candidates disagree")
    args = ap.parse_args(argv)
    rows = [r for r in read_rows([Path(p) for f in args.rows for p in sorted(glob.glob(f))])
            if r.get("mode") == args.mode and r.get("pool")]
    add_scores(rows, args.model, args.scores, args.contested_only)
    result = table(rows)
    multi = sum(map(contested, rows))
    print(f"{len(rows)} {args.mode} pools ({multi} where the eligible candidates disagree "
          "on the hidden tests: only there can a chooser matter)")
    for name, right in result.items():
        print(f"  {name:16s} {right:4d}")
    if args.json:
        args.json.write_text(json.dumps({"mode": args.mode, "pools": len(rows),
                                         "contested": multi, "right": result}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
