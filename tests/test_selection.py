"""Spec-driven selection: clustering on generated inputs, scored on model-written checks.

A scripted engine (canned replies, no model) stands in for the model, so the candidate sets
are hand-written; the sandbox, the probes and the pipeline are the real ones.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from plancode import prompts
from plancode.analysis.facts import facts_of
from plancode.analysis.functions import find_function
from plancode.config import Settings
from plancode.engine.types import CancelToken, Generation, SamplingParams
from plancode.pipeline import Pipeline, clustering, escalate, probe_inputs
from plancode.pipeline.agreement import is_weak
from plancode.pipeline.candidates import schedule, widen
from plancode.pipeline.probe_inputs import as_checks
from plancode.pipeline.probes import Behaviour
from plancode.pipeline.result import Candidate, PipelineResult
from plancode.testing.types import TestCase

MODULE = '''"""Orders."""


def order_total(lines):
    """Total of (sku, quantity, unit_cents) lines in cents; an empty order totals 0."""
'''
VISIBLE = ("from shop.orders import order_total\n\n\ndef test_total():\n"
           "    assert order_total([('a', 2, 150)]) == 300\n")
FIRST_LINE_ONLY = "def order_total(lines):\n    return lines[0][1] * lines[0][2]\n"
RIGHT_A = "def order_total(lines):\n    return sum(q * p for _, q, p in lines)\n"
RIGHT_B = ("def order_total(lines):\n    total = 0\n    for _sku, qty, price in lines:\n"
           "        total += qty * price\n    return total\n")
LAST_LINE_ONLY = "def order_total(lines):\n    return lines[-1][1] * lines[-1][2]\n"
CHECKS = ("```python\nassert order_total([]) == 0\n"
          "assert order_total([('a', 1, 5), ('b', 2, 5)]) == 15\n```")


class ScriptedEngine:
    """Answers plan prompts with a plan, test prompts with CHECKS, code prompts in order."""

    fim_format = None

    def __init__(self, codes: list[str], delay: float = 0.0, checks: str = CHECKS) -> None:
        self.codes = list(codes)
        self.checks = checks
        self.delay = delay  # seconds a code reply "decodes" (cancellable), as a model would
        self.calls: list[str] = []

    def chat(self, messages, params: SamplingParams, cancel: CancelToken | None = None,
             on_text=None) -> Generation:
        user = messages[-1]["content"]
        if prompts.PLAN_REQUEST in user:
            kind, text = "plan", "1. Add up quantity times price."
        elif "test cases" in user:
            kind, text = "tests", self.checks
        else:
            kind, text = "code", f"```python\n{self.codes.pop(0)}```"
            until = time.monotonic() + self.delay
            while time.monotonic() < until:
                if cancel is not None and cancel.cancelled:
                    return Generation("", "cancelled", 10, 10, 0, 0)
                time.sleep(0.05)
        self.calls.append(kind)
        return Generation(text, "stop", 10, 10, 0, 5, logprobs=[-0.1] * 5)

    def complete(self, *a, **k):  # pragma: no cover - not used by the pipeline
        raise NotImplementedError

    fim = complete


def project(tmp_path: Path) -> Path:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("")
    (tmp_path / "shop" / "orders.py").write_text(MODULE)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_visible.py").write_text(VISIBLE)
    return tmp_path / "shop" / "orders.py"


def test_weak_tests_majority_consistent_candidate_beats_the_first_passer(tmp_path) -> None:
    file = project(tmp_path)
    engine = ScriptedEngine([FIRST_LINE_ONLY, RIGHT_A, RIGHT_B, LAST_LINE_ONLY])
    settings = Settings.from_mapping({"candidates": 4, "parallel_candidates": 1})
    updates: list[PipelineResult] = []
    result = Pipeline(engine, settings).run(file, 3, on_update=updates.append)
    assert result.root["reason"] == "import-root"
    assert [t.id for t in result.tests] == ["tests/test_visible.py::test_total"]
    assert all(c.all_passed for c in result.candidates), "all four pass the one visible test"
    assert not result.stopped_early, "weak tests: the whole pool is made"
    assert result.passes_user_tests and result.chosen is not None
    assert not result.verified and result.status == "passes-tests", \
        "one visible test is weak evidence: never called verified"
    assert result.chosen.index in (1, 2), "a correct candidate, not the first passer"
    # the first passer was shown at once, and its replacement says why
    assert [(u.final, u.chosen.index, u.status) for u in updates] == [
        (False, 0, "passes-tests")]
    assert result.first_answer is not None and result.first_answer.index == 0
    assert result.change.startswith("replaced: 2 of 4 candidates that pass your tests behave "
                                    "like the new answer")
    agreement = result.agreement
    assert agreement is not None and agreement.weak and agreement.selected
    assert (agreement.pool, agreement.agreeing, agreement.groups) == (4, 2, 3)
    assert agreement.model_checks == 2 and agreement.model_checks_passed == 2
    assert result.strength.startswith(
        f"passes your 1 test; 2 of 4 candidates agree on {agreement.inputs} generated inputs")
    data = json.loads(json.dumps(result.to_json()))
    assert data["strength"] == result.strength and data["agreement"]["agreeing"] == 2
    assert data["status"] == "passes-tests", "model-written checks never enter the verdict"
    assert data["first_answer"]["index"] == 0 and not data["first_answer"]["kept"]
    assert data["final"] and data["change"] == result.change
    assert [t["kind"] for t in data["tests"]] == ["pytest"]


def test_strong_tests_stop_at_the_first_passer(tmp_path) -> None:
    file = project(tmp_path)
    (tmp_path / "tests" / "test_visible.py").write_text(
        VISIBLE + "\n\ndef test_two():\n    assert order_total([('a', 1, 1)]) == 1\n"
        "\n\ndef test_three():\n    assert order_total([('a', 1, 2)]) == 2\n")
    engine = ScriptedEngine([RIGHT_A, RIGHT_B, RIGHT_A, RIGHT_B], delay=5.0)
    result = Pipeline(engine, Settings.from_mapping({"candidates": 4})).run(file, 3)
    assert result.verified and result.stopped_early and len(result.candidates) < 4
    assert result.agreement is not None and not result.agreement.weak
    assert result.strength == "passes your 3 tests"


def test_prose_examples_are_the_users_tests(tmp_path) -> None:
    (tmp_path / "calc.py").write_text(
        'def add(xs):\n    """Sum.\n\n    For example: add([1, 2]) == 3 and add([]) ➞ 0\n    """\n')
    engine = ScriptedEngine(["def add(xs):\n    return sum(xs)\n"] * 4)
    settings = Settings.from_mapping({"candidates": 2, "parallel_candidates": 1})
    result = Pipeline(engine, settings).run(tmp_path / "calc.py", 0)
    assert result.tests_source == "user"
    assert [(t.kind, t.name) for t in result.tests] == [("docstring", "add([1, 2]) == 3"),
                                                        ("docstring", "add([]) == 0")]
    assert result.passes_user_tests


def test_static_repair_adds_the_missing_import_before_testing(tmp_path) -> None:
    (tmp_path / "text.py").write_text(
        'def slug(t):\n    """Slug: slug("A B") == "a-b"."""\n')
    code = "from typing import *\n\ndef slug(t):\n    return re.sub(' ', '-', t.lower())\n"
    engine = ScriptedEngine([code] * 2)
    settings = Settings.from_mapping({"candidates": 1, "parallel_candidates": 1})
    result = Pipeline(engine, settings).run(tmp_path / "text.py", 0)
    assert result.chosen is not None and result.chosen.static_fixes == ["import re"]
    assert result.passes_user_tests and engine.calls == ["code"], \
        "no model call spent on the fix"


def test_weak_pools_are_widened_with_batched_direct_candidates() -> None:
    plan = schedule(4, 10)
    assert widen(plan, 4, 10) == [*plan, ("direct-sampled", 13)]
    assert widen(plan, 1, 10) == plan


def test_cluster_and_rank_rules() -> None:
    def cand(i: int, strategy: str = "direct-sampled") -> Candidate:
        return Candidate(i, strategy, i, function_code="x")

    a, b, c, d = cand(0, "direct-greedy"), cand(1), cand(2), cand(3)
    behaviours = [Behaviour(("1", "2"), (True, False)), Behaviour(("1", "3"), (True, True)),
                  Behaviour(("1", "3"), (True, True)), Behaviour(error="!raise:SyntaxError")]
    groups = clustering.cluster([a, b, c, d], behaviours)
    assert [g.size for g in groups] == [1, 2]
    assert clustering.choose_group(groups, user_tests=True).members == [b, c]
    # model-written tests only: a larger group still wins over direct greedy ...
    assert clustering.choose_group(groups, user_tests=False).members == [b, c]
    # ... but checks alone never overrule direct greedy
    lone = [clustering.Group([a], Behaviour(("1",), (False,))),
            clustering.Group([b], Behaviour(("2",), (True,)))]
    assert clustering.choose_group(lone, user_tests=False).members == [a]
    assert clustering.choose_group(lone, user_tests=True).members == [b]


def test_in_a_group_the_larger_models_answer_is_suggested() -> None:
    """Same outputs on every probe, but the probes may not reach where they differ (the
    realistic project's order_total: only the 1.5B's greedy answer applied the discount at
    10000 cents); the larger model's answer, its greedy one first, represents the group."""
    small = Candidate(0, "direct-greedy", None, function_code="x", mean_logprob=-0.05)
    sample = Candidate(1, "direct-sampled", 1, function_code="x", mean_logprob=-0.01)
    big_sample = Candidate(5, "big:direct-sampled", 2, function_code="x", mean_logprob=-0.02)
    big = Candidate(4, "big:direct-greedy", None, function_code="x", mean_logprob=-0.3)
    group = clustering.Group([small, sample, big_sample, big], Behaviour(("1",), ()))
    assert group.best is big
    assert clustering.Group([small, sample], Behaviour(("1",), ())).best is small


