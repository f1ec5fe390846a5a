"""Split runs through the real sandbox, in both isolation modes (issue 31).

Tests that are not value-shaped (fixtures, parametrize with ids, marks, loops, helpers, two
computed values compared, ``pytest.raises`` with the user's own class, ``capsys``, a list
mutated in place, a unittest ``setUp``) run in a judge that holds the user's original file and
calls the candidate's function in a worker process: they pass for a correct candidate, fail
for a wrong one, and say ``out-of-process``. A call that cannot cross (a generator returned)
reruns that test in process, labelled so: such a result is ``passes-tests``, never
``verified``. The attacks on the protocol are rows of the attack matrix
(tests/sandbox_attacks.py); the proxy's own checks are in tests/test_call_proxy.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plancode.pipeline.agreement import Agreement
from plancode.pipeline.result import Candidate, PipelineResult
from plancode.testing import shapes
from plancode.testing.sandbox import Sandbox
from plancode.testing.types import TestCase
from tests.test_value_checks import _bwrap_unusable

USER = '''\
class PriceError(ValueError):
    """A price that cannot be."""


def total(prices, discount=0):
    """The sum of ``prices`` less ``discount`` percent, rounded to cents; sorts ``prices``
    in place and prints the total; a negative price raises PriceError."""
    raise NotImplementedError


def receipt(prices):
    return f"TOTAL {total(prices)}"


def evens(n):
    """The even numbers below ``n``, lazily."""
    raise NotImplementedError
'''

STUB = '''a negative price raises PriceError."""
    raise NotImplementedError'''
RIGHT = USER.replace(STUB, '''a negative price raises PriceError."""
    if any(p < 0 for p in prices):
        raise PriceError(f"negative price in {prices}")
    prices.sort()
    value = round(sum(prices) * (100 - discount) / 100, 2)
    print(f"total: {value}")
    return value''')
# wrong everywhere: order-dependent, no discount, no print, no sort, no raise
WRONG = USER.replace(STUB, '''a negative price raises PriceError."""
    return prices[0] * 2 + sum(prices[1:]) if prices else 0''')
EVENS = USER.replace('''    """The even numbers below ``n``, lazily."""
    raise NotImplementedError''', '''    """The even numbers below ``n``, lazily."""
    return (k for k in range(0, n, 2))''')

TESTS = '''\
import unittest

import pytest

from pkg.shop import PriceError, receipt, total

CASES = [([1, 2], 0, 3), ([10], 50, 5.0), ([], 0, 0)]


@pytest.fixture
def basket():
    return [3, 1, 2]


def test_fixture(basket):
    assert total(basket) == 6


@pytest.mark.parametrize("prices, discount, expected",
                         [([1, 2], 0, 3), ([10, 10], 25, 15.0)], ids=["plain", "quarter-off"])
def test_ids(prices, discount, expected, basket):
    assert total(prices, discount) == expected


@pytest.mark.skipif(False, reason="never skipped")
def test_marked_loop():
    for prices, discount, expected in CASES:
        assert total(list(prices), discount) == expected


def _costs(prices, expected):
    assert total(prices) == expected


def test_helper():
    _costs([1, 1], 2)


def test_two_computed():
    assert total([1, 2]) == total([2, 1])


def test_users_exception():
    with pytest.raises(PriceError, match="negative") as info:
        total([1, -1])
    assert isinstance(info.value, ValueError)


def test_printed(capsys):
    total([2, 2])
    assert capsys.readouterr().out == "total: 4.0\\n"


def test_mutation():
    prices = [3, 1, 2]
    total(prices)
    assert prices == [1, 2, 3]


def test_users_helper_calls_it(basket):
    assert receipt([1, 2]) == "TOTAL 3.0"


class TestShop(unittest.TestCase):
    def setUp(self):
        self.prices = [5, 5]

    def test_total(self):
        self.assertEqual(total(self.prices, 10), 9.0)
'''

GEN_TESTS = '''\
import pytest

from pkg.shop import evens


@pytest.fixture
def n():
    return 5


def test_list(n):
    assert list(evens(n)) == [0, 2, 4]


def test_sum(n):
    assert sum(evens(n)) == 6


def test_empty(n):
    assert list(evens(n - 5)) == []
