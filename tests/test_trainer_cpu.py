"""CPU training knobs: the frozen base in bf16 (LoRA weights stay fp32), checkpoints by the
clock, and torch's thread count — on a real (tiny) student, through
``plancode.trainer.train.train``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from plancode.trainer import portable_checkpoint as portable  # noqa: E402
from plancode.trainer.config import TrainConfig  # noqa: E402
from plancode.trainer.examples import examples_for  # noqa: E402
from plancode.trainer.train import CheckpointClock, base_dtype, cpu_has_bf16, train  # noqa: E402

PROBLEM = 'def count_vowels(s: str) -> int:\n    """Count the vowels in s."""\n'
PLAN = "1. Lower-case s.\n2. Count the characters that are vowels.\n3. Return the count."
SOLUTION = ("def count_vowels(s: str) -> int:\n    return sum(ch in 'aeiou' for ch in "
            "s.lower())\n")


def test_checkpoint_clock_by_steps_and_by_minutes() -> None:
    now = [0.0]
    clock = CheckpointClock(every=0, minutes=2.0, now=lambda: now[0])
    assert not clock.due(1)
    now[0] = 119.0
    assert not clock.due(2)
    now[0] = 121.0
    assert clock.due(3)
    clock.saved()
    now[0] = 200.0
    assert not clock.due(4)
    steps = CheckpointClock(every=5, minutes=0.0, now=lambda: now[0])
    assert [s for s in range(1, 12) if steps.due(s)] == [5, 10]


def test_base_dtype_follows_the_setting_and_the_cpu() -> None:
    assert base_dtype(TrainConfig(bf16="true")) == torch.bfloat16
    assert base_dtype(TrainConfig(bf16="false")) == torch.float32
    auto = base_dtype(TrainConfig(bf16="auto"))
    assert auto == (torch.bfloat16 if cpu_has_bf16() else torch.float32)


def test_bf16_base_trains_fp32_lora_checkpoints_by_time_and_resumes(
        tiny_qwen_student: Path, qwen_tokenizer, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    examples = examples_for(qwen_tokenizer, "p", PROBLEM, PLAN, SOLUTION,
                            tasks=("plan", "code"))
    cfg = TrainConfig(lora_r=4, lora_dropout=0.0, target_modules=("q_proj", "v_proj"),
                      max_steps=3, batch_size=1, grad_accum=1, warmup_steps=0,
                      learning_rate=1e-3, save_every=0, save_every_minutes=1e-6, threads=1,
                      bf16="true", keep_checkpoints=5, val_every_minutes=60.0)
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen_student, dtype=base_dtype(cfg))
    before = torch.get_num_threads()
    try:
        cut = train(model, qwen_tokenizer, examples, examples[:1], cfg, tmp_path,
                    progress=False, stop_after=2)
        assert cut.base_dtype == "bfloat16" and cut.threads == 1
        lora = [p for n, p in model.named_parameters() if "lora_" in n]
        assert lora and all(p.dtype == torch.float32 for p in lora)
        assert all(p.dtype == torch.bfloat16 for n, p in model.named_parameters()
                   if "lora_" not in n and p.ndim == 2)
        # the clock (a microsecond) asked for a checkpoint after every step
        saved = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
        assert saved == ["checkpoint_1", "checkpoint_2"]
        assert cut.val_history == []  # validation waits for its own (hour-long) clock
        assert all(h["total"] == h["total"] for h in cut.history)  # no NaN in bf16
        model = AutoModelForCausalLM.from_pretrained(tiny_qwen_student, dtype=base_dtype(cfg))
        done = train(model, qwen_tokenizer, examples, examples[:1], cfg, tmp_path,
                     progress=False)
    finally:
        torch.set_num_threads(before)
    assert done.resumed_from == 2 and done.steps == 3
    assert [v["step"] for v in done.val_history] == [3]  # ...but always runs at the end
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["r"] == 4


def test_a_run_resumes_on_another_machine_from_the_portable_checkpoint(
        tiny_qwen_student: Path, qwen_tokenizer, tmp_path: Path) -> None:
    """Only what is committed travels: without train/checkpoints/ (accelerate's full state,
    kept local) the run resumes from train/portable/ with the weights it had reached."""
    import shutil

    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    examples = examples_for(qwen_tokenizer, "p", PROBLEM, PLAN, SOLUTION,
                            tasks=("plan", "code"))
    cfg = TrainConfig(lora_r=4, lora_dropout=0.0, target_modules=("q_proj", "v_proj"),
                      max_steps=4, batch_size=1, grad_accum=1, warmup_steps=1,
                      learning_rate=1e-3, save_every=1, threads=1, bf16="false")
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen_student)
    cut = train(model, qwen_tokenizer, examples, [], cfg, tmp_path, progress=False,
                stop_after=2)
    files = sorted(p.name for p in (tmp_path / "portable").iterdir())
    assert files == ["train_state.json", "trainable_2.safetensors"], "older weights removed"
    saved = load_file(str(tmp_path / "portable" / "trainable_2.safetensors"))
    assert saved and all("lora_" in n or "ast_head" in n for n in saved), "trainable only"
    shutil.rmtree(tmp_path / "checkpoints")  # a fresh machine: only the commit is there

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen_student)
    seen: dict = {}
    real_load = portable.load

    def spy(module, optimizer, scheduler, folder):
        state = real_load(module, optimizer, scheduler, folder)
        seen.update({n: p.detach().clone() for n, p in module.named_parameters()
                     if p.requires_grad})
        seen["lr"] = optimizer.param_groups[0]["lr"]
        return state

    portable.load = spy
    try:
        done = train(model, qwen_tokenizer, examples, [], cfg, tmp_path, progress=False)
    finally:
        portable.load = real_load
    assert (done.resumed_from, done.resumed_portable, done.steps) == (2, True, 4)
    assert all(torch.equal(seen[n], v) for n, v in saved.items()), "step 2's weights restored"
    assert seen["lr"] == cut.history[-1]["lr"], "the schedule continues, not its warm-up"
    assert [h["step"] for h in done.history] == [1, 2, 3, 4], "history carried over"
