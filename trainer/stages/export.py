"""The export stage: the shipped GGUF adapter (and, when asked, merged and re-quantized
GGUFs of the student and of the base), each with its agreement with the PyTorch model."""

from __future__ import annotations

import json

from plancode.errors import PlancodeError
from plancode.trainer.config import DistillConfig
from plancode.trainer.stages.data import problems_of
from plancode.trainer.stages.plans import val_triples, verified_triples
from plancode.trainer.stages.stage import open_stage


def stage_export(cfg: DistillConfig, progress: bool) -> dict:
    """The shipped artefact: the LoRA adapter as a GGUF adapter for the untouched base GGUF
    (its top-1 agreement with the merged PyTorch student measured); with ``export.merge``
    (or ``eval.compare = "requantized"``) also merged F16 + quantized GGUFs, and the base
    exported and quantized by the same code, so evaluation compares like with like.

    ``export.adapter_from`` picks the LoRA: ``"train"`` (the SFT run's ``train/adapter``,
    the default) or ``"onpolicy"`` (``onpolicy/adapter``, only with a gate report that
    accepted exactly those weights: ``plancode.trainer.stages.gate.gated_adapter``)."""

    from plancode.models.assemble import sha256_file
    from plancode.trainer.export import agreement, export, merge, torch_reference
    from plancode.trainer.student import load_model, load_tokenizer, resolve_student

    stage, done = open_stage(cfg, "export")
    if done is not None:
        return done
    gate = None
    if cfg.export.adapter_from == "onpolicy":  # never a checkpoint the gate refused
        from plancode.trainer.stages.gate import gated_adapter
        from plancode.trainer.stages.onpolicy import student_of

        adapter_dir, gate = gated_adapter(cfg)
        student = student_of(cfg)
    else:
        adapter_dir, student = cfg.out_dir / "train" / "adapter", cfg.train.student
    src = resolve_student(student)
    tokenizer = load_tokenizer(src)
    model = merge(load_model(src), adapter_dir)
    seqs = [s[: cfg.export.max_positions]
            for s in _sequences(cfg, tokenizer)[: cfg.export.agreement_sequences]]
    report: dict = {"student": student, "adapter_from": cfg.export.adapter_from, "files": {}}
    if gate is not None:
        report["gate"] = {k: gate[k] for k in ("accepted", "slices", "adapter_digest")}
    if cfg.export.adapter and src.gguf_path is None:
        if not cfg.export.merge:
            raise PlancodeError("a GGUF adapter needs the student's base GGUF",
                                "start from a GGUF student (catalog name or .gguf), or set "
                                "export.merge = true")
        report["adapter_skipped"] = "the student is not a GGUF: no base file to adapt"
    elif cfg.export.adapter:
        from plancode.trainer.gguf_adapter import export_adapter

        path = export_adapter(adapter_dir, src.gguf_path, stage.dir / f"{cfg.export.name}"
                              ".lora.gguf")
        reference = [torch_reference(model, s) for s in seqs]
        report["adapter"] = {"file": path.name, "bytes": path.stat().st_size,
                             "sha256": sha256_file(path), "base": src.gguf_path.name,
                             **agreement(model, src.gguf_path, seqs, reference, lora=path)}
    if cfg.export.merge or cfg.eval.compare == "requantized":
        result = export(model, tokenizer, [list(s) for s in seqs], stage.dir, cfg.export,
                        src.gguf_path, {"student": student})
        report["files"] = json.loads(result.report_path.read_text())["files"]
        if cfg.eval.compare == "requantized":  # the base through the very same path
            from dataclasses import replace

            base = export(load_model(src), tokenizer, [list(s) for s in seqs],
                          stage.dir / "base", replace(cfg.export, name=cfg.export.name +
                                                      "-base", min_agreement=0.0),
                          src.gguf_path, {"student": student, "base": True})
            report["base_files"] = json.loads(base.report_path.read_text())["files"]
    (stage.dir / "export_report.json").write_text(json.dumps(report, indent=1))
    return stage.finish(report)


def _sequences(cfg: DistillConfig, tokenizer) -> list[list[int]]:
    """Token sequences the export's agreement is measured on. The SFT adapter: held-out
    prompts (validation plans; without a validation split, the training problems' verified
    plans). The on-policy adapter (a run with no plans): each problem's direct prompt, as
    the samples stage gave it, followed by its solution, validation problems first."""
    from plancode.trainer.examples import build_examples

    train_p, val_p = problems_of(cfg)
    if cfg.export.adapter_from == "onpolicy":
        from plancode.trainer.onpolicy import prompt_ids

        return [prompt_ids(tokenizer, p, cfg.samples.prefill_code)
                + tokenizer(p.solution, add_special_tokens=False)["input_ids"]
                for p in [*val_p, *train_p][: cfg.export.agreement_sequences]]
    triples = val_triples(cfg, val_p) or verified_triples(cfg, train_p)
    examples, _ = build_examples(tokenizer, triples, ("plan", "code"), cfg.train.max_len,
                                 cfg.train.prefill_code)
    return [e.input_ids for e in examples]
