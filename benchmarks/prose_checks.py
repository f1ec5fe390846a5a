"""Checks from the docstring's prose, measured on kept candidate pools (issue 30, item 2).

    nice -n 10 env PLANCODE_N_THREADS=1 .venv/bin/python -m benchmarks.prose_checks \\
        [--writers static qwen2.5-coder-0.5b qwen2.5-coder-1.5b] [--no-model] \\
        [--json benchmarks/results/prose-checks.json] [--plot docs/prose-checks.png]

The writers ``tests:MODEL`` and ``tests-prefill:MODEL`` are the pipeline's own test writer
(``generated_tests.reply``: the asserts it writes for the choice in ``weak`` runs and with no
tests), without and with its reply started inside the first assert; the others ask for prose
checks.

For every pool row (HumanEval ``weak``: ``benchmarks/results/pools-weak``; the held-out mined
set, ``select``: ``benchmarks/results/heldout-pools``) it makes the checks of
``plancode.pipeline.prose_checks`` — static ones, and the ones each model writes (its reply is
cached per problem in ``benchmarks/results/prose-checks-cache.jsonl``, so reruns cost no
model time) — drops those that contradict a visible test (statically, and on the oracle
module that answers only the visible calls), and runs every check on every *eligible*
candidate (``choosers.eligible``) in the sandbox through ``probes.probe_all``. Per writer and
kind it reports how many checks were made and dropped, how often a check **separates** the
eligible candidates (some pass, some fail), how often it is **wrong** (a candidate that passes
the hidden tests fails it) and how often it is **useful** (it separates, the pool holds a
hidden-right candidate, every hidden-right one passes it and some hidden-wrong one fails);
and, per writer, how many pools the
``prose+size`` chooser (``choosers.py``) picks right against today's ``pipeline`` chooser.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import hashlib
import json
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

from benchmarks import choosers
from plancode.analysis.facts import FunctionFacts, facts_of
from plancode.analysis.splice import SpliceError, splice
from plancode.engine.types import SamplingParams
from plancode.pipeline import generated_tests, probes
from plancode.pipeline import prose_checks as pc

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
CACHE = RESULTS / "prose-checks-cache.jsonl"
ROWS = {"weak": [str(RESULTS / "pools-weak" / "*.jsonl")],
        "select": [str(RESULTS / "heldout-pools" / "heldout-qwen*.jsonl")]}
WRITERS = ("static", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
MAX_TOKENS = 384
# writers named "tests:MODEL" / "tests-prefill:MODEL" are the pipeline's test writer
# (generated_tests.reply, without and with its reply started inside the first assert), at the
# pipeline's token limit; the rest ask for prose checks
TESTS, PREFILLED = "tests:", "tests-prefill:"
TESTS_MAX_TOKENS = 512


def _is_tests(writer: str) -> bool:
    return writer.startswith((TESTS, PREFILLED))


def _model(writer: str) -> str:
    return writer.split(":", 1)[1] if _is_tests(writer) else writer


# -- the problems behind the rows ------------------------------------------------------------

class Problem:
    """What a row's function needs to be probed: its facts, visible tests, and the module
    each candidate's code is spliced into."""

    def __init__(self, task: str, source: str, info, workspace: Path, rel: str,
                 visible: list[pc.Visible]) -> None:
        self.task, self.source, self.info = task, source, info
        self.facts: FunctionFacts = facts_of(info)
        self.workspace, self.rel, self.visible = workspace, rel, visible
        self.module = rel.removesuffix(".py").replace("/", ".")

    def text(self, code: str) -> str | None:
        try:
            return splice(self.source, self.info, code).text
        except SpliceError:
            return None


def humaneval_problem(row: dict, empty: Path) -> Problem | None:
    from plancode.trainer.humaneval import load_humaneval, target

    problem = next(p for p in load_humaneval() if p["task_id"] == row["task_id"])
    info = target(problem, problem["prompt"])
    if info is None:
        return None
    facts = facts_of(info)
    first = facts.examples[:1]  # the weak mode's one visible test: the first example
    return Problem(row["task_id"], problem["prompt"], info, empty, "solution.py",
                   pc.visible_of([(e.call, e.expected) for e in first]))