'''

NAMES = ["test_fixture", "test_ids", "test_marked_loop", "test_helper", "test_two_computed",
         "test_users_exception", "test_printed", "test_mutation", "test_users_helper_calls_it",
         "TestShop::test_total"]
CASES = [TestCase(f"tests/test_shop.py::{n}", "unittest" if "::" in n else "pytest",
                  "tests/test_shop.py", n) for n in NAMES]
GEN_CASES = [TestCase(f"tests/test_gen.py::{n}", "pytest", "tests/test_gen.py", n)
             for n in ("test_list", "test_sum", "test_empty")]


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
    (ws / "pkg" / "shop.py").write_text(USER)
    (ws / "tests" / "test_shop.py").write_text(TESTS)
    (ws / "tests" / "test_gen.py").write_text(GEN_TESTS)
    (ws / "pyproject.toml").write_text("[project]\nname = 'shop'\n")
    return ws


def test_no_test_here_is_value_shaped(workspace: Path) -> None:
    """So every one of them goes through the split run (not the value runner)."""
    assert shapes.recognise(workspace, {}, CASES + GEN_CASES).tests == {}


def test_honest_shapes_pass_out_of_process_and_wrong_code_fails(workspace: Path,
                                                                 mode: str) -> None:
    target = ("pkg/shop.py", "total")
    with Sandbox(workspace, isolation=mode, timeout=20.0) as sandbox:
        right = sandbox.run_tests({"pkg/shop.py": RIGHT}, CASES, target=target)
        wrong = sandbox.run_tests({"pkg/shop.py": WRONG}, CASES, target=target)
    assert right.all_passed, [(v.id, v.outcome, v.message) for v in right.verdicts]
    assert [v.checked for v in right.verdicts] == ["out-of-process"] * len(CASES)
    assert right.checked == "out-of-process" and right.flags == []
    assert "worker_returncode" in right.extra  # the split run, not the in-process plugin
    assert [v.outcome for v in wrong.verdicts] == ["failed"] * len(CASES), \
        [(v.id, v.outcome, v.message) for v in wrong.verdicts]
    assert [v.checked for v in wrong.verdicts] == ["out-of-process"] * len(CASES)
    messages = {v.id.split("::", 1)[1]: v.message for v in wrong.verdicts}
    assert "DID NOT RAISE" in messages["test_users_exception"]
    assert "assert 4 == 3" in messages["test_two_computed"] or \
        "4 == 5" in messages["test_two_computed"], messages


def test_the_user_file_is_judged_and_the_candidate_file_called(workspace: Path,
                                                                mode: str) -> None:
    """The judge never runs the candidate's module: code at its top level (here: forging
    the plugin's stream with the signer from its closure, as closure-forge does) runs in the
    worker, where there is no plugin and no channel to forge."""
    from tests.sandbox_attacks import ATTACKS

    forge = ATTACKS["closure-forge"][1].split("\n\ndef add(a, b)")[0]
    target = ("pkg/shop.py", "total")
    with Sandbox(workspace, isolation=mode, timeout=20.0) as sandbox:
        run = sandbox.run_tests({"pkg/shop.py": forge + "\n" + WRONG}, CASES[:3], target=target)
    assert [v.outcome for v in run.verdicts] == ["failed"] * 3, run.verdicts
    assert not run.tampered and run.checked == "out-of-process"


def test_a_generator_falls_back_in_process_and_is_never_verified(workspace: Path,
                                                                 mode: str) -> None:
    target = ("pkg/shop.py", "evens")
    with Sandbox(workspace, isolation=mode, timeout=20.0) as sandbox:
        run = sandbox.run_tests({"pkg/shop.py": EVENS}, GEN_CASES, target=target)
        wrong = sandbox.run_tests({"pkg/shop.py": EVENS.replace("range(0, n, 2)",
                                                                "range(1, n, 2)")},
                                  GEN_CASES, target=target)
    assert run.all_passed, [(v.id, v.outcome, v.message) for v in run.verdicts]
    assert [v.checked for v in run.verdicts] == ["in-process"] * 3
    assert any("generator, which is not plain data" in f for f in run.flags), run.flags
    assert not wrong.all_passed and wrong.checked == "in-process"
    chosen = Candidate(0, "direct-greedy", None, run=run)
    result = PipelineResult("pkg/shop.py", "evens", 15, GEN_CASES, "user", [chosen], chosen,
                            run.isolation, "", False, agreement=Agreement.of(GEN_CASES, None))
    assert not result.weak_evidence, "three tests are enough checks"
    assert result.status == "passes-tests" and not result.verified
    assert result.not_verified_because == "in-process"
    assert "(checked in-process)" in result.strength
    data = result.to_json()
    assert data["checks_in_process"] == 3 and data["checks_out_of_process"] == 0


def test_tests_that_patch_or_write_files_fall_back(workspace: Path, mode: str) -> None:
    """What the worker would not see: a monkeypatched module global, a file made in the
    judge's tmp_path. Both rerun in process (and pass there)."""
    (workspace / "pkg" / "shop.py").write_text(USER + "\nRATE = 1\n\n\ndef read(path):\n"
                                               "    raise NotImplementedError\n")
    (workspace / "tests" / "test_env.py").write_text('''\
