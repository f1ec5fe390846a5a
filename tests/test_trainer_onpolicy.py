"""On-policy distillation (``plancode onpolicy``) with real tiny models and real training steps.

The student is the 2-layer random qwen2 of ``tiny_qwen_student`` (the real Qwen tokenizer).
The teacher is a fixed distribution the student can reach: the student's own at temperature
1/2 (sharper, as a stronger model is surer; a second random model would be so far away that
reverse KL, which weighs each listed token by the student's own probability of it, barely
moves in a few steps). Its scores are made here exactly as the samples stage stores them (its
best tokens until 95% of its mass, at most 8, and its log-probability of each answer token).
The rows answer three fixture problems with the server's direct prompt:
one answer a real function body (so the structure weights have code to weigh), one sampled
from the student, plus one row whose prompt digest is wrong and must be refused.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from plancode.trainer.config import DistillConfig, OnPolicyConfig  # noqa: E402
from plancode.trainer.data import Problem  # noqa: E402
from plancode.trainer.onpolicy import (  # noqa: E402
    REST_FLOOR,
    OnPolicyBatch,
    build_examples,
    collate,
    onpolicy_loss,
    prompt_ids,
    sampled_token_loss,
    topk_reverse_kl,
)
from plancode.trainer.samples import direct_prompt, tokens_digest  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "distill_problems.jsonl"
REPO = Path(__file__).resolve().parent.parent
STEPS = 10
SHARPEN = 2.0  # the teacher: the student's logits times this (temperature 1/2)
LR = 2e-3  # LoRA on a random 2-layer model: ten steps show the trend


def _config_text(student: Path, **onpolicy: object) -> str:
    settings = {"max_steps": STEPS, "batch_size": 2, "grad_accum": 1, "learning_rate": LR,
                "warmup_steps": 0, "lora_r": 8, "lora_alpha": 16, "anchor_prompts": 2,
                "anchor_every": 5, "save_every": 5, "save_every_minutes": 0.0, "threads": 1,
                "bf16": "false", **onpolicy}
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())
    return f'''out_dir = "run"
[data]
jsonl = ["problems.jsonl"]
val_fraction = 0.0
decontaminate = false
[train]
student = "{student}"
[onpolicy]
{lines}
'''


def _teacher_scores(teacher, ids: list[int], n_prompt: int) -> dict:
    """The teacher's numbers for the answer ``ids[n_prompt:]``, as the samples stage stores
    them (best first, cut once they hold 95% of the mass, at most 8; 3 decimals)."""
    with torch.no_grad():
        logits = teacher(torch.tensor([ids])).logits[0].float() * SHARPEN
        logp = torch.log_softmax(logits, -1)
    tops, top_lps, lps = [], [], []
    for pos in range(n_prompt, len(ids)):
        row = logp[pos - 1]
        values, idx = row.topk(8)
        keep = int((values.exp().cumsum(0) < 0.95).sum()) + 1
        tops.append(idx[:keep].tolist())
        top_lps.append([round(v, 3) for v in values[:keep].tolist()])
        lps.append(round(float(row[ids[pos]]), 3))
    return {"teacher_lp": lps, "teacher_top": tops, "teacher_top_lp": top_lps}


def _rows(tokenizer, student, teacher, problems: list[Problem]) -> list[dict]:
    rows = []
    eot = tokenizer.eos_token_id
    for problem in problems:
        prompt = prompt_ids(tokenizer, problem, True)
        body = problem.solution.split("\n", 1)[1]  # the function's body, after its def line
        real = tokenizer(body + "```", add_special_tokens=False)["input_ids"] + [eot]
        with torch.no_grad():
            torch.manual_seed(len(rows))
            out = student.generate(torch.tensor([prompt]), do_sample=True, max_new_tokens=6,
                                   top_k=50, pad_token_id=eot)
        sampled = out[0, len(prompt):].tolist()
        for k, answer in enumerate((real, sampled)):
            ids = prompt + answer
            rows.append({"key": f"{problem.id}#direct#{k}", "id": problem.id, "mode": "direct",
                         "k": k, "prompt_tokens": len(prompt),
                         "prompt_sha": tokens_digest(prompt), "finish": "stop",
                         "tokens": answer, "text": tokenizer.decode(answer),
                         **_teacher_scores(teacher, ids, len(prompt)),
                         "passed": k == 0, "outcome": "passed" if k == 0 else "failed",
                         "tests": 2, "tests_passed": 2 if k == 0 else 0})
    bad = dict(rows[0], key="bad#direct#0", prompt_sha="0" * 16)  # another prompt
    return [*rows, bad]


def make_setup(tmp: Path, qwen_tokenizer, tiny_qwen_student: Path) -> dict:
    """A run folder in ``tmp`` with its data stage and the synthetic samples rows."""
    from transformers import AutoModelForCausalLM

    from plancode.trainer.stages.data import problems_of, stage_data

    torch.set_num_threads(1)  # as the config's threads: two lose to one on a busy machine
    (tmp / "problems.jsonl").write_text("\n".join(FIXTURES.read_text().splitlines()[:3]) + "\n")
    (tmp / "onpolicy.toml").write_text(_config_text(tiny_qwen_student))
    cfg = DistillConfig.load(tmp / "onpolicy.toml")
    stage_data(cfg, progress=False)
    problems, _ = problems_of(cfg)
    student = AutoModelForCausalLM.from_pretrained(tiny_qwen_student).eval()
    rows = _rows(qwen_tokenizer, student, student, problems)  # teacher: SHARPEN
    samples = tmp / "run" / "samples"
    samples.mkdir(parents=True)
    (samples / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems_by_id = {p.id: p for p in problems}
    examples, stats = build_examples(qwen_tokenizer, rows, problems_by_id, True,
                                     cfg.onpolicy)
    return {"tmp": tmp, "cfg": cfg, "rows": rows, "examples": examples, "stats": stats,
            "tokenizer": qwen_tokenizer, "student_dir": tiny_qwen_student}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, qwen_tokenizer, tiny_qwen_student) -> dict:
    return make_setup(tmp_path_factory.mktemp("onpolicy"), qwen_tokenizer, tiny_qwen_student)


def test_config_loads_without_torch(tmp_path: Path) -> None:
    """``[onpolicy]`` is typed and validated, and its stage fingerprinted, with torch
    unimportable (the config module and the stage's top level import neither torch nor
    transformers)."""
    (tmp_path / "p.jsonl").write_text(FIXTURES.read_text().splitlines()[0] + "\n")
    (tmp_path / "c.toml").write_text(_config_text(Path("student-dir"), objective="sampled",
                                                  sft_weight=0.5))
    (tmp_path / "c.toml").write_text((tmp_path / "c.toml").read_text()
                                     .replace("problems.jsonl", "p.jsonl"))
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'transformers', 'peft', 'accelerate'):
            raise ImportError('no ' + name)
sys.meta_path.insert(0, Block())
from pathlib import Path
from plancode.trainer.config import DistillConfig
from plancode.trainer.stages.onpolicy import onpolicy_fingerprint
cfg = DistillConfig.load(Path({str(tmp_path / 'c.toml')!r}))
o = cfg.onpolicy
print(o.objective, o.sft_weight, o.max_steps, len(onpolicy_fingerprint(cfg)))
assert 'torch' not in sys.modules
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["sampled", "0.5", str(STEPS), "16"]
    bad = tmp_path / "bad.toml"
    bad.write_text((tmp_path / "c.toml").read_text().replace('"sampled"', '"forward"'))
    from plancode.errors import PlancodeError

    with pytest.raises(PlancodeError, match="onpolicy.objective"):
        DistillConfig.load(bad)
    # a variant's folder sits beside onpolicy/ under out_dir, never elsewhere
    bad.write_text((tmp_path / "c.toml").read_text() + 'folder = "../elsewhere"\n')
    with pytest.raises(PlancodeError, match="plain folder name"):
        DistillConfig.load(bad)
    variant = tmp_path / "variant.toml"
    variant.write_text((tmp_path / "c.toml").read_text() + 'folder = "onpolicy-rft"\n')
    cfg = DistillConfig.load(variant)
    assert cfg.onpolicy_dir == cfg.out_dir / "onpolicy-rft"


def test_prompt_is_the_one_the_student_answered(qwen_tokenizer, default_model_path) -> None:
    """The prompt rebuilt with the Hugging Face tokenizer is, id for id, the one the samples
    stage gave llama.cpp (the server's direct prompt, prefilled through the docstring, under
    the GGUF's own chat template, tokenized by llama.cpp: its vocabulary alone is loaded)."""
    from llama_cpp import Llama

    from plancode.engine.model_info import ModelInfo

    llm = Llama(str(default_model_path), vocab_only=True, verbose=False)
    info = ModelInfo.from_metadata(
        llm.metadata, lambda text: False,
        lambda i: llm.detokenize([i], special=True).decode("utf-8", errors="replace"))
    for line in FIXTURES.read_text().splitlines()[:3]:
        row = json.loads(line)
        problem = Problem(row["id"], row["problem"], row["solution"], tuple(row["tests"]))
        messages, start = direct_prompt(problem, True)
        assert start  # prefilled
        served = llm.tokenize(info.render_chat(messages).encode(), add_bos=False, special=True)
        assert prompt_ids(qwen_tokenizer, problem, True) == served


def test_rows_become_examples_and_a_foreign_prompt_is_refused(setup) -> None:
    stats, examples = setup["stats"], setup["examples"]
    assert stats.rows == 7 and stats.used == 6 and stats.passed == 3
    assert stats.prompt_mismatch == 1 and stats.mismatched == ["bad#direct#0"]
    # the prefilled start holds the function, so every reply parses as code
    assert stats.unparsed_code == 0
    real = [e for e in examples if e.passed]  # the real bodies: structural tokens weigh 2
    assert all(max(e.weights) == 2.0 and min(e.weights) == 1.0 for e in real)  # alpha = 1
    assert 0 < stats.structural_tokens < stats.answer_tokens
    ex = examples[0]
    assert ex.input_ids[ex.n_prompt:] == setup["rows"][0]["tokens"]


def test_topk_reverse_kl_is_the_bucketed_kl() -> None:
    """Against the KL of the (K + 1)-outcome distributions computed by hand; 0 when the
    student's buckets equal the teacher's; padding changes nothing."""
    torch.manual_seed(0)
    logits = torch.randn(3, 11)
    top_ids = torch.tensor([[4, 2, 0], [1, 0, 0], [7, 3, 9]])
    top_lp = torch.tensor([[-0.3, -1.9, -math.inf], [-0.01, -math.inf, -math.inf],
                           [-1.0, -1.5, -2.0]])
    got = topk_reverse_kl(logits, top_ids, top_lp)
    p = logits.softmax(-1)
    for i in range(3):
        valid = torch.isfinite(top_lp[i])
        ids = top_ids[i][valid]
        q = top_lp[i][valid].exp()
        q_rest = max(1.0 - float(q.sum()), REST_FLOOR)
        qs = torch.cat([q, torch.tensor([q_rest])]) / (float(q.sum()) + q_rest)
        ps = torch.cat([p[i][ids], (1 - p[i][ids].sum()).reshape(1)])
        assert float(got[i]) == pytest.approx(float((ps * (ps / qs).log()).sum()), abs=1e-5)
    # a student whose buckets are the teacher's: zero
    t = torch.full((1, 11), -3.0)  # the rest (4%) above REST_FLOOR
    t[0, 4], t[0, 2] = 2.0, 1.0
    probs = t.softmax(-1)[0]
    lp = torch.tensor([[float(probs[4].log()), float(probs[2].log()), -math.inf]])
    assert float(topk_reverse_kl(t, top_ids[:1], lp)[0]) == pytest.approx(0.0, abs=1e-5)
    # gradients of both losses are finite, padded entries included
    x = logits.clone().requires_grad_(True)
    topk_reverse_kl(x, top_ids, top_lp).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    y = logits.clone().requires_grad_(True)
    logp_y = y.log_softmax(-1)[torch.arange(3), torch.tensor([4, 1, 7])]
    sampled_token_loss(logp_y, torch.tensor([-0.5, -0.2, -3.0])).sum().backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def test_sft_term_counts_only_passing_answers() -> None:
    logits = torch.randn(4, 9, requires_grad=True)
    batch = OnPolicyBatch(
        input_ids=torch.zeros(1, 5, dtype=torch.long), attention_mask=torch.ones(1, 5),
        pred=torch.ones(1, 5, dtype=torch.bool), targets=torch.tensor([1, 2, 3, 4]),
        top_ids=torch.tensor([[1], [2], [3], [4]]), top_lp=torch.full((4, 1), -0.1),
        teacher_lp=torch.full((4,), -0.1), weights=torch.tensor([1.0, 2.0, 1.0, 1.0]),
        passed=torch.tensor([True, True, False, False]))
    total, parts = onpolicy_loss(logits, batch, "topk", sft_weight=0.5)
    logp = logits.log_softmax(-1)
    ce = -(1.0 * logp[0, 1] + 2.0 * logp[1, 2]) / 3.0
    assert parts["sft"] == pytest.approx(float(ce.detach()), rel=1e-5)
    assert parts["total"] == pytest.approx(parts["kl"] + 0.5 * parts["sft"], rel=1e-5)
    _, none = onpolicy_loss(logits, OnPolicyBatch(**{**batch.__dict__,
                                                     "passed": torch.zeros(4, dtype=bool)}),
                            "topk", sft_weight=0.5)
    assert "sft" not in none and none["total"] == pytest.approx(none["kl"])


@pytest.mark.parametrize("kind", ["topk", "sampled"])
def test_the_loss_falls_on_a_fixed_batch(setup, kind: str) -> None:
    """Eight LoRA steps on one fixed batch (two rows): the top-k KL falls (``topk``), the
    sampled-token KL estimate falls (``sampled``: its surrogate's value is not a KL);
    gradients stay finite."""
    from transformers import AutoModelForCausalLM

    from plancode.trainer.onpolicy_train import OnPolicyModule
    from plancode.trainer.train import add_lora

    torch.manual_seed(0)
    cfg = OnPolicyConfig(objective=kind, lora_r=8, lora_alpha=16)
    model = AutoModelForCausalLM.from_pretrained(setup["student_dir"])
    module = OnPolicyModule(add_lora(model, cfg), cfg)
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR)
    batch = collate(setup["examples"][:2], setup["tokenizer"].pad_token_id)
    watched = []
    for _ in range(8):
        loss, parts = module(batch)
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in params)
        opt.step()
        opt.zero_grad()
        watched.append(parts["kl" if kind == "topk" else "kl_sampled"])
    assert watched[-1] < 0.8 * watched[0], watched


