"""Gates against forgetting (``plancode gate``) and the export of the on-policy adapter.

Real pieces throughout: the tiny random qwen2 student (``tiny_qwen_student``) written as an
f16 GGUF is the base; a random LoRA over it (peft's format, as the on-policy run saves it) is
the checkpoint; ``plancode.trainer.humaneval``'s runner answers a 2-problem HumanEval slice
through llama.cpp for both, and the held-out slice runs the run's held-out fixture problems
through the sandbox. A random model solves nothing, so the verdicts of a real run are both
"fail" and the gate accepts; the refusal is tested with base rows constructed in the base's
rows file (the gate reads cached rows before it answers).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from plancode.errors import PlancodeError  # noqa: E402
from plancode.trainer import gates  # noqa: E402
from plancode.trainer.config import DistillConfig  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "distill_problems.jsonl"
REPO = Path(__file__).resolve().parent.parent
TASKS = [0, 2]  # HumanEval/0 and /2: short prompts


def _config(tmp: Path, student: Path, heldout: float = 0.0, **export: object) -> Path:
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in export.items())
    path = tmp / "gate.toml"
    path.write_text(f'''out_dir = "run"
[data]
jsonl = ["problems.jsonl"]
val_fraction = 0.0
heldout_fraction = {heldout}
decontaminate = false
[train]
student = "{student}"
[onpolicy]
lora_r = 8
lora_alpha = 16
target_modules = ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"]
[export]
merge = false
agreement_sequences = 3
max_positions = 128
{lines}
[gate]
humaneval = {TASKS}
heldout_problems = 1
max_tokens = 16
n_threads = 1
[verify]
timeout = 20.0
''')
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_qwen_student: Path) -> dict:
    """A run folder: data stage, the base GGUF, an on-policy adapter with its logged anchor
    KLs, gated once for real (HumanEval slice and held-out slice)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from plancode.trainer.gguf_export import write_gguf
    from plancode.trainer.stages.data import heldout_of, stage_data
    from plancode.trainer.stages.gate import gate_checkpoint

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("gates")
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_student)
    base = AutoModelForCausalLM.from_pretrained(tiny_qwen_student, dtype=torch.float32).eval()
    gguf = write_gguf(base, tokenizer, tmp / "tiny-student-f16.gguf")
    (tmp / "problems.jsonl").write_text("\n".join(FIXTURES.read_text().splitlines()[:6]) + "\n")
    cfg = DistillConfig.load(_config(tmp, gguf, heldout=0.5, adapter_from="onpolicy"))
    stage_data(cfg, progress=False)
    assert heldout_of(cfg), "the fixture split holds no problem out: change heldout_fraction"
    torch.manual_seed(1)
    peft_model = get_peft_model(base, LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
        target_modules=list(cfg.onpolicy.target_modules)))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.05)
    folder = cfg.out_dir / "onpolicy"
    peft_model.save_pretrained(folder / "adapter")
    (folder / "report.json").write_text(json.dumps({"anchor_history": [
        {"step": 0, "anchor_kl": 0.0, "anchor_teacher_kl": 0.3},
        {"step": 10, "anchor_kl": 0.021, "anchor_teacher_kl": 0.2}]}))
    logs: list[str] = []
    report = gate_checkpoint(cfg, folder / "adapter", progress=False, log=logs.append)
    return {"tmp": tmp, "cfg": cfg, "gguf": gguf, "folder": folder, "report": report,
            "logs": logs, "peft": peft_model, "student_dir": tiny_qwen_student}


def _base_rows_file(cfg: DistillConfig, gguf: Path) -> Path:
    from plancode.trainer import humaneval
    from plancode.trainer.evaluate import eval_settings
    from plancode.trainer.stages.gate import rows_dir

    return humaneval.rows_file(rows_dir(cfg), gguf,
                               None, eval_settings(str(gguf), cfg.gate.eval_config()))