def test_generated_inputs_mutate_the_seen_arguments() -> None:
    calls = probe_inputs.generated_inputs("f", [([("a", 2, 150)],), ("x", 3)], limit=12)
    assert calls[:2] == ["f([('a', 2, 150)])", "f('x', 3)"]
    assert "f([])" in calls and "f('', 3)" in calls and len(calls) == 12
    assert probe_inputs.calls_in("assert f([1], k=2) == 1\nf(x)\nm.f('s')\n", "f") == [("s",)]


def test_inputs_the_docstring_names_in_prose_are_seeds_when_nothing_calls_the_function(
) -> None:
    """HumanEval/105 states its inputs as ``arr = [...]`` with no call: those values are what
    the candidates can be compared on."""
    doc = ("Sort the digits.\n  For example:\n    arr = [2, 1, 1, 4]   \n"
           "        -> sort arr -> [1, 1, 2, 4]\n  If the array is empty:\n    arr = []\n"
           "  Never when arr == [0]; arr = the input list.\n")
    assert probe_inputs.named_in_doc(doc, ("arr",)) == [([2, 1, 1, 4],), ([],)]
    two = "With a = 3, b = 'x' gives 'xxx'; a = 0 and b = '' give ''; a = 5."
    assert probe_inputs.named_in_doc(two, ("a", "b")) == [(3, "x"), (0, "")]
    assert probe_inputs.named_in_doc("Uses data = load(path).", ("data",)) == []
    info = find_function("def f(arr):\n    " + repr(doc) + "\n", 0)
    assert info is not None
    seeds = probe_inputs.seeds(facts_of(info), [], [])
    assert seeds == [([2, 1, 1, 4],), ([],)], "no call anywhere: the named values"
    assert probe_inputs.seeds(facts_of(info), [], ["assert f([9]) == ['Nine']"]) == [([9],)]


