"""Stage fingerprints hash only what changes a stage's output, and the config loads on a
machine without torch or llama.cpp.

Hours of teacher plans must survive moving the run (another folder, a fresh checkout on
another machine) and turning a speed knob (GPU layers, threads, checkpoint frequency).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from plancode.errors import PlancodeError
from plancode.trainer.config import DistillConfig
from plancode.trainer.distill import run_distill
from plancode.trainer.stages.data import problems_of
from plancode.trainer.stages.stage import STAGES, stage_fingerprint, stage_work

REPO = Path(__file__).resolve().parent.parent

CONFIG = """
out_dir = "run"

[data]
jsonl = ["problems.jsonl"]
mine = ["src/textstats"]
val_fraction = 0.2

[teacher]
model = "qwen2.5-coder-1.5b"
n_gpu_layers = 0

[verify]
coder_model = "qwen2.5-coder-0.5b"

[train]
student = "qwen2.5-coder-0.5b"
save_every = 50
"""


def _project(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "distill.toml").write_text(CONFIG)
    shutil.copy(REPO / "tests" / "fixtures" / "distill_problems.jsonl", root / "problems.jsonl")
    shutil.copytree(REPO / "examples" / "textstats", root / "src" / "textstats",
                    ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return root / "distill.toml"


def _fingerprints(cfg: DistillConfig) -> dict[str, str]:
    return {name: stage_fingerprint(cfg, name) for name in STAGES}


def test_fingerprints_survive_a_moved_run_directory(tmp_path: Path) -> None:
    first = DistillConfig.load(_project(tmp_path / "a"))
    report = run_distill(first, ("data",), progress=False, log=lambda m: None)["data"]
    before = _fingerprints(first)
    shutil.move(tmp_path / "a", tmp_path / "b")  # the whole run, config and sources
    moved = DistillConfig.load(tmp_path / "b" / "distill.toml")
    assert _fingerprints(moved) == before
    again = run_distill(moved, ("data",), progress=False, log=lambda m: None)["data"]
    assert again == report  # the finished stage is reused, not redone
    assert not list((tmp_path / "b" / "run").glob("*.stale-*"))
    train, val = problems_of(moved)
    roots = {p.meta["root"] for p in train + val if "root" in p.meta}
    assert roots and all(r.startswith(str(tmp_path / "b")) for r in roots)


def test_speed_knobs_keep_fingerprints_and_settings_change_them(tmp_path: Path) -> None:
    cfg = DistillConfig.load(_project(tmp_path / "a"))
    base = _fingerprints(cfg)
    fast = dataclasses.replace(
        cfg, teacher=dataclasses.replace(cfg.teacher, n_gpu_layers=-1, n_threads=8),
        verify=dataclasses.replace(cfg.verify, n_threads=4, isolation="rlimit"),
        train=dataclasses.replace(cfg.train, save_every=7, save_every_minutes=5.0, threads=1,
                                  bf16="true", val_every_minutes=30.0),
        eval=dataclasses.replace(cfg.eval, n_gpu_layers=-1))
    assert _fingerprints(fast) == base
    # the teacher's sampling changes its plans and everything after them, not the data
    hotter = _fingerprints(dataclasses.replace(
        cfg, teacher=dataclasses.replace(cfg.teacher, temperature=0.9)))
    assert hotter["data"] == base["data"]
    assert all(hotter[s] != base[s] for s in STAGES[1:])
    # more plans per problem: the same plans and verdicts (the stages re-open and add rows),
    # a new training set
    more = dataclasses.replace(cfg, teacher=dataclasses.replace(cfg.teacher,
                                                                plans_per_problem=8))
    assert [s for s in STAGES if stage_fingerprint(more, s) != base[s]] == [
        "train", "export", "eval"]
    assert stage_work(more, "plans") != stage_work(cfg, "plans")
    # a loss weight changes training and what follows it only
    lam = _fingerprints(dataclasses.replace(cfg, train=dataclasses.replace(
        cfg.train, loss=dataclasses.replace(cfg.train.loss, lam=0.3))))
    assert [s for s in STAGES if lam[s] != base[s]] == ["train", "export", "eval"]
    # a setting added later keeps older runs' fingerprints at its default, not beyond it
    own = _fingerprints(dataclasses.replace(cfg, train=dataclasses.replace(
        cfg.train, code_target="verified")))
    assert [s for s in STAGES if own[s] != base[s]] == ["train", "export", "eval"]
    assert "code_target" not in cfg.section("train")
    # the judges rule: "all", what every run verified by before there was a choice, keeps
    # their fingerprints; the default ("reference") re-opens verification and what follows
    strict = dataclasses.replace(cfg, verify=dataclasses.replace(cfg.verify, judges="all"))
    assert "judges" not in strict.section("verify") and "judges" in cfg.section("verify")
    assert [s for s in STAGES if _fingerprints(strict)[s] != base[s]] == [
        "verify", "train", "export", "eval"]
    # a changed code prompt: the coder's verdicts and all after them, never the teacher's plans
    from plancode import prompts

    request = prompts.CODE_REQUEST
    prompts.CODE_REQUEST = "Write the function."
    try:
        reworded = _fingerprints(cfg)
    finally:
        prompts.CODE_REQUEST = request
    assert [s for s in STAGES if reworded[s] != base[s]] == ["verify", "train", "export", "eval"]
    # the data's content, not its path: an edited problem file changes the data stage
    path = Path(cfg.data.jsonl[0])
    path.write_text(path.read_text().replace("add", "sum", 1))
    from plancode.trainer.stages import stage

    stage._SOURCES.clear()  # the digest is memoised per run
    assert stage_fingerprint(cfg, "data") != base["data"]


def test_an_ablation_extends_the_run_and_reuses_its_finished_stages(tmp_path: Path) -> None:
    """``extends`` + ``reuse_from``: the ablation names only what it changes; the main run's
    finished data stage (same fingerprint) is copied, not redone; training differs."""
    main_cfg = DistillConfig.load(_project(tmp_path / "a"))
    run_distill(main_cfg, ("data",), progress=False, log=lambda m: None)
    ablation = tmp_path / "a" / "no-structure.toml"
    ablation.write_text('extends = "distill.toml"\nout_dir = "run-nostruct"\n'
                        'reuse_from = "run"\n\n[train.loss]\nalpha = 0.0\nbeta = 0.0\n')
    cfg = DistillConfig.load(ablation)
    assert cfg.out_dir == tmp_path / "a" / "run-nostruct"
    assert cfg.train.loss.alpha == 0.0 and cfg.train.loss.lam == main_cfg.train.loss.lam
    assert cfg.train.save_every == 50 and cfg.teacher.model == "qwen2.5-coder-1.5b"
    assert [s for s in STAGES if stage_fingerprint(cfg, s) != stage_fingerprint(main_cfg, s)] \
        == ["train", "export", "eval"]
    run_distill(cfg, ("data",), progress=False, log=lambda m: None)
    copied = tmp_path / "a" / "run-nostruct" / "data" / "problems.jsonl"
    assert copied.read_text() == (tmp_path / "a" / "run" / "data" / "problems.jsonl").read_text()
    (tmp_path / "a" / "loop.toml").write_text('extends = "loop.toml"\nout_dir = "x"\n')
    with pytest.raises(PlancodeError, match="circle"):
        DistillConfig.load(tmp_path / "a" / "loop.toml")


def test_a_reference_rule_run_starts_from_the_all_rule_runs_verdicts(tmp_path: Path) -> None:
    """A run that verifies with ``judges = "reference"`` and reuses a run verified with
    ``"all"`` (same plans, same coder) starts from its verdicts; a source verified otherwise
    (another coder) is not copied from."""
    from plancode.trainer.jsonl_cache import JsonlCache
    from plancode.trainer.stages.plans import seed_verdicts
    from plancode.trainer.stages.stage import Stage

    cfg = DistillConfig.load(_project(tmp_path / "a"))
    old = dataclasses.replace(cfg, verify=dataclasses.replace(cfg.verify, judges="all"))
    source = Stage(cfg.out_dir, "verify", stage_fingerprint(old, "verify"))
    rows = {"verified.jsonl": {"key": "p#0#d", "id": "p", "passed": True},
            "references.jsonl": {"key": "q#reference#d", "id": "q", "passed": False},
            "val_plans.jsonl": {"key": "v", "plan": "1. Return x."}}
    for name, row in rows.items():
        JsonlCache(source.dir / name).add(row)
    source.finish({})
    new = dataclasses.replace(cfg, out_dir=tmp_path / "new", reuse_from=cfg.out_dir)
    target = Stage(new.out_dir, "verify", stage_fingerprint(new, "verify"))
    assert seed_verdicts(new, target) == "run/verify"
    for name, row in rows.items():
        assert list(JsonlCache(target.dir / name)) == [row]
    assert seed_verdicts(new, target) == "run/verify"  # again: nothing added twice
    assert len(list(JsonlCache(target.dir / "verified.jsonl"))) == 1
    other = dataclasses.replace(new, out_dir=tmp_path / "other",
                                verify=dataclasses.replace(new.verify, coder="teacher"))
    assert seed_verdicts(other, Stage(other.out_dir, "verify", "x")) is None


BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "llama_cpp", "transformers", "peft", "accelerate"}:
            raise ImportError(f"blocked: {name}")
        return None
sys.meta_path.insert(0, Block())
"""


