"""The multi-task structure-aware loss on a real (tiny) student: each term is live, the code term
is cross-entropy when alpha = 0, and examples use the server's own prompts."""

from __future__ import annotations

from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")

from plancode.prompts import code_from_plan_messages, code_prefill, plan_messages  # noqa: E402
from plancode.trainer.examples import build_examples, examples_for, render_prompt  # noqa: E402
from plancode.trainer.losses import LossConfig, collate  # noqa: E402
from plancode.trainer.structure import IGNORE  # noqa: E402
from plancode.trainer.train import DistillModule, TrainConfig, add_lora  # noqa: E402

PROBLEM = 'def count_vowels(s: str) -> int:\n    """Count the vowels in s."""\n'
PLAN = "1. Lower-case s.\n2. Count the characters that are vowels.\n3. Return the count."
SOLUTION = ("def count_vowels(s: str) -> int:\n    count = 0\n    for ch in s.lower():\n"
            "        if ch in 'aeiou':\n            count += 1\n    return count\n")


@pytest.fixture(scope="module")
def module(tiny_qwen_student):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen_student)
    cfg = TrainConfig(lora_r=4, lora_dropout=0.0, target_modules=("q_proj", "v_proj", "up_proj"))
    student = add_lora(model, cfg)
    for name, p in student.named_parameters():  # LoRA B starts at 0: make A's gradient live too
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    return DistillModule(student, model.config.hidden_size, LossConfig())


@pytest.fixture(scope="module")
def batch(qwen_tokenizer):
    examples = examples_for(qwen_tokenizer, "p", PROBLEM, PLAN, SOLUTION, tasks=("plan", "code"))
    return collate(examples, qwen_tokenizer.pad_token_id)


def _grads(module, batch, cfg: LossConfig) -> torch.Tensor:
    module.loss_cfg = cfg
    module.zero_grad()
    loss, _ = module(batch)
    loss.backward()
    return torch.cat([p.grad.flatten().clone() for n, p in module.named_parameters()
                      if "lora_" in n])


def test_each_loss_term_changes_the_gradient(module, batch) -> None:
    base = LossConfig(lam=0.5, alpha=0.0, beta=0.0, code=True, plan=False)
    g0 = _grads(module, batch, base)
    assert g0.abs().sum() > 0
    for name, cfg in (("plan", replace(base, plan=True)), ("structure", replace(base, alpha=1.0)),
                      ("ast", replace(base, beta=0.5))):
        g = _grads(module, batch, cfg)
        assert not torch.allclose(g, g0, rtol=1e-4, atol=1e-8), f"{name} term has no effect"
    assert not torch.allclose(_grads(module, batch, replace(base, code=False, plan=True)), g0)


def test_code_term_without_structure_is_cross_entropy(module, batch) -> None:
    module.loss_cfg = LossConfig(alpha=0.0, beta=0.0, plan=False, lam=0.0)
    with torch.no_grad():
        loss, parts = module(batch)
        logits = module.student(input_ids=batch.input_ids,
                                attention_mask=batch.attention_mask).logits
    row = int(batch.is_code.nonzero()[0])
    target = batch.labels[row, 1:]
    keep = target != IGNORE
    expected = torch.nn.functional.cross_entropy(logits[row, :-1][keep], target[keep])
    assert parts["code"] == pytest.approx(float(expected), rel=1e-4)
    assert float(loss) == pytest.approx(float(expected), rel=1e-4)


def test_structure_weighting_moves_the_code_loss(module, batch) -> None:
    module.loss_cfg = LossConfig(alpha=0.0, beta=0.0, plan=False)
    with torch.no_grad():
        plain = module(batch)[1]["code"]
        module.loss_cfg = LossConfig(alpha=3.0, beta=0.0, plan=False)
        weighted = module(batch)[1]["code"]
    assert weighted != pytest.approx(plain, rel=1e-6)


def test_examples_use_the_servers_prompts(qwen_tokenizer, default_engine) -> None:
    """The student is trained on exactly the prompt text the server will send it."""
    for msgs in (plan_messages(PROBLEM), code_from_plan_messages(PROBLEM, PLAN)):
        assert render_prompt(qwen_tokenizer, msgs) == default_engine.info.render_chat(msgs)
    examples, stats = build_examples(
        qwen_tokenizer, [{"id": "p", "problem": PROBLEM, "plan": PLAN, "solution": SOLUTION}],
        ("plan", "code", "direct"), max_len=4096)
    assert stats.built == {"plan": 1, "code": 1, "direct": 1}
    plan = examples[0]
    reply = qwen_tokenizer.decode([t for t in plan.labels if t != IGNORE])
    assert reply == PLAN + qwen_tokenizer.eos_token
    assert 0.2 < stats.to_json()["structural_fraction"] < 0.9
    _, stats = build_examples(qwen_tokenizer, [{"id": "p", "problem": PROBLEM, "plan": PLAN,
                                                "solution": SOLUTION}], ("plan",), max_len=20)
    assert stats.too_long == 1


def test_code_targets_leave_the_docstring_out(qwen_tokenizer) -> None:
    """A mined solution carries its docstring; the code target is the reply the server asks
    for (the splice keeps the user's docstring), with structure weights on that code."""
    documented = SOLUTION.replace("-> int:\n", '-> int:\n    """Count the vowels in s."""\n', 1)
    (code,) = examples_for(qwen_tokenizer, "p", PROBLEM, PLAN, documented, tasks=("code",),
                           prefill=False)
    target = qwen_tokenizer.decode([t for t in code.labels if t != IGNORE])
    assert target == f"```python\n{SOLUTION.strip()}\n```" + qwen_tokenizer.eos_token
    assert any(code.structural)


def test_prefilled_code_targets_are_the_body(qwen_tokenizer, default_engine) -> None:
    """With the server's ``prefill_code`` its prompt ends with the function through its
    docstring: the student is trained on exactly that prompt, and on the body after it (with
    structure weights on the body's tokens)."""
    documented = SOLUTION.replace("-> int:\n", '-> int:\n    """Count the vowels in s."""\n', 1)
    (code,) = examples_for(qwen_tokenizer, "p", PROBLEM, PLAN, documented, tasks=("code",))
    n_prompt = next(i for i, t in enumerate(code.labels) if t != IGNORE)
    prompt = qwen_tokenizer.decode(code.input_ids[:n_prompt])
    served = [*code_from_plan_messages(PROBLEM, PLAN),
              {"role": "assistant", "content": code_prefill(PROBLEM)}]
    assert prompt == default_engine.info.render_chat(served)
    target = qwen_tokenizer.decode(code.labels[n_prompt:])
    body = SOLUTION.split("\n", 1)[1].rstrip()
    assert target == f"{body}\n```" + qwen_tokenizer.eos_token
    assert any(code.structural[n_prompt:])
    assert not any(code.structural[:n_prompt])