def test_no_tests_at_all_the_largest_behaviour_group_wins(tmp_path) -> None:
    """No tests of the user's and none the model could write: the candidates are still
    compared on the inputs the docstring names, and the majority beats the greedy answer."""
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("")
    (tmp_path / "shop" / "orders.py").write_text(
        '"""Orders."""\n\n\ndef order_total(lines):\n'
        '    """Total of (sku, quantity, unit_cents) lines in cents.\n\n'
        "    For example, with lines = [('a', 2, 150), ('b', 1, 5)] the total is 305.\n"
        '    """\n')
    engine = ScriptedEngine([FIRST_LINE_ONLY, RIGHT_A, RIGHT_B, LAST_LINE_ONLY],
                            checks="I cannot write tests for this.")
    settings = Settings.from_mapping({"candidates": 4, "parallel_candidates": 1,
                                      "escalate_model": ""})
    result = Pipeline(engine, settings).run(tmp_path / "shop" / "orders.py", 3)
    assert result.tests_source == "none" and result.status == "unverified"
    assert engine.calls.count("tests") == 1, "the model is not asked twice for usable tests"
    assert engine.calls[:2] == ["code", "tests"], "the greedy answer before the model's tests"
    assert len(result.candidates) == 4 and result.chosen is not None
    assert result.chosen.index == 1, "the two that agree, not the greedy first-line answer"
    agreement = result.agreement
    assert agreement is not None and agreement.selected and not agreement.error
    assert (agreement.pool, agreement.agreeing, agreement.groups) == (4, 2, 3)
    assert result.strength.startswith("no tests of yours; 2 of 4 candidates agree on ")