def heldout_problem(row: dict) -> Problem | None:
    from plancode.trainer.checker import target_function

    rel, _, qualname = row["id"].partition("::")
    found = sorted(glob.glob(str(REPO / "data" / "src" / "*" / rel)))
    if not found:
        return None
    path = Path(found[0])
    root = Path(str(path)[: -len(rel)])
    source = path.read_text(encoding="utf-8")
    info = target_function(source, qualname)
    if info.is_method:
        return None
    facts = facts_of(info)  # select mode: every docstring example is a visible test
    return Problem(row["id"], source, info, root, rel,
                   pc.visible_of([(e.call, e.expected) for e in facts.examples]))


def load_rows(mode: str, patterns: list[str]) -> list[dict]:
    return [r for f in patterns for path in sorted(glob.glob(f))
            for r in map(json.loads, Path(path).read_text().splitlines())
            if r.get("mode") == mode and r.get("pool")]


# -- the models' replies, cached -------------------------------------------------------------

class Replies:
    """Model replies per (problem, writer, prompt), from the cache file or the model."""

    def __init__(self, path: Path, allow_model: bool) -> None:
        self.path, self.allow_model = path, allow_model
        self.known: dict[str, str] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                r = json.loads(line)
                self.known[r["key"]] = r["reply"]
        self.engines: dict[str, object] = {}

    @staticmethod
    def key(task: str, writer: str, problem: str, name: str) -> str:
        messages = (pc.prompts.test_writing_messages(problem, name) if _is_tests(writer)
                    else pc.prompts.prose_check_messages(problem, name))
        prompt = json.dumps(messages, sort_keys=True)
        return f"{task}|{writer}|{hashlib.sha256(prompt.encode()).hexdigest()[:16]}"

    def reply(self, task: str, writer: str, problem: str, name: str) -> str | None:
        key = self.key(task, writer, problem, name)
        if key in self.known:
            return self.known[key]
        if not self.allow_model:
            return None
        engine = self._engine(_model(writer))
        start = time.perf_counter()
        if _is_tests(writer):  # the pipeline's own test writer, as it calls it
            text, gen = generated_tests.reply(
                engine, problem, name, SamplingParams(max_tokens=TESTS_MAX_TOKENS),  # type: ignore
                prefill=writer.startswith(PREFILLED))
        else:
            gen = engine.chat(pc.prompts.prose_check_messages(problem, name),  # type: ignore
                              SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0))
            text = gen.text
        seconds = time.perf_counter() - start
        self.known[key] = text
        with self.path.open("a") as out:
            out.write(json.dumps({"key": key, "task": task, "writer": writer,
                                  "seconds": round(seconds, 2), "tokens": gen.completion_tokens,
                                  "finish": gen.finish_reason, "reply": text}) + "\n")
        print(f"  {writer} wrote checks for {task} in {seconds:.1f}s "
              f"({gen.completion_tokens} tokens)", flush=True)
        return text

    def _engine(self, writer: str) -> object:
        if writer not in self.engines:
            from plancode.config import Settings
            from plancode.engine.factory import load_engine

            for other in list(self.engines):  # one model in memory at a time
                del self.engines[other]
            self.engines[writer] = load_engine(
                Settings.from_mapping({"model": writer}, Settings.from_env()))
        return self.engines[writer]


# -- one row -------------------------------------------------------------------------------------

