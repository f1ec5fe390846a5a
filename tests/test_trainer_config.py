"""The distill config: typos and wrong types are errors that name the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from plancode.cli import main as plancode  # noqa: E402
from plancode.errors import PlancodeError  # noqa: E402
from plancode.trainer.config import DistillConfig  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _load(tmp_path: Path, text: str) -> DistillConfig:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return DistillConfig.load(path)


def test_the_shipped_real_run_config_is_valid() -> None:
    cfg = DistillConfig.load(REPO / "configs" / "distill-real.toml")
    assert cfg.teacher.model == "qwen2.5-coder-1.5b" and cfg.train.student == "qwen2.5-coder-0.5b"
    assert cfg.out_dir.resolve() == (REPO / "distill" / "real").resolve()  # committed caches
    assert cfg.train.loss.lam == 0.5 and cfg.eval.enabled and cfg.eval.compare == "adapter"
    assert cfg.verify.coder == "student" and cfg.train.save_every_minutes > 0


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    cfg = _load(tmp_path, 'out_dir = "run"\n[data]\njsonl = ["p.jsonl"]\n')
    assert cfg.out_dir == tmp_path / "run" and cfg.data.jsonl == [str(tmp_path / "p.jsonl")]


@pytest.mark.parametrize("text, names", [
    ('out_dir = "r"\n[data]\njsonl = ["p"]\n[train]\nlearning_rat = 1e-4\n', "learning_rat"),
    ('out_dir = "r"\n[data]\njsonl = ["p"]\n[train.loss]\nlambda = 0.5\n', "lambda"),
    ('out_dir = "r"\n[data]\njsonl = ["p"]\n[trian]\n', "trian"),
    ('out_dir = "r"\n[data]\njsonl = ["p"]\n[teacher]\nplans_per_problem = "four"\n',
     "plans_per_problem"),
    ('out_dir = "r"\n[data]\njsonl = ["p"]\n[teacher]\nbackend = "vllm"\n', "vllm"),
    ('out_dir = "r"\n[data]\njsonl = ["p"]\n[train.loss]\nlam = 1.5\n', "lam"),
    ('out_dir = "r"\n[data]\n', "no training data"),
    ('[data]\njsonl = ["p"]\n', "out_dir"),
    ('out_dir = "r"\n[data\n', "not valid TOML"),
])
def test_bad_configs_name_the_problem(tmp_path: Path, text: str, names: str) -> None:
    with pytest.raises(PlancodeError) as err:
        _load(tmp_path, text)
    assert names in err.value.message and err.value.fix


def test_the_cli_reports_a_bad_config_without_a_traceback(tmp_path: Path, capsys) -> None:
    assert plancode(["distill", "--config", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err
    assert "missing.toml does not exist" in err and "fix:" in err and "Traceback" not in err
