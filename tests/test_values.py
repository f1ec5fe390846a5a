"""The data-only encoding and the server's comparisons (server/testing/values.py), and the
static recogniser of value-shaped tests (server/testing/shapes.py). No sandbox, no model."""

from __future__ import annotations

import collections
import enum
import json
import math
from pathlib import Path

import pytest

from plancode.testing import shapes, values
from plancode.testing.types import TestCase


class Colour(enum.IntEnum):
    RED = 3


@pytest.mark.parametrize("value", [
    None, True, False, 0, -2 ** 100, 1.5, -0.0, math.inf, -math.inf, 2 + 3j, "é✓", b"\x00ab",
    bytearray(b"x"), [1, [2, (3,)]], (), {"a": {1: [None]}}, {1, 2}, frozenset({"x"}),
])
def test_plain_data_round_trips_exactly(value: object) -> None:
    back = values.decode(json.loads(json.dumps(values.encode(value))))
    assert type(back) is type(value) and repr(back) == repr(value)


def test_nan_round_trips_and_never_equals() -> None:
    back = values.decode(values.encode(float("nan")))
    assert math.isnan(back) and not values.equal(back, float("nan"))


def test_subclasses_are_read_as_their_base_type() -> None:
    point = collections.namedtuple("point", "x y")
    assert values.decode(values.encode(Colour.RED)) == 3
    assert type(values.decode(values.encode(point(1, 2)))) is tuple
    assert values.decode(values.encode(collections.OrderedDict(a=1))) == {"a": 1}


def test_anything_else_is_not_plain_data() -> None:
    class Anything:
        def __eq__(self, other: object) -> bool:
            return True

    class Fake:  # isinstance() believes it is an int
        __class__ = int  # type: ignore[assignment]

    for value in (Anything(), Fake(), object(), range(3), iter([1]), [Anything()]):
        with pytest.raises(values.NotPlain):
            values.encode(value)


def test_size_and_depth_are_bounded() -> None:
    deep: list = []
    for _ in range(values.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(values.NotPlain, match="deeply"):
        values.encode(deep)
    with pytest.raises(values.NotPlain, match="large"):
        values.encode(["x" * 1000] * 2000)


@pytest.mark.parametrize("data", [
    [], ["int", 3], ["int", "12"], ["bool", 1], ["list", [["nope"]]], ["set", [["list", []]]],
    ["dict", [[["list", []], ["none"]]]], ["str"], ["float", 1.0], "x", ["none", 1],
])
def test_malformed_encodings_are_refused(data: object) -> None:
    with pytest.raises(ValueError):
        values.decode(data)


def test_equality_is_pythons_on_plain_data() -> None:
    assert values.equal(1, 1.0) and values.equal(True, 1)
    assert values.equal({1, 2}, frozenset({2, 1}))
    assert not values.equal([1, 2], (1, 2)) and not values.equal({"a": 1}, {"a": 2})


def test_tolerances() -> None:
    assert values.approx_equal(0.1 + 0.2, 0.3) and values.approx_equal([0.1 + 0.2, 1], [0.3, 1])
    assert not values.approx_equal(1.0, 1.1) and not values.approx_equal([0.3], (0.3,))
    assert values.approx_equal(1.0, 1.05, abs_=0.1) and not values.approx_equal(1.0, 1.2, abs_=0.1)
    assert not values.approx_equal(float("nan"), float("nan"))
    assert values.is_close(1.0, 1.0 + 1e-12) and not values.is_close("1", 1.0)
    assert values.almost_equal(1.00000001, 1.0) and not values.almost_equal(1.1, 1.0)
    assert values.count_equal([1, 2, 2], [2, 1, 2]) and values.count_equal([[1], [2]], [[2], [1]])


def test_doctest_output_is_judged_as_doctest_does() -> None:
    got = values.doctest_output([("text", "hi\n"), ("value", [1, 2]), ("value", None)])
    assert got == "hi\n[1, 2]\n"
    assert values.doctest_matches("hi\n[1, ...]\n", got, shapes.DOCTEST_FLAGS)
    assert values.exception_line("builtins", "ValueError", "bad") == "ValueError: bad\n"


# -- shapes ---------------------------------------------------------------------------------------

TESTS = '''\
import math
import unittest

import pytest

from pkg.mod import add

EXPECTED = 3


def test_plain():
    assert add(1, 2) == 3
    assert add(1, 2) == EXPECTED
    x = [1, 2]
    assert add(*x) != 4
    assert add(0.1, 0.2) == pytest.approx(0.3)
    assert math.isclose(add(0.1, 0.2), 0.3)
    assert add(-1, 1) is not None
    with pytest.raises(TypeError, match="unsupported"):
        add(1, "a")


@pytest.mark.parametrize("a,b,total", [(1, 2, 3), (0, 0, 0)])
def test_grid(a, b, total):
    assert add(a, b) == total


def test_fixture(tmp_path):
    assert add(1, 2) == 3


def test_loop():
    for k in range(3):
        assert add(k, 0) == k


def test_no_literal():
    assert add(1, 2) == add(2, 1)


class TestUnit(unittest.TestCase):
    def test_equal(self):
        self.assertEqual(add(1, 2), 3)
        self.assertAlmostEqual(add(0.1, 0.2), 0.3, places=5)
        self.assertRaises(TypeError, add, 1, "a")


@pytest.mark.skip("later")
def test_marked():
    assert add(1, 2) == 3
'''

MODULE = '''\
def add(a, b):
    """Add.

    >>> add(1, 2)
    3
    >>> add([1], [2])
    [1, 2]
    """
    return a + b


def show(x):
    """>>> show(1)
    Shown(1)
    """
'''


def _case(name: str, kind: str = "pytest") -> TestCase:
    return TestCase(f"tests/test_mod.py::{name}", kind, "tests/test_mod.py", name)


def test_value_shapes_are_recognised(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_mod.py").write_text(TESTS)
    names = ["test_plain", "test_grid", "test_fixture", "test_loop", "test_no_literal",
             "TestUnit::test_equal", "test_marked"]
    found = shapes.recognise(tmp_path, {"pkg/mod.py": MODULE}, [
        *(_case(n, "unittest" if "Unit" in n else "pytest") for n in names),
        TestCase("pkg/mod.py::pkg.mod.add", "doctest", "pkg/mod.py", "add"),
        TestCase("pkg/mod.py::pkg.mod.show", "doctest", "pkg/mod.py", "show")])
    shaped = {k.split("::", 1)[1] for k in found.tests}
    assert shaped == {"test_plain", "test_grid", "TestUnit::test_equal", "pkg.mod.add"}
    assert set(found.why_not) == {f"tests/test_mod.py::{n}" for n in
                                  ("test_fixture", "test_loop", "test_no_literal",
                                   "test_marked")} | {"pkg/mod.py::pkg.mod.show"}
    plain = found.tests["tests/test_mod.py::test_plain"].cases[0]
    assert [s.check.how if s.check else s.mode for s in plain] == \
        ["eq", "eq", "exec", "ne", "approx", "isclose", "is-not", "raises"]
    assert plain[1].check is not None and plain[1].check.expected == 3
    assert len(found.tests["tests/test_mod.py::test_grid"].cases) == 2
    # the child gets the calls, never the expectations
    request = json.dumps(found.tests["tests/test_mod.py::test_plain"].request())
    assert "add(1, 2)" in request and "0.3)" not in request.split("approx")[0][-5:]


def test_autouse_conftest_and_configured_doctests_keep_the_plugin(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_mod.py").write_text(TESTS)
    (tmp_path / "tests" / "conftest.py").write_text(
        "import pytest\n@pytest.fixture(autouse=True)\ndef env(monkeypatch):\n    pass\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\ndoctest_optionflags = NUMBER\n")
    found = shapes.recognise(tmp_path, {"pkg/mod.py": MODULE}, [
        _case("test_plain"), TestCase("pkg/mod.py::pkg.mod.add", "doctest", "pkg/mod.py", "a")])
    assert not found.tests and len(found.why_not) == 2