def checks_for(problem: Problem, writers: tuple[str, ...], replies: Replies
               ) -> dict[str, list[pc.Check]]:
    out = {}
    for writer in writers:
        if writer == "static":
            out[writer] = pc.static_checks(problem.facts, problem.visible)
            continue
        name = problem.facts.name
        text = replies.reply(problem.task, writer, problem.info.problem, name)
        if text is None:
            continue
        if _is_tests(writer):  # read as the pipeline reads them: its first LIMIT asserts
            asserts = pc.prompts.parse_asserts(text, name)[:generated_tests.LIMIT]
            out[writer] = [dataclasses.replace(c, writer=writer) for c in
                           (pc.classify(a, name) for a in asserts) if c is not None]
        else:
            out[writer] = pc.parse_reply(text, name, writer)
    return out


def study_row(row: dict, problem: Problem, checks: dict[str, list[pc.Check]], sandbox) -> dict:
    """Run every writer's checks on the row's eligible candidates; what each check did."""
    cands = choosers.eligible(row["pool"])
    flat = [c for w in checks for c in checks[w]]
    static_drop = [pc.contradicts(c, problem.visible) for c in flat]
    oracle_drop = pc.refuted(sandbox, problem.rel, problem.module, problem.facts.name, flat,
                             problem.visible)
    texts = {c["code"]: problem.text(c["code"]) for c in cands}
    unique = [t for t in dict.fromkeys(texts.values()) if t is not None]
    results: dict[str, tuple[bool, ...]] = {}
    if unique and flat:
        run = probes.probe_all(sandbox, problem.rel, problem.module, unique, [],
                               [c.statement for c in flat])
        for text, beh in zip(unique, run.behaviours, strict=True):
            results[text] = beh.checks if not beh.error else (False,) * len(flat)
    per_check = []
    for k, check in enumerate(flat):
        passes = [bool(results.get(texts[c["code"]] or "", ())[k:k + 1] == (True,))
                  for c in cands]
        per_check.append({**asdict(check), "dropped": "static" if static_drop[k] else
                          "oracle" if oracle_drop[k] else "",
                          "passes": passes, "hidden": [bool(c["hidden"]) for c in cands]})
    return {"task": problem.task, "mode": row["mode"], "eligible": len(cands),
            "writers": list(checks),
            "contested": len({bool(c["hidden"]) for c in cands}) > 1,
            "checks": per_check}


# -- the numbers -----------------------------------------------------------------------------

def kind_stats(studied: list[dict], writer: str, key: str = "kind") -> dict[str, dict]:
    """Per kind (or detail) of ``writer``'s checks, over the pools it wrote checks for."""
    out: dict[str, dict] = defaultdict(lambda: {"made": 0, "dropped": 0, "kept": 0,
                                                "on_multi": 0, "separates": 0, "wrong": 0,
                                                "useful": 0, "pools": set(),
                                                "pools_separated": set()})
    for s in studied:
        for c in s["checks"]:
            if c["writer"] != writer:
                continue
            for label in (c[key] or "-", "all"):
                st = out[label]
                st["made"] += 1
                if c["dropped"]:
                    st["dropped"] += 1
                    continue
                st["kept"] += 1
                st["pools"].add(s["task"])
                p, h = c["passes"], c["hidden"]
                wrong = any(hh and not pp for pp, hh in zip(p, h, strict=True))
                st["wrong"] += wrong
                if len(p) >= 2:
                    st["on_multi"] += 1
                    separates = len(set(p)) > 1
                    st["separates"] += separates
                    if separates:
                        st["pools_separated"].add(s["task"])
                    st["useful"] += separates and not wrong and any(h) and any(
                        not hh and not pp for pp, hh in zip(p, h, strict=True))
    return {k: {**v, "pools": len(v["pools"]), "pools_separated": len(v["pools_separated"])}
            for k, v in out.items()}


