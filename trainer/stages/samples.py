"""The samples stage: the student's own answers to the training problems, judged by their
tests and scored token by token by the teacher (``plancode.trainer.samples``), the data of
on-policy distillation and of learning from its own verified answers.

    samples/  samples.jsonl (one row per answer), references.jsonl (each problem's own
              solution's verdict: which tests judge), report.json, done.json

It runs after the data stage and beside the plan stages (``plancode samples --config FILE``;
not part of ``plancode distill``'s default chain), with llama.cpp only: no torch. Its
fingerprint is its ``[samples]`` settings (speed knobs and work left out), the two models by
name, the direct prompt's digest and the data stage's fingerprint; ``max_problems`` and
``samples_per_problem`` are work (raising them re-opens the stage and keeps every row).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from plancode.errors import PlancodeError
from plancode.trainer.config import DistillConfig
from plancode.trainer.jsonl_cache import JsonlCache
from plancode.trainer.stages.stage import (
    Stage,
    is_main_process,
    model_identity,
    samples_fingerprint,
    samples_student,
    samples_teacher,
)

NAME = "samples"


student_of = samples_student  # the models this stage asks (names kept for its callers)
teacher_of = samples_teacher


def samples_work(cfg: DistillConfig) -> dict:
    return {k: getattr(cfg.samples, k) for k in cfg.samples.WORK}


def stage_samples(cfg: DistillConfig, progress: bool = True, limit: int | None = None,
                  log: Callable[[str], None] | None = None) -> dict:
    """Answers, verdicts and teacher scores for the first ``samples.max_problems`` training
    problems, appended row by row; ``limit`` stops after that many problems with new rows
    (the stage then stays unfinished). The data stage runs first (or is copied from
    ``reuse_from``) when it has not."""
    from plancode.trainer.checker import Checker
    from plancode.trainer.samples import problem_order, write_samples
    from plancode.trainer.stages.data import problems_of, stage_data

    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    if not is_main_process():
        raise PlancodeError("the samples stage runs in one process",
                            "run plancode samples without a distributed launcher")
    stage_data(cfg, progress)
    stage = Stage(cfg.out_dir, NAME, samples_fingerprint(cfg), samples_work(cfg))
    if stage.done:
        return json.loads((stage.dir / "report.json").read_text())
    train, _ = problems_of(cfg)
    ordered = problem_order(train, cfg.samples.seed)
    if cfg.samples.max_problems:
        ordered = ordered[:cfg.samples.max_problems]
    cache = JsonlCache(stage.dir / "samples.jsonl")
    refs = JsonlCache(stage.dir / "references.jsonl")
    seed = cfg.reuse_from / "verify" / "references.jsonl" if cfg.reuse_from else None
    # another run's verdicts on the problems' own solutions (restored from the blob store
    # when packed): those problems are not run again
    seed_refs = JsonlCache(seed) if seed is not None and seed.parent.is_dir() else None
    models = _Models(cfg, log, stage.dir)
    start = time.perf_counter()
    with Checker(cfg.samples.isolation, cfg.samples.timeout) as checker:
        report = write_samples(_LazyStudent(models), models if cfg.samples.score else None,
                               checker, ordered, cfg.samples, cache, refs, seed_refs, log,
                               limit)
    out = {**report.to_json(), "student": model_identity(student_of(cfg)),
           "teacher": model_identity(teacher_of(cfg)) if cfg.samples.score else None,
           "vocabulary": models.vocabulary_report(), "wall_seconds":
           round(time.perf_counter() - start, 1), "cache_bytes": cache.path.stat().st_size
           if cache.path.exists() else 0}
    finished = report.answered + len(report.broken) + len(report.untested) + \
        len(report.too_long) >= report.problems
    if not finished:
        (stage.dir / "progress.json").write_text(json.dumps(out, indent=1))
        return out
    return stage.finish(out)


class _Models:
    """The student (loaded when an answer is needed) and the teacher's scorer (loaded after
    it, with the vocabularies compared once and the comparison kept in the stage folder)."""

    def __init__(self, cfg: DistillConfig, log: Callable[[str], None], folder: Path) -> None:
        self.cfg = cfg
        self.log = log
        self.path = folder / "vocabulary.json"
        self._student = None
        self._scorer = None
        self._vocab: dict | None = None

    def student(self):  # noqa: ANN201 - plancode.trainer.samples.Student
        if self._student is None:
            from plancode.config import Settings
            from plancode.engine.factory import load_engine
            from plancode.trainer.samples import Student

            s = self.cfg.samples
            engine = load_engine(Settings(model=student_of(self.cfg), n_threads=s.threads(),
                                          n_gpu_layers=s.n_gpu_layers, n_ctx=s.n_ctx))
            if not hasattr(engine, "tokenize"):
                raise PlancodeError("samples.student must be a GGUF run in-process",
                                    "name a catalog model or a .gguf file")
            self._student = Student(engine, n_seq=s.samples_per_problem,
                                    n_ctx=s.n_ctx + s.samples_per_problem * s.max_tokens)
            self.log(f"[samples] student {student_of(self.cfg)} loaded")
        return self._student

    @property
    def scorer(self):  # noqa: ANN201 - TokenScorer or None
        if self._scorer is None and self.cfg.samples.score:
            from plancode.models.store import ModelStore
            from plancode.trainer.scorer import TokenScorer, compare_vocabularies

            s = self.cfg.samples
            path = ModelStore().resolve(teacher_of(self.cfg))
            self._scorer = TokenScorer(path, n_ctx=s.n_ctx, n_threads=s.threads(),
                                       n_gpu_layers=s.n_gpu_layers)
            self._vocab = compare_vocabularies(self.student().engine._llm,  # noqa: SLF001
                                               self._scorer.llm)
            self.path.write_text(json.dumps(self._vocab, indent=1))
            self.log(f"[samples] teacher {teacher_of(self.cfg)} loaded; vocabularies "
                     f"{'identical' if self._vocab['identical'] else 'DIFFER'} "
                     f"({self._vocab['student_tokens']} / {self._vocab['teacher_tokens']} "
                     "tokens, compared id by id)")
            if not self._vocab["identical"]:
                raise PlancodeError(
                    f"the teacher's vocabulary differs from the student's "
                    f"({json.dumps(self._vocab)}): it cannot score the student's tokens",
                    "choose a teacher of the student's family (samples.teacher)")
        return self._scorer

    def score(self, prompt, answers, top_k, top_mass):  # noqa: ANN001, ANN201
        return self.scorer.score(prompt, answers, top_k, top_mass)

    def vocabulary_report(self) -> dict | None:
        """The vocabulary comparison: this run's, else the one kept by an earlier run."""
        if self._vocab is not None:
            return self._vocab
        return json.loads(self.path.read_text()) if self.path.exists() else None


class _LazyStudent:
    """The student, loaded on its first use (a fully cached run loads no model)."""

    def __init__(self, models: _Models) -> None:
        self.models = models

    def prompt(self, messages):  # noqa: ANN001, ANN201
        return self.models.student().prompt(messages)

    def sample(self, prompt, params):  # noqa: ANN001, ANN201
        return self.models.student().sample(prompt, params)