import pkg.shop
from pkg.shop import read


def test_patched(monkeypatch):
    monkeypatch.setattr(pkg.shop, "RATE", 2)
    assert read(__file__).startswith("import")


def test_file(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("made by the test")
    assert read(str(path)) == "made by the test"


def test_plain():
    assert read("pyproject.toml").startswith("[project]")
''')
    right = USER + ("\nRATE = 1\n\n\ndef read(path):\n    with open(path) as f:\n"
                    "        return f.read()\n")
    cases = [TestCase(f"tests/test_env.py::{n}", "pytest", "tests/test_env.py", n)
             for n in ("test_patched", "test_file", "test_plain")]
    with Sandbox(workspace, isolation=mode, timeout=20.0) as sandbox:
        run = sandbox.run_tests({"pkg/shop.py": right}, cases, target=("pkg/shop.py", "read"))
    assert run.all_passed, [(v.id, v.outcome, v.message) for v in run.verdicts]
    assert [v.checked for v in run.verdicts] == ["in-process", "in-process", "out-of-process"]


def test_every_client_says_checked_in_process() -> None:
    """The one rule (result.py, agreement.py) and its words in the CLI, --json and the LSP:
    strong tests all decided out of process are verified; the same with one decided in the
    candidate's process is passes-tests, "checked in-process"."""
    from plancode.complete import headline
    from plancode.lsp.verified import plan_comment
    from plancode.testing.types import RunResult, TestVerdict

    def result(checked: list[str]) -> PipelineResult:
        verdicts = [TestVerdict(c.id, "passed", kind=c.kind, checked=how)
                    for c, how in zip(CASES, checked, strict=False)]
        run = RunResult(verdicts, "bwrap", "", 1.0, runner_ok=True)
        chosen = Candidate(0, "direct-greedy", None, run=run)
        tests = CASES[:len(checked)]
        return PipelineResult("pkg/shop.py", "total", 5, tests, "user", [chosen], chosen,
                              "bwrap", "", False, agreement=Agreement.of(tests, None))

    strong = result(["out-of-process"] * 4)
    assert strong.status == "verified" and strong.not_verified_because == ""
    assert headline(strong).startswith("VERIFIED")
    mixed = result(["out-of-process"] * 3 + ["in-process"])
    assert mixed.status == "passes-tests" and mixed.not_verified_because == "in-process"
    assert "checked in-process" in headline(mixed)
    assert mixed.strength.startswith("passes your 4 tests (checked in-process)")
    assert "checked in-process" in plan_comment(mixed, "    ")
    data = mixed.to_json()
    assert (data["checks_out_of_process"], data["checks_in_process"]) == (3, 1)
    assert data["not_verified_because"] == "in-process" and not data["verified"]
    few = result(["out-of-process"] * 2)
    assert few.status == "passes-tests" and few.not_verified_because == "few-tests"
    assert "too few" in headline(few) and "checked in-process" not in few.strength


def test_a_test_that_forks_falls_back(tmp_path: Path, mode: str) -> None:
    """multiprocessing's children would call the proxy away from the judge: the judge reports
    the test before the fork, and it reruns in process (where it passes)."""
    ws = tmp_path / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "tests").mkdir()
    (ws / "pkg" / "__init__.py").write_text("")
    (ws / "pkg" / "mod.py").write_text("def sq(x):\n    raise NotImplementedError\n")
    (ws / "tests" / "test_mod.py").write_text('''\
import multiprocessing

from pkg.mod import sq


def test_pool():
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert pool.map(sq, [1, 2, 3]) == [1, 4, 9]


def test_plain(tmp_path):
    assert sq(3) == 9
''')
    cases = [TestCase(f"tests/test_mod.py::{n}", "pytest", "tests/test_mod.py", n)
             for n in ("test_pool", "test_plain")]
    with Sandbox(ws, isolation=mode, timeout=30.0) as sandbox:
        run = sandbox.run_tests({"pkg/mod.py": "def sq(x):\n    return x * x\n"}, cases,
                                target=("pkg/mod.py", "sq"))
    assert run.all_passed, [(v.id, v.outcome, v.message) for v in run.verdicts]
    assert [v.checked for v in run.verdicts] == ["in-process", "out-of-process"]
    assert any("forks a process" in f for f in run.flags), run.flags