def chooser_stats(rows: list[dict], studied: dict[str, dict], writers: list[str]) -> dict:
    """Right picks of ``pipeline`` and ``prose+size`` per writer set, all pools and contested."""
    out = {}
    for combo in writers:
        names = combo.split("+")
        # each writer set on the pools every writer in it has checked
        on = [r for r in rows if set(names) <= set(studied[choosers._task(r)]["writers"])]
        right = {"pipeline": 0, "prose+size": 0, "checks+prose+size": 0, "size": 0, "oracle": 0}
        contested = dict.fromkeys(right, 0)
        for row in on:
            cands = choosers.eligible(row["pool"])
            s = studied.get(choosers._task(row))
            for k, c in enumerate(cands):
                c["prose"] = sum(1 for ch in (s["checks"] if s else [])
                                 if ch["writer"] in names and not ch["dropped"]
                                 and ch["passes"][k])
            is_contested = len({bool(c["hidden"]) for c in cands}) > 1
            for name in right:
                if name == "oracle":
                    ok = any(c["hidden"] for c in cands)
                else:
                    pick = choosers.CHOOSERS[name](cands)
                    ok = bool(pick and pick["hidden"])
                right[name] += ok
                contested[name] += ok and is_contested
        out[combo] = {"pools": len(on), "right": right, "right_on_contested": contested}
    return out


