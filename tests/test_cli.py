"""The ``plancode`` command line, run as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from plancode.testing.isolation import CONFINING
from tests.conftest import EXAMPLES

WORDS = EXAMPLES / "textstats" / "textstats" / "words.py"


def plancode(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "plancode", *args], capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_help_explains_each_subcommand() -> None:
    out = plancode("--help").stdout
    for cmd in ("model", "complete", "config"):
        assert cmd in out
    model_help = plancode("model", "--help").stdout
    for action in ("list", "fetch", "path", "verify", "info"):
        assert action in model_help


def test_model_list_shows_the_catalog(tiny_model_path: Path) -> None:
    out = plancode("model", "list").stdout
    assert "qwen2.5-coder-0.5b" in out and "(default)" in out
    assert "smollm2-135m" in out and "cached" in out


def test_complete_json_with_the_tiny_model(tiny_model_path: Path) -> None:
    before = WORDS.read_bytes()
    line = _line_of(WORDS, "def top_words")
    proc = plancode("complete", f"{WORDS}:{line + 2}", "--model", "smollm2-135m",
                    "--candidates", "2", "--max-tokens", "48", "--json", "--pool")
    assert proc.returncode in (0, 1), proc.stderr
    result = json.loads(proc.stdout)
    assert result["function"] == "top_words" and result["tests_source"] == "user"
    assert all("code" in c and "verdicts" in c for c in result["candidates"]), "--pool"
    assert {t["id"] for t in result["tests"]} >= {
        "textstats/words.py::textstats.words.top_words",
        "tests/test_words.py::test_top_words_orders_by_count_then_alphabet",
    }
    assert [c["strategy"] for c in result["candidates"]][:2] == ["direct-greedy",
                                                                "direct-sampled"]
    assert result["isolation"] in CONFINING and result["isolation_detail"]
    assert result["written"] is False
    assert WORDS.read_bytes() == before, "complete without --write leaves the file alone"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nowhere.py:3", "does not exist"),
        (f"{WORDS}", "bad target"),
        (f"{WORDS}:0", "bad target"),
        (f"{WORDS}:9999", "past the end"),
        (f"{WORDS}:1", "no function definition spans"),
    ],
)
def test_complete_bad_targets_exit_2_with_a_fix(target: str, message: str) -> None:
    proc = plancode("complete", target, "--model", "smollm2-135m")
    assert proc.returncode == 2
    assert message in proc.stderr and "fix:" in proc.stderr


def test_bad_setting_from_the_environment_is_named() -> None:
    proc = plancode("complete", f"{WORDS}:7", env={"PLANCODE_N_CTX": "lots"})
    assert proc.returncode == 2 and "'n_ctx'" in proc.stderr


@pytest.mark.slow
def test_complete_write_applies_a_verified_function(default_model_path: Path,
                                                    tmp_path: Path) -> None:
    project = tmp_path / "textstats"
    shutil.copytree(EXAMPLES / "textstats", project,
                    ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    numbers = project / "textstats" / "numbers.py"
    line = _line_of(numbers, "def median")
    proc = plancode("complete", f"{numbers}:{line}", "--write")
    assert proc.returncode == 0, proc.stderr
    assert "== median: VERIFIED: passes all of your tests ==" in proc.stdout
    assert "PASSED   tests/test_numbers.py::test_median_empty_raises" in proc.stdout
    assert f"written to {numbers}" in proc.stdout
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-k", "median", "--doctest-modules", "textstats/numbers.py",
                          "tests/test_numbers.py"], cwd=project, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout
