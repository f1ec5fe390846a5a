"""Docstring examples written in prose become checks labelled as taken from the docstring."""

from __future__ import annotations

from plancode.testing.prose_examples import (
    all_examples,
    docstring_tests,
    doctest_examples,
    prose_examples,
)

DOC = """Sum the numbers.

For example:
add([1, 2]) == 3
add([]) ➞ 0
add([4]) -> 4
add([1, 1, 1]) should return 3
add([5]) is 5.
add([2, 2]) == 1 + 3 = 4
add([1,
     9]) => 10
add(x) == 5
add([7]) == 7 apples
>>> add([9])
9
"""


def texts(doc: str, name: str, params: list[str] | None = None) -> list[str]:
    return [e.text for e in prose_examples(doc, name, params)]


def test_every_prose_form_becomes_a_check() -> None:
    assert texts(DOC, "add") == [
        "add([1, 2]) == 3", "add([]) == 0", "add([4]) == 4", "add([1, 1, 1]) == 3",
        "add([5]) == 5", "add([2, 2]) == 4", "add([1, 9]) == 10",
    ]


def test_non_literals_other_functions_and_doctests_are_not_prose_checks() -> None:
    doc = "fib(n) = fib(n - 1) + fib(n - 2)\nmyfib(3) == 2\nx.fib(2) == 1\n>>> fib(3)\n2\n"
    assert texts(doc, "fib") == []
    assert [e.text for e in doctest_examples(doc, "fib")] == ["fib(3) == 2"]
    assert [e.text for e in all_examples(DOC, "add")][-1] == "add([9]) == 9"


def test_input_output_blocks_use_the_parameter_names() -> None:
    doc = "Example 1:\n    Input: grid = [[0, 1]], capacity : 2\n    Output: 1\n"
    assert texts(doc, "fill", ["grid", "capacity"]) == ["fill([[0, 1]], 2) == 1"]
    assert texts(doc, "fill", ["grid", "other"]) == []


def test_next_line_values_and_strings() -> None:
    doc = "encode('ab')\n==> 'bc'\nFor example, encode(\"x y\") returns \"y z\" because ...\n"
    assert texts(doc, "encode") == ["encode('ab') == 'bc'", "encode('x y') == 'y z'"]


def test_docstring_tests_are_one_pytest_test_each() -> None:
    tests, files = docstring_tests("pkg.mod", "add", prose_examples(DOC, "add")[:2])
    assert [t.kind for t in tests] == ["docstring", "docstring"]
    assert tests[0].id == "test_plancode_docstring.py::test_docstring_0"
    assert tests[0].name == "add([1, 2]) == 3"
    text = files["test_plancode_docstring.py"]
    assert "from pkg.mod import add" in text
    assert "assert add([]) == 0" in text
    compile(text, "t.py", "exec")


def test_lowercase_booleans_comments_and_for_should_be_lines() -> None:
    doc = ("is_power(1, 4) => true\n"
           "to_bin(15)   # returns \"db1111db\"\n"
           "For lst = [0, 3, 2] the output should be 10\n"
           "For N = 150, the sum of digits will be 6 the output should be \"110\".\n")
    assert texts(doc, "is_power") == ["is_power(1, 4) == True"]
    assert texts(doc, "to_bin") == ["to_bin(15) == 'db1111db'"]
    assert texts(doc, "largest", ["lst"]) == ["largest([0, 3, 2]) == 10"]
    assert texts(doc, "solve", ["N"]) == ["solve(150) == '110'"]
