"""``plancode distill --config FILE.toml``: every stage's settings in one validated file.

    out_dir = "runs/my-student"

    [data]
    jsonl = ["problems.jsonl"]         # {problem, solution, tests} rows (MBPP/APPS shapes too)
    mine = ["~/src/my-project"]        # codebases: documented functions + their tests
    val_fraction = 0.1
    max_problems = 0                   # 0 = all
    decontaminate = true               # drop anything sharing a 13-gram with HumanEval

    [teacher]                          # trainer.teacher.TeacherConfig
    backend = "gguf"
    model = "qwen2.5-coder-1.5b"
    plans_per_problem = 4

    [verify]
    isolation = "auto"
    timeout = 10.0

    [train]                            # trainer.train.TrainConfig
    student = "qwen2.5-coder-0.5b"
    [train.loss]                       # trainer.losses.LossConfig
    lam = 0.5

    [export]                           # trainer.export.ExportConfig
    quantize = ["Q8_0", "Q4_K_M"]

    [eval]                             # trainer.evaluate.EvalConfig (runs when enabled)
    enabled = false

Unknown keys are errors that name the key and list the valid ones: a typo must not silently
train with a default.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.errors import PlancodeError
from trainer.evaluate import EvalConfig
from trainer.losses import LossConfig
from trainer.teacher import TeacherConfig


@dataclass
class DataConfig:
    jsonl: list[str] = field(default_factory=list)
    mine: list[str] = field(default_factory=list)
    val_fraction: float = 0.1
    max_problems: int = 0
    decontaminate: bool = True
    seed: int = 0


@dataclass
class VerifyConfig:
    isolation: str = "auto"
    timeout: float = 10.0


@dataclass
class EvalSection(EvalConfig):
    """``plancode eval``'s settings, plus whether the run evaluates and which export."""

    enabled: bool = False
    quant: str = "Q4_K_M"  # which exported file to evaluate
    docs: str = ""  # where the table and plot go (default: the run's eval/ folder)


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise PlancodeError(f"[{where}] must be a table", f"write it as [{where}] key = value")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise PlancodeError(f"unknown key(s) in [{where}]: {', '.join(unknown)}",
                            f"valid keys: {', '.join(sorted(fields))}")
    kwargs = {}
    defaults = cls()
    for name, value in data.items():
        default = getattr(defaults, name) if name != "loss" else None
        if name == "loss":
            value = _build(LossConfig, value, f"{where}.loss")
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        elif isinstance(default, bool) and not isinstance(value, bool):
            raise PlancodeError(f"{where}.{name} must be true or false", "fix the config")
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value,
                                                                                        bool):
            value = float(value)
        elif default is not None and not isinstance(value, type(default)) and not (
                isinstance(default, tuple) and isinstance(value, tuple)):
            raise PlancodeError(f"{where}.{name} = {value!r} should be a "
                                f"{type(default).__name__}", "fix the config")
        kwargs[name] = value
    return cls(**kwargs)


@dataclass
class DistillConfig:
    out_dir: Path
    data: DataConfig
    teacher: TeacherConfig
    verify: VerifyConfig
    train: Any  # trainer.train.TrainConfig (imported lazily: it needs torch)
    export: Any  # trainer.export.ExportConfig
    eval: EvalSection

    @classmethod
    def from_dict(cls, raw: dict, base: Path) -> DistillConfig:
        from trainer.export import ExportConfig
        from trainer.train import TrainConfig

        sections = {"data", "teacher", "verify", "train", "export", "eval", "out_dir"}
        unknown = sorted(set(raw) - sections)
        if unknown:
            raise PlancodeError(f"unknown section(s): {', '.join(unknown)}",
                                f"valid: {', '.join(sorted(sections))}")
        if "out_dir" not in raw:
            raise PlancodeError("the config has no out_dir",
                                'add out_dir = "runs/NAME" at the top (stage outputs go there)')
        out = Path(raw["out_dir"]).expanduser()
        cfg = cls(
            out_dir=out if out.is_absolute() else base / out,
            data=_build(DataConfig, raw.get("data", {}), "data"),
            teacher=_build(TeacherConfig, raw.get("teacher", {}), "teacher"),
            verify=_build(VerifyConfig, raw.get("verify", {}), "verify"),
            train=_build(TrainConfig, raw.get("train", {}), "train"),
            export=_build(ExportConfig, raw.get("export", {}), "export"),
            eval=_build(EvalSection, raw.get("eval", {}), "eval"),
        )
        cfg.data.jsonl = [_path(p, base) for p in cfg.data.jsonl]
        cfg.data.mine = [_path(p, base) for p in cfg.data.mine]
        if cfg.eval.docs:
            cfg.eval.docs = _path(cfg.eval.docs, base)
        cfg.teacher.validate()
        cfg.train.validate()
        if not cfg.data.jsonl and not cfg.data.mine:
            raise PlancodeError("[data] names no training data",
                                "set data.jsonl = [FILES] and/or data.mine = [CODEBASE DIRS]")
        return cfg

    @classmethod
    def load(cls, path: Path) -> DistillConfig:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PlancodeError(f"{path} does not exist", "give the path of a TOML config "
                                "(see docs/training.md for an example)") from None
        except tomllib.TOMLDecodeError as exc:
            raise PlancodeError(f"{path} is not valid TOML: {exc}", "fix the syntax") from None
        return cls.from_dict(raw, path.resolve().parent)

    def section(self, name: str) -> dict:
        """A section as plain data (stage fingerprints hash this)."""
        value = getattr(self, name)
        return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def _path(p: str, base: Path) -> str:
    path = Path(p).expanduser()
    return str(path if path.is_absolute() else base / path)