class SlowTestWriter(ScriptedEngine):
    """Writes tests until it is cancelled, as a model rambling on to the budget would."""

    def chat(self, messages, params, cancel=None, on_text=None) -> Generation:
        if "test cases" not in messages[-1]["content"]:
            return super().chat(messages, params, cancel, on_text)
        while cancel is None or not cancel.cancelled:
            time.sleep(0.05)
        self.calls.append("tests")
        return Generation("", "cancelled", 10, 10, 0, 0)


def test_no_tests_the_greedy_answer_comes_before_the_models_tests(tmp_path) -> None:
    """Writing tests may eat the whole budget (HumanEval/105: 28 s for nothing usable); the
    greedy answer is decoded first, so a function with no tests still gets it in time."""
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("")
    (tmp_path / "shop" / "orders.py").write_text(MODULE)
    engine = SlowTestWriter([RIGHT_A, RIGHT_B])
    settings = Settings.from_mapping({"candidates": 2, "parallel_candidates": 1,
                                      "escalate_model": ""})
    result = Pipeline(engine, settings).run(tmp_path / "shop" / "orders.py", 3, budget=3.0)
    assert engine.calls[:2] == ["code", "tests"]
    assert result.budget_reached and result.tests_source == "none"
    assert result.chosen is not None and result.chosen.index == 0
    assert result.chosen.code.strip() == RIGHT_A.strip() and result.status == "unverified"
    assert result.timings["direct"] < result.timings["write_tests"]


def test_weakness_counts_checks() -> None:
    one = [TestCase("t::a", "pytest", "t", "a")]
    assert is_weak(one, None)
    doctest = [TestCase("m.py::m.f", "doctest", "m.py", "f")]
    assert not is_weak(doctest, '"""\n>>> f(1)\n1\n>>> f(2)\n2\n>>> f(3)\n3\n"""')
    assert not is_weak([], None), "no tests at all is not 'weak', it is none"


def test_model_written_raises_checks() -> None:
    checks = as_checks(["assert median([]) == ValueError", "assert median([1]) == 1",
                        "assert broken(("])
    assert len(checks) == 2 and checks[1] == "assert median([1]) == 1"

    def median(xs):
        if not xs:
            raise ValueError("empty")
        return xs[0]

    exec(checks[0], {"median": median})  # raises -> the check holds
    try:
        exec(checks[0], {"median": lambda xs: 0})
    except AssertionError:
        pass
    else:
        raise AssertionError("a call that does not raise fails the check")


def test_raises_lines_are_parsed_and_probed() -> None:
    reply = ("```python\nassert f([]) == 0\nwith pytest.raises(ValueError): f(None)\n"
             "with open('x') as fh: f(1)\n```")
    asserts = prompts.parse_asserts(reply, "f")
    assert asserts == ["assert f([]) == 0", "with pytest.raises(ValueError): f(None)"]
    check = as_checks(asserts)[1]

    def f(xs):
        if xs is None:
            raise ValueError("none")
        return 0

    exec(check, {"f": f})


