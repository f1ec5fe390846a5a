"""A realistic project with weak visible tests and strict hidden tests, run the way a user would.

    python -m benchmarks.realistic [--model qwen2.5-coder-0.5b] [--label after]
                                   [--functions slugify median] [--check]

``benchmarks/realistic/project`` is a small package (``shop/``) of nine documented functions
with empty bodies and ``tests/test_visible.py``: one assert per function, as people often have.
There is no project marker (no pyproject.toml, setup.cfg, pytest.ini or .git), on purpose.

For every function the runner calls ``plancode complete --write --json shop/MOD.py:LINE`` in a
temporary copy of the project (cwd = the copy, the functions in file order, so later functions
see the earlier ones written), then copies ``hidden/test_hidden.py`` in, which was never in
the workspace plancode saw, and runs it: one strict hidden test per function. A function
counts as correct when its hidden test passes. Every candidate of every pool (``--pool``) is
then tested the same way on its own, so a run also says how often the pool held a right
answer the choice missed.

``--check`` runs the hidden tests against ``hidden/reference`` instead (they must all pass) and
against the empty project (they must all fail). Results: one JSON file per run in
benchmarks/results/realistic-LABEL.json and a printed table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PROJECT = HERE / "project"
HIDDEN = HERE / "hidden" / "test_hidden.py"
REFERENCE = HERE / "hidden" / "reference"
MODULES = ("textutil", "orders", "stats", "timeutil", "inventory")


def targets(root: Path) -> list[tuple[str, str, int]]:
    """(function, relative path, 1-based line of its def) in file order."""
    out = []
    for mod in MODULES:
        rel = f"shop/{mod}.py"
        for i, line in enumerate((root / rel).read_text().splitlines(), 1):
            if m := re.match(r"def (\w+)\(", line):
                out.append((m.group(1), rel, i))
    return out


def hidden_outcomes(root: Path) -> dict[str, str]:
    """Run the hidden tests in ``root``; outcome per function name."""
    shutil.copy(HIDDEN, root / "test_hidden_plancode_bench.py")
    report = root / "hidden-report.xml"
    timeout = ["--timeout=20"] if importlib.util.find_spec("pytest_timeout") else []
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *timeout,
                    f"--junitxml={report}", "test_hidden_plancode_bench.py"],
                   cwd=root, capture_output=True, text=True, timeout=300)
    outcomes: dict[str, str] = {}
    text = report.read_text() if report.exists() else ""
    for m in re.finditer(r'<testcase [^>]*name="test_(\w+)"[^>]*?(/>|>(.*?)</testcase>)', text,
                         re.S):
        body = m.group(3) or ""
        outcomes[m.group(1)] = ("failed" if "<failure" in body or "<error" in body
                                else "skipped" if "<skipped" in body else "passed")
    return outcomes


def check() -> int:
    ok = True
    with tempfile.TemporaryDirectory(prefix="plancode-realistic-") as tmp:
        ref = Path(tmp) / "ref"
        shutil.copytree(REFERENCE, ref)
        got = hidden_outcomes(ref)
        print("reference:", got)
        ok &= len(got) == len(targets(PROJECT)) and set(got.values()) == {"passed"}
        empty = Path(tmp) / "empty"
        shutil.copytree(PROJECT, empty)
        got = hidden_outcomes(empty)
        print("empty bodies:", got)
        ok &= set(got.values()) == {"failed"}
    print("check OK" if ok else "check FAILED")
    return 0 if ok else 1


def complete_one(root: Path, rel: str, line: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "plancode", "complete", f"{rel}:{line}", "--write", "--json",
           "--pool", "--model", args.model, "--candidates", str(args.candidates)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=args.timeout,
                          env={**_env(), "PYTHONPATH": str(REPO)})
    seconds = time.perf_counter() - start
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {"status": "crashed", "seconds": seconds, "stderr": proc.stderr[-2000:]}
    chosen = data.get("chosen") or {}
    return {
        "status": data.get("status"),
        "tests_source": data.get("tests_source"),
        "user_tests": len([t for t in data.get("tests", []) if t["kind"] != "generated"]),
        "root": (data.get("root") or {}).get("reason") if isinstance(data.get("root"), dict)
        else None,
        "strategy": chosen.get("strategy"),
        "candidates": len(data.get("candidates", [])),
        "strength": data.get("strength"),
        "code": chosen.get("code", ""),
        "seconds": round(seconds, 1),
        "timings": data.get("timings", {}),
        "pool": [_summary(c) for c in data.get("candidates", [])],
    }


def _summary(cand: dict) -> dict:
    """What a run's candidate did and its code: where the time went, and what
    ``hidden_of_pools`` tests."""
    keys = ("index", "strategy", "generate_seconds", "test_seconds", "tests_passed",
            "tests_failed", "error", "group", "code")
    return {k: cand[k] for k in keys if k in cand}


def hidden_of_pools(root: Path, rows: dict[str, dict]) -> None:
    """Each candidate's own hidden outcome (``hidden`` on its pool entry): its code spliced
    into a copy of the finished project, so the pools' best is known beside the choice."""
    from plancode.analysis.functions import functions
    from plancode.analysis.splice import SpliceError, splice

    skip = shutil.ignore_patterns("__pycache__", "hidden-report.xml",
                                  "test_hidden_plancode_bench.py")
    for name, rel, _ in targets(root):
        for cand in rows.get(name, {}).get("pool", []):
            if not cand.get("code") or cand.get("error"):
                continue
            with tempfile.TemporaryDirectory(prefix="plancode-realistic-pool-") as tmp:
                copy = Path(tmp) / "project"
                shutil.copytree(root, copy, ignore=skip)
                source = (copy / rel).read_text()
                info = next(f for f in functions(source) if f.qualname == name)
                try:
                    (copy / rel).write_text(splice(source, info, cand["code"]).text)
                except SpliceError:
                    continue
                cand["hidden"] = hidden_outcomes(copy).get(name, "missing")


