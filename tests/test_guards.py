"""Generation guards (``plancode.pipeline.guards``): golden cases for each rule, fed the way
the engine feeds them (the reply so far, one token at a time)."""

from __future__ import annotations

import pytest

from plancode.pipeline.guards import Guard, code_cap, open_code, repetition, unparseable

START = '```python\ndef mean(xs: list[float]) -> float:\n    """The mean."""\n'


def feed(guard: Guard, text: str, step: int = 3) -> int | None:
    """Feed ``text`` in small pieces; the number of characters seen when it stopped."""
    for end in range(step, len(text) + step, step):
        if guard(text[:end]):
            return min(end, len(text))
    return None


@pytest.mark.parametrize("body", [
    "    return sum(xs) / len(xs)\n```\nThis returns the mean.\n",
    "    if not xs:\n        raise ValueError('empty')\n    total = 0.0\n    for x in xs:\n"
    "        total += x\n    return total / len(xs)\n```",
    "    s = '''multi\nline\nstring'''\n    return (1 +\n            2)\n```",
    "    print()\n    print()\n    print()\n    return 0.0\n```",  # a few equal lines are fine
])
def test_good_code_is_never_stopped(body: str):
    assert feed(Guard(START, cap=600), body) is None


def test_code_that_cannot_parse_stops_at_the_bad_line():
    body = "    total = 0\n    for x in xs\n        total += x\n" + "    # more\n" * 40
    guard = Guard(START)
    seen = feed(guard, body)
    assert seen is not None and seen <= len("    total = 0\n    for x in xs\n") + 3
    assert guard.tripped.startswith("unparseable")


def test_prose_inside_the_code_block_stops():
    guard = Guard(START)
    assert feed(guard, "    return sum(xs) / len(xs)\nThis function computes the mean of\n")
    assert guard.tripped.startswith("unparseable")


def test_a_decoding_loop_stops():
    guard = Guard(START)
    assert feed(guard, "    x = 1\n" + "    x = x + 1\n" * 20) is not None
    assert guard.tripped.startswith("repetition")
    assert repetition("    a, b = b, a\n" * 5)
    assert not repetition("    a = 1\n    b = 2\n    c = 3\n")


def test_a_repeated_block_of_lines_is_a_loop_but_a_docstring_or_a_ladder_is_not() -> None:
    """The held-out set's greedy word_break: a 3-line block (105 characters, longer than a
    repeated piece may be) over and over to max_tokens."""
    head = "def word_break(word, words):\n    for i in range(len(word)):\n"
    block = ("        if word[i+1:] in words:\n            if word[i+1:] == word[:i+1]:\n"
             "                return True\n")
    assert not repetition(head + block * 3)
    assert repetition(head + block * 4)
    guard = Guard("```python\n")
    assert guard(head + block * 3) is False and guard(head + block * 4) is True
    assert guard.tripped.startswith("repetition")
    examples = '    """Is it prime?\n' + "    >>> f(1)\n    False\n" * 5 + '    """\n'
    assert not repetition("def f(n):\n" + examples + "    return n > 1\n")
    ladder = "".join(f"    if n == {k}:\n        return {18 * 10 ** k}\n" for k in range(9))
    assert not repetition("def f(n):\n" + ladder)  # ugly, but not a loop


def test_length_cap_is_relative_to_the_direct_answer():
    assert code_cap(None) is None
    assert code_cap("return 1") == 600
    assert code_cap("x" * 1000) == 4000
    guard = Guard(START, cap=600)
    body = "".join(f"    v{i} = xs[{i}] * {i} + {i * 7}\n" for i in range(60))
    assert feed(guard, body) is not None and guard.tripped.startswith("length")


def test_only_the_open_code_block_is_judged():
    plan = "1. Sum the values.\n2. Divide: this is prose, not code!\n"
    assert open_code(plan) is None
    assert Guard("")(plan) is False
    assert open_code("```python\ndef f():\n    return 1\n```\nDone.\n") is None
    assert open_code("Here:\n```python\ndef f():\n") == "def f():\n"


def test_incomplete_is_not_unparseable():
    assert unparseable("def f(x):\n    if x:\n") is None
    assert unparseable("def f(x):\n    return (1 +\n") is None
    assert unparseable("def f(x):\n    return (1 +\n    2 +") is None  # last line unfinished
    assert unparseable("def f(x):\n    return 1 +* 2\n") is not None


def test_a_good_function_followed_by_prose_is_kept():
    guard = Guard(START)
    feed(guard, "    return sum(xs) / len(xs)\nThis computes the mean.\nMore prose here.\n")
    assert guard.tripped.startswith("unparseable")
    assert guard.salvaged == START.split("\n", 1)[1] + "    return sum(xs) / len(xs)\n"
    bad = Guard(START)
    feed(bad, "    for x in xs\n        pass\n")
    assert bad.tripped and bad.salvaged is None


@pytest.mark.parametrize("extra", [
    "# The user's tests, which the function must pass:\ndef test_mean():\n"
    "    assert mean([1.0]) == 1.0\n    assert mean([2.0, 4.0]) == 3.0\n    assert mean([",
    "assert mean([1.0, 3.0]) == 2.0\n",
    "print(mean([1.0, 3.0]))\n",
    "if __name__ == '__main__':\n    print(mean([1.0]))\n",
    "class TestMean:\n    def test_one(self):\n",
])
def test_tests_or_a_demo_after_the_function_stop_and_the_function_is_kept(extra: str):
    """The 0.5B's greedy answer to ``order_total`` copied the user's test after the function
    and made up asserts until ``max_tokens``, cut mid-line: 25 s for a candidate that did not
    parse. The function before them is the answer."""
    body = "    if not xs:\n        return 0.0\n    return sum(xs) / len(xs)\n\n"
    guard = Guard(START)
    seen = feed(guard, body + extra)
    assert seen is not None and seen <= len(body) + len(extra.split("\n")[0]) + 4
    assert guard.tripped.startswith("not the answer")
    assert guard.salvaged == START.split("\n", 1)[1] + body


def test_helpers_and_asserts_inside_the_function_are_the_answer():
    body = ("    assert xs, 'empty'\n    print_total = sum(xs)\n    return print_total / len(xs)\n"
            "\n\ndef testable_helper(x):\n    return x\n\n\nclass Testing:\n    pass\n```")
    assert feed(Guard(START), body) is None
