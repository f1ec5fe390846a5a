"""A run's hard time budget: at the deadline the best answer so far comes back, says so, and
nothing (decoding, a hanging test, repairs) outlives it by more than 2 s."""

from __future__ import annotations

import time
from pathlib import Path

from plancode.config import Settings
from plancode.engine.llama_engine import LlamaEngine
from plancode.engine.types import CancelToken
from plancode.pipeline import Pipeline
from plancode.pipeline.budget import Deadline
from tests.test_selection import FIRST_LINE_ONLY, RIGHT_A, ScriptedEngine, project

SLACK = 2.0  # seconds a run may outlive its budget (issue 29)


def test_deadline_is_a_cancel_token_that_reads_the_clock():
    parent = CancelToken()
    d = Deadline(0.2, parent)
    child = CancelToken(d)
    assert not d.cancelled and not child.cancelled and d.allows(0.1) and not d.allows(5)
    time.sleep(0.25)
    assert d.expired and d.cancelled and child.cancelled and d.remaining() == 0.0
    early = Deadline(60, parent)
    parent.cancel()
    assert early.cancelled and not early.expired, "a user's cancel is not the budget"


def test_at_the_budget_the_first_passing_answer_comes_back(tmp_path: Path):
    """Weak tests (one visible test): the pool would take 8 x 2 s; the budget is 10 s, time
    enough for the first candidate's test run even on a busy machine."""
    file = project(tmp_path)
    engine = ScriptedEngine([FIRST_LINE_ONLY] + [RIGHT_A] * 7, delay=2.0)
    settings = Settings.from_mapping({"candidates": 8, "parallel_candidates": 1,
                                      "escalate_model": "", "repair_rounds": 2})
    updates = []
    start = time.monotonic()
    result = Pipeline(engine, settings).run(file, 3, budget=10.0, on_update=updates.append)
    took = time.monotonic() - start
    assert took < 10.0 + SLACK, took
    assert result.budget_reached and result.budget == 10.0
    assert result.chosen is not None and result.chosen.index == 0
    assert result.status == "passes-tests" and result.to_json()["budget_reached"]
    assert [u.chosen.index for u in updates] == [0], "shown the moment its test passed"
    assert updates[0].first_answer_seconds is not None and updates[0].first_answer_seconds < 10


def test_a_hanging_test_does_not_outlive_the_budget(tmp_path: Path):
    file = project(tmp_path)
    (tmp_path / "tests" / "test_slow.py").write_text(
        "import time\nfrom shop.orders import order_total\n\n\ndef test_slow():\n"
        "    time.sleep(60)\n    assert order_total([]) == 0\n")
    engine = ScriptedEngine([RIGHT_A] * 4)
    settings = Settings.from_mapping({"candidates": 2, "test_timeout": 120,
                                      "escalate_model": "", "repair_rounds": 2})
    start = time.monotonic()
    result = Pipeline(engine, settings).run(file, 3, budget=6.0)
    assert time.monotonic() - start < 6.0 + SLACK
    assert result.budget_reached and not result.passes_user_tests


def test_a_real_model_run_keeps_its_budget(tiny_engine: LlamaEngine, textstats: Path):
    """The tiny model never passes these tests: without a budget it would decode 8 candidates
    of 512 tokens and repair twice."""
    target = textstats / "textstats" / "numbers.py"
    line = next(i for i, text in enumerate(target.read_text().splitlines())
                if "def running_mean" in text)
    settings = Settings.from_mapping({"candidates": 8, "max_tokens": 512, "repair_rounds": 2,
                                      "escalate_model": ""})
    start = time.monotonic()
    result = Pipeline(tiny_engine, settings).run(target, line, budget=6.0)
    took = time.monotonic() - start
    assert took < 6.0 + SLACK, took
    assert result.timings["total"] < 6.0 + SLACK
    assert result.budget_reached or len(result.candidates) == 8 + 2
