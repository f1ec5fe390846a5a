"""Checks from a docstring's prose (pipeline/prose_checks.py): static extraction, the kinds of
model-written lines, the contradiction rule, and one run through the probes in a sandbox with
the tiny model writing checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from plancode.analysis.facts import FunctionFacts, facts_of
from plancode.analysis.functions import functions
from plancode.engine.types import SamplingParams
from plancode.pipeline import probes
from plancode.pipeline import prose_checks as pc
from plancode.testing.sandbox import Sandbox


def _facts(source: str, name: str) -> FunctionFacts:
    return facts_of(next(f for f in functions(source) if f.name == name))


FACTORIAL = '''
def factorial(n: int) -> int:
    """Return n! for a non-negative integer n.

    Raises ValueError if n is negative.

    >>> factorial(3)
    6
    >>> factorial(5)
    120
    """
    ...
'''

PARSE = '''
def parse_row(text: str) -> list:
    """Split a comma-separated row into its fields, in order.

    parse_row("") gives no fields; parse_row("a,,b") keeps the empty one.
    parse_row(None) raises TypeError.

    >>> parse_row("1,2")
    ['1', '2']
    >>> parse_row(3)
    Traceback (most recent call last):
    ...
    AttributeError: 'int' object has no attribute 'split'
    """
    ...
'''

TOP = '''
def top_scores(scores: list[float], k: int) -> list[float]:
    """Return the k highest scores, sorted in descending order, each rounded to two
    decimal places.

    >>> top_scores([1.234, 9.5, 3.0], 2)
    [9.5, 3.0]
    """
    ...
'''


def _by(checks: list[pc.Check], kind: str) -> dict[str, pc.Check]:
    return {c.statement: c for c in checks if c.kind == kind}


def test_a_raises_rule_with_a_condition_becomes_a_call_that_meets_it() -> None:
    facts = _facts(FACTORIAL, "factorial")
    checks = pc.static_checks(facts, pc.visible_of([("factorial(3)", "6")]))
    raises = _by(checks, "raises")
    assert list(raises) == ["import pytest\nwith pytest.raises(ValueError):\n    factorial(-1)"]
    assert raises[next(iter(raises))].detail == "policy"
    # the example that is not the visible test is an input that must not raise; the
    # visible one is not repeated
    assert set(_by(checks, "no-raise")) == {"factorial(5)"}
    assert {c.detail for c in checks if c.kind == "rule"} == {"return-type"}
    assert all(c.writer == pc.STATIC for c in checks)


def test_named_inputs_without_outputs_and_stated_exceptions() -> None:
    facts = _facts(PARSE, "parse_row")
    checks = pc.static_checks(facts, pc.visible_of([("parse_row('1,2')", "['1', '2']")]))
    assert {(c.call, c.detail) for c in checks if c.kind == "no-raise"} == {
        ("parse_row('')", "named-input"), ("parse_row('a,,b')", "named-input")}
    raises = {c.call: c.statement for c in checks if c.kind == "raises"}
    assert raises == {
        "parse_row(None)": "import pytest\nwith pytest.raises(TypeError):\n    parse_row(None)",
        "parse_row(3)": "import pytest\nwith pytest.raises(AttributeError):\n    parse_row(3)"}
    # a call the docstring says raises is never also a no-raise check
    assert "parse_row(None)" not in _by(checks, "no-raise")


def test_ordering_and_rounding_rules() -> None:
    facts = _facts(TOP, "top_scores")
    rules = {c.detail: c.statement for c in pc.static_checks(facts, []) if c.kind == "rule"}
    call = "top_scores([1.234, 9.5, 3.0], 2)"
    assert rules["ordering"] == (f"_r = {call}\nif isinstance(_r, (list, tuple)):\n"
                                 "    assert list(_r) == sorted(_r, reverse=True)")
    assert rules["return-type"] == f"_r = {call}\nassert isinstance(_r, list)"
    assert "rounding" in rules and "round(_r, 2)" in rules["rounding"]


def test_a_docstring_without_prose_gives_nothing() -> None:
    facts = _facts("def f(x):\n    ...\n", "f")
    assert pc.static_checks(facts, []) == []


def test_model_lines_are_sorted_into_kinds() -> None:
    reply = ("Here you go:\n```python\n"
             "top_scores([1.0, 2.0], 1)\n"
             "assert top_scores([1.0, 2.0], 1) == [2.0]\n"
             "assert top_scores([3.0, 1.0, 2.0], 3) == sorted(top_scores([3.0, 1.0, 2.0], 3),"
             " reverse=True)\n"
             "with pytest.raises(ValueError): top_scores([], -1)\n"
             "assert top_scores([1.0], 0) == ValueError\n"
             "x = top_scores([1.0], 1)\n"
             "assert other(1) == 2\n"
             "assert top_scores([1.0, 2.0], 1) == [2.0]\n"
             "```")
    checks = pc.parse_reply(reply, "top_scores", "some-model")
    assert [c.kind for c in checks] == ["no-raise", "value", "rule", "raises", "raises"]
    assert all(c.writer == "some-model" for c in checks)
    assert checks[4].statement == ("import pytest\nwith pytest.raises(ValueError):\n"
                                   "    top_scores([1.0], 0)")
    assert checks[1].call == "top_scores([1.0, 2.0], 1)"


def test_a_check_that_contradicts_a_visible_test_is_dropped() -> None:
    visible = pc.visible_of([("f(2)", "4"), ("f(0.1)", "0.2")]) + [pc.Visible("f(-1)", None,
                                                                            "ValueError")]
    keep = [pc.classify(s, "f") for s in (
        "assert f(2) == 4", "assert f(3) == 7", "assert f(0.1) == 0.2000000001",
        "f(2)", "with pytest.raises(ValueError): f(-1)", "assert f(2) > 0")]
    drop = [pc.classify(s, "f") for s in (
        "assert f(2) == 5", "assert f(2) == 4.5", "with pytest.raises(ValueError): f(2)",
        "f(-1)", "with pytest.raises(KeyError): f(-1)", "assert f(-1) == 0")]
    assert all(c is not None for c in keep + drop)
    assert [pc.contradicts(c, visible) for c in keep] == [False] * len(keep)  # type: ignore
    assert [pc.contradicts(c, visible) for c in drop] == [True] * len(drop)  # type: ignore
    assert pc.without_contradictions(keep + drop, visible) == keep  # type: ignore


CALC = '''
def clamp_all(values: list, low: int, high: int) -> list:
    """Clamp every value into [low, high] and return them sorted in ascending order.

    Raises ValueError if low is greater than high: clamp_all([1], 5, 1) raises ValueError.
    clamp_all([], 0, 1) is allowed.

    >>> clamp_all([5, -3, 2], 0, 3)
    [0, 2, 3]
    """
    ...
'''
RIGHT = '''
def clamp_all(values: list, low: int, high: int) -> list:
    if low > high:
        raise ValueError("low > high")
    return sorted(min(max(v, low), high) for v in values)
'''
WRONG = '''
def clamp_all(values: list, low: int, high: int) -> list:
    return [min(max(v, low), high) for v in values]
'''


@pytest.fixture(scope="module")
def calc_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("prose")
    (ws / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (ws / "calc.py").write_text(CALC)
    return ws


def test_checks_run_through_the_probes_with_the_tiny_model(calc_workspace: Path,
                                                            tiny_engine) -> None:
    """End to end: static checks and the tiny model's checks are made, a contradicting rule
    is caught on the oracle, and the kept checks run on a right and a wrong candidate in a
    real sandbox: the stated ordering and the stated error tell them apart."""
    facts = _facts(CALC, "clamp_all")
    visible = pc.visible_of([(e.call, e.expected) for e in facts.examples])
    static = pc.static_checks(facts, visible)
    made, reply = pc.model_checks(tiny_engine, facts.info.problem, "clamp_all",
                                  SamplingParams(max_tokens=160), "smollm2-135m")
    assert isinstance(reply, str) and reply
    assert all(c.writer == "smollm2-135m" and c.kind in pc.KINDS for c in made)
    # a rule check the visible example refutes (its output is sorted ascending)
    bad = pc.classify("assert clamp_all([5, -3, 2], 0, 3) == sorted(clamp_all([5, -3, 2], 0, 3),"
                      " reverse=True)", "clamp_all")
    assert bad is not None and not pc.contradicts(bad, visible)  # not the same value: static
    checks = [*static, *pc.without_contradictions(made, visible), bad]
    assert pc.oracle_text("clamp_all", []) is None
    with Sandbox(calc_workspace) as sandbox:
        flags = pc.refuted(sandbox, "calc.py", "calc", "clamp_all", checks, visible)
        refuted = [c for c, no in zip(checks, flags, strict=True) if no]
        assert bad in refuted and not any(c.writer == pc.STATIC for c in refuted)
        kept = [c for c in checks if c not in refuted]
        texts = [CALC.replace('    """\n    ...\n', '    """\n' + RIGHT.split(":\n", 1)[1]),
                 CALC.replace('    """\n    ...\n', '    """\n' + WRONG.split(":\n", 1)[1])]
        run = probes.probe_all(sandbox, "calc.py", "calc", texts, [],
                               [c.statement for c in kept])
    assert not run.error
    right, wrong = run.behaviours
    static_kept = [k for k, c in enumerate(kept) if c.writer == pc.STATIC]
    assert all(right.checks[k] for k in static_kept)  # the right one passes every static check
    failed = {kept[k].detail for k in static_kept if not wrong.checks[k]}
    assert {"ordering", "doctest-or-prose"} <= failed
    assert sum(right.checks) > sum(wrong.checks)


class _Scripted:
    """An engine that answers every chat with one reply (what the model wrote)."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.asked: list = []

    def chat(self, messages, params, cancel=None):  # noqa: ANN001, ANN201
        self.asked.append(messages)
        return type("Gen", (), {"text": self.reply})()


