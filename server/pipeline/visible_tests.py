"""The user's tests as the model should see them: in the prompt, and beside a failure.

A docstring often leaves the data's shape implicit (which field of a tuple is the price?);
the user's test shows it. So the source of the tests that exercise the function goes into the
problem shown to the model (after the function, as code it must satisfy), and a repair round
sees the source of each failing test beside its message (pytest's ``assert 150 == 300``: the
actual and the expected value), so the model can tell what its code returned and what was
wanted. Sources are read from the workspace (or the sandbox-only generated files) and capped.
"""

from __future__ import annotations

import ast
from pathlib import Path

from plancode.analysis import pyparse
from plancode.testing.types import TestCase

MAX_TEST_CHARS = 900
MAX_BLOCK_CHARS = 1800


def _node_path(test: TestCase) -> list[str]:
    """``file.py::Class::test_x[param]`` -> ["Class", "test_x"]."""
    parts = test.id.split("::")[1:]
    return [p.split("[")[0] for p in parts]


def test_source(root: Path, test: TestCase, extra_files: dict[str, str] | None = None) -> str:
    """The source of one test ('' when it cannot be found): a pytest/unittest function, or
    the check a docstring example became."""
    if test.kind == "docstring":
        return f"assert {test.name}"
    if test.kind not in ("pytest", "unittest") or not test.file:
        return ""
    files = extra_files or {}
    try:
        text = files.get(test.file) or (root / test.file).read_text(encoding="utf-8")
        tree = pyparse.parse(text)
    except (OSError, UnicodeDecodeError, SyntaxError):
        return ""
    scope: list[ast.stmt] = tree.body
    node: ast.AST | None = None
    for name in _node_path(test):
        node = next((n for n in scope if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef
                                                    | ast.ClassDef) and n.name == name), None)
        if node is None:
            return ""
        scope = node.body  # type: ignore[attr-defined]
    source = ast.get_source_segment(text, node) if node is not None else None
    if not source:
        return ""
    return source if len(source) <= MAX_TEST_CHARS else source[:MAX_TEST_CHARS] + "\n    ..."


def sources(root: Path, tests: list[TestCase],
            extra_files: dict[str, str] | None = None) -> dict[str, str]:
    """Test id -> source, for the tests whose source could be found."""
    found = {t.id: test_source(root, t, extra_files) for t in tests}
    return {k: v for k, v in found.items() if v}


def with_tests(problem: str, tests: list[TestCase], found: dict[str, str]) -> str:
    """``problem`` followed by the user's pytest/unittest tests of it (docstring examples are
    in the docstring already), capped at MAX_BLOCK_CHARS."""
    block: list[str] = []
    size = 0
    for t in tests:
        src = found.get(t.id, "")
        if t.kind not in ("pytest", "unittest") or not src or size + len(src) > MAX_BLOCK_CHARS:
            continue
        block.append(src)
        size += len(src)
    if not block:
        return problem
    return (problem.rstrip() + "\n\n\n# The user's tests, which the function must pass:\n"
            + "\n\n".join(block) + "\n")


def failure_report(failures: str, failing: list[str], found: dict[str, str]) -> str:
    """The failure messages, each failing test's source after them."""
    shown = [f"{tid}:\n{found[tid]}" for tid in failing if tid in found]
    if not shown:
        return failures
    return failures.rstrip() + "\n\nThe failing tests:\n" + "\n\n".join(shown)