def test_a_wrong_value_is_closer_than_a_crash() -> None:
    from plancode.pipeline.pool import closeness
    from plancode.testing.types import RunResult, TestVerdict

    def cand(*verdicts: tuple[str, str]) -> Candidate:
        run = RunResult([TestVerdict(f"t{i}", o, m) for i, (o, m) in enumerate(verdicts)],
                        "bwrap", "", 0.1)
        return Candidate(0, "repair", None, function_code="x", run=run)

    crash = cand(("failed", "TypeError: bad operand"))
    wrong = cand(("failed", "AssertionError: assert 150 == 300"))
    right = cand(("passed", ""))
    assert closeness(crash) < closeness(wrong) < closeness(right)


def run_escalating(small: ScriptedEngine, big: ScriptedEngine, settings: dict, file: Path,
                   budget: float | None = None):
    """The pipeline on ``small`` with ``big`` as the escalation model ``big-model``."""
    escalate._ENGINES["big-model"] = big
    try:
        return Pipeline(small, Settings.from_mapping({**settings, "escalate_model": "big-model"})
                        ).run(file, 3, budget=budget)
    finally:
        del escalate._ENGINES["big-model"]


def strong_project(tmp_path: Path) -> Path:
    """The project with three user tests: strong evidence, so the first passer wins."""
    file = project(tmp_path)
    (tmp_path / "tests" / "test_visible.py").write_text(
        VISIBLE + "\n\ndef test_two():\n    assert order_total([]) == 0\n"
        "\n\ndef test_three():\n    assert order_total([('a', 1, 2)]) == 2\n")
    return file


def test_escalation_to_a_larger_model_only_when_every_candidate_fails(tmp_path) -> None:

    file = strong_project(tmp_path)
    wrong = "def order_total(lines):\n    return 1\n"
    small = ScriptedEngine([wrong] * 7)
    big = ScriptedEngine([RIGHT_A, RIGHT_B, RIGHT_A, RIGHT_B])
    result = run_escalating(small, big, {"candidates": 2, "repair_rounds": 1}, file)
    assert result.passes_user_tests and result.chosen is not None
    assert result.chosen.strategy == "big-model:direct-greedy"
    assert result.chosen.index == 2, "right after the small model's 2 candidates"
    assert "escalation" in result.timings and big.calls[0] == "code"
    assert len(small.codes) == 5, "the larger model comes before hotter samples and repairs"


@pytest.mark.parametrize("larger", [True, False])
def test_strong_tests_failing_the_small_model_gives_way_before_its_plans(
        tmp_path, larger: bool) -> None:
    """Three user tests (no pool to compare: the first passer wins) and the small model's
    direct answers fail them: with a larger model it stops before its plan candidates, whose
    time is the larger model's (held-out set with escalation: in 20 of the 32 failing runs
    the 1.5B never joined, the 0.5B's plan candidates took the budget). Without one it makes
    its plans as before."""
    file = strong_project(tmp_path)
    wrong = "def order_total(lines):\n    return 1\n"
    small = ScriptedEngine([wrong] * 8)
    big = ScriptedEngine([RIGHT_A] * 4)
    settings = {"candidates": 4, "repair_rounds": 0}
    if larger:
        result = run_escalating(small, big, settings, file)
        assert "plan" not in small.calls
        assert result.chosen is not None and result.chosen.strategy.startswith("big-model:")
    else:
        result = Pipeline(small, Settings.from_mapping({**settings, "escalate_model": ""})
                          ).run(file, 3)
        assert "plan" in small.calls and big.calls == []
    made = [c.strategy for c in result.candidates if not c.strategy.startswith("big-model")]
    assert made[:2] == ["direct-greedy", "direct-sampled"]


