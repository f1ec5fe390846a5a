"""A mined problem in a real (tiny) codebase whose tests include one its own solution fails:
pydash's pattern, a pytest-mypy-testing case (``reveal_type``) beside the real test."""

from __future__ import annotations

from pathlib import Path

from plancode.trainer.data import Problem

REAL_TEST = "tests/test_mod.py::test_triple"


def typecase_problem(tmp_path: Path) -> Problem:
    """``pkg/mod.py::triple`` with a real test and a type-checker case that fails as a plain
    test whatever the code."""
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "mod.py").write_text(
        'def triple(x):\n    """Three times x."""\n    return 3 * x\n')
    (root / "tests" / "test_mod.py").write_text(
        "from pkg.mod import triple\n\n\ndef test_triple():\n    assert triple(2) == 6\n\n\n"
        "def test_mypy_triple():\n    reveal_type(triple(2))  # noqa: F821\n")
    tests = [{"id": f"tests/test_mod.py::{n}", "kind": "pytest", "file": "tests/test_mod.py",
              "name": n} for n in ("test_triple", "test_mypy_triple")]
    return Problem("pkg/mod.py::triple", 'def triple(x):\n    """Three times x."""\n',
                   "def triple(x):\n    return 3 * x\n", (), "mined",
                   {"root": str(root), "file": "pkg/mod.py", "qualname": "triple",
                    "tests": tests})


class Answers:
    """A model that answers every prompt with ``triple`` returning ``body``."""

    def __init__(self, body: str) -> None:
        self.body = body
        self.asked = 0

    def chat(self, messages, params) -> str:
        self.asked += 1
        return f"```python\ndef triple(x):\n    return {self.body}\n```"
