"""``plancode gate``: score a checkpoint of the on-policy student against its base, and refuse
it when it forgot (issue 32, item 3; the judgement is ``plancode.trainer.gates``).

For one checkpoint (the final ``onpolicy/adapter``, an accelerate checkpoint
``onpolicy/checkpoints/checkpoint_N`` whose LoRA is first written out as a peft adapter, or
any peft adapter folder):

1. its adapter is exported as a GGUF LoRA adapter over the student's untouched base GGUF
   (``gguf_adapter.export_adapter``, what the export stage ships);
2. base and checkpoint answer the fixed HumanEval slice (``gate.humaneval``) in direct mode
   through llama.cpp, with ``plancode.trainer.humaneval``'s runner and rows files (cached per
   model file and adapter content: the base's rows once for every checkpoint), and the first
   ``gate.heldout_problems`` held-out mined problems in direct mode
   (``plancode.trainer.heldout``; skipped, and said so, when the run holds none);
3. the report (``gate.json`` in the checkpoint's folder, and one line on stderr and in
   ``<out_dir>/onpolicy/gate.log``) has per slice the solved counts, the problems lost and
   gained with McNemar's p-value, the truncated/empty/unparseable answers of both models,
   the checkpoint's anchor KL from the base as the run logged it, and the verdict.

The export stage exports an on-policy adapter only with an accepting report for exactly that
adapter (:func:`gated_adapter`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from plancode.errors import PlancodeError
from plancode.trainer import gates
from plancode.trainer.config import DistillConfig, EvalConfig
from plancode.trainer.stages.chat import LazyChat
from plancode.trainer.stages.data import heldout_of
from plancode.trainer.stages.stage import file_digest, stage_fingerprint


def rows_dir(cfg: DistillConfig) -> Path:
    return Path(cfg.gate.rows_dir) if cfg.gate.rows_dir else cfg.out_dir / "gate"


def adapter_digest(adapter_dir: Path) -> str:
    """The peft adapter's weights by content: a report belongs to exactly these weights."""
    return file_digest(adapter_dir / "adapter_model.safetensors")


def checkpoint_adapter(cfg: DistillConfig, checkpoint: Path) -> Path:
    """The peft adapter folder of ``checkpoint``: the folder itself, its ``adapter/``, or,
    for an accelerate checkpoint of the on-policy run, its LoRA written to ``adapter/``."""
    if (checkpoint / "adapter_config.json").is_file():
        return checkpoint
    if (checkpoint / "adapter" / "adapter_config.json").is_file():
        return checkpoint / "adapter"
    if (checkpoint / "model.safetensors").is_file():
        return _adapter_from_state(cfg, checkpoint)
    raise PlancodeError(f"{checkpoint} holds no LoRA adapter (no adapter_config.json) and no "
                        "accelerate checkpoint (no model.safetensors)",
                        "give onpolicy/adapter or onpolicy/checkpoints/checkpoint_N")


