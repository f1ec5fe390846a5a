"""The stages of a distillation run, each cached in its own folder of ``out_dir``.

    data/     problems.jsonl (with split), report.json (dedupe, decontamination, mining)
    plans/    plans.jsonl (K backward plans per train problem), report.json
    verify/   verified.jsonl (one verdict per plan), report.json (yield)
    train/    checkpoints/, adapter/, loss.png, report.json
    export/   *.gguf (f16, Q8_0, Q4_K_M), export_report.json
    eval/     eval.json, distill-eval.md, distill-eval.png (when [eval] enabled)
    samples/  samples.jsonl (the student's own answers, judged and teacher-scored: on-policy
              data; ``plancode samples``, beside the chain above), report.json

One module per stage (``data``, ``plans`` for plans and verification, ``train``, ``export``,
``evaluation``; ``samples`` beside them), ``stage`` for the folder and fingerprint rules they
share, ``chat`` for the lazily loaded models they ask. ``plancode.trainer.distill`` runs them
in order.

A stage whose ``done.json`` carries the fingerprint of its settings and inputs is skipped.
A stage interrupted half-way resumes: plans and verdicts are appended row by row, training
resumes from its last checkpoint. When a stage's settings change, its old folder is moved
aside (``NAME.stale-N``), never deleted.
"""
