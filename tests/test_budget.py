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
from tests.test_selection import FIRST_LINE_ONLY, RIGHT_A, RIGHT_B, ScriptedEngine, project

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


def test_at_the_budget_the_first_passing_answer_comes_back(tmp_path: Path, monkeypatch):
    """Weak tests (one visible test): the pool would take 8 x 2 s; the budget is 10 s, time
    enough for the first candidate's test run even on a busy machine. No reserve for the
    choice here, so the deadline itself stops the pool (as it does when the choice overruns)."""
    from plancode.pipeline import pool as pool_module

    monkeypatch.setattr(pool_module, "CHOICE_RESERVE_SECONDS", 0.0)
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


def _weak_pool_run(tmp_path: Path, monkeypatch, reserve: float):
    """A weak-tests pool that would take 12 x 1.5 s against a 14-s budget: the greedy answer
    passes the one visible test and is wrong (FIRST_LINE_ONLY), most others are right."""
    from plancode.pipeline import pool as pool_module

    monkeypatch.setattr(pool_module, "CHOICE_RESERVE_SECONDS", reserve)
    file = project(tmp_path)
    engine = ScriptedEngine([FIRST_LINE_ONLY, RIGHT_A, RIGHT_B, RIGHT_A] + [RIGHT_B] * 8,
                            delay=1.5)
    settings = Settings.from_mapping({"candidates": 12, "parallel_candidates": 1,
                                      "escalate_model": "", "repair_rounds": 0})
    start = time.monotonic()
    result = Pipeline(engine, settings).run(file, 3, budget=14.0)
    return result, time.monotonic() - start


def test_the_end_of_the_budget_is_kept_for_the_choice(tmp_path: Path, monkeypatch):
    """Once a candidate passed, the pool stops growing at the choice's reserve, so the
    behaviour probe runs and the right group wins over the wrong greedy answer."""
    result, took = _weak_pool_run(tmp_path, monkeypatch, reserve=6.0)
    assert took < 14.0 + SLACK, took
    ag = result.agreement
    assert ag is not None and ag.selected and not ag.error, ag
    assert 2 <= len(result.candidates) < 12, "the pool stopped early, after a pass"
    assert result.chosen is not None and "lines[0]" not in result.chosen.code
    assert result.status == "passes-tests"


def test_without_a_reserve_the_budget_cancels_the_choice(tmp_path: Path, monkeypatch):
    """The behaviour before the reserve (HumanEval/109 and 124 lost this way at 55 s): the
    pool runs to the deadline, the probe is cancelled, the greedy answer stands."""
    result, took = _weak_pool_run(tmp_path, monkeypatch, reserve=0.0)
    assert took < 14.0 + SLACK, took
    assert result.budget_reached
    ag = result.agreement
    assert ag is not None and not ag.selected
    assert result.chosen is not None and "lines[0]" in result.chosen.code


def test_with_a_single_passer_the_pool_keeps_growing(tmp_path: Path, monkeypatch):
    """One candidate passes and the rest fail: there is nothing to choose between, so the
    reserve does not stop the pool (it used to idle: the realistic project's merge_lines
    ended 12 s early with the 1.5B's only passer and its batch cut)."""
    from plancode.pipeline import pool as pool_module

    monkeypatch.setattr(pool_module, "CHOICE_RESERVE_SECONDS", 6.0)
    file = project(tmp_path)
    wrong = "def order_total(lines):\n    return 1\n"
    engine = ScriptedEngine([RIGHT_A] + [wrong] * 11, delay=1.5)
    settings = Settings.from_mapping({"candidates": 12, "parallel_candidates": 1,
                                      "escalate_model": "", "repair_rounds": 0})
    start = time.monotonic()
    result = Pipeline(engine, settings).run(file, 3, budget=14.0)
    assert time.monotonic() - start < 14.0 + SLACK
    assert result.budget_reached, "past the reserve's 8 s: decoding until the deadline"
    assert len(result.candidates) >= 7, len(result.candidates)
    assert result.chosen is not None and result.chosen.index == 0
