"""The held-out mined problems: answered, judged by their own tests in the sandbox, cached per
model so an interrupted evaluation resumes and a run's ablation reuses the base's rows."""

from __future__ import annotations

from pathlib import Path

from trainer.data import Problem
from trainer.distill import heldout_rows_name
from trainer.heldout import evaluate_heldout

PROBLEMS = [Problem("toy/double", 'def double(x):\n    """Twice x."""\n',
                    "def double(x):\n    return 2 * x\n", ("assert double(3) == 6",)),
            Problem("toy/neg", 'def neg(x):\n    """Minus x."""\n',
                    "def neg(x):\n    return -x\n", ("assert neg(3) == -3",))]


class Coder:
    """Writes the right ``double`` and a wrong ``neg``, in either mode (a plan prompt gets the
    same answer: a step, then the code)."""

    def chat(self, messages, params) -> str:
        code = ("def neg(x):\n    return x\n" if "def neg" in messages[-1]["content"]
                else "def double(x):\n    return x * 2\n")
        return f"1. Compute the result.\n\n```python\n{code}```"


class NoModel:
    def chat(self, messages, params) -> str:
        raise AssertionError("the model was asked for a cached held-out row")


def test_heldout_rows_are_judged_by_tests_and_shared_by_model(tmp_path: Path) -> None:
    base = (str(tmp_path / "qwen-base.gguf"), None)
    rows = tmp_path / "rows"
    caches = {"base": rows / heldout_rows_name(base, "data-fp", 64)}
    first = evaluate_heldout({"base": Coder()}, PROBLEMS, caches, "auto", 30.0, 64, log=False)
    assert first["base"]["direct"] == {"pass@1": 0.5, "solved": 1, "n": 2}
    # the ablation evaluates the same base file on the same data: every row comes from cache
    again = evaluate_heldout({"base": NoModel()}, PROBLEMS, caches, "auto", 30.0, 64,
                             log=False)
    assert again == first


def test_heldout_rows_name_follows_the_adapter_content_and_the_data(tmp_path: Path) -> None:
    adapter = tmp_path / "student.gguf"
    adapter.write_bytes(b"lora v1")
    base = ("/models/qwen-base.gguf", None)
    student = ("/models/qwen-base.gguf", adapter)
    name = heldout_rows_name(student, "data-fp", 512)
    assert name != heldout_rows_name(base, "data-fp", 512) and "+adapter" in name
    assert heldout_rows_name(("/elsewhere/qwen-base.gguf", None), "data-fp", 512) == \
        heldout_rows_name(base, "data-fp", 512)  # a moved model file keeps its rows
    assert heldout_rows_name(base, "other-data", 512) != heldout_rows_name(base, "data-fp", 512)
    adapter.write_bytes(b"lora v2")
    assert heldout_rows_name(student, "data-fp", 512) != name