def reply_stats(cache: Path, tasks: list[str], writers: tuple[str, ...]) -> dict[str, dict]:
    """Per model writer, over ``tasks``: the replies' median tokens and seconds (seconds are
    only comparable between writers run side by side on a quiet machine), and how many were
    cut at the token limit."""
    wanted = set(tasks)
    by: dict[str, list[dict]] = defaultdict(list)
    for line in cache.read_text().splitlines() if cache.exists() else []:
        r = json.loads(line)
        if r["writer"] in writers and r["task"] in wanted:
            by[r["writer"]].append(r)
    return {w: {"replies": len(rs),
                "median_tokens": statistics.median([r["tokens"] for r in rs if "tokens" in r]
                                                   or [0]),
                "cut_at_limit": sum(r.get("finish") == "length" for r in rs),
                "median_seconds": statistics.median(r["seconds"] for r in rs)}
            for w, rs in by.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modes", nargs="+", default=["weak", "select"])
    ap.add_argument("--writers", nargs="+", default=list(WRITERS))
    ap.add_argument("--no-model", action="store_true", help="cached replies only")
    ap.add_argument("--generate-only", action="store_true",
                    help="only fill the model replies' cache")
    ap.add_argument("--min-distinct", type=int, default=1,
                    help="only pools with this many distinct eligible candidates")
    ap.add_argument("--max-distinct", type=int, default=10**6,
                    help="only pools with at most this many distinct eligible candidates")
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--json", type=Path, default=RESULTS / "prose-checks.json")
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args(argv)
    replies = Replies(args.cache, not args.no_model)
    writers = tuple(args.writers)
    report: dict = {"writers": list(writers), "modes": {}}
    with tempfile.TemporaryDirectory(prefix="plancode-prose-") as empty:
        for mode in args.modes:
            rows = load_rows(mode, ROWS[mode])
            # pools whose eligible candidates differ first: they are where checks can matter
            rows.sort(key=lambda r: -len({c["code"] for c in choosers.eligible(r["pool"])}))
            rows = [r for r in rows if len({c["code"] for c in choosers.eligible(r["pool"])})
                    in range(args.min_distinct, args.max_distinct + 1)]
            studied: dict[str, dict] = {}
            boxes: dict[Path, object] = {}
            skipped: list[str] = []  # no function to probe (a method, no source)
            missing: list[str] = []  # some writer's reply is not cached (--no-model)
            for row in rows:
                problem = (humaneval_problem(row, Path(empty)) if mode == "weak"
                           else heldout_problem(row))
                if problem is None:
                    skipped.append(choosers._task(row))
                    continue
                checks = checks_for(problem, writers, replies)
                if args.generate_only:
                    continue
                if set(checks) != set(writers):  # a writer's reply is not cached yet
                    missing.append(problem.task)
                if problem.workspace not in boxes:
                    from plancode.testing.sandbox import Sandbox

                    boxes[problem.workspace] = Sandbox(problem.workspace)
                studied[problem.task] = study_row(row, problem, checks,
                                                  boxes[problem.workspace])
            for box in boxes.values():
                box.close()  # type: ignore[attr-defined]
            if args.generate_only:
                continue
            done = list(studied.values())
            combos = [w for w in writers] + [f"static+{w}" for w in writers if w != "static"]
            report["modes"][mode] = {
                "pools": len(rows), "studied": len(done), "skipped": skipped,
                "missing": missing,
                "contested": sum(s["contested"] for s in done),
                "pools_per_writer": {w: sum(w in s["writers"] for s in done) for w in writers},
                "by_kind": {w: kind_stats(done, w) for w in writers},
                # the same, on the pools every writer wrote checks for
                "common_pools": len(common := [s for s in done
                                               if set(writers) <= set(s["writers"])]),
                "by_kind_common": {w: kind_stats(common, w) for w in writers},
                "by_detail": {w: kind_stats(done, w, "detail") for w in writers},
                "replies": reply_stats(args.cache, list(studied), writers),
                "choosers": chooser_stats([r for r in rows if choosers._task(r) in studied],
                                          studied, combos),
                "checks": done}
            print_mode(mode, report["modes"][mode])
    if args.generate_only:
        return 0
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    if args.plot:
        plot(report, args.plot)
    return 0


def print_mode(mode: str, m: dict) -> None:
    print(f"\n{mode}: {m['studied']} of {m['pools']} pools studied ({m['contested']} contested);"
          f" pools per writer: {m['pools_per_writer']}")
    print(f"  {'writer':20s} {'kind':9s} {'made':>5s} {'drop':>5s} {'multi':>5s} "
          f"{'separ':>5s} {'wrong':>5s} {'useful':>6s}")
    for writer, kinds in m["by_kind"].items():
        for kind in [*pc.KINDS, "all"]:
            if kind in kinds:
                st = kinds[kind]
                print(f"  {writer:20s} {kind:9s} {st['made']:5d} {st['dropped']:5d} "
                      f"{st['on_multi']:5d} {st['separates']:5d} {st['wrong']:5d} "
                      f"{st['useful']:6d}")
    print(f"  on the {m['common_pools']} pools every writer checked:")
    for writer, kinds in m["by_kind_common"].items():
        st = kinds.get("all")
        if st:
            print(f"  {writer:20s} {'all':9s} {st['made']:5d} {st['dropped']:5d} "
                  f"{st['on_multi']:5d} {st['separates']:5d} {st['wrong']:5d} "
                  f"{st['useful']:6d}")
    for writer, st in m.get("replies", {}).items():
        print(f"  {writer}: {st['replies']} replies, median {st['median_tokens']} tokens, "
              f"{st['cut_at_limit']} cut at the limit, median {st['median_seconds']} s")
    print("  choosers (right / right on contested pools):")
    for combo, st in m["choosers"].items():
        cells = "  ".join(f"{k} {v}/{st['right_on_contested'][k]}"
                          for k, v in st["right"].items())
        print(f"    {combo:30s} {st['pools']:3d} pools  {cells}")


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(report["modes"])
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4), squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=True):
        m = report["modes"][mode]
        labels, sep, wrong = [], [], []
        for writer, kinds in m["by_kind"].items():
            for kind in pc.KINDS:
                st = kinds.get(kind)
                if st and st["kept"]:
                    labels.append(f"{writer.replace('qwen2.5-coder-', '')}\n{kind}")
                    sep.append(st["separates"] / max(st["on_multi"], 1))
                    wrong.append(st["wrong"] / st["kept"])
        xs = range(len(labels))
        ax.bar([x - 0.2 for x in xs], sep, 0.4, label="separates (of checks on 2+ candidates)")
        ax.bar([x + 0.2 for x in xs], wrong, 0.4, label="wrong (a hidden-right one fails)")
        ax.set_xticks(list(xs), labels, fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title(f"{mode}: {m['studied']} pools")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
