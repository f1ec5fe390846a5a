"""The held-out mined problems in plancode's whole pipeline (``select``): the pipeline sees the
function with no body in a copy of its codebase without the tests, uses the docstring's
examples as the user's tests, and what it chooses is judged by the hidden package tests.

A scripted engine (canned code replies, no model) stands in for the model; the workspace copy,
the pipeline, the sandbox and the judging are the real ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plancode import prompts
from plancode.config import Settings
from plancode.engine.types import Generation, SamplingParams
from plancode.errors import PlancodeError
from plancode.pipeline import Pipeline
from plancode.trainer.data import Problem
from plancode.trainer.heldout import ALL_MODES, evaluate_heldout
from plancode.trainer.heldout_pipeline import Workspaces, stubbed
from plancode.trainer.jsonl_cache import JsonlCache

SOLUTION = "    return 3 * x\n"
MOD = ('"""Multiples."""\n\n\ndef triple(x):\n    """Three times x.\n\n    >>> triple(2)\n'
       '    6\n    """\n' + SOLUTION + "\n\ndef other():\n    return 1\n")
HIDDEN = "tests/test_mod.py::test_negative"
EXAMPLE_ONLY = "def triple(x):\n    return 6 if x == 2 else 0\n"  # passes the example only
RIGHT = "def triple(x):\n    return x * 3\n"


def mined(tmp_path: Path) -> Problem:
    """``pkg/mod.py::triple``: a doctest the user sees, a hidden test that checks more."""
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "mod.py").write_text(MOD)
    (root / "pkg" / "test_inner.py").write_text("from pkg.mod import triple\n")
    (root / "tests" / "test_mod.py").write_text(
        "from pkg.mod import triple\n\n\ndef test_negative():\n    assert triple(-1) == -3\n")
    tests = [{"id": HIDDEN, "kind": "pytest", "file": "tests/test_mod.py",
              "name": "test_negative"},
             {"id": "pkg/mod.py::pkg.mod.triple", "kind": "doctest", "file": "pkg/mod.py",
              "name": "triple (doctest)"}]
    return Problem("pkg/mod.py::triple", 'def triple(x):\n    """Three times x."""\n',
                   "def triple(x):\n" + SOLUTION, (), "mined",
                   {"root": str(root), "file": "pkg/mod.py", "qualname": "triple",
                    "tests": tests})


class Scripted:
    """Code replies in order; records every prompt it was sent."""

    fim_format = None

    def __init__(self, codes: list[str]) -> None:
        self.codes = list(codes)
        self.prompts: list[str] = []

    def chat(self, messages, params: SamplingParams, cancel=None, on_text=None) -> Generation:
        self.prompts.append("\n".join(m["content"] for m in messages))
        if prompts.PLAN_REQUEST in messages[-1]["content"]:
            text = "1. Multiply x by three."
        else:
            text = f"```python\n{self.codes.pop(0) if self.codes else RIGHT}```"
        return Generation(text, "stop", 10, 10, 0, 5, logprobs=[-0.1] * 5)


class NoModel:
    def chat(self, messages, params) -> str:
        raise AssertionError("the model was asked for a cached held-out row")


def run(problem: Problem, engine, caches: dict[str, Path], **kw) -> dict:
    pipeline = Pipeline(engine, Settings.from_mapping(
        {"candidates": 1, "repair_rounds": 0, "parallel_candidates": 1, "escalate_model": ""}))
    return evaluate_heldout({"base": NoModel()}, [problem], caches, "auto", 30.0, 64,
                            log=False, modes=("select",), pipelines={"base": lambda: pipeline},
                            **kw)


def test_the_user_sees_no_body_and_no_tests(tmp_path: Path) -> None:
    problem = mined(tmp_path)
    text, line = stubbed(MOD, "triple")
    assert "3 * x" not in text and "def other():\n    return 1" in text
    assert text.splitlines()[line].strip() == "..."
    with Workspaces() as ws:
        copy = ws.of(Path(problem.meta["root"]))
        assert (copy / "pkg" / "mod.py").exists()
        assert not (copy / "tests").exists() and not (copy / "pkg" / "test_inner.py").exists()


def test_an_answer_that_only_fits_the_example_fails_the_hidden_tests(tmp_path: Path) -> None:
    problem = mined(tmp_path)
    engine = Scripted([EXAMPLE_ONLY])
    out = run(problem, engine, {"base": tmp_path / "rows.jsonl"})
    assert out["base"]["select"] == {"pass@1": 0.0, "solved": 0, "n": 1}
    row = next(iter(JsonlCache(tmp_path / "rows.jsonl")))
    # it passed what the user could see (the docstring's example), not the package's tests
    assert row["passed_user_tests"] and row["tests_source"] == "user" and row["user_tests"] == 1
    # the label rests on one example, so it says so; the first answer shown was wrong too, and
    # the pool keeps the candidate with the package tests' verdict for comparing choosers
    assert row["status"] == "passes-tests" and row["first_passed"] is False
    assert [(c["visible_passed"], c["hidden"], c["chosen"]) for c in row["pool"]] == [
        (1, False, True)]
    seen = "\n".join(engine.prompts)
    assert "triple(-1)" not in seen and "3 * x" not in seen
    # the original file is untouched
    assert (Path(problem.meta["root"]) / "pkg" / "mod.py").read_text() == MOD


def test_a_right_answer_passes_and_its_row_is_reused(tmp_path: Path) -> None:
    problem = mined(tmp_path)
    caches = {"base": tmp_path / "rows.jsonl"}
    first = run(problem, Scripted([RIGHT]), caches)
    assert first["base"]["select"] == {"pass@1": 1.0, "solved": 1, "n": 1}
    idle = Scripted([])
    assert run(problem, idle, caches) == first  # from the cache
    assert idle.prompts == []


def test_select_without_a_pipeline_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PlancodeError, match="needs a pipeline"):
        evaluate_heldout({"base": NoModel()}, [mined(tmp_path)],
                         {"base": tmp_path / "rows.jsonl"}, modes=ALL_MODES, log=False)