def test_stage_trains_resumes_and_moves_towards_the_teacher(setup) -> None:
    """The stage stopped after 5 steps resumes from its checkpoint and finishes 10, the same
    numbers as a run never stopped; the mismatched row is refused and counted; the anchor
    KL from the base starts at 0 and grows; and the student's distribution on the rows has
    moved towards the teacher's (measured with the adapter on and off)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from plancode.trainer.stages.onpolicy import stage_onpolicy

    tmp, cfg = setup["tmp"], setup["cfg"]
    logs: list[str] = []
    first = stage_onpolicy(cfg, progress=False, stop_after=5, log=logs.append)
    folder = tmp / "run" / "onpolicy"
    assert first["steps"] == 5 and not (folder / "done.json").exists()
    assert any("refused 1 of 7 rows" in m for m in logs)
    second = stage_onpolicy(cfg, progress=False, log=logs.append)
    assert second["resumed_from"] == 5 and second["steps"] == STEPS
    assert (folder / "done.json").exists() and (folder / "adapter" / "adapter_config.json").exists()
    assert second["rows"]["prompt_mismatch"] == 1 and second["rows"]["used"] == 6
    assert json.loads((folder / "rows.json").read_text())["keys"] == \
        [r["key"] for r in setup["rows"]]
    assert stage_onpolicy(cfg, progress=False) == second  # finished: read back

    # a run never stopped gives the same history
    other = tmp / "straight"
    other.mkdir()
    for name in ("problems.jsonl", "onpolicy.toml"):
        (other / name).write_text((tmp / name).read_text())
    (other / "run").mkdir()
    for sub in ("data", "samples"):
        shutil.copytree(tmp / "run" / sub, other / "run" / sub)
    straight = stage_onpolicy(DistillConfig.load(other / "onpolicy.toml"), progress=False)
    ours = [r["kl"] for r in second["history"]]
    assert ours == pytest.approx([r["kl"] for r in straight["history"]], rel=1e-3, abs=1e-5)
    assert ours[-1] < ours[0]

    anchors = second["anchor_history"]
    assert [a["step"] for a in anchors] == [0, 5, 10]
    assert anchors[0]["anchor_kl"] == pytest.approx(0.0, abs=1e-6)
    assert anchors[-1]["anchor_kl"] > 1e-4
    assert anchors[-1]["anchor_teacher_kl"] < anchors[0]["anchor_teacher_kl"]

    base = AutoModelForCausalLM.from_pretrained(setup["student_dir"]).eval()
    before = _teacher_kl(base, setup["examples"], setup["tokenizer"].pad_token_id)
    student = PeftModel.from_pretrained(base, folder / "adapter").eval()
    after = _teacher_kl(student, setup["examples"], setup["tokenizer"].pad_token_id)
    assert after < 0.8 * before, (before, after)


def _teacher_kl(model, examples, pad_id: int) -> float:
    """Mean per-token top-k reverse KL of ``model`` to the teacher over ``examples``."""
    from plancode.trainer.onpolicy import answer_logits

    with torch.no_grad():
        batch = collate(examples, pad_id)
        return float(topk_reverse_kl(answer_logits(model, batch), batch.top_ids,
                                     batch.top_lp).mean())
