"""How many tests plancode checks out of process: value-shaped tests, and split runs.

    python -m benchmarks.value_shapes [--sources DIR] [--json OUT] [--agree N] [--decided N]

Counts, with ``plancode.testing.shapes`` (no model, no sandbox, nothing run), the tests the
pipeline would run on:

* **textstats**: every function of ``examples/textstats``, the tests discovery finds for it
  (doctests, pytest tests) and its docstring's prose examples, as ``Pipeline._user_tests``;
* **HumanEval (docstring)**: each problem's prompt as ``problem.py``, its doctest and prose
  examples (the ``select`` mode's tests), and **HumanEval (first example)**: the one weak test
  of the ``weak`` mode (``trainer.humaneval.first_example_test``);
* **held-out**: the held-out mined problems of ``distill/real`` (their own codebases' tests),
  read from the run's problems blob; ``--sources`` is the folder holding the unpacked
  sdists (``benchmarks/fetch_sources.sh`` puts them in ``data/src``).

Prints one row per set (tests, value-shaped, share) and the commonest reasons a test keeps
the in-process plugin; docs/security.md quotes the numbers. Since the split run (issue 31,
``testing/split_run.py``) the rest of a module-level function's tests are judged out of
process too, unless a call cannot cross: ``split_eligible`` counts, statically, the tests
that are not value-shaped but whose function allows a split run. ``--agree N`` also runs, for
the first N groups of each set that hold a value-shaped test, the code as it is (HumanEval's
canonical solutions, the mined codebases' own functions, textstats' stubs) through the real
sandbox twice — values checked out of process, then every test under pytest and the plugin —
and counts the tests whose outcome differs between the two. ``--decided N`` runs the first N
groups (0: none, -1: all) of the held-out set the way the pipeline does now (value runner and
split run, with the function under test named) and all in process, and counts where each
verdict was decided, the tests that fell back in process and why, and the outcomes that
differ between the two ways.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import sys
import tempfile
from pathlib import Path

from plancode.analysis.facts import facts_of
from plancode.analysis.functions import find_function
from plancode.testing import shapes, split_run
from plancode.testing.discovery import WorkspaceIndex, discover, module_name
from plancode.testing.prose_examples import docstring_tests
from plancode.testing.types import TestCase

REPO = Path(__file__).resolve().parent.parent
HELDOUT_BLOB = "3b71d103a128d592"  # distill/real/data/problems.jsonl (distill/real/blobs.json)


def agree(found: list[tuple[Path, dict[str, str], list[TestCase]]], limit: int) -> dict:
    """Outcomes of the two ways of checking, on the code as it is, for ``limit`` groups."""
    from plancode.testing.sandbox import Sandbox

    runs = same = 0
    differ: list[str] = []
    for root, files, tests in found:
        shaped = shapes.recognise(root, files, tests).tests
        if not shaped:
            continue
        if runs >= limit:
            break
        runs += 1
        with Sandbox(root, timeout=30.0) as box:
            out = box.run_tests(files, tests)
            box.check_values = False
            plugin = box.run_tests(files, tests)
        for a, b in zip(out.verdicts, plugin.verdicts, strict=True):
            if a.id not in shaped:
                continue
            if a.outcome == b.outcome:
                same += 1
            else:
                differ.append(f"{a.id}: {a.outcome} ({a.message[:80]}) / in process "
                              f"{b.outcome} ({b.message[:80]})")
    return {"groups": runs, "same": same, "differ": len(differ), "differences": differ}


def decided(found: list[tuple], limit: int) -> dict:
    """Where the verdicts of the first ``limit`` groups (-1: all) are decided when run as the
    pipeline runs them, and whether their outcomes match the all-in-process run."""
    from plancode.testing.sandbox import Sandbox

    counts: collections.Counter[str] = collections.Counter()
    why: collections.Counter[str] = collections.Counter()
    differ: list[str] = []
    runs = 0
    for root, files, tests, target in found:
        if 0 <= limit <= runs:
            break
        runs += 1
        with Sandbox(root, timeout=60.0) as box:
            now = box.run_tests(files, tests, target=target)
            box.check_values = False
            before = box.run_tests(files, tests, target=target)
        for a, b in zip(now.verdicts, before.verdicts, strict=True):
            counts[a.checked or "none"] += 1
            counts["tests"] += 1
            if a.outcome != b.outcome:
                differ.append(f"{a.id}: {a.outcome} ({a.message[:80]}) / in process "
                              f"{b.outcome} ({b.message[:80]})")
        for flag in now.flags:
            if flag.startswith("checked in process: "):
                why[_fallback_reason(flag)] += 1
    return {"groups": runs, **counts, "fell_back": sum(why.values()),
            "fallback_why": dict(why.most_common(10)),
            "differ": len(differ), "differences": differ}


def _fallback_reason(flag: str) -> str:
    """"checked in process: TEST (why)" -> why, without its specifics past the type name."""
    text = flag.split(" (", 1)[1].removesuffix(")") if " (" in flag else flag
    text = text.removeprefix("cannot check this call out of process: ")
    for cut in ("returned ", "argument is not plain data (", "uses the ", "changed ",
                "names "):
        if cut in text:
            head, _, rest = text.partition(cut)
            return head + cut + rest.split(" ")[0].split(",")[0][:40]
    return text[:80]


def _row(name: str, found: list[tuple[Path, dict[str, str], list[TestCase]]],
         targets: list[tuple[str, str] | None] | None = None) -> dict:
    """Recognise every (root, files, tests) group and count; with ``targets`` (one per group:
    the function under test), also the tests a split run can judge out of process."""
    total = shaped = split = 0
    kinds: collections.Counter[str] = collections.Counter()
    shaped_kinds: collections.Counter[str] = collections.Counter()
    why: collections.Counter[str] = collections.Counter()
    split_why: collections.Counter[str] = collections.Counter()
    for k, (root, files, tests) in enumerate(found):
        result = shapes.recognise(root, files, tests)
        target = targets[k] if targets else None
        unsplittable = split_run.not_splittable(root, target) if targets else "no function named"
        for test in tests:
            total += 1
            kinds[test.kind] += 1
            if test.id in result.tests:
                shaped += 1
                shaped_kinds[test.kind] += 1
            else:
                why[_reason(result.why_not.get(test.id, "?"))] += 1
                if unsplittable:
                    split_why[unsplittable] += 1
                else:
                    split += 1
    row = {"set": name, "tests": total, "value_shaped": shaped,
           "share": round(shaped / total, 3) if total else 0.0,
           "by_kind": {k: f"{shaped_kinds[k]}/{n}" for k, n in sorted(kinds.items())},
           "why_not": dict(why.most_common(8)), "groups": found}
    if targets:
        row.update(split_eligible=split, out_of_process_share=round(
            (shaped + split) / total, 3) if total else 0.0,
            why_not_split=dict(split_why.most_common(5)),
            targets=targets)
    return row


def _reason(text: str) -> str:
    """A reason without its specifics (names, values), for counting."""
    for cut in (" is not a literal", " is decorated", " sets up", " has bases", " has "):
        if cut in text:
            return "…" + cut + text.split(cut, 1)[1][:30]
    return text.split(":")[0][:60]


def _function_tests(root: Path, file: Path, index: WorkspaceIndex
                    ) -> list[tuple[Path, dict[str, str], list[TestCase], tuple[str, str]]]:
    """Per top-level function of ``file``: its tests as the pipeline builds them, and the
    function (workspace-relative file, qualified name)."""
    source = file.read_text(encoding="utf-8")
    out = []
    for number, line in enumerate(source.splitlines()):
        if not line.startswith("def "):
            continue
        info = find_function(source, number)
        if info is None:
            continue
        facts = facts_of(info)
        tests = discover(root, file, info.qualname, index, source=source, refresh=False)
        module = module_name(root, file)
        files: dict[str, str] = {}
        if module:
            prose, files = docstring_tests(module, facts.name, list(facts.prose))
            tests = tests + prose
        if tests:
            out.append((root, files, tests, (file.relative_to(root).as_posix(),
                                             info.qualname)))
    return out


def textstats() -> dict:
    root = REPO / "examples" / "textstats"
    index = WorkspaceIndex(root)
    index.refresh()
    found = []
    for file in sorted((root / "textstats").glob("*.py")):
        found += _function_tests(root, file, index)
    # a test shared by several functions is one test
    unique: dict[str, tuple] = {}
    for root_, files, tests, target in found:
        for test in tests:
            unique.setdefault(test.id, (root_, files, [test], target))
    groups = list(unique.values())
    return _row("examples/textstats", [g[:3] for g in groups], [g[3] for g in groups])


def humaneval(directory: Path) -> tuple[dict, dict]:
    """Each problem in its own workspace under ``directory``: its prompt and canonical
    solution as ``problem.py``."""
    from plancode.trainer.decontam import load_humaneval
    from plancode.trainer.humaneval import first_example_test

    docstring, weak = [], []
    targets: list[tuple[str, str] | None] = []
    for problem in load_humaneval():
        ws = directory / problem["task_id"].replace("/", "_")
        ws.mkdir()
        (ws / "pyproject.toml").write_text("[project]\nname = 'problem'\n")
        file = ws / "problem.py"
        file.write_text(problem["prompt"] + problem["canonical_solution"])
        index = WorkspaceIndex(ws)
        index.refresh()
        for root, files, tests, target in _function_tests(ws, file, index):
            own = [t for t in tests if t.kind in ("doctest", "docstring")
                   and (t.kind == "docstring" or t.id.endswith("." + problem["entry_point"]))]
            if own:
                docstring.append((root, files, own))
                targets.append(target)
        text = first_example_test(problem)
        if text is not None:
            rel = "tests/test_visible.py"
            weak.append((ws, {rel: text}, [TestCase(f"{rel}::test_first_example", "pytest",
                                                    rel, "test_first_example")]))
    return _row("HumanEval docstring examples", docstring, targets), \
        _row("HumanEval first example (weak)", weak,
             [("problem.py", problem["entry_point"]) for problem in load_humaneval()
              if first_example_test(problem) is not None])


def heldout(sources: Path) -> dict:
    path = REPO / "distill" / "blobs" / f"{HELDOUT_BLOB}.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    found = []
    targets: list[tuple[str, str] | None] = []
    missing = set()
    for row in rows:
        if row["split"] != "heldout" or "root" not in row["meta"]:
            continue
        root = sources / Path(row["meta"]["root"]).name
        if not root.is_dir():
            missing.add(root.name)
            continue
        tests = [TestCase(t["id"], t["kind"], t["file"], t["name"])
                 for t in row["meta"].get("tests", [])]
        if tests:
            found.append((root, {}, tests))
            targets.append((row["meta"]["file"], row["meta"]["qualname"]))
    row = _row("held-out mined problems (distill/real)", found, targets)
    if missing:
        row["missing_sources"] = sorted(missing)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sources", type=Path, default=REPO / "data" / "src",
                    help="folder with the unpacked sdists of the mined codebases")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--agree", type=int, default=0, metavar="N",
                    help="run N groups per set both ways and compare the outcomes")
    ap.add_argument("--decided", type=int, default=0, metavar="N",
                    help="run N held-out groups (-1: all) as the pipeline does and in process")
    ap.add_argument("--only-heldout", action="store_true", help="skip the other sets")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="plc-shapes-") as d:
        rows = [heldout(args.sources)] if args.only_heldout else \
            [textstats(), *humaneval(Path(d)), heldout(args.sources)]
        for r in rows:
            groups = r.pop("groups")
            targets = r.pop("targets", None)
            if args.agree:
                r["agreement"] = agree(groups, args.agree)
            if args.decided and targets:
                r["decided"] = decided([(*g, t) for g, t in zip(groups, targets, strict=True)],
                                       args.decided)
    for r in rows:
        print(f"{r['set']:42} {r['value_shaped']:5}/{r['tests']:<5} {100 * r['share']:5.1f}%  "
              f"{r['by_kind']}")
        for reason, n in r["why_not"].items():
            print(f"    {n:5}  {reason}")
        if "split_eligible" in r:
            print(f"    + {r['split_eligible']} more by a split run: "
                  f"{r['value_shaped'] + r['split_eligible']}/{r['tests']} "
                  f"({100 * r['out_of_process_share']:.1f}%) out of process at most; "
                  f"not split: {r['why_not_split']}")
        if "decided" in r:
            d = r["decided"]
            print(f"    run on {d['groups']} groups: {d.get('out-of-process', 0)} of "
                  f"{d.get('tests', 0)} decided out of process, {d.get('in-process', 0)} in "
                  f"process ({d['fell_back']} fell back from a split run); {d['differ']} "
                  "outcomes differ from the all-in-process run")
            for reason, n in d["fallback_why"].items():
                print(f"      {n:4}  fell back: {reason}")
            for line in d["differences"][:15]:
                print(f"      {line}")
        if r.get("missing_sources"):
            print(f"    sources not found: {', '.join(r['missing_sources'])}")
        if "agreement" in r:
            a = r["agreement"]
            print(f"    both ways on {a['groups']} groups: {a['same']} value-shaped tests "
                  f"alike, {a['differ']} differ")
            for line in a["differences"][:10]:
                print(f"      {line}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