def _adapter_from_state(cfg: DistillConfig, checkpoint: Path) -> Path:
    """An on-policy accelerate checkpoint's LoRA weights in peft's saved format: the
    module's ``student.`` prefix and the adapter name (``.default``) dropped, as peft's
    ``save_pretrained`` writes them, beside the run's LoRA config. No model is loaded (the
    base's weights in the checkpoint are left alone)."""
    from peft import LoraConfig
    from safetensors.torch import load_file, save_file

    from plancode.trainer.stages.onpolicy import student_of

    state = load_file(str(checkpoint / "model.safetensors"))
    lora = {k.removeprefix("student.").replace(".default.", "."): v.contiguous()
            for k, v in state.items() if ".lora_A." in k or ".lora_B." in k}
    if not lora:
        raise PlancodeError(f"{checkpoint}/model.safetensors has no LoRA weights",
                            "is it an on-policy checkpoint?")
    o = cfg.onpolicy
    present = {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in lora}
    out = checkpoint / "adapter"
    LoraConfig(r=o.lora_r, lora_alpha=o.lora_alpha, lora_dropout=o.lora_dropout,
               target_modules=sorted(present), task_type="CAUSAL_LM",
               base_model_name_or_path=student_of(cfg)).save_pretrained(str(out))
    save_file(lora, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    return out


def gated_adapter(cfg: DistillConfig) -> tuple[Path, dict | None]:
    """The on-policy adapter the export may ship and its gate report: refused when the gate
    refused it, when its report is for other weights, and (``gate.required``) when it was
    never gated."""
    adapter_dir = cfg.onpolicy_dir / "adapter"
    if not (adapter_dir / "adapter_config.json").is_file():
        raise PlancodeError(f"no on-policy adapter in {adapter_dir}",
                            "run plancode onpolicy --config FILE to the end first")
    verdict = gates.gate_verdict(adapter_dir)
    if verdict is not None and verdict.get("adapter_digest") != adapter_digest(adapter_dir):
        raise PlancodeError(f"{adapter_dir / gates.REPORT} was written for other weights",
                            f"run plancode gate --config FILE --checkpoint {adapter_dir}")
    if verdict is None:
        if cfg.gate.required:
            raise PlancodeError(f"{adapter_dir} has not been through the gates",
                                f"run plancode gate --config FILE --checkpoint {adapter_dir} "
                                "(or set gate.required = false)")
        return adapter_dir, None
    if not verdict["accepted"]:
        raise PlancodeError(f"the gate refused {adapter_dir}: {' / '.join(verdict['reasons'])}",
                            "it forgot what the base knew: it is not exported (export "
                            "train/adapter, or train again with a smaller step)")
    return adapter_dir, verdict


def _engine_chats(gguf: Path, adapters: dict[str, Path | None],
                  ecfg: EvalConfig) -> dict[str, LazyChat]:
    from plancode.engine.factory import load_engine
    from plancode.trainer.evaluate import eval_settings
    from plancode.trainer.teacher import EngineChat

    return {label: LazyChat(lambda a=adapter: EngineChat(load_engine(
        eval_settings(str(gguf), ecfg), adapter=a))) for label, adapter in adapters.items()}


def _humaneval_rows(chat: LazyChat, gguf: Path, adapter: Path | None, ecfg: EvalConfig,
                    out: Path, progress: bool) -> list[dict]:
    """Direct-mode rows of the slice, from the rows file when there (the model is loaded
    only for problems it lacks)."""
    from plancode.pipeline.run import Pipeline
    from plancode.trainer import humaneval
    from plancode.trainer.evaluate import eval_settings
    from plancode.trainer.jsonl_cache import JsonlCache

    settings = eval_settings(str(gguf), ecfg)
    cache = JsonlCache(humaneval.rows_file(out, gguf, adapter, settings))
    chosen = humaneval.problems(0, 164, list(ecfg.tasks))
    missing = [p for p in chosen if f"{p['task_id']}#direct" not in cache]
    pipeline = Pipeline(chat.model.engine, settings) if missing else None
    rows = humaneval.run(pipeline, chosen, ("direct",), ecfg.max_tokens,  # type: ignore[arg-type]
                         log=progress, cache=cache)
    return [r["direct"] for r in rows]


def _heldout_rows(cfg: DistillConfig, chats: dict[str, LazyChat], gguf: Path,
                  adapters: dict[str, Path | None], out: Path,
                  progress: bool) -> dict[str, list[dict]] | None:
    """Direct-mode rows of the first ``gate.heldout_problems`` held-out problems per label
    (broken problems, whose own solution fails, left out); None without held-out data."""
    from plancode.trainer.heldout import evaluate_heldout
    from plancode.trainer.jsonl_cache import JsonlCache
    from plancode.trainer.stages.evaluation import heldout_references_file, heldout_rows_name

    g = cfg.gate
    problems = heldout_of(cfg)[:g.heldout_problems] if g.heldout_problems else []
    if not problems:
        return None
    data = stage_fingerprint(cfg, "data")
    caches = {label: out / heldout_rows_name((str(gguf), a), data, g.max_tokens,
                                             g.prefill_code)
              for label, a in adapters.items()}
    evaluate_heldout(chats, problems, caches, cfg.verify.isolation, cfg.verify.timeout,
                     g.max_tokens, progress, g.prefill_code,
                     references=heldout_references_file(cfg), modes=("direct",))
    ids = {p.id for p in problems}
    return {label: [r for r in JsonlCache(path) if r["id"] in ids and r["mode"] == "direct"]
            for label, path in caches.items()}


def gate_checkpoint(cfg: DistillConfig, checkpoint: Path, progress: bool = True,
                    log: Callable[[str], None] | None = None) -> dict:
    """Gate ``checkpoint`` (see the module's docstring); its report, also written to
    ``checkpoint/gate.json``."""
    from plancode.trainer import humaneval
    from plancode.trainer.gguf_adapter import export_adapter
    from plancode.trainer.stages.onpolicy import student_of
    from plancode.trainer.student import resolve_student

    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    checkpoint = Path(checkpoint)
    adapter_dir = checkpoint_adapter(cfg, checkpoint)
    src = resolve_student(student_of(cfg))
    if src.gguf_path is None:
        raise PlancodeError("the gates score through llama.cpp over the student's base GGUF, "
                            f"and the student {student_of(cfg)!r} is not a GGUF",
                            "train from a GGUF student (a catalog name or a .gguf file)")
    out = rows_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    digest = adapter_digest(adapter_dir)
    lora = adapter_dir / f"gate-adapter-{digest}.lora.gguf"
    if not lora.is_file():  # written once per weights (reading the base's metadata is slow)
        for old in adapter_dir.glob("gate-adapter-*.lora.gguf"):
            old.unlink()
        export_adapter(adapter_dir, src.gguf_path, lora)
    adapters: dict[str, Path | None] = {"base": None, "checkpoint": lora}
    ecfg = cfg.gate.eval_config()
    chats = _engine_chats(src.gguf_path, adapters, ecfg)
    he = {label: _humaneval_rows(chats[label], src.gguf_path, a, ecfg, out, progress)
          for label, a in adapters.items()}
    slices = {"humaneval": gates.compare(*({r["task_id"]: r["passed"] for r in he[label]}
                                           for label in adapters))}
    answers = {"humaneval": gates.answer_counts(he["checkpoint"]),
               "humaneval_base": gates.answer_counts(he["base"])}
    notes = []
    held = _heldout_rows(cfg, chats, src.gguf_path, adapters, out, progress)
    if held is None:
        notes.append("held-out slice skipped: this run's data stage holds no held-out "
                     "problems (data.heldout_fraction = 0) or gate.heldout_problems = 0")
        log(f"[gate] {notes[-1]}")
    else:
        slices["heldout"] = gates.compare(*({r["id"]: r["passed"] for r in held[label]}
                                            for label in adapters))
        answers |= {"heldout": gates.answer_counts(held["checkpoint"]),
                    "heldout_base": gates.answer_counts(held["base"])}
    accepted, reasons = gates.judge(slices, cfg.gate.max_lost)
    report = {"checkpoint": str(checkpoint), "adapter": str(adapter_dir),
              "adapter_digest": digest, "gguf_adapter": str(lora),
              "base": src.gguf_path.name, "accepted": accepted, "reasons": reasons,
              "max_lost": cfg.gate.max_lost, "slices": slices, "answers": answers,
              "distance": gates.anchor_distance(checkpoint), "notes": notes,
              "humaneval_tasks": list(cfg.gate.humaneval),
              "heldout_problems": cfg.gate.heldout_problems, "commit": humaneval.commit()}
    (checkpoint / gates.REPORT).write_text(json.dumps(report, indent=1))
    line = gates.log_line(report)
    log(line)
    run_log = cfg.onpolicy_dir / "gate.log"
    run_log.parent.mkdir(parents=True, exist_ok=True)
    with run_log.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    return report


def default_checkpoints(cfg: DistillConfig) -> list[Path]:
    """What ``plancode gate`` gates without ``--checkpoint``: the final on-policy adapter, or,
    before the run has finished, every checkpoint it keeps."""
    final = cfg.onpolicy_dir / "adapter"
    if (final / "adapter_config.json").is_file():
        return [final]
    # complete checkpoints (train_state.json is written last), oldest first
    kept = sorted((c for c in (cfg.onpolicy_dir / "checkpoints").glob("checkpoint_*")
                   if (c / "train_state.json").is_file()),
                  key=lambda c: int(c.name.rsplit("_", 1)[-1]))
    if not kept:
        raise PlancodeError(f"{cfg.onpolicy_dir} has no adapter and no checkpoint",
                            "run plancode onpolicy --config FILE first")
    return kept