def _env() -> dict[str, str]:
    return dict(os.environ)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--label", default="run")
    ap.add_argument("--functions", nargs="*", help="only these functions")
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds per function")
    ap.add_argument("--keep", type=Path, help="copy the completed project here")
    ap.add_argument("--check", action="store_true",
                    help="only check the hidden tests against the reference and empty bodies")
    args = ap.parse_args()
    if args.check:
        return check()
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="plancode-realistic-") as tmp:
        root = Path(tmp) / "project"
        shutil.copytree(PROJECT, root)
        for name, rel, _ in targets(PROJECT):
            if args.functions and name not in args.functions:
                continue
            line = next(ln for n, r, ln in targets(root) if n == name)
            rows[name] = complete_one(root, rel, line, args)
            print(f"{name}: {rows[name]['status']} ({rows[name].get('tests_source')}, "
                  f"{rows[name].get('seconds')}s)", file=sys.stderr, flush=True)
        hidden = hidden_outcomes(root)
        hidden_of_pools(root, rows)
        if args.keep:
            shutil.copytree(root, args.keep, dirs_exist_ok=True)
    for name, row in rows.items():
        row["hidden"] = hidden.get(name, "missing")
    correct = sum(r["hidden"] == "passed" for r in rows.values())
    in_pool = sum(any(c.get("hidden") == "passed" for c in r.get("pool", []))
                  for r in rows.values())
    out = REPO / "benchmarks" / "results" / f"realistic-{args.label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": args.model, "candidates": args.candidates,
                               "date": time.strftime("%Y-%m-%d %H:%M"), "correct": correct,
                               "of": len(rows), "right_in_pool": in_pool, "rows": rows},
                              indent=1))
    print(f"\n{'function':<16} {'status':<11} {'tests':<10} {'hidden':<8} seconds")
    for name, row in rows.items():
        print(f"{name:<16} {row['status'] or '-':<11} {row.get('tests_source') or '-':<10} "
              f"{row['hidden']:<8} {row['seconds']}")
    print(f"\nhidden tests passed: {correct}/{len(rows)}; a right candidate in the pool: "
          f"{in_pool}/{len(rows)}  ({out.relative_to(REPO)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
