"""The samples stage (``plancode samples``) end to end with the tiny model as both student and
teacher: real llama.cpp sampling, real sandboxed tests, real teacher scoring; rows cached as
they come, a second run resumes without redoing them, and the teacher's numbers make sense
(finite, the top-k best first, the sampled token's log-probability never above the top-1,
and, the teacher being the student here, close to the student's own)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from plancode.cli import main as plancode
from plancode.engine.llama_engine import LlamaEngine
from plancode.trainer.config import DistillConfig
from plancode.trainer.data import Problem
from plancode.trainer.samples import answer_code, direct_prompt, tokens_digest
from plancode.trainer.scorer import top_of
from plancode.trainer.stages.samples import stage_samples

FIXTURES = Path(__file__).parent / "fixtures" / "distill_problems.jsonl"
K = 3


def _config(tmp: Path) -> Path:
    rows = FIXTURES.read_text().splitlines()[:2]
    (tmp / "problems.jsonl").write_text("\n".join(rows) + "\n")
    cfg = tmp / "samples.toml"
    cfg.write_text(f'''out_dir = "run"
[data]
jsonl = ["problems.jsonl"]
val_fraction = 0.0
decontaminate = false
[teacher]
model = "smollm2-135m"
[train]
student = "smollm2-135m"
[samples]
max_problems = 2
samples_per_problem = {K}
max_tokens = 40
n_ctx = 1024
n_threads = 1
timeout = 20.0
''')
    return cfg


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One problem, then (through the CLI) the rest, then a third run of the finished stage."""
    tmp = tmp_path_factory.mktemp("samples")
    cfg_path = _config(tmp)
    cfg = DistillConfig.load(cfg_path)
    first = stage_samples(cfg, progress=False, limit=1)
    cache = tmp / "run" / "samples" / "samples.jsonl"
    after_first = cache.read_text()
    done_after_first = (tmp / "run" / "samples" / "done.json").exists()
    assert plancode(["samples", "--config", str(cfg_path), "--quiet"]) == 0
    second = json.loads((tmp / "run" / "samples" / "report.json").read_text())
    third = stage_samples(cfg, progress=False)
    rows = [json.loads(line) for line in cache.read_text().splitlines()]
    return {"tmp": tmp, "cfg": cfg, "first": first, "second": second, "third": third,
            "after_first": after_first, "done_after_first": done_after_first,
            "text": cache.read_text(), "rows": rows}


def test_rows_are_cached_and_a_second_run_resumes(run) -> None:
    first, second, third = run["first"], run["second"], run["third"]
    assert first["generated"] == K and first["samples"] == K
    assert not run["done_after_first"]  # stopped early on purpose: not finished
    # the second run kept the first problem's rows as they were and answered only the other
    assert run["text"].startswith(run["after_first"])
    assert second["from_cache"] == K and second["generated"] == K
    assert second["samples"] == 2 * K and len(run["rows"]) == 2 * K
    assert third == second  # finished: read back, nothing run
    assert second["vocabulary"]["identical"] is True
    assert second["vocabulary"]["student_tokens"] == 49152
    assert set(second["seconds_per_sample"]) == {"sample", "check", "score"}


def test_rows_hold_answers_verdicts_and_sensible_teacher_scores(run) -> None:
    rows = run["rows"]
    assert {r["k"] for r in rows} == set(range(K))
    assert all(r["temperature"] == 0.0 for r in rows if r["k"] == 0)
    assert all(r["temperature"] == 0.8 and r["seed"] for r in rows if r["k"])
    outcomes = {"passed", "failed", "timeout", "tampered", "no_code", "unplaceable"}
    diffs = []
    for r in rows:
        n = len(r["tokens"])
        assert n > 0 and r["finish"] in ("stop", "length")
        assert len(r["student_lp"]) == len(r["teacher_lp"]) == len(r["teacher_top"]) == n
        assert len(r["teacher_top_lp"]) == n
        assert r["outcome"] in outcomes and isinstance(r["passed"], bool)
        assert r["passed"] == (r["outcome"] == "passed")
        assert 0 <= r["tests_passed"] <= r["tests"]
        assert len(r["seconds"]) == 3
        for tok, lp, ids, lps in zip(r["tokens"], r["teacher_lp"], r["teacher_top"],
                                     r["teacher_top_lp"], strict=True):
            assert math.isfinite(lp) and lp <= 0.0
            assert 1 <= len(ids) == len(lps) <= 8
            assert lps == sorted(lps, reverse=True)
            assert lps[0] >= lp - 1e-9  # the top-1 is at least the sampled token
            if tok in ids:
                assert lps[ids.index(tok)] == pytest.approx(lp, abs=2e-3)
        diffs += [abs(a - b) for a, b in zip(r["student_lp"], r["teacher_lp"], strict=True)]
    # student and teacher are the same model: the teacher's second reading agrees with the
    # log-probabilities the student sampled with (up to llama.cpp's batch-size rounding)
    assert float(np.mean(diffs)) < 0.1


def test_prompt_and_answer_render_again_to_the_same_tokens(run, tiny_model_path: Path) -> None:
    cfg = run["cfg"]
    engine = LlamaEngine(tiny_model_path, n_ctx=1024, n_threads=1)
    problems = {json.loads(line)["id"]: json.loads(line)
                for line in (run["tmp"] / "problems.jsonl").read_text().splitlines()}
    for r in run["rows"]:
        row = problems[r["id"]]
        p = Problem(row["id"], row["problem"], row["solution"], tuple(row["tests"]))
        messages, _ = direct_prompt(p, cfg.samples.prefill_code)
        tokens = engine.tokenize(engine.info.render_chat(messages), special=True)
        assert len(tokens) == r["prompt_tokens"] and tokens_digest(tokens) == r["prompt_sha"]
        # the answer's tokens spell its text (the end-of-turn token after it, when it stopped)
        answer = r["tokens"][:-1] if r["finish"] == "stop" else r["tokens"]
        assert engine.detokenize(answer) == r["text"]
        assert answer_code(p, r["text"], True).startswith(row["problem"].splitlines()[0])


def test_top_of_keeps_the_best_tokens_until_the_mass() -> None:
    logits = np.log(np.array([[0.7, 0.2, 0.06, 0.04], [0.3, 0.26, 0.24, 0.2]],
                             dtype=np.float32))
    scores = top_of(logits, [1, 3], k=3, mass=0.85)
    assert scores.top_ids == [[0, 1], [0, 1, 2]]
    assert scores.logprobs == pytest.approx([math.log(0.2), math.log(0.2)], abs=1e-6)
    assert scores.top_logprobs[0] == pytest.approx([math.log(0.7), math.log(0.2)], abs=1e-6)


def test_vocabularies_of_different_families_differ(tiny_model_path: Path,
                                                   default_model_path: Path) -> None:
    from llama_cpp import Llama

    from plancode.trainer.scorer import compare_vocabularies

    tiny = Llama(str(tiny_model_path), vocab_only=True, verbose=False)
    qwen = Llama(str(default_model_path), vocab_only=True, verbose=False)
    report = compare_vocabularies(tiny, qwen)
    assert not report["identical"] and report["differing_ids"] > 0
    assert (report["student_tokens"], report["teacher_tokens"]) == (49152, 151936)
    assert compare_vocabularies(qwen, qwen)["identical"]