def test_mcnemar_compare_and_judge() -> None:
    assert gates.mcnemar(0, 0) == 1.0
    assert gates.mcnemar(0, 2) == pytest.approx(0.5)
    assert gates.mcnemar(1, 10) == pytest.approx(2 * 12 / 2 ** 11)
    assert gates.mcnemar(14, 11) == gates.mcnemar(11, 14)
    c = gates.compare({"a": True, "b": True, "c": False, "x": True},
                      {"a": False, "b": True, "c": True, "y": False})
    assert (c["n"], c["base_solved"], c["solved"], c["drop"]) == (3, 2, 2, 0)
    assert c["lost"] == ["a"] and c["gained"] == ["c"] and c["p_value"] == 1.0
    two = gates.compare({"a": True, "b": True}, {"a": False, "b": False})
    one = gates.compare({"a": True, "b": False}, {"a": False, "b": False})
    assert gates.judge({"humaneval": one}, 1) == (True, [])
    accepted, reasons = gates.judge({"humaneval": one, "heldout": two}, 1)
    assert not accepted and len(reasons) == 1 and reasons[0].startswith("heldout: solves 0/2")
    counts = gates.answer_counts([
        {"truncated": True, "empty": False, "unparseable": True},  # a HumanEval row
        {"code": ""}, {"code": "def f(:\n"}, {"code": "def f():\n    return 1\n"},  # held out
        {"passed": False}])  # written before the fields existed
    assert counts == {"answers": 5, "truncated": 1, "empty": 1, "unparseable": 2,
                      "unknown": 1}


def test_gate_scores_both_models_and_accepts_an_equal_checkpoint(run) -> None:
    report, cfg = run["report"], run["cfg"]
    assert report["accepted"] and report["reasons"] == []
    he = report["slices"]["humaneval"]
    assert he["n"] == len(TASKS) and he["drop"] == 0  # a random model: nothing either side
    held = report["slices"]["heldout"]
    assert held["n"] >= 1 and held["drop"] == 0
    for key in ("humaneval", "humaneval_base", "heldout", "heldout_base"):
        assert report["answers"][key]["unknown"] == 0
    assert report["answers"]["humaneval"]["answers"] == len(TASKS)
    assert report["distance"]["anchor_kl"] == pytest.approx(0.021)  # the run's last log
    assert json.loads((run["folder"] / "adapter" / "gate.json").read_text()) == report
    assert Path(report["gguf_adapter"]).is_file()
    line = (run["folder"] / "gate.log").read_text().strip().splitlines()[-1]
    assert line.startswith(f"[gate] {run['folder'] / 'adapter'}: ACCEPTED")
    assert "anchor KL 0.021" in line and line in run["logs"]
    # the direct rows say how each answer ended (16 tokens: mostly cut at the limit)
    rows = [json.loads(x) for x in _base_rows_file(cfg, run["gguf"]).read_text().splitlines()]
    assert len(rows) == len(TASKS)
    for row in rows:
        assert row["finish"] in ("stop", "length", "cancelled")
        assert row["truncated"] == (row["finish"] == "length")
        assert isinstance(row["empty"], bool) and isinstance(row["unparseable"], bool)


def test_without_heldout_data_the_slice_is_skipped_and_said(run, tmp_path: Path) -> None:
    """A run whose data holds nothing out gates on HumanEval alone, with a note (the rows
    already made are reused: nothing is answered again)."""
    from plancode.trainer.stages.data import stage_data
    from plancode.trainer.stages.gate import gate_checkpoint

    (tmp_path / "problems.jsonl").write_text((run["tmp"] / "problems.jsonl").read_text())
    cfg = DistillConfig.load(_config(tmp_path, run["gguf"]))
    cfg = dataclasses.replace(cfg, gate=dataclasses.replace(
        cfg.gate, rows_dir=str(run["cfg"].out_dir / "gate")))
    stage_data(cfg, progress=False)
    logs: list[str] = []
    report = gate_checkpoint(cfg, run["folder"] / "adapter", progress=False, log=logs.append)
    assert "heldout" not in report["slices"] and report["accepted"]
    assert "held-out slice skipped" in report["notes"][0]
    assert any("held-out slice skipped" in m for m in logs)
    (run["folder"] / "adapter" / "gate.json").write_text(json.dumps(run["report"], indent=1))


def test_the_accepted_onpolicy_adapter_exports(run) -> None:
    """``export.adapter_from = "onpolicy"`` exports onpolicy/adapter as the GGUF adapter the
    server loads, agreeing with the merged torch model, and records its gate."""
    from plancode.trainer.stages.export import stage_export
    from plancode.trainer.stages.stage import stage_fingerprint

    cfg = run["cfg"]
    report = stage_export(cfg, progress=False)
    assert report["adapter_from"] == "onpolicy" and report["gate"]["accepted"]
    assert (cfg.out_dir / "export" / report["adapter"]["file"]).is_file()
    assert report["adapter"]["agreement_ties"] >= 0.98
    # the default stays the SFT adapter, and its fingerprint is what it was
    default = dataclasses.replace(cfg, export=dataclasses.replace(cfg.export,
                                                                  adapter_from="train"))
    assert "adapter_from" not in default.section("export")
    assert stage_fingerprint(default, "export") != stage_fingerprint(cfg, "export")


