"""The held-out mined problems: answered, judged by their own tests in the sandbox, cached per
model so an interrupted evaluation resumes and a run's ablation reuses the base's rows."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from plancode.trainer.data import Problem
from plancode.trainer.heldout import MODES, evaluate_heldout, written_body
from plancode.trainer.jsonl_cache import Claims, JsonlCache
from plancode.trainer.references import reference_key
from plancode.trainer.stages.evaluation import heldout_rows_name
from tests.claim_holder import hold
from tests.mined_fixtures import REAL_TEST, Answers, typecase_problem

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


def test_a_problem_whose_own_solution_fails_is_left_out(tmp_path: Path) -> None:
    broken = Problem("toy/half", 'def half(x):\n    """Half of x."""\n',
                     "def half(x):\n    return x // 3\n", ("assert half(6) == 3",))

    class Solver:
        asked: list[str] = []

        def chat(self, messages, params) -> str:
            self.asked.append(messages[-1]["content"])
            if "def half" in messages[-1]["content"]:
                return "```python\ndef half(x):\n    return x / 2\n```"
            return Coder().chat(messages, params)

    caches = {"base": tmp_path / "rows.jsonl"}
    refs = tmp_path / "references.jsonl"
    solver = Solver()
    out = evaluate_heldout({"base": solver}, [*PROBLEMS, broken], caches, "auto", 30.0, 64,
                           log=False, references=refs)
    # the model would have solved half(), but tests its own solution fails score nothing
    assert out["base"]["direct"] == {"pass@1": 0.5, "solved": 1, "n": 2}
    assert out["base"]["broken"] == 1
    assert not any("def half" in m for m in solver.asked)
    verdicts = {r["id"]: r["passed"] for r in JsonlCache(refs)}
    assert verdicts == {"toy/double": True, "toy/neg": True, "toy/half": False}
    again = evaluate_heldout({"base": NoModel()}, [*PROBLEMS, broken], caches, "auto", 30.0,
                             64, log=False, references=refs)
    assert again == out


def test_only_the_tests_the_solution_passes_judge_the_answers(tmp_path: Path) -> None:
    """A mined problem with a type-checker case beside its real test (pydash's pattern): the
    reference fails the type case, so the real test alone judges; a wrong answer still fails."""
    problem = typecase_problem(tmp_path)
    refs = tmp_path / "references.jsonl"
    right = evaluate_heldout({"base": Answers("x + x + x")}, [problem],
                             {"base": tmp_path / "right.jsonl"}, "auto", 30.0, 64, log=False,
                             references=refs)
    wrong = evaluate_heldout({"base": Answers("x + x")}, [problem],
                             {"base": tmp_path / "wrong.jsonl"}, "auto", 30.0, 64, log=False,
                             references=refs)
    assert right["base"]["direct"] == {"pass@1": 1.0, "solved": 1, "n": 1}
    assert right["base"]["broken"] == 0 and right["base"]["judged_by_some_tests"] == 1
    assert wrong["base"]["direct"] == {"pass@1": 0.0, "solved": 0, "n": 1}
    [row] = JsonlCache(refs)
    assert row["judges"] == [REAL_TEST] and row["tests"] == 2


def test_a_reference_row_from_before_judges_is_checked_again(tmp_path: Path) -> None:
    """A "failed" reference row written before the judges rule (by a sandbox that refused the
    project's addopts, say) is not trusted: the problem is checked again and scored."""
    refs = tmp_path / "references.jsonl"
    JsonlCache(refs).add({"key": reference_key(PROBLEMS[0]), "id": PROBLEMS[0].id,
                          "passed": False, "tests": 1, "isolation": "bwrap"})
    out = evaluate_heldout({"base": Coder()}, PROBLEMS[:1], {"base": tmp_path / "rows.jsonl"},
                           "auto", 30.0, 64, log=False, references=refs)
    assert out["base"]["direct"] == {"pass@1": 1.0, "solved": 1, "n": 1}
    assert out["base"]["broken"] == 0
    assert JsonlCache(refs).get(reference_key(PROBLEMS[0]))["judges"] == [
        "test_problem.py::test_0"]


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


def test_a_heldout_problem_another_process_holds_is_left_to_it(tmp_path: Path) -> None:
    """Two ``--stage eval`` processes on one rows file: this one answers the problem nobody
    holds, waits for the one the other holds, and takes the other's rows for it."""
    path = tmp_path / heldout_rows_name((str(tmp_path / "base.gguf"), None), "data-fp", 64)
    claim = Claims(path)._file("toy/double")
    other = hold(claim)

    def the_other_finishes() -> None:
        time.sleep(0.5)
        for mode in MODES:  # it found double right in both modes
            JsonlCache(path).add({"key": f"toy/double#{mode}", "id": "toy/double",
                                  "mode": mode, "passed": True, "code": "", "seconds": 1.0})
        claim.unlink()
        other.kill()

    finisher = threading.Thread(target=the_other_finishes)
    finisher.start()
    try:
        # Coder would get double right too; NeverDouble proves this process never asked
        out = evaluate_heldout({"base": NeverDouble()}, PROBLEMS, {"base": path}, "auto", 30.0,
                               64, log=False, poll=0.05)
    finally:
        finisher.join()
        other.kill()
        other.wait()
    assert out["base"]["direct"] == {"pass@1": 0.5, "solved": 1, "n": 2}
    assert not list(Claims(path).dir.iterdir())


class NeverDouble(Coder):
    def chat(self, messages, params) -> str:
        assert "def double" not in messages[-1]["content"], "asked for a problem held elsewhere"
        return super().chat(messages, params)


def test_the_heldout_runner_names_an_unfinished_stage(tmp_path: Path, capsys) -> None:
    from benchmarks.heldout import main

    (tmp_path / "p.jsonl").write_text("")
    config = tmp_path / "run.toml"
    config.write_text('out_dir = "run"\n[data]\njsonl = ["p.jsonl"]\nheldout_fraction = 0.2\n')
    assert main(["--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "data stage has not finished" in err and "--stage data" in err


def test_codebleu_compares_the_body_a_held_out_answer_wrote() -> None:
    """The answer's body below its docstring, found by the problem's function name whether
    the model wrote a decorated function, a method in its class or imports first; '' when it
    wrote some other function."""
    method = ('import os\n\nclass Box:\n    @staticmethod\n    def size(x):\n'
              '        """How big."""\n        n = len(x)\n        return n\n')
    assert written_body(method, "size") == "n = len(x)\nreturn n\n"
    decorated = '@cache\ndef size(x):\n    return 1\n'
    assert written_body(decorated, "size") == "return 1\n"
    assert written_body("def other(x):\n    return 2\n", "size") == ""
    assert written_body("def size(:\n", "size") == ""