@pytest.mark.parametrize("strong", [True, False])
def test_giving_way_after_the_greedy_answer_leaves_the_larger_model_the_budget(
        tmp_path, monkeypatch, strong: bool) -> None:
    """GIVE_WAY_AFTER_GREEDY (an A/B arm of benchmarks.heldout_ab): the small model's greedy
    answer fails the user's tests, strong or weak, and it makes nothing more; the larger
    model's candidates come right after it. A greedy answer that passes keeps the small
    model's pool going."""
    from plancode.pipeline import pool

    monkeypatch.setattr(pool, "GIVE_WAY_AFTER_GREEDY", True)
    file = strong_project(tmp_path) if strong else project(tmp_path)
    wrong = "def order_total(lines):\n    return 1\n"
    small = ScriptedEngine([wrong] * 8)
    big = ScriptedEngine([RIGHT_A] * 8)
    result = run_escalating(small, big, {"candidates": 4, "repair_rounds": 0}, file)
    made = [c.strategy for c in result.candidates]
    assert made[0] == "direct-greedy" and all(m.startswith("big-model:") for m in made[1:])
    assert result.chosen is not None and result.chosen.strategy.startswith("big-model:")

    passing = ScriptedEngine([RIGHT_A] + [RIGHT_B] * 7)
    (tmp_path / "weak").mkdir()
    kept = run_escalating(passing, ScriptedEngine([RIGHT_A] * 8),
                          {"candidates": 4, "repair_rounds": 0}, project(tmp_path / "weak"))
    assert [c.strategy for c in kept.candidates][:2] == ["direct-greedy", "direct-sampled"]


def test_the_larger_model_starts_each_escalation_from_a_cold_cache(tmp_path) -> None:
    """Greedy text can differ between a cold KV cache and one holding another function's
    prompt (held-out dinic: the 1.5B's greedy answer passed in one run and failed in the
    next), so the larger model, like the small one, starts every run cold."""
    file = strong_project(tmp_path)
    wrong = "def order_total(lines):\n    return 1\n"
    big = ScriptedEngine([RIGHT_A] * 8)
    big.reset_cache = lambda: big.calls.append("reset")
    for _ in range(2):
        before = len(big.calls)
        run_escalating(ScriptedEngine([wrong] * 8), big, {"candidates": 2, "repair_rounds": 0},
                       file)
        assert big.calls[before:].count("reset") == 1 and big.calls[before] == "reset"
        assert "code" in big.calls[before:]


def test_a_larger_model_that_finished_nothing_is_not_said_to_have_helped(
        tmp_path, monkeypatch) -> None:
    from plancode.pipeline import escalate

    monkeypatch.setattr(escalate, "MIN_SECONDS", 1.0)
    file = project(tmp_path)
    wrong = "def order_total(lines):\n    return 1\n"
    small = ScriptedEngine([wrong] * 4)
    big = ScriptedEngine([RIGHT_A] * 4, delay=60.0)  # decodes past any budget
    result = run_escalating(small, big, {"candidates": 2, "repair_rounds": 0,
                                         "parallel_candidates": 1}, file, budget=5.0)
    assert result.agreement is not None and result.agreement.escalated == "big-model"
    assert result.agreement.escalation_made == 0
    assert result.strength.endswith("big-model was tried and finished nothing in time")
    assert "helped" not in result.strength


CRASH = "def order_total(lines):\n    return sum(q * p for _, q, p in line)\n"


@pytest.mark.parametrize(("code", "repaired"), [
    ("def order_total(lines):\n    return 1\n", False),  # a wrong value: samples, no repair
    (CRASH, True),  # a NameError: small models fix those, so it is repaired
])
def test_when_nothing_passes_fresh_samples_come_first_and_only_crashes_are_repaired(
        tmp_path, code: str, repaired: bool) -> None:
    file = project(tmp_path)
    small = ScriptedEngine([code] * 8)
    result = Pipeline(small, Settings.from_mapping({
        "candidates": 2, "repair_rounds": 1, "escalate_model": "",
        "parallel_candidates": 3})).run(file, 3)
    strategies = [c.strategy for c in result.candidates]
    assert strategies[:5] == ["direct-greedy", "direct-sampled"] + ["direct-sampled"] * 3
    assert ("repair" in strategies) is repaired, strategies
    assert not result.passes_user_tests