def test_a_checkpoint_that_forgets_is_refused_and_never_exported(run) -> None:
    """Base rows that pass where the checkpoint fails: two lost on the HumanEval slice is
    more than one, so the gate refuses, and the export refuses to ship it (one lost is
    accepted: ``test_mcnemar_compare_and_judge``)."""
    from plancode.trainer.stages.gate import gate_checkpoint, gated_adapter

    cfg, folder = run["cfg"], run["folder"]
    rows_file = _base_rows_file(cfg, run["gguf"])
    real = rows_file.read_text()
    rows = [json.loads(x) for x in real.splitlines()]
    try:
        rows_file.write_text("".join(json.dumps({**r, "passed": True}) + "\n" for r in rows))
        logs: list[str] = []
        report = gate_checkpoint(cfg, folder / "adapter", progress=False, log=logs.append)
        assert not report["accepted"]
        he = report["slices"]["humaneval"]
        assert len(he["lost"]) == 2 and he["p_value"] == pytest.approx(0.5)
        assert report["reasons"][0].startswith("humaneval: solves 0/2 against the base's 2")
        assert "REFUSED" in logs[-1]
        with pytest.raises(PlancodeError, match="the gate refused"):
            gated_adapter(cfg)
    finally:
        rows_file.write_text(real)
        (folder / "adapter" / "gate.json").write_text(json.dumps(run["report"], indent=1))
    # a report for other weights does not count
    stale = dict(run["report"], adapter_digest="0" * 16)
    (folder / "adapter" / "gate.json").write_text(json.dumps(stale))
    with pytest.raises(PlancodeError, match="other weights"):
        gated_adapter(cfg)
    (folder / "adapter" / "gate.json").unlink()
    with pytest.raises(PlancodeError, match="has not been through the gates"):
        gated_adapter(cfg)
    (folder / "adapter" / "gate.json").write_text(json.dumps(run["report"], indent=1))


def test_an_accelerate_checkpoint_becomes_an_adapter(run) -> None:
    """A kept on-policy checkpoint (accelerate's ``model.safetensors`` of the module, LoRA
    under ``student.`` with peft's adapter name) is written out as the peft adapter the
    gate exports, tensor for tensor what peft itself saved."""
    from safetensors.torch import load_file, save_file

    from plancode.trainer.stages.gate import checkpoint_adapter, default_checkpoints

    ckpt = run["folder"] / "checkpoints" / "checkpoint_3"
    ckpt.mkdir(parents=True)
    lora = {f"student.{k}": v.detach().clone() for k, v in run["peft"].state_dict().items()
            if "lora_" in k}
    save_file(lora, str(ckpt / "model.safetensors"))
    (ckpt / "train_state.json").write_text(json.dumps({"step": 3, "val_history": [
        {"step": 0, "anchor_kl": 0.0}]}))
    out = checkpoint_adapter(run["cfg"], ckpt)
    assert out == ckpt / "adapter"
    saved = load_file(str(out / "adapter_model.safetensors"))
    ours = load_file(str(run["folder"] / "adapter" / "adapter_model.safetensors"))
    assert saved.keys() == ours.keys()
    assert all(torch.equal(saved[k], ours[k]) for k in ours)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(
        run["student_dir"]), out)  # peft reads it back
    assert loaded.peft_config["default"].r == 8
    assert gates.anchor_distance(ckpt) == {"step": 0, "anchor_kl": 0.0}
    assert default_checkpoints(run["cfg"]) == [run["folder"] / "adapter"]


def test_gate_config_loads_without_torch_or_llama(tmp_path: Path) -> None:
    (tmp_path / "problems.jsonl").write_text(FIXTURES.read_text().splitlines()[0] + "\n")
    path = _config(tmp_path, Path("student.gguf"), adapter_from="onpolicy")
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'transformers', 'peft', 'llama_cpp'):
            raise ImportError('no ' + name)
sys.meta_path.insert(0, Block())
from pathlib import Path
from plancode.trainer.config import DistillConfig
import plancode.trainer.gates, plancode.trainer.stages.gate
cfg = DistillConfig.load(Path({str(path)!r}))
print(cfg.export.adapter_from, cfg.gate.humaneval, cfg.gate.max_lost)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["onpolicy", "[0,", "2]", "1"]
    bad = tmp_path / "bad.toml"
    bad.write_text(path.read_text().replace('"onpolicy"\n', '"sft"\n'))
    with pytest.raises(PlancodeError, match="export.adapter_from"):
        DistillConfig.load(bad)