def test_make_adds_the_models_checks_and_drops_contradicting_ones() -> None:
    facts = _facts(FACTORIAL, "factorial")
    visible = pc.visible_of([("factorial(3)", "6")])
    engine = _Scripted("```python\nassert factorial(3) == 9\nassert factorial(0) == 1\n"
                       "with pytest.raises(ValueError): factorial(3)\n```")
    checks = pc.make(facts, visible, engine, SamplingParams(), "m")  # type: ignore[arg-type]
    assert engine.asked == [pc.prompts.prose_check_messages(facts.info.problem, "factorial")]
    model = [c.statement for c in checks if c.writer == "m"]
    assert model == ["assert factorial(0) == 1"]
    assert [c for c in checks if c.writer == pc.STATIC] == pc.static_checks(facts, visible)


def test_the_larger_model_writes_the_checks_when_there_is_one() -> None:
    from plancode.config import Settings

    base = Settings.from_mapping({"model": "qwen2.5-coder-0.5b"})
    assert pc.writer_model(Settings.from_mapping({"escalate_model": "qwen2.5-coder-1.5b"},
                                                 base)) == "qwen2.5-coder-1.5b"
    # conftest: the 1.5B is not in the store here, so ``auto`` keeps the main model
    assert pc.writer_model(Settings.from_mapping({"escalate_model": "auto"}, base)) == \
        "qwen2.5-coder-0.5b"
