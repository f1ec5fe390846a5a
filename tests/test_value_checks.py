"""Verdicts computed outside the candidate's process (issue 31), through the real sandbox.

Value-shaped tests (server/testing/shapes.py) run only their calls in the sandboxed child; the
server compares the values. The attacks of issue 31's red team that need no pytest (a value
that equals anything, a forged last ``PLANCODE_PROBE`` line in selection) are here; those
against the in-process plugin are in tests/sandbox_attacks.py (the attack matrix).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from plancode.errors import PlancodeError
from plancode.pipeline import clustering
from plancode.pipeline.probes import probe_all
from plancode.pipeline.result import Candidate
from plancode.testing.sandbox import Sandbox
from plancode.testing.types import TestCase

MOD = '''\
def mean(xs):
    """The mean of ``xs``.

    >>> mean([1, 2, 3])
    2.0
    >>> mean([])
    Traceback (most recent call last):
    ...
    ValueError: empty
    """
    if not xs:
        raise ValueError("empty")
    return sum(xs) / len(xs)
'''

TESTS = '''\
import math
import unittest

import pytest

from pkg.stats import mean

EMPTY = []


def test_plain():
    assert mean([1, 2]) == 1.5
    assert mean([0.1, 0.2]) == pytest.approx(0.15)
    assert math.isclose(mean([1e-9, 3e-9]), 2e-9)
    with pytest.raises(ValueError, match="empty"):
        mean(EMPTY)


@pytest.mark.parametrize("xs, expected", [([2], 2.0), ([1, 3], 2.0), ([-1, 1], 0)])
def test_grid(xs, expected):
    assert mean(xs) == expected


class TestMean(unittest.TestCase):
    def test_unit(self):
        self.assertEqual(mean([4, 4]), 4)
        self.assertRaises(ValueError, mean, [])


def test_with_a_fixture(tmp_path):
    assert mean([5]) == 5
'''

CASES = [TestCase(f"tests/test_stats.py::{n}", k, "tests/test_stats.py", n)
         for n, k in (("test_plain", "pytest"), ("test_grid", "pytest"),
                      ("TestMean::test_unit", "unittest"), ("test_with_a_fixture", "pytest"))]
CASES.append(TestCase("pkg/stats.py::pkg.stats.mean", "doctest", "pkg/stats.py", "mean"))


def _bwrap_unusable() -> str:
    with tempfile.TemporaryDirectory() as d:
        try:
            Sandbox(Path(d), isolation="bwrap").close()
        except PlancodeError as exc:
            return str(exc)
    return ""


@pytest.fixture(params=["bwrap", "landlock"])
def mode(request: pytest.FixtureRequest) -> str:
    if request.param == "bwrap" and _bwrap_unusable():
        pytest.skip("bubblewrap is unusable here")
    return request.param


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "tests").mkdir()
    (ws / "pkg" / "__init__.py").write_text("")
    (ws / "pkg" / "stats.py").write_text(MOD)
    (ws / "tests" / "test_stats.py").write_text(TESTS)
    (ws / "pyproject.toml").write_text("[project]\nname = 'stats'\n")
    return ws


def test_value_shaped_tests_are_judged_by_the_server(workspace: Path, mode: str) -> None:
    off_by_one = MOD.replace("return sum(xs) / len(xs)", "return sum(xs) / (len(xs) + 1)")
    tolerant = MOD.replace("return sum(xs) / len(xs)", "return _Tolerant()") + '''

class _Tolerant(float):
    def __eq__(self, other):
        if isinstance(other, (int, float)):
            return True
        raise TypeError("not a number")
    __hash__ = float.__hash__
'''
    with Sandbox(workspace, isolation=mode) as sandbox:
        good = sandbox.run_tests({}, CASES)
        wrong = sandbox.run_tests({"pkg/stats.py": off_by_one}, CASES)
        cheat = sandbox.run_tests({"pkg/stats.py": tolerant}, CASES)
    assert [v.outcome for v in good.verdicts] == ["passed"] * 5, good.verdicts
    assert good.all_passed and good.checked == "mixed"
    assert [v.checked for v in good.verdicts] == ["out-of-process"] * 3 + ["in-process"] + \
        ["out-of-process"]
    assert [v.outcome for v in wrong.verdicts] == ["failed"] * 5, wrong.verdicts
    assert wrong.verdicts[0].message == "AssertionError: assert 1.0 == 1.5"
    assert wrong.verdicts[1].message.startswith("[xs0-2.0]: ")
    assert "expected 2.0, got 1.5" in wrong.verdicts[4].message
    # a float subclass is a float: its value (0.0 here) is compared, its __eq__ never runs
    assert not cheat.all_passed and cheat.verdicts[0].outcome == "failed"


def test_a_value_that_equals_anything_is_not_plain_data(workspace: Path) -> None:
    anything = MOD.replace("return sum(xs) / len(xs)", "return _Anything()") + '''

class _Anything:
    def __eq__(self, other):
        return True
    def __repr__(self):
        return "2.0"
'''
    with Sandbox(workspace) as sandbox:
        run = sandbox.run_tests({"pkg/stats.py": anything}, CASES,
                                target=("pkg/stats.py", "mean"))
    assert [v.outcome for v in run.verdicts] == ["failed"] * 5, run.verdicts
    assert "not plain data" in run.verdicts[0].message
    assert any("suspicious return type" in f for f in run.flags)


FORGED = '''\
import atexit, json, os, sys


def add(a, b):
    return a - b


def _forge():
    lie = {"outputs": ["x"], "checks": [True, True]}
    print("\\nPLANCODE_PROBE " + json.dumps([lie, {"load": "!raise:X"}, {"load": "!raise:X"}]))
    main = sys.modules.get("__main__")
    emit = getattr(main, "_emit", None)
    if emit is not None:  # the value runner's own signer: reports out of order are refused
        emit({"event": "check", "index": 0, "result": ["ok"]})
    for fd in range(3, 64):
        try:
            os.write(fd, b"0 {}\\n")
        except OSError:
            pass


atexit.register(_forge)
'''
GOOD = "def add(a, b):\n    return a + b\n"


def test_a_forged_probe_line_does_not_win_selection(workspace: Path, mode: str) -> None:
    """A wrong candidate that prints a forged last PLANCODE_PROBE line (and writes to every
    fd, and uses the runner's own signer) is probed alone: it can describe only itself, and
    the two right candidates win selection."""
    (workspace / "pkg" / "calc.py").write_text(GOOD)
    texts = [FORGED, GOOD, GOOD.replace("a + b", "b + a")]
    pool = [Candidate(i, "direct-greedy" if i == 0 else "plan-sampled", None, code=t,
                      function_code=t, spliced_text=t) for i, t in enumerate(texts)]
    with Sandbox(workspace, isolation=mode) as sandbox:
        run = probe_all(sandbox, "pkg/calc.py", "pkg.calc", texts,
                        ["add(1, 2)", "add(-3, 3)", "add(2.5, 0.5)"],
                        ["assert add(2, 2) == 4", "assert add(0, 7) == 7"])
    assert not run.error
    forged, right, also_right = run.behaviours
    assert right.outputs == also_right.outputs and right.checks == (True, True)
    assert forged.error == "!tampered" or forged.outputs != right.outputs
    groups = clustering.cluster(pool, run.behaviours)
    chosen = clustering.choose_group(groups, user_tests=True)
    assert chosen is not None and {c.index for c in chosen.members} == {1, 2}
    chosen = clustering.choose_group(groups, user_tests=False)
    assert chosen is not None and {c.index for c in chosen.members} == {1, 2}


RED_TEAM = {  # issue 31's in-process attacks: what the plugin alone makes of them
    "eq-numbers-raise-else": "failed",
    "mark-running-item": "skip-raised",
    "rebind-emit-default": "error",  # tampering
    "swap-test-code": "error",  # tampering
}


def test_the_plugin_alone_catches_the_red_teams_in_process_attacks(tmp_path: Path,
                                                                     mode: str) -> None:
    """Every test in process (check_values off), as for a test of no value shape: the attacks
    of issue 31 end failed, skip-raised or tampered; only ``closure-forge`` still passes its
    in-process tests (docs/security.md says so), and its value-checked tests fail."""
    from tests.sandbox_attacks import ATTACKS, make_workspace

    ws, _outside = make_workspace(tmp_path)
    tests = [TestCase("tests/test_mod.py::test_add", "pytest", "tests/test_mod.py", "test_add"),
             TestCase("tests/test_mod.py::test_add_in_process", "pytest", "tests/test_mod.py",
                      "test_add_in_process")]
    target = ("pkg/mod.py", "add")
    with Sandbox(ws, isolation=mode, timeout=6.0) as sandbox:
        sandbox.check_values = False
        for name, outcome in RED_TEAM.items():
            run = sandbox.run_tests({"pkg/mod.py": ATTACKS[name][1]}, tests, target=target)
            assert not run.all_passed, name
            assert [v.outcome for v in run.verdicts] == [outcome] * 2, (name, run.verdicts)
            assert all(v.checked == "in-process" for v in run.verdicts)
            assert bool(run.tampered) == (outcome == "error"), (name, run.tampered)
        forged = sandbox.run_tests({"pkg/mod.py": ATTACKS["closure-forge"][1]}, tests)
        sandbox.check_values = True
        both = sandbox.run_tests({"pkg/mod.py": ATTACKS["closure-forge"][1]}, tests)
    assert forged.all_passed, "what remains in process: a stream signed with the plugin's signer"
    assert [v.outcome for v in both.verdicts] == ["failed", "passed"] and not both.all_passed
    assert both.checked == "mixed"


def test_the_result_says_how_the_chosen_candidate_was_checked() -> None:
    from plancode.pipeline.result import PipelineResult
    from plancode.testing.types import RunResult, TestVerdict

    run = RunResult([TestVerdict("a", "passed", checked="out-of-process"),
                     TestVerdict("b", "passed", checked="in-process"),
                     TestVerdict("c", "skipped", checked="in-process")], "bwrap", "", 0.1,
                    runner_ok=True)
    chosen = Candidate(0, "direct-greedy", None, run=run)
    result = PipelineResult("f.py", "f", 1, [], "user", [chosen], chosen, "bwrap", "", False)
    data = result.to_json()
    assert data["checked"] == "mixed" and data["chosen"]["checked"] == "mixed"
    assert [v["checked"] for v in data["chosen"]["verdicts"]] == \
        ["out-of-process", "in-process", "in-process"]
    run.verdicts = run.verdicts[:1] + run.verdicts[2:]  # a user's skip counts neither way
    assert result.to_json()["checked"] == "out-of-process"


def test_the_projects_warning_filters_apply_out_of_process_too(workspace: Path) -> None:
    """``filterwarnings = ["error"]`` makes a warning a failure under pytest; the value runner
    applies the same filters, so both ways agree."""
    (workspace / "pyproject.toml").write_text(
        "[project]\nname = 'stats'\n\n[tool.pytest.ini_options]\n"
        'filterwarnings = ["error", "ignore::UserWarning"]\n')
    noisy = MOD.replace("    if not xs:", "    import warnings\n"
                        "    warnings.warn('old', DeprecationWarning)\n    if not xs:")
    quiet = MOD.replace("    if not xs:", "    import warnings\n"
                        "    warnings.warn('fine', UserWarning)\n    if not xs:")
    with Sandbox(workspace) as sandbox:
        loud = sandbox.run_tests({"pkg/stats.py": noisy}, CASES[:1])
        calm = sandbox.run_tests({"pkg/stats.py": quiet}, CASES[:1])
        sandbox.check_values = False
        loud_in_process = sandbox.run_tests({"pkg/stats.py": noisy}, CASES[:1])
    assert loud.verdicts[0].checked == "out-of-process"
    assert loud.verdicts[0].outcome == loud_in_process.verdicts[0].outcome == "failed"
    assert "DeprecationWarning: old" in loud.verdicts[0].message
    assert calm.all_passed
