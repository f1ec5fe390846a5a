"""Plan-then-code verified by tests: ranking logic, and the whole pipeline on real models."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from plancode.config import Settings
from plancode.engine.llama_engine import LlamaEngine
from plancode.engine.types import CancelToken
from plancode.pipeline import Candidate, Pipeline
from plancode.pipeline.candidates import schedule
from plancode.pipeline.ranking import best_by_tests, codet_score
from plancode.testing.isolation import CONFINING
from plancode.testing.types import RunResult, TestVerdict


def _run(*outcomes: str) -> RunResult:
    return RunResult([TestVerdict(f"t{i}", o) for i, o in enumerate(outcomes)], "bwrap", "", 0.1)


def _cand(i: int, run: RunResult | None, logprob: float = -0.5) -> Candidate:
    return Candidate(i, "plan-sampled", i, code="x", function_code="def f(): pass\n", run=run,
                     mean_logprob=logprob)


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if "__pycache__" in p.parts or ".pytest_cache" in p.parts:
            continue
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _line(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines()) if needle in line)


def test_schedule_orders_candidates_by_yield_per_second() -> None:
    """Direct answers first (cheapest, most often right), the greedy plan third."""
    assert schedule(5, 10) == [("direct-greedy", None), ("direct-sampled", 11),
                               ("plan-greedy", None), ("direct-sampled", 12),
                               ("plan-sampled", 13)]
    assert schedule(1, 0) == [("direct-greedy", None)]


def test_ranking_prefers_passes_then_agreement_then_logprob() -> None:
    a = _cand(0, _run("passed", "failed"), -0.1)
    b = _cand(1, _run("passed", "passed"), -0.9)
    c = _cand(2, _run("failed", "passed"), -0.2)
    assert best_by_tests([a, b, c], "user") is b
    d = _cand(3, _run("failed", "passed"), -0.9)  # agrees with c: c and d outrank a
    assert best_by_tests([a, c, d], "user") is c
    e = _cand(4, None)
    e.error = "does not parse"
    assert best_by_tests([e], "user") is None


def test_codet_scores_groups_of_agreeing_candidates() -> None:
    runs = [_cand(0, _run("passed", "failed", "failed")),
            _cand(1, _run("failed", "passed", "passed")),
            _cand(2, _run("failed", "passed", "passed"))]
    assert [codet_score(c, runs) for c in runs] == [1, 4, 4]
    assert best_by_tests(runs, "generated") in runs[1:]


def test_pipeline_with_the_tiny_model_reports_every_candidate(
    tiny_engine: LlamaEngine, textstats: Path
) -> None:
    settings = Settings.from_mapping({"candidates": 3, "max_tokens": 48, "repair_rounds": 1})
    target = textstats / "textstats" / "numbers.py"
    before = _tree_digest(textstats)
    events: list[str] = []
    result = Pipeline(tiny_engine, settings).run(
        target, _line(target, "def running_mean"), progress=lambda e, d: events.append(e))
    assert _tree_digest(textstats) == before, "the workspace is never written"
    assert result.function == "running_mean"
    assert [t.id for t in result.tests] == [
        "textstats/numbers.py::textstats.numbers.running_mean",
        "tests/test_numbers.py::test_running_mean",
        "tests/test_numbers.py::test_running_mean_empty",
    ]
    assert result.tests_source == "user" and result.isolation in CONFINING
    strategies = [c.strategy for c in result.candidates]
    assert strategies[:3] == ["direct-greedy", "direct-sampled", "plan-greedy"]
    for cand in result.candidates:
        assert cand.error or (cand.run is not None and len(cand.run.verdicts) == 3)
    assert {"discovered", "generating", "done"} <= set(events)
    data = json.loads(json.dumps(result.to_json()))
    assert data["status"] in {"verified", "failing", "no-candidate"}
    assert len(data["candidates"]) == len(result.candidates)


def test_pipeline_is_deterministic_for_a_seed(tiny_engine: LlamaEngine, textstats: Path) -> None:
    settings = Settings.from_mapping({"candidates": 3, "max_tokens": 40, "repair_rounds": 0,
                                      "seed": 5})
    target = textstats / "textstats" / "words.py"
    line = _line(target, "def slugify")
    first = Pipeline(tiny_engine, settings).run(target, line)
    second = Pipeline(tiny_engine, settings).run(target, line)
    assert [c.code for c in first.candidates] == [c.code for c in second.candidates]
    assert [c.outcome_vector() for c in first.candidates] == \
        [c.outcome_vector() for c in second.candidates]


def test_cancel_stops_the_pipeline_quickly(tiny_engine: LlamaEngine, textstats: Path) -> None:
    settings = Settings.from_mapping({"candidates": 8, "max_tokens": 400})
    target = textstats / "textstats" / "words.py"
    cancel = CancelToken()
    threading.Timer(1.0, cancel.cancel).start()
    start = time.monotonic()
    result = Pipeline(tiny_engine, settings).run(target, _line(target, "def top_words"),
                                                 cancel=cancel)
    assert time.monotonic() - start < 3.0
    assert len(result.candidates) < 8


@pytest.mark.slow
def test_function_without_tests_falls_back_to_model_written_tests(
    default_engine: LlamaEngine, tmp_path: Path
) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'calc'\n")
    (tmp_path / "calc.py").write_text(
        'def clamp(x: int, lo: int, hi: int) -> int:\n'
        '    """Return x limited to the range [lo, hi]."""\n')
    settings = Settings.from_mapping({"candidates": 2, "repair_rounds": 0})
    result = Pipeline(default_engine, settings).run(tmp_path / "calc.py", 0)
    assert result.tests_source == "generated" and result.status == "unverified"
    assert not result.verified
    assert all(t.kind == "generated" and "clamp(" in t.name for t in result.tests)
    assert not (tmp_path / "test_plancode_generated.py").exists()


@pytest.mark.slow
def test_default_model_implements_an_example_function_that_passes_its_tests(
    default_engine: LlamaEngine, textstats: Path
) -> None:
    target = textstats / "textstats" / "numbers.py"
    result = Pipeline(default_engine, Settings()).run(target, _line(target, "def median"))
    assert result.status == "verified" and result.chosen is not None
    assert result.stopped_early or len(result.candidates) == 1
    names = {v.id for v in result.chosen.run.verdicts if v.outcome == "passed"}
    assert "tests/test_numbers.py::test_median_empty_raises" in names
    # apply it and run the project's own test suite, outside plancode
    target.write_text(result.chosen.spliced_text)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_numbers.py", "-k", "median"],
                          cwd=textstats, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_configured_test_command_is_one_more_verdict(tiny_engine: LlamaEngine,
                                                     textstats: Path) -> None:
    settings = Settings.from_mapping({
        "candidates": 1, "max_tokens": 32, "repair_rounds": 0,
        "test_command": "python -c 'import textstats.numbers'"})
    target = textstats / "textstats" / "numbers.py"
    result = Pipeline(tiny_engine, settings).run(target, _line(target, "def median"))
    assert result.tests[-1].kind == "command"
    cand = result.candidates[0]
    if cand.run is not None:
        ids = [v.id for v in cand.run.verdicts]
        assert ids[-1] == "command: python -c 'import textstats.numbers'"
        assert len(ids) == len(result.tests)