@pytest.mark.parametrize("larger", [True, False])
def test_with_a_larger_model_the_small_one_stops_after_its_direct_candidates(
        tmp_path, larger: bool) -> None:
    """Weak tests, and 1 of the small model's 3 direct candidates passes: escalation follows
    either way, so its slow plan candidates are not made and the time goes to the larger
    model (on 2 cores the 0.5B's plans took 13-26 s and left the 1.5B under its 20 s). With
    no larger model the small one makes its whole pool as before."""
    file = project(tmp_path)
    wrong = "def order_total(lines):\n    return 1\n"
    small = ScriptedEngine([wrong, RIGHT_A, wrong, RIGHT_B, RIGHT_B])
    big = ScriptedEngine([RIGHT_B, RIGHT_A, RIGHT_A, RIGHT_B, RIGHT_A, RIGHT_B])
    settings = {"candidates": 4, "parallel_candidates": 3, "repair_rounds": 1}
    if larger:
        result = run_escalating(small, big, settings, file)
    else:
        result = Pipeline(small, Settings.from_mapping({**settings, "escalate_model": ""})
                          ).run(file, 3)
    made = [c.strategy for c in result.candidates if not c.strategy.startswith("big-model")]
    if larger:
        assert made == ["direct-greedy", "direct-sampled", "direct-sampled"]
        assert "plan" not in small.calls and "tests" not in small.calls
        assert result.agreement is not None and result.agreement.escalated == "big-model"
        assert "big-model:direct-greedy" in [c.strategy for c in result.candidates]
    else:
        assert "plan-greedy" in made and "plan" in small.calls and big.calls == []
    assert result.passes_user_tests


@pytest.mark.parametrize("reserve", [7.0, 0.0])
def test_the_small_models_batch_leaves_the_larger_model_its_time(
        tmp_path, monkeypatch, reserve: float) -> None:
    """The greedy answer failed the user's one test and a larger model waits: the small
    model's batch of samples stops once only LARGER_MODEL_RESERVE_SECONDS of the budget are
    left, keeping the samples it finished, and the larger model answers in that time. Without
    the reserve (0) the batch runs on, and too little is left to escalate (held-out
    find_words: the 0.5B's batch took 40 s of 55 and the 1.5B never started)."""
    from plancode.pipeline import escalate, pool

    monkeypatch.setattr(pool, "LARGER_MODEL_RESERVE_SECONDS", reserve)
    monkeypatch.setattr(escalate, "MIN_SECONDS", 5.0)
    file = project(tmp_path)
    wrong = "def order_total(lines):\n    return 1\n"
    small = ScriptedEngine([wrong] * 8, delay=2.0)  # greedy 0-2 s, samples 2-4, 4-6, 6-8
    big = ScriptedEngine([RIGHT_A] * 12, delay=0.3)
    result = run_escalating(small, big, {"candidates": 4, "parallel_candidates": 4,
                                         "repair_rounds": 0}, file, budget=12.0)
    made = [c.strategy for c in result.candidates if not c.strategy.startswith("big-model")]
    if reserve:  # cut at 5 s: the sample finished at 4 s is kept, the rest is the 1.5B's
        assert made == ["direct-greedy", "direct-sampled"]
        assert result.passes_user_tests
        assert result.chosen is not None and result.chosen.strategy.startswith("big-model:")
    else:
        assert made[:2] == ["direct-greedy", "direct-sampled"] and made.count("direct-sampled") == 3
        assert big.calls == [] and not result.passes_user_tests


def test_weak_tests_every_candidate_failing_escalate_to_a_pool_not_a_first_pass(
        tmp_path) -> None:
    """One visible test that no small candidate passes: the larger model's first passing
    answer is not simply taken; it makes its whole pool, and behaviour plus its checks
    choose (the greedy answer that only passes the visible test loses)."""

    file = project(tmp_path)
    wrong = "def order_total(lines):\n    return 1\n"
    small = ScriptedEngine([wrong] * 4)
    big = ScriptedEngine([FIRST_LINE_ONLY, RIGHT_A, RIGHT_B, RIGHT_A, FIRST_LINE_ONLY])
    result = run_escalating(small, big, {"candidates": 2, "repair_rounds": 1,
                                         "parallel_candidates": 1}, file)
    assert result.passes_user_tests and result.chosen is not None
    assert result.chosen.strategy == "big-model:direct-sampled", result.chosen.strategy
    agreement = result.agreement
    assert agreement is not None and agreement.escalated == "big-model"
    assert (agreement.pool, agreement.agreeing) == (5, 3), "all five of big's answers compared"
    assert big.codes == [], "no early exit at big's first pass"


