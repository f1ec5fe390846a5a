"""The GPU path, checked (issue 32, item 5): plancode's trainer on CUDA in bf16 against CPU fp32.

    python benchmarks/gpu_check.py --out $OUT/gpu.json            # on a GPU machine
    python benchmarks/gpu_check.py --device cpu --out /tmp/g.json # here: the CPU rehearsal

What runs: ``plancode.trainer.train.train`` itself (accelerate, LoRA through peft, the
multi-task structure-aware loss of ``plancode.trainer.losses``, gradient checkpointing and bf16
mixed precision switched on by the trainer on a GPU, its checkpoint and its adapter save), not a
separate toy loop, for ``--steps`` (20) optimizer steps on a tiny randomly initialised
``Qwen2ForCausalLM`` (2 layers, hidden 128, 512-token vocabulary, ~0.36M parameters), then:

* the same steps on the CPU in fp32 from the same seed and data, and the two loss curves
  compared (tolerances below);
* the peft adapter the trainer saved, reloaded over a fresh copy of the base: its logits must
  equal the trained model's (the export is what was trained) and differ from the base's;
* the adapter exported as a llama.cpp LoRA GGUF (``plancode.trainer.gguf_adapter``) over a
  metadata-only qwen2 base GGUF, and read back, where ``gguf`` is installed (it is not a
  dependency of the check: without it that step says "skipped" and the check still passes).

Why this shape. The GPU machine has no network, no model files and none of plancode's other
dependencies (llama-cpp-python, pygls, tree-sitter): only torch, transformers, peft and
accelerate. So the model's config is written here, and the data is *token ids*, no tokenizer:
a real vocabulary is irrelevant to whether the trainer's arithmetic is right on CUDA, and a
tokenizer would need files. The data is a learnable toy, so the curve has a shape to compare
(a flat curve of random targets would hide a wrong gradient): prompts of random ids; *plan*
replies cycle through 16 "plan words" from a start the prompt's first token picks, *code*
replies count through 32 "code words" from a start its last token picks, with a structural
flag on every third code token and a node label per code word (so all three loss terms run).
A stand-in tokenizer gives the trainer the pad/eos ids and writes a note where
``save_pretrained`` would write a tokenizer. plancode may not be installed there either:
``import plancode`` failing, a shim maps ``plancode`` to ``server/`` and ``plancode.trainer``
to ``trainer/`` as pyproject's package-dir does.

Tolerance (bf16 vs fp32). bf16 keeps 8 significant bits (relative rounding 2^-9 = 0.2%); under
autocast the matrix products run in bf16 with fp32 accumulation while the loss, the LoRA
weights and AdamW stay fp32. Step 1 differs by forward rounding alone; later steps also by
the trajectory the rounded gradients take, which Adam's normalised updates keep close but do
not keep equal. Pass when every step's loss is within 5% (relative) of the fp32 loss *and*
the mean of the last 5 steps within 1%, and both curves fall (last 5 below 90% of step 1).
Calibration: the CPU rehearsal (``--device cpu``) runs the same trainer on the CPU twice, fp32
and under accelerate's bf16 autocast, and there the curves differed by at most 0.07% at a step
and 0.01% over the last 5 (the AST term, a small linear head, by 0.8%; docs/training.md). The
bounds leave CUDA's different kernels (cuBLAS, flash/efficient attention) 70x and 80x that
room, while what the check is for moves the curve by more: a lost plan or code term shifts
the total by a third or more, the AST term by ~5% over the tail, and a gradient that does not
flow leaves the curve flat, which the "both fall" condition catches (here it falls from 6.65 to
about 5.0).

Each run is its own process (accelerate's state is one per process; the CPU run hides CUDA
with ``CUDA_VISIBLE_DEVICES=""``). A JSON summary goes to stdout and to ``--out``; the exit
status is 0 only when every check passed. ``--hide`` makes imports of the named modules fail,
to rehearse the bare GPU machine on this one (tests/test_gpu_check.py hides plancode's
installed distribution, tree-sitter, llama-cpp-python and pygls).
"""

# ruff: noqa: E402  (the path fix below must run before the other imports)
from __future__ import annotations

import os
import sys

# ``python benchmarks/gpu_check.py`` puts benchmarks/ first on sys.path, where
# benchmarks/typing.py would shadow the standard library's ``typing``: drop that entry (nothing
# here imports from benchmarks/).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import importlib.abc
import importlib.util
import json
import math
import platform
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

