"""DPO on the student's own answers (``onpolicy.objective = "dpo"``): pairs chosen by the
tests each answer passed, DPO's loss against the frozen base, and the stage trained for real
on the tiny random qwen2 (the rows and run folder of ``test_trainer_onpolicy``'s fixture:
per problem a passing answer, the real body, and a failing one sampled from the student)."""

from __future__ import annotations

import json
import math
import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from plancode.errors import PlancodeError  # noqa: E402
from plancode.trainer.config import DistillConfig  # noqa: E402
from plancode.trainer.dpo import (  # noqa: E402
    collate_pairs,
    dpo_loss,
    make_pairs,
    sequence_logps,
)
from plancode.trainer.onpolicy import OnPolicyExample  # noqa: E402
from tests.test_trainer_onpolicy import _config_text, make_setup  # noqa: E402

STEPS = 6


@pytest.fixture(scope="module")
def onpolicy(tmp_path_factory: pytest.TempPathFactory, qwen_tokenizer, tiny_qwen_student
             ) -> dict:
    return make_setup(tmp_path_factory.mktemp("dpo"), qwen_tokenizer, tiny_qwen_student)


def _answer(key: str, problem: str, tokens: list[int], passed: bool, tests_passed: int
            ) -> OnPolicyExample:
    n = len(tokens)
    return OnPolicyExample(key, problem, [1, 2] + tokens, 2, [[t] for t in tokens],
                           [[-0.1]] * n, [-0.1] * n, [1.0] * n, passed, tests_passed)


def test_pairs_take_the_widest_margin_and_never_repeat_an_answer() -> None:
    examples = [
        # a: one passing answer (twice, same tokens) and failures passing 2, 0, 0 tests
        _answer("a0", "a", [5, 6], True, 3), _answer("a1", "a", [5, 6], True, 3),
        _answer("a2", "a", [7], False, 2), _answer("a3", "a", [8], False, 0),
        _answer("a4", "a", [8], False, 0),
        # b: nothing passes: no pair
        _answer("b0", "b", [5], False, 1), _answer("b1", "b", [6], False, 0),
        # c: three different passing answers, two failing ones: at most 2 pairs, and the
        # second failure is used before the first is used again
        _answer("c0", "c", [1], True, 2), _answer("c1", "c", [2], True, 2),
        _answer("c2", "c", [3], True, 2), _answer("c3", "c", [4], False, 0),
        _answer("c4", "c", [9], False, 1),
        # d: everything passes: no pair
        _answer("d0", "d", [1], True, 1), _answer("d1", "d", [2], True, 1),
    ]
    pairs = make_pairs(examples, per_prompt=2)
    assert [(p.chosen.key, p.rejected.key) for p in pairs] == \
        [("a0", "a3"), ("c0", "c3"), ("c1", "c4")]
    assert make_pairs(examples, per_prompt=1)[1].rejected.key == "c3"


def test_dpo_loss_is_log2_at_the_reference_and_prefers_the_passing_answer() -> None:
    a = _answer("x", "p", [3, 4, 5], True, 1)
    b = _answer("y", "p", [6, 7], False, 0)
    batch = collate_pairs(make_pairs([a, b], 1), pad_id=0)
    torch.manual_seed(0)
    logits = torch.randn(5, 11, requires_grad=True)
    seq = sequence_logps(logits, batch)
    logp = logits.log_softmax(-1)
    assert seq.detach().tolist() == pytest.approx([float(logp[0, 3] + logp[1, 4] + logp[2, 5]),
                                          float(logp[3, 6] + logp[4, 7])], rel=1e-5)
    loss, parts = dpo_loss(seq, seq.detach(), beta=0.1)
    assert float(loss) == pytest.approx(math.log(2), rel=1e-5) and parts["margin"] == 0
    loss.backward()  # descending raises the chosen answer's tokens, lowers the rejected's
    assert float(logits.grad[0, 3]) < 0 and float(logits.grad[3, 6]) > 0


def _dpo_folder(onpolicy: dict, name: str, rows: list[dict]) -> DistillConfig:
    folder = onpolicy["tmp"] / name
    folder.mkdir()
    (folder / "problems.jsonl").write_text((onpolicy["tmp"] / "problems.jsonl").read_text())
    (folder / "c.toml").write_text(_config_text(
        onpolicy["student_dir"], objective="dpo", dpo_beta=0.5, batch_size=1, max_steps=STEPS,
        anchor_every=3, save_every=3))
    (folder / "run").mkdir()
    shutil.copytree(onpolicy["tmp"] / "run" / "data", folder / "run" / "data")
    (folder / "run" / "samples").mkdir()
    (folder / "run" / "samples" / "samples.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows))
    return DistillConfig.load(folder / "c.toml")


def test_dpo_stage_makes_the_student_prefer_its_passing_answers(onpolicy: dict) -> None:
    """Six real LoRA steps on the three prompts' pairs: the adapter raises each passing
    answer's log-probability against its failing one's, relative to the base."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from plancode.trainer.stages.onpolicy import stage_onpolicy

    cfg = _dpo_folder(onpolicy, "dpo", onpolicy["rows"])
    logs: list[str] = []
    report = stage_onpolicy(cfg, progress=False, log=logs.append)
    assert report["objective"] == "dpo" and report["pairs"] == 3
    assert report["pair_prompts"] == 3 and report["steps"] == STEPS
    assert any("DPO: 3 pairs over 3 prompts" in m for m in logs)
    history = report["history"]
    assert all({"dpo", "margin", "accuracy", "kl"} <= set(r) for r in history)
    assert history[0]["dpo"] == pytest.approx(math.log(2), abs=0.05)

    pairs = make_pairs(onpolicy["examples"], 2)
    batch = collate_pairs(pairs, onpolicy["tokenizer"].pad_token_id)
    from plancode.trainer.onpolicy import answer_logits

    base = AutoModelForCausalLM.from_pretrained(onpolicy["student_dir"]).eval()
    with torch.no_grad():
        before = sequence_logps(answer_logits(base, batch), batch)
        student = PeftModel.from_pretrained(base, cfg.out_dir / "onpolicy" / "adapter").eval()
        after = sequence_logps(answer_logits(student, batch), batch)
    gain = (after - before)[0::2] - (after - before)[1::2]
    assert (gain > 0).all(), gain


def test_no_pairs_is_a_clear_error(onpolicy: dict) -> None:
    failing = [dict(r, passed=False, tests_passed=0) for r in onpolicy["rows"]]
    cfg = _dpo_folder(onpolicy, "no-pairs", failing)
    from plancode.trainer.stages.onpolicy import stage_onpolicy

    with pytest.raises(PlancodeError, match="no DPO pairs") as err:
        stage_onpolicy(cfg, progress=False, log=lambda m: None)
    assert "objective = 'topk'" in err.value.fix
