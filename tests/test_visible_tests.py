"""The user's tests shown to the model: in the prompt, and beside a failure in a repair."""

from __future__ import annotations

from pathlib import Path

from plancode.pipeline.run import MODULE_DOC_CHARS, first_paragraphs, module_docstring
from plancode.pipeline.visible_tests import failure_report, sources, with_tests
from plancode.testing.types import TestCase

TESTS = '''from shop.orders import order_total


def helper():
    return 1


def test_total():
    assert order_total([("apple", 2, 150)]) == 300


class TestMore:
    def test_empty(self):
        assert order_total([]) == 0
'''


def test_sources_prompt_and_failure_report(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_o.py").write_text(TESTS)
    tests = [TestCase("tests/test_o.py::test_total", "pytest", "tests/test_o.py", "test_total"),
             TestCase("tests/test_o.py::TestMore::test_empty", "pytest", "tests/test_o.py",
                      "test_empty"),
             TestCase("test_plancode_docstring.py::test_docstring_0", "docstring",
                      "test_plancode_docstring.py", "order_total([]) == 0"),
             TestCase("tests/test_o.py::test_gone", "pytest", "tests/test_o.py", "gone")]
    found = sources(tmp_path, tests)
    assert found["tests/test_o.py::test_total"].startswith("def test_total():")
    assert "assert order_total([]) == 0" in found["tests/test_o.py::TestMore::test_empty"]
    assert found["test_plancode_docstring.py::test_docstring_0"] == "assert order_total([]) == 0"
    assert "tests/test_o.py::test_gone" not in found
    problem = with_tests("def order_total(lines):\n    '''Total.'''\n", tests, found)
    assert "# The user's tests, which the function must pass:" in problem
    assert 'assert order_total([("apple", 2, 150)]) == 300' in problem
    assert problem.count("assert order_total([]) == 0") == 1, "docstring checks not repeated"
    report = failure_report("tests/test_o.py::test_total: failed: assert 150 == 300",
                            ["tests/test_o.py::test_total"], found)
    assert report.endswith('assert order_total([("apple", 2, 150)]) == 300')
    assert "assert 150 == 300" in report


def test_module_docstring_is_context() -> None:
    assert module_docstring('"""Lines are (sku, qty, price)."""\n\ndef f(): pass\n') == \
        '"""Lines are (sku, qty, price)."""\n\n'
    assert module_docstring("def f(:\n") == "" and module_docstring("x = 1\n") == ""


def test_a_long_module_docstring_is_cut_to_its_first_paragraphs() -> None:
    """networkx's isomorphvf2.py opens with 5,000 characters on the algorithm: the prompt
    keeps the conventions its first paragraphs state, not the essay."""
    intro = "Graph isomorphism with VF2.\n\nNodes are hashable; graphs are nx.Graph."
    essay = "\n\n".join(f"Paragraph {k}: " + "x" * 300 for k in range(20))
    text = module_docstring(f'"""{intro}\n\n{essay}"""\n\ndef f(): pass\n')
    assert text.startswith('"""Graph isomorphism with VF2.\n\nNodes are hashable')
    assert text.endswith('\n..."""\n\n') and len(text) <= MODULE_DOC_CHARS + 20
    assert "Paragraph 0" in text and "Paragraph 19" not in text
    assert first_paragraphs("short", 10) == "short"
    assert first_paragraphs("one line\n" + "y" * 50, 20) == "one line\n..."
    assert first_paragraphs("z" * 50, 20) == "z" * 20 + "..."