STEPS = 20
SEED = 0
VOCAB = 512
PAD, EOS = 0, 1
PLAN_WORDS = list(range(8, 24))  # the 16 ids plan replies cycle through
CODE_WORDS = list(range(24, 56))  # the 32 ids code replies count through
AST_CLASSES = len(CODE_WORDS)  # node label of a code token: its code word's index
FIRST_ID = 64  # prompts draw ids from [FIRST_ID, VOCAB)
N_TRAIN, N_VAL = 32, 8

STEP_TOL = 0.05  # every step: |loss - fp32 loss| / fp32 loss
LAST5_TOL = 0.01  # the mean of the last 5 steps, the same way
LEARNS = 0.9  # the mean of the last 5 steps must be below this fraction of the first step's loss
CHILD_TIMEOUT = 360  # seconds per run; both fit a 15-minute device call with room to spare
ADAPTER_TOL = 1e-4  # max |logit| difference, trained model vs base + reloaded adapter (fp32)

CUDA_SKIP = "no CUDA device: run benchmarks/gpu_check.py on a GPU machine"


# --- imports on a machine where plancode is not installed -------------------------------


class _Hide(importlib.abc.MetaPathFinder):
    """Fails the import of the named top-level modules (``plancode``: only the installed
    distribution, so the shim below must serve it), to rehearse a bare machine."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        top = fullname.split(".")[0]
        if top in self.names and (top != "plancode" or fullname == "plancode"):
            raise ModuleNotFoundError(f"No module named {fullname!r} (hidden by --hide)",
                                      name=fullname)
        return None


def hide(names: list[str]) -> None:
    if names:
        sys.meta_path.insert(0, _Hide(set(names)))


def ensure_plancode() -> str:
    """Make ``plancode`` and ``plancode.trainer`` importable; "installed" or "shim".

    The shim does what pyproject's ``package-dir`` does for an installed plancode (it reads
    that table: ``plancode`` is the folder ``server/``, ``plancode.trainer`` the folder
    ``trainer/``); every other module is found through those packages' ``__path__``."""
    try:
        import plancode.trainer  # noqa: F401
        return "installed"
    except ModuleNotFoundError as exc:
        if exc.name not in ("plancode", "plancode.trainer"):
            raise
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package_dir = pyproject["tool"]["setuptools"]["package-dir"]
    for name in sorted(package_dir, key=lambda n: n.count(".")):  # parents first
        folder = ROOT / package_dir[name]
        spec = importlib.util.spec_from_file_location(
            name, folder / "__init__.py", submodule_search_locations=[str(folder)])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)
    return "shim"


# --- the model, the data, a stand-in tokenizer ------------------------------------------