def test_the_config_loads_without_torch_and_without_llama_cpp() -> None:
    code = BLOCKER + """
import json
from pathlib import Path
from plancode.errors import PlancodeError
from plancode.trainer.config import DistillConfig
from plancode.trainer.stages.stage import STAGES, stage_fingerprint
cfg = DistillConfig.load(Path("configs/distill-real.toml"))
print(json.dumps({"lam": cfg.train.loss.lam, "coder": cfg.verify.coder,
                  "threads": cfg.train.threads,
                  "fingerprints": [stage_fingerprint(cfg, s) for s in STAGES],
                  "heavy": sorted(m for m in sys.modules
                                  if m.split(".")[0] in {"torch", "llama_cpp"})}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["lam"] == 0.5 and out["coder"] == "student" and out["heavy"] == []
    assert len(set(out["fingerprints"])) == len(STAGES)


def test_train_without_torch_explains_what_to_install(tmp_path: Path) -> None:
    cfg = _project(tmp_path / "a")
    code = BLOCKER + f"""
from plancode.cli import main
sys.exit(main(["train", "--config", {str(cfg)!r}]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "plancode[train]" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("text, names", [
    ('out_dir = "r"\n[data]\njsonl = ["p"]\n[verify]\ncoder = "oracle"\n', "oracle"),
    ('out_dir = "r"\n[data]\njsonl = ["p"]\n[eval]\ncompare = "vibes"\n', "vibes"),
    ('out_dir = "r"\n[data]\njsonl = ["p"]\nheldout_fraction = 1.5\n', "heldout_fraction"),
    ('out_dir = "r"\n[data]\njsonl = ["p"]\n[train]\nsave_every_minutes = -1\n',
     "save_every_minutes"),
    ('out_dir = "r"\n[data]\njsonl = ["p"]\n[train]\ncode_target = "teacher"\n', "teacher"),
])
def test_new_settings_are_checked(tmp_path: Path, text: str, names: str) -> None:
    from plancode.errors import PlancodeError

    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(PlancodeError) as err:
        DistillConfig.load(tmp_path / "c.toml")
    assert names in err.value.message and err.value.fix


def test_evaluation_compares_like_with_like(tmp_path: Path, default_model_path: Path) -> None:
    """``compare = "adapter"``: the same untouched base file, without and with the student's
    adapter; ``"requantized"``: base and student both exported and quantized by the export."""
    from plancode.trainer.stages.evaluation import eval_models

    cfg = DistillConfig.load(_project(tmp_path / "a"))
    export = cfg.out_dir / "export"
    export.mkdir(parents=True)
    report = {"adapter": {"file": "plancode-student.lora.gguf"},
              "files": {"Q4_K_M": {"path": "/x/student-q4_k_m.gguf"}},
              "base_files": {"Q4_K_M": {"path": "/x/base-q4_k_m.gguf"}}}
    (export / "export_report.json").write_text(json.dumps(report))
    models = eval_models(cfg)
    assert models == {"base": (str(default_model_path), None),
                      "distilled": (str(default_model_path),
                                    export / "plancode-student.lora.gguf")}
    requant = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, compare="requantized"))
    assert eval_models(requant) == {"base": ("/x/base-q4_k_m.gguf", None),
                                    "distilled": ("/x/student-q4_k_m.gguf", None)}
    del report["base_files"]
    (export / "export_report.json").write_text(json.dumps(report))
    from plancode.errors import PlancodeError

    with pytest.raises(PlancodeError) as err:  # never the original base vs a re-quantized one
        eval_models(requant)
    assert "both models" in err.value.message


def test_code_targets_are_the_solution_or_the_code_that_passed(tmp_path: Path) -> None:
    from plancode.trainer.jsonl_cache import JsonlCache
    from plancode.trainer.stages.plans import verified_triples

    cfg = DistillConfig.load(_project(tmp_path / "a"))
    run_distill(cfg, ("data",), progress=False, log=lambda m: None)
    problem = problems_of(cfg)[0][0]
    passing = "def f():\n    # the plan's step, kept as a comment\n    return 1\n"
    rows = JsonlCache(cfg.out_dir / "verify" / "verified.jsonl")
    rows.add({"key": f"{problem.id}#0", "id": problem.id, "plan": "1. Return it.",
              "code": passing, "passed": True})
    rows.add({"key": f"{problem.id}#1", "id": problem.id, "plan": "1. Guess.",
              "code": "def f():\n    return 2\n", "passed": False})
    [reference] = verified_triples(cfg, [problem])
    assert reference["solution"] == problem.solution and reference["plan"] == "1. Return it."
    own = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, code_target="verified"))
    assert [t["solution"] for t in verified_triples(own, [problem])] == [passing]
