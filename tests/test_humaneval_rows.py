"""HumanEval rows cached per (problem, mode): an interrupted evaluation resumes, and two runs
that evaluate the same model the same way (a distillation and its ablation, the distillation's
base and the HumanEval benchmark) answer each problem once."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from plancode.config import Settings
from plancode.pipeline import Pipeline
from plancode.trainer import humaneval
from plancode.trainer.jsonl_cache import Claims, JsonlCache
from tests.claim_holder import hold


def test_a_second_reader_sees_rows_appended_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    mine, theirs = JsonlCache(path), JsonlCache(path)
    theirs.add({"key": "HumanEval/0#direct", "passed": True})
    assert "HumanEval/0#direct" not in mine
    mine.refresh()
    assert mine.get("HumanEval/0#direct") == {"key": "HumanEval/0#direct", "passed": True}
    with path.open("a") as fh:  # another process is half-way through writing a row
        fh.write('{"key": "HumanEval/1#dir')
    mine.refresh()
    assert len(mine) == 1 and path.read_text().endswith('"HumanEval/1#dir')  # not truncated
    with path.open("a") as fh:
        fh.write('ect", "passed": false}\n')
    mine.refresh()
    assert mine.get("HumanEval/1#direct") == {"key": "HumanEval/1#direct", "passed": False}


def test_rows_file_names_the_model_and_the_settings_that_change_answers(tmp_path: Path) -> None:
    model = tmp_path / "base.gguf"
    model.write_bytes(b"weights")
    adapter = tmp_path / "student.gguf"
    adapter.write_bytes(b"lora v1")
    base = Settings()
    same = humaneval.rows_file(tmp_path, model, None, base)
    assert same == humaneval.rows_file(tmp_path, model, None,
                                       Settings.from_mapping({"n_threads": 1}, base))
    assert same.name.startswith("humaneval-base-")
    assert same != humaneval.rows_file(tmp_path, model, None,
                                       Settings.from_mapping({"candidates": 8}, base))
    student = humaneval.rows_file(tmp_path, model, adapter, base)
    assert student != same and "+adapter" in student.name
    adapter.write_bytes(b"lora v2")  # retrained: same name, other weights, other rows
    assert humaneval.rows_file(tmp_path, model, adapter, base) != student


class _NoModel:
    """An engine that must not be asked: every answer has to come from the cache."""

    def __getattr__(self, name: str):
        raise AssertionError(f"the model was asked ({name}) for a cached row")


def test_an_interrupted_run_resumes_from_its_rows(tiny_engine, tmp_path: Path) -> None:
    settings = Settings.from_mapping({"escalate_model": ""})
    chosen = humaneval.problems(2, 4)
    path = tmp_path / "rows.jsonl"
    first = humaneval.run(Pipeline(tiny_engine, settings), chosen[:1], ("direct",), 64,
                          log=False, cache=JsonlCache(path))
    assert [json.loads(line)["key"] for line in path.read_text().splitlines()] == \
        ["HumanEval/2#direct"]
    # "killed" after one problem: the rerun answers only the missing (problem, mode) pairs
    second = humaneval.run(Pipeline(tiny_engine, settings), chosen, ("direct", "plan"), 64,
                           log=False, cache=JsonlCache(path))
    assert second[0]["direct"]["body"] == first[0]["direct"]["body"]
    assert len(path.read_text().splitlines()) == 4
    assert all(r[m]["commit"] for r in second for m in ("direct", "plan"))
    again = humaneval.run(Pipeline(_NoModel(), settings), chosen, ("direct", "plan"), 64,
                          log=False, cache=JsonlCache(path))
    assert again == second


def test_without_a_cache_the_model_is_asked() -> None:
    settings = Settings.from_mapping({"escalate_model": ""})
    with pytest.raises(AssertionError, match="model was asked"):
        humaneval.run(Pipeline(_NoModel(), settings), humaneval.problems(2, 3), ("direct",),
                      64, log=False)


def _row(task: str, mode: str) -> dict:
    return {"key": f"{task}#{mode}", "task_id": task, "mode": mode, "passed": True,
            "seconds": 1.0, "body": "    return 1\n"}


def test_claims_are_held_by_live_processes_only(tmp_path: Path) -> None:
    mine, theirs = Claims(tmp_path / "rows.jsonl"), Claims(tmp_path / "rows.jsonl")
    assert mine.take("HumanEval/2") and not theirs.take("HumanEval/2")
    mine.release("HumanEval/2")
    assert theirs.take("HumanEval/2")
    other = hold(mine._file("HumanEval/3"))
    try:
        assert mine.held("HumanEval/3") and not mine.take("HumanEval/3")
    finally:
        other.kill()
        other.wait()
    # its process ended (killed, or the machine restarted): the claim is taken over
    assert not mine.held("HumanEval/3") and mine.take("HumanEval/3")


def test_a_problem_another_process_is_answering_is_not_answered_twice(tmp_path: Path) -> None:
    """Two workers on one rows file: this one skips the problem the other holds, answers
    the rest (here: finds them cached), then waits for the other's rows."""
    settings = Settings.from_mapping({"escalate_model": ""})
    chosen = humaneval.problems(2, 4)
    path = tmp_path / "rows.jsonl"
    JsonlCache(path).add(_row("HumanEval/3", "direct"))
    claims = Claims(path)
    other = hold(claims._file("HumanEval/2"))

    def the_other_finishes() -> None:
        time.sleep(0.5)
        JsonlCache(path).add(_row("HumanEval/2", "direct"))
        claims._file("HumanEval/2").unlink()
        other.kill()

    finisher = threading.Thread(target=the_other_finishes)
    finisher.start()
    try:
        rows = humaneval.run(Pipeline(_NoModel(), settings), chosen, ("direct",), 64,
                             log=False, cache=JsonlCache(path), poll=0.05)
    finally:
        finisher.join()
        other.kill()
        other.wait()
    assert [r["task_id"] for r in rows] == ["HumanEval/2", "HumanEval/3"]
    assert all(r["direct"]["passed"] for r in rows)
    assert not list(claims.dir.iterdir())  # nothing left claimed


def test_evaluated_models_take_the_thread_count_and_keep_their_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two evaluations side by side on 2 cores must each run 1 llama.cpp thread (4 spinning
    threads on 2 cores ran 20-60x slower): ``eval.n_threads``, else PLANCODE_N_THREADS. The
    thread count is a speed knob: the rows file, and so the cached answers, stay the same."""
    from plancode.trainer.config import EvalConfig
    from plancode.trainer.evaluate import eval_settings

    monkeypatch.delenv("PLANCODE_N_THREADS", raising=False)
    default = eval_settings("m.gguf", EvalConfig())
    monkeypatch.setenv("PLANCODE_N_THREADS", "1")
    from_env = eval_settings("m.gguf", EvalConfig())
    own = eval_settings("m.gguf", EvalConfig(n_threads=3))
    assert (default.n_threads, from_env.n_threads, own.n_threads) == (0, 1, 3)
    names = {humaneval.rows_file(tmp_path, "m.gguf", None, s) for s in (default, from_env, own)}
    assert len(names) == 1