def build_model(seed: int = SEED):
    """A 2-layer ``Qwen2ForCausalLM`` over ``VOCAB`` ids, randomly initialised from ``seed``
    on the CPU in fp32 (the same weights for every run)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=VOCAB, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        tie_word_embeddings=True, rms_norm_eps=1e-6, bos_token_id=EOS, eos_token_id=EOS,
        pad_token_id=PAD)
    return Qwen2ForCausalLM(config).float()


def make_examples(n: int, rng: random.Random) -> list:
    """``n`` examples (``plancode.trainer.examples.Example``), alternating plan and code."""
    from plancode.trainer.examples import Example
    from plancode.trainer.structure import IGNORE

    out = []
    for i in range(n):
        prompt = [rng.randrange(FIRST_ID, VOCAB) for _ in range(rng.randint(12, 28))]
        size = rng.randint(12, 28)
        if i % 2 == 0:
            start = prompt[0] % len(PLAN_WORDS)
            reply = [PLAN_WORDS[(start + k) % len(PLAN_WORDS)] for k in range(size)]
            flags, nodes = [0] * size, [IGNORE] * size
        else:
            start = prompt[-1] % len(CODE_WORDS)
            idx = [(start + k) % len(CODE_WORDS) for k in range(size)]
            reply = [CODE_WORDS[j] for j in idx]
            flags, nodes = [int(k % 3 == 0) for k in range(size)], idx
        out.append(Example(
            task="plan" if i % 2 == 0 else "code", problem_id=f"toy/{i}",
            input_ids=prompt + reply + [EOS],
            labels=[IGNORE] * len(prompt) + reply + [EOS],
            structural=[0] * len(prompt) + flags + [0],
            node_types=[IGNORE] * len(prompt) + nodes + [IGNORE]))
    return out


class IdTokenizer:
    """What ``train`` asks of a tokenizer when the data is token ids: the pad and eos ids,
    and ``save_pretrained`` (it writes a note instead of a vocabulary)."""

    pad_token_id = PAD
    eos_token_id = EOS

    def save_pretrained(self, directory: str) -> None:
        note = {"tokenizer": "none: benchmarks/gpu_check.py trains on token ids",
                "vocab_size": VOCAB, "pad_token_id": PAD, "eos_token_id": EOS}
        (Path(directory) / "tokenizer_note.json").write_text(json.dumps(note, indent=1))


# --- one run (a child process) ----------------------------------------------------------


def _force_cpu_bf16_autocast() -> None:
    """Calibration only: ``train`` uses bf16 mixed precision on a GPU and never on a CPU, so
    the CPU rehearsal makes accelerate's ``Accelerator`` autocast in bf16 on the CPU."""
    import accelerate

    base = accelerate.Accelerator

    class Bf16Accelerator(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["mixed_precision"] = "bf16"
            super().__init__(*args, **kwargs)

    accelerate.Accelerator = Bf16Accelerator  # train() imports it when it is called


def _gguf_adapter(adapter_dir: Path, work: Path, expected_pairs: int) -> dict:
    """Export the peft adapter as a llama.cpp LoRA GGUF and read it back, if gguf exists."""
    try:
        import gguf
    except ModuleNotFoundError:
        return {"status": "skipped: the gguf package is not installed"}
    from plancode.trainer.gguf_adapter import export_adapter, read_adapter, write_file

    base = work / "base-metadata.gguf"  # only what export_adapter reads: arch, layers, heads
    writer = gguf.GGUFWriter(path=None, arch="qwen2")
    writer.add_block_count(2)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    write_file(writer, base)
    out = export_adapter(adapter_dir, base, work / "adapter.gguf")
    alpha, pairs = read_adapter(out)
    nonzero = sum(1 for _, b in pairs.values() if float(abs(b).max()) > 0)
    ok = len(pairs) == expected_pairs and nonzero == expected_pairs
    return {"status": "written" if ok else "wrong", "path": str(out), "bytes":
            out.stat().st_size, "alpha": alpha, "pairs": len(pairs), "expected_pairs":
            expected_pairs, "nonzero_b": nonzero, "ok": ok}


def run_one(kind: str, steps: int, work: Path) -> dict:
    """Train on ``kind`` (cpu, cpu-bf16 or cuda) with plancode's trainer; losses and checks."""
    import torch

    origin = ensure_plancode()
    import plancode.trainer.train as trainer_module
    from plancode.trainer.config import LossConfig, TrainConfig
    from plancode.trainer.train import train

    cuda = torch.cuda.is_available()
    if kind == "cuda" and not cuda:
        raise SystemExit(CUDA_SKIP)
    if kind != "cuda" and cuda:
        raise SystemExit("CUDA is visible to a CPU run: set CUDA_VISIBLE_DEVICES=''")
    if kind == "cpu-bf16":
        _force_cpu_bf16_autocast()
    rng = random.Random(SEED)
    train_set, val_set = make_examples(N_TRAIN, rng), make_examples(N_VAL, rng)
    model = build_model()
    base_params = sum(p.numel() for p in model.parameters())
    cfg = TrainConfig(
        lora_r=8, lora_alpha=16, lora_dropout=0.0,  # no dropout: CPU and CUDA RNGs differ
        learning_rate=1e-2, warmup_steps=2, max_steps=steps, batch_size=4, grad_accum=1,
        save_every=0, keep_checkpoints=1, seed=SEED,
        threads=1 if kind != "cuda" else 0,  # a tiny model; more threads only contend
        bf16="true" if kind == "cuda" else "false",  # a GPU without bf16 fails, not falls back
        loss=LossConfig(lam=0.5, alpha=1.0, beta=0.1))
    out_dir = work / kind
    start = time.perf_counter()
    result = train(model, IdTokenizer(), train_set, val_set, cfg, out_dir, progress=False,
                   ast_classes=AST_CLASSES)
    seconds = time.perf_counter() - start
    device = torch.cuda.get_device_name(0) if kind == "cuda" else _cpu_name()
    row: dict[str, Any] = {
        "kind": kind, "device": device, "train_device": result.device,
        "plancode_import": origin, "trainer_file": trainer_module.__file__,
        "steps": result.steps, "seconds": round(seconds, 2),
        "base_parameters": base_params,
        "lora_parameters": sum(p.numel() for n, p in model.named_parameters() if "lora_" in n),
        "train_seconds": result.seconds,
        "mixed_precision": _mixed_precision(),
        "gradient_checkpointing": _checkpointing(model),
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "loss": [round(h["total"], 6) for h in result.history],
        "parts": {k: [round(h[k], 6) for h in result.history if k in h]
                  for k in ("code", "plan", "ast")},
        "val": result.val_history[-1] if result.val_history else None,
    }
    if kind == "cuda":
        row["max_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    row["adapter"] = _check_adapter(model, result.adapter_dir)
    row["gguf_adapter"] = _gguf_adapter(result.adapter_dir, out_dir, 2 * 7)
    return row


def _check_adapter(trained, adapter_dir: Path) -> dict:
    """The saved adapter over a fresh base gives the trained model's logits (fp32, CPU)."""
    import torch
    from peft import PeftModel

    probe = torch.tensor([[FIRST_ID + 3 * k for k in range(24)], [PAD + 2 + k for k in range(24)]])
    trained = trained.float().cpu().eval()
    with torch.no_grad():
        want = trained(input_ids=probe).logits
        base = build_model().eval()
        plain = base(input_ids=probe).logits
        loaded = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
        got = loaded(input_ids=probe).logits
    same = float((got - want).abs().max())
    moved = float((want - plain).abs().max())
    files = sorted(p.name for p in adapter_dir.iterdir())
    return {"files": files, "max_abs_diff_reloaded": same, "max_abs_diff_vs_base": moved,
            "ok": same <= ADAPTER_TOL and moved > 100 * ADAPTER_TOL
            and "adapter_model.safetensors" in files}


def _mixed_precision() -> str | None:
    """What the trainer's Accelerator ran with (accelerate's per-process state): measured,
    not assumed from the run's kind."""
    try:
        from accelerate.state import AcceleratorState

        return str(AcceleratorState().mixed_precision)
    except Exception:  # only for the record; accelerate may change its internals
        return None


def _checkpointing(model) -> bool:
    """Whether the trainer switched gradient checkpointing on (transformers 5 renamed it)."""
    for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):
        if hasattr(type(model), name):
            return bool(getattr(model, name))
    return False


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


# --- the orchestrator -------------------------------------------------------------------


def compare(ref: list[float], other: list[float]) -> dict:
    """Per-step relative deviation of ``other`` from ``ref`` and the verdict (see the module
    docstring for the tolerances and why)."""
    if len(ref) != len(other) or not ref:
        return {"ok": False, "why": f"{len(ref)} vs {len(other)} steps"}
    finite = all(math.isfinite(x) for x in ref + other)
    rel = [abs(b - a) / abs(a) if a else math.inf for a, b in zip(ref, other, strict=True)]
    tail_ref = sum(ref[-5:]) / len(ref[-5:])
    tail_other = sum(other[-5:]) / len(other[-5:])
    last5 = abs(tail_other - tail_ref) / abs(tail_ref) if tail_ref else math.inf
    learns = tail_ref < LEARNS * ref[0] and tail_other < LEARNS * other[0]
    ok = finite and max(rel) <= STEP_TOL and last5 <= LAST5_TOL and learns
    return {"ok": ok, "finite": finite, "learns": learns,
            "per_step_rel": [round(x, 6) for x in rel], "max_rel": round(max(rel), 6),
            "worst_step": rel.index(max(rel)) + 1, "last5_mean_rel": round(last5, 6),
            "tolerance": {"per_step_rel": STEP_TOL, "last5_mean_rel": LAST5_TOL,
                          "learns_below_first": LEARNS}}


def _child(kind: str, steps: int, work: Path, hidden: list[str]) -> dict:
    """Run ``kind`` in a fresh interpreter (its own accelerate state); its JSON row."""
    result = work / f"{kind}.json"
    cmd = [sys.executable, *(["-I"] if sys.flags.isolated else []), str(Path(__file__).resolve()),
           "--run", kind, "--steps", str(steps), "--work", str(work), "--result", str(result)]
    if hidden:
        cmd += ["--hide", ",".join(hidden)]
    env = dict(os.environ)
    if kind != "cuda":
        env["CUDA_VISIBLE_DEVICES"] = ""
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT,
                              timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        return {"kind": kind, "error": f"no result in {CHILD_TIMEOUT} s",
                "stderr_tail": str(exc.stderr or "")[-4000:]}
    if proc.returncode != 0 or not result.is_file():
        return {"kind": kind, "error": f"exit {proc.returncode}",
                "stderr_tail": proc.stderr[-4000:]}
    return json.loads(result.read_text())


def _keep(run_dir: Path, dest: Path, row: dict) -> None:
    """Copy a run's peft adapter (and its GGUF adapter) to ``dest``; the row names them."""
    adapter = run_dir / "adapter"
    if not adapter.is_dir():
        return
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(adapter, dest / "adapter")
    row["adapter"]["kept"] = str(dest / "adapter")
    gguf_file = run_dir / "adapter.gguf"
    if gguf_file.is_file():
        shutil.copy2(gguf_file, dest / "adapter.gguf")
        row["gguf_adapter"]["path"] = str(dest / "adapter.gguf")


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "accelerate", "gguf", "plancode"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                    help="cuda: CUDA bf16 vs CPU fp32; cpu: the CPU rehearsal (CPU bf16 "
                    "autocast vs CPU fp32); auto: cuda where a CUDA device exists")
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--out", type=Path, help="also write the JSON summary here")
    ap.add_argument("--hide", default="", help="comma-separated modules whose import fails "
                    "(rehearse a machine without them)")
    ap.add_argument("--run", choices=("cpu", "cpu-bf16", "cuda"), help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    hidden = [h for h in args.hide.split(",") if h]
    hide(hidden)
    if args.run:  # a child: one training run
        row = run_one(args.run, args.steps, args.work)
        args.result.write_text(json.dumps(row, indent=1))
        return 0

    start = time.perf_counter()
    device = args.device
    if device == "auto":
        device = "cuda" if _cuda_visible() else "cpu"
    other = "cuda" if device == "cuda" else "cpu-bf16"
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        runs = {"cpu": _child("cpu", args.steps, work, hidden),
                other: _child(other, args.steps, work, hidden)}
        if args.out:  # the adapters come back with the summary (the device's $OUT)
            keep = args.out.parent / (args.out.stem + "-adapters")
            for kind, row in runs.items():
                _keep(work / kind, keep / kind, row)
    failures = [f"{k}: {r['error']}" for k, r in runs.items() if "error" in r]
    comparison: dict = {}
    if not failures:
        comparison = compare(runs["cpu"]["loss"], runs[other]["loss"])
        if not comparison["ok"]:
            failures.append(f"loss curves: {other} vs cpu fp32 outside tolerance or not "
                            "learning")
        for kind, row in runs.items():
            if not row["adapter"]["ok"]:
                failures.append(f"{kind}: the reloaded adapter does not reproduce the model")
            if row["gguf_adapter"].get("ok") is False:
                failures.append(f"{kind}: the GGUF adapter export is wrong")
    summary = {
        "check": "benchmarks/gpu_check.py (issue 32, item 5)",
        "mode": "cuda bf16 vs cpu fp32" if device == "cuda" else
        "cpu rehearsal: cpu bf16 autocast vs cpu fp32 (no CUDA run)",
        "passed": not failures, "failures": failures,
        "device": runs[other].get("device"), "versions": _versions(),
        "hidden_modules": hidden, "steps": args.steps,
        "model": "Qwen2ForCausalLM, 2 layers, hidden 128, 4 heads (2 kv), vocab 512, random "
                 f"init seed {SEED}; LoRA r=8 on all 7 projections",
        "data": f"{N_TRAIN} train / {N_VAL} val token-id examples, plan and code tasks "
                "(toy: cycling plan words, counting code words), batch 4",
        "plancode_import": runs["cpu"].get("plancode_import"), "commit": _commit(),
        "loss_cpu_fp32": runs["cpu"].get("loss"), f"loss_{other}": runs[other].get("loss"),
        "max_rel_deviation": comparison.get("max_rel"),
        "last5_mean_rel_deviation": comparison.get("last5_mean_rel"),
        "info": _info(runs["cpu"], runs[other]),
        "comparison": comparison, "runs": runs,
        "seconds": round(time.perf_counter() - start, 2),
    }
    text = json.dumps(summary, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0 if not failures else 1


def _info(ref: dict, other: dict) -> dict:
    """Not gated, for the record: the largest relative deviation of each loss part and of the
    final validation loss parts."""
    out: dict[str, float] = {}
    for part, values in ref.get("parts", {}).items():
        theirs = other.get("parts", {}).get(part, [])
        if values and len(values) == len(theirs):
            out[f"{part}_max_rel"] = round(max(abs(b - a) / abs(a) for a, b in
                                               zip(values, theirs, strict=True) if a), 6)
    for part, value in (ref.get("val") or {}).items():
        theirs = (other.get("val") or {}).get(part)
        if part != "step" and theirs is not None and value:
            out[f"val_{part}_rel"] = round(abs(theirs - value) / abs(value), 6)
    return out


def _commit() -> str | None:
    """The repository's commit, where the copy has its .git (the device's copy may not)."""
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def _cuda_visible() -> bool:
    """Whether torch sees a CUDA device (asked in a child, so this process stays torch-free)."""
    proc = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                          capture_output=True, text=True)
    return proc.stdout.strip() == "True"


if __name__ == "__main__":
    raise SystemExit(main())