def test_weak_tests_and_disagreeing_candidates_escalate(tmp_path) -> None:
    """One visible test, and the small model's passers disagree: the larger model adds its
    candidate and writes the checks, and its checks (not the small model's wrong ones) pick."""

    file = project(tmp_path)
    wrong_checks = "```python\nassert order_total([('a', 1, 5), ('b', 2, 5)]) == 5\n```"
    small = ScriptedEngine([FIRST_LINE_ONLY, FIRST_LINE_ONLY, LAST_LINE_ONLY, FIRST_LINE_ONLY],
                           checks=wrong_checks)
    big = ScriptedEngine([RIGHT_A, RIGHT_B, FIRST_LINE_ONLY, RIGHT_A, RIGHT_B])
    result = run_escalating(small, big, {"candidates": 4, "parallel_candidates": 1}, file)
    assert result.chosen is not None and result.chosen.strategy == "big-model:direct-greedy"
    assert result.passes_user_tests
    made = [c.strategy for c in result.candidates if c.strategy.startswith("big-model:")]
    assert sorted(made) == ["big-model:direct-greedy", *["big-model:direct-sampled"] * 3,
                            "big-model:plan-greedy"], "weak evidence: a whole pool, no early exit"
    agreement = result.agreement
    assert agreement is not None and agreement.escalated == "big-model"
    assert agreement.model_checks == 2 and agreement.model_checks_passed == 2, "big's checks"
    assert "tests" in big.calls, "the larger model wrote the checks"
    assert result.strength.endswith("big-model helped")
    assert "escalation" in result.timings


def test_weak_tests_with_agreeing_candidates_do_not_escalate(tmp_path) -> None:

    file = project(tmp_path)
    small = ScriptedEngine([RIGHT_A, RIGHT_B, RIGHT_A, RIGHT_B])
    big = ScriptedEngine([FIRST_LINE_ONLY])
    result = run_escalating(small, big, {"candidates": 4, "parallel_candidates": 1}, file)
    assert big.calls == [], "4 of 4 agree: the larger model is never asked"
    assert result.agreement is not None and not result.agreement.escalated


def test_escalation_model_choice() -> None:
    from plancode.pipeline.escalate import model_of

    assert model_of(Settings.from_mapping({"escalate_model": "big"})) == "big"
    assert model_of(Settings.from_mapping({"escalate_model": ""})) == ""
    same = Settings.from_mapping({"escalate_model": "qwen2.5-coder-0.5b"})
    assert model_of(same) == "", "never escalate to the model already used"
    remote = Settings.from_mapping({"escalate_model": "auto", "backend": "openai",
                                    "remote_url": "http://127.0.0.1:1/v1"})
    assert model_of(remote) == "", "auto never escalates a remote backend"


def test_batched_samples_are_tested_before_the_plan_is_made(tmp_path) -> None:
    """With weak tests the sampled direct answers come out of one batch together: each is
    tested at once, so a sample that passes is shown while the slower plan candidate is still
    being made, and the pool still reads in plan order."""
    file = project(tmp_path)
    wrong = "def order_total(lines):\n    return 0\n"
    # plan: greedy, sample, greedy plan, sample, + one sample (widened); call order: greedy,
    # then the batch's samples (1, 3, 4), then the plan's code (2)
    engine = ScriptedEngine([wrong, wrong, RIGHT_A, RIGHT_B, RIGHT_A], delay=0.3)
    settings = Settings.from_mapping({"candidates": 4, "parallel_candidates": 4,
                                      "repair_rounds": 0})
    events: list[tuple[str, object]] = []
    first: list[int] = []
    result = Pipeline(engine, settings).run(
        file, 3, progress=lambda event, data: events.append((event, data.get("candidate"))),
        on_update=lambda update: first.append(update.chosen.index))
    assert [c.index for c in result.candidates] == list(range(5))
    assert [c.strategy for c in result.candidates][:3] == ["direct-greedy", "direct-sampled",
                                                           "plan-greedy"]
    plan_made = events.index(("generating", 2))
    assert all(events.index(("testing", k)) < plan_made for k in (1, 3, 4)), \
        "the whole batch is under test before the plan is made"
    assert first and first[0] == 3, "the first answer shown is the batch's passing sample"
