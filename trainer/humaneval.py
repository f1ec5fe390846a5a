"""HumanEval through plancode's own modes: one runner for ``plancode eval`` and the benchmark.

Modes, each on the same problems with the same engine, each from a cold KV cache:

* ``direct``  the model's greedy code for the prompt (no plan, no tests);
* ``plan``    greedy plan, then greedy code following it (no tests);
* ``select``  plancode's pipeline: candidates ranked on the *docstring examples only* (the
  "user's tests"); the hidden HumanEval tests only score.

Every program runs in plancode's sandbox. Each row also carries the body the mode wrote, so
CodeBLEU's syntax and data-flow match against the canonical solution can be computed.
HumanEval is evaluation data only (``trainer.decontam`` keeps it out of training).
"""

from __future__ import annotations

import sys
import tempfile
import textwrap
import time
from pathlib import Path

from server.analysis.functions import FunctionInfo, find_function
from server.analysis.splice import SpliceError, splice
from server.engine.types import SamplingParams
from server.pipeline import Pipeline
from server.pipeline import candidates as cands
from server.testing.sandbox import Sandbox
from server.testing.types import TestCase
from trainer.decontam import load_humaneval

MODES = ("direct", "plan", "select")


def def_line(text: str, entry: str) -> int | None:
    """The 0-based line of ``def entry(`` at the top level of ``text``."""
    return next((i for i, line in enumerate(text.splitlines())
                 if line.startswith(f"def {entry}(")), None)


def target(problem: dict, text: str) -> FunctionInfo | None:
    """The entry-point function in ``text`` (a whole module)."""
    line = def_line(text, problem["entry_point"])
    return find_function(text, line) if line is not None else None


def body_of(problem: dict, text: str | None) -> str:
    """The entry point's body in ``text``, dedented ('' when absent)."""
    info = target(problem, text) if text else None
    if info is None or text is None:
        return ""
    return textwrap.dedent(text[info.body_start:info.body_end])


def reference_body(problem: dict) -> str:
    return body_of(problem, problem["prompt"] + problem["canonical_solution"])


def score(workspace: Path, problem: dict, text: str | None, isolation: str) -> bool:
    """Run the hidden tests against the file ``text``; True when they pass."""
    if text is None:
        return False
    hidden = (f"from problem import *\n\n{problem['test']}\n\n"
              f"def test_hidden():\n    check({problem['entry_point']})\n")
    with Sandbox(workspace, isolation=isolation, timeout=20.0) as box:
        run = box.run_tests({"problem.py": text, "test_hidden.py": hidden},
                            [TestCase("test_hidden.py::test_hidden", "pytest", "test_hidden.py",
                                      "hidden")])
    return run.all_passed


def single(engine, problem: dict, strategy: str, max_tokens: int) -> dict:
    source = problem["prompt"]
    info = target(problem, source)
    assert info is not None
    start = time.perf_counter()
    cand = cands.generate(engine, info.problem, 0, strategy, None,
                          SamplingParams(max_tokens=max_tokens), 0.0, None, info.context)
    seconds = time.perf_counter() - start
    try:
        text = splice(source, info, cand.code).text if cand.code else None
    except SpliceError:
        text = None
    return {"text": text, "seconds": seconds, "candidates": 1, "strategy": strategy}


def select(pipeline: Pipeline, problem: dict, workspace: Path) -> dict:
    source = problem["prompt"]
    start = time.perf_counter()
    result = pipeline.run(workspace / "problem.py", def_line(source, problem["entry_point"]),
                          source=source, root=workspace)
    chosen = result.chosen
    return {
        "text": chosen.spliced_text if chosen else None,
        "seconds": time.perf_counter() - start,
        "candidates": len(result.candidates),
        "strategy": chosen.strategy if chosen else None,
        "tests_source": result.tests_source,
        "user_tests": len(result.tests),
        "passed_examples": bool(chosen and chosen.all_passed),
        "isolation": result.isolation,
    }


def problems(start: int = 0, end: int = 164, tasks: list[int] | None = None) -> list[dict]:
    chosen = load_humaneval()[start:end]
    if tasks:
        chosen = [p for p in chosen if int(p["task_id"].split("/")[1]) in tasks]
    return chosen


def run(pipeline: Pipeline, chosen: list[dict], modes: tuple[str, ...] | list[str],
        max_tokens: int, log: bool = True) -> list[dict]:
    """One row per problem: per mode whether the hidden tests passed, time, and the body."""
    engine = pipeline.engine
    rows = []
    for p in chosen:
        row: dict = {"task_id": p["task_id"]}
        with tempfile.TemporaryDirectory(prefix="plancode-he-") as tmp:
            ws = Path(tmp)
            (ws / "problem.py").write_text(p["prompt"])
            (ws / "pyproject.toml").write_text("[project]\nname = 'problem'\n")
            for mode in modes:
                engine.reset_cache()  # every mode starts cold: no mode profits from another
                if mode == "select":
                    out = select(pipeline, p, ws)
                else:
                    strategy = cands.DIRECT if mode == "direct" else cands.PLAN_GREEDY
                    out = single(engine, p, strategy, max_tokens)
                text = out.pop("text")
                out["body"] = body_of(p, text)
                out["passed"] = score(ws, p, text, pipeline.settings.isolation)
                row[mode] = out
        rows.append(row)
        if log:
            print(f"{p['task_id']}: " + " ".join(
                f"{m}={'PASS' if row[m]['passed'] else 'fail'}({row[m]['seconds']:.1f}s)"
                for m in modes), file=sys.stderr, flush=True)
    return rows
