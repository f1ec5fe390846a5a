"""A distillation stage's folder and what decides whether its cached work still holds.

A stage is fingerprinted by what changes its output (its settings, minus speed knobs; the
models by name; the data by content; the stage before it), never by paths or clocks, so a run
moved to another folder or machine keeps its hours of plans. A finished stage leaves
``done.json``; a stage whose fingerprint changed is moved aside (``NAME.stale-N``), never
deleted; an ablation copies the main run's finished stages when they match exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from plancode.errors import PlancodeError
from plancode.prompts import contract_digest
from plancode.trainer import blobs, plan_tidy
from plancode.trainer.config import DistillConfig

STAGES = ("data", "plans", "verify", "train", "export", "eval")


def is_main_process() -> bool:
    """Rank 0 (or no launcher): the one process that writes stage folders and reports."""
    return int(os.environ.get("RANK", "0")) == 0


def digest_of(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _tree_digest(root: Path) -> str:
    """sha256 over a codebase's Python files (relative path + bytes), in path order."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part.startswith(".") or part in {"__pycache__", "build", "dist"}
               for part in rel.parts[:-1]):
            continue
        h.update(rel.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except FileNotFoundError:
        raise PlancodeError(f"{path} does not exist", "check data.jsonl in the config") from None


def model_identity(spec: str) -> str:
    """A model named the same wherever it lives: catalog names as they are, files by name."""
    return Path(spec).name if ("/" in spec or spec.endswith(".gguf")) and \
        not spec.startswith("hf:") else spec


_SOURCES: dict[tuple[str, ...], list] = {}


def source_identity(cfg: DistillConfig) -> list:
    """The data sources by content, never by absolute path: a JSONL file by its sha256, a
    codebase by its folder name and a digest of its Python files (memoised per run)."""
    key = tuple(cfg.data.jsonl) + ("\0",) + tuple(cfg.data.mine)
    if key not in _SOURCES:
        _SOURCES[key] = ([["jsonl", Path(p).name, file_digest(Path(p))] for p in cfg.data.jsonl]
                         + [["mine", Path(p).name, _tree_digest(Path(p))]
                            for p in cfg.data.mine])
    return _SOURCES[key]


def train_tasks(cfg: DistillConfig) -> tuple[str, ...]:
    """The prompt contract's parts training renders (``prompts.contract_digest``)."""
    return (*cfg.train.tasks, *(("prefill",) if cfg.train.prefill_code else ()))


def stage_fingerprint(cfg: DistillConfig, name: str) -> str:
    """What stage ``name`` writes depends on: its own output-changing settings (speed knobs,
    such as GPU layers, threads and checkpoint frequency, left out), the models by name, and
    the fingerprint of the stage before it. Paths never enter: a run moved to another folder
    or machine keeps its cached stages."""
    from plancode.trainer.decontam import MIN_NAMES, NGRAM, PURPOSE_MIN

    if name == "data":
        settings = {k: v for k, v in cfg.section("data").items() if k not in ("jsonl", "mine")}
        return digest_of("data", settings, source_identity(cfg),
                            [NGRAM, MIN_NAMES, PURPOSE_MIN] if cfg.data.decontaminate else None)
    before = stage_fingerprint(cfg, STAGES[STAGES.index(name) - 1])
    if name == "plans":  # plans_per_problem is work, not content (see stage_work)
        teacher = cfg.section("teacher") | {"model": model_identity(cfg.teacher.model)}
        teacher.pop("plans_per_problem")
        return digest_of("plans", teacher, before)
    if name == "verify":
        verify = cfg.section("verify") | {"coder_model": model_identity(cfg.coder_model)}
        if cfg.verify.tidy_plans:
            verify["tidy_version"] = plan_tidy.VERSION
        verify["prompts"] = contract_digest("code")  # the coder is asked with this prompt
        return digest_of("verify", verify, before)
    if name == "train":
        train = cfg.section("train") | {"student": model_identity(cfg.train.student),
                                         "plans_per_problem": cfg.teacher.plans_per_problem,
                                         "prompts": contract_digest(*train_tasks(cfg))}
        return digest_of("train", train, before)
    if name == "export":
        if cfg.export.adapter_from == "onpolicy":  # the on-policy run's adapter, not train's
            before = onpolicy_fingerprint(cfg)
        return digest_of("export", cfg.section("export"), before)
    return digest_of("eval", {k: v for k, v in cfg.section("eval").items()
                                 if k not in ("enabled",)}, before)


# -- the stages beside the chain: samples (on-policy data) and onpolicy (its training) --------

def samples_student(cfg: DistillConfig) -> str:
    return cfg.samples.student or cfg.train.student


def samples_teacher(cfg: DistillConfig) -> str:
    return cfg.samples.teacher or cfg.teacher.model


def onpolicy_student(cfg: DistillConfig) -> str:
    return cfg.onpolicy.student or cfg.train.student


def _direct_prompts(cfg: DistillConfig) -> str:
    return contract_digest("direct", *(("prefill",) if cfg.samples.prefill_code else ()))


def samples_fingerprint(cfg: DistillConfig) -> str:
    """The samples stage: its output-changing settings, both models, the direct prompt, and
    the data stage it answers."""
    settings = {k: v for k, v in cfg.section("samples").items() if k not in cfg.samples.WORK}
    settings |= {"student": model_identity(samples_student(cfg)),
                 "teacher": model_identity(samples_teacher(cfg)),
                 "prompts": _direct_prompts(cfg)}
    return digest_of("samples", settings, stage_fingerprint(cfg, "data"))


def onpolicy_fingerprint(cfg: DistillConfig) -> str:
    """The onpolicy stage: its settings, the student, the prompt, and the samples it learns
    from (an export of its adapter chains on this instead of the train stage's)."""
    settings = cfg.section("onpolicy") | {"student": model_identity(onpolicy_student(cfg)),
                                          "prompts": _direct_prompts(cfg)}
    return digest_of("onpolicy", settings, samples_fingerprint(cfg))


class Stage:
    """One stage's folder: its fingerprint, its done marker and report."""

    def __init__(self, run: Path, name: str, fingerprint: str, work: dict | None = None) -> None:
        self.name = name
        self.dir = run / name
        self.fingerprint = fingerprint
        self.work = work or {}
        stamp = self.dir / "fingerprint.txt"
        if not is_main_process():
            return
        if self.dir.exists() and stamp.exists() and stamp.read_text() != fingerprint:
            n = 1
            while (run / f"{name}.stale-{n}").exists():
                n += 1
            self.dir.rename(run / f"{name}.stale-{n}")
        self.dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(fingerprint)

    @property
    def done(self) -> dict | None:
        """The done marker, when the stage finished this fingerprint *and* this much work."""
        path = self.dir / "done.json"
        if not path.exists():
            return None
        marker = json.loads(path.read_text())
        return marker if marker.get("work", {}) == self.work else None

    def finish(self, report: dict) -> dict:
        if not is_main_process():
            return report
        (self.dir / "report.json").write_text(json.dumps(report, indent=1))
        (self.dir / "done.json").write_text(json.dumps({"fingerprint": self.fingerprint,
                                                         "work": self.work,
                                                         "finished": time.time()}))
        return report


def stage_work(cfg: DistillConfig, name: str) -> dict:
    """How much work a stage does, apart from what it does: K plans per problem. Cached rows
    are per plan, so changing K keeps them (more plans are added, or fewer used) and only
    re-opens the stage, where a fingerprint change would set its folder aside."""
    return {"plans_per_problem": cfg.teacher.plans_per_problem} if name in (
        "plans", "verify") else {}


def open_stage(cfg: DistillConfig, name: str) -> tuple[Stage, dict | None]:
    """Stage ``name``'s folder, fingerprinted by :func:`stage_fingerprint`, with its report
    when it has already finished (the same fingerprint and the same work)."""
    fingerprint, work = stage_fingerprint(cfg, name), stage_work(cfg, name)
    if cfg.reuse_from is not None and is_main_process():
        reuse(cfg.reuse_from / name, cfg.out_dir / name, fingerprint, work)
    stage = Stage(cfg.out_dir, name, fingerprint, work)
    done = json.loads((stage.dir / "report.json").read_text()) if stage.done else None
    return stage, done


def reuse(source: Path, target: Path, fingerprint: str, work: dict) -> bool:
    """Copy another run's finished stage when it finished exactly this stage (fingerprint and
    work) and this run has not: an ablation reuses the main run's data, plans and verdicts."""
    marker = source / "done.json"
    if (target / "done.json").exists() or not marker.exists():
        return False
    done = json.loads(marker.read_text())
    if done.get("fingerprint") != fingerprint or done.get("work", {}) != work:
        return False
    blobs.restore(source.parent)  # a packed run: its caches come back before they are copied
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    return True


