"""HumanEval's weak mode: only the first docstring example is the user's test."""

from __future__ import annotations

from plancode.trainer.humaneval import first_example_test


def test_first_example_becomes_the_one_visible_test() -> None:
    problem = {"task_id": "X/0", "entry_point": "double",
               "prompt": 'def double(x):\n    """Double x.\n\n    double(2) ➞ 4\n'
                         '    double(0) ➞ 0\n    """\n'}
    text = first_example_test(problem)
    assert text is not None and "from problem import double" in text
    assert "actual = double(2)" in text and "expected = 4" in text
    assert "double(0)" not in text
    namespace: dict = {}
    exec(compile(text.replace("from problem import double", "double = lambda x: 2 * x"),
                 "t.py", "exec"), namespace)
    namespace["test_first_example"]()


def test_no_example_no_test() -> None:
    problem = {"task_id": "X/1", "entry_point": "f",
               "prompt": 'def f(x):\n    """Return something."""\n'}
    assert first_example_test(problem) is None
