"""`plancode serve` in editors other than VS Code and Neovim (docs/editors.md).

Emacs + Eglot is driven for real, in batch: tests/fixtures/editors/eglot_trial.el connects Eglot
to the server the way docs/editors.md configures it, asks for a completion and accepts it, then
runs the code action "Implement with plan (verified)" on ``median`` through
``M-x eglot-code-actions`` and saves the buffer. Those tests need the Debian packages
``emacs-nox`` and ``elpa-eglot`` (Emacs 28 has no built-in Eglot) and skip only when there is no
``emacs`` binary. Helix, Zed and Sublime Text cannot be installed here: for them the
configuration blocks of docs/editors.md are parsed and checked for the server command.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "editors.md"
TRIAL = REPO / "tests" / "fixtures" / "editors" / "eglot_trial.el"
EMACS = shutil.which("emacs")

needs_emacs = pytest.mark.skipif(
    EMACS is None, reason="emacs is not installed (apt-get install emacs-nox elpa-eglot)")


def _plancode() -> str:
    """The plancode executable of the running interpreter's environment."""
    beside = Path(sys.executable).parent / "plancode"
    found = str(beside) if beside.is_file() else shutil.which("plancode")
    if found is None:
        pytest.fail("no plancode executable next to the interpreter or on PATH: "
                    "install the package (pip install -e .)")
    return found


def _run_trial(project: Path, model: str, steps: str, timeout: float) -> str:
    env = {**os.environ, "PLANCODE_TRIAL_DIR": str(project), "PLANCODE_TRIAL_MODEL": model,
           "PLANCODE_TRIAL_SERVER": _plancode(), "PLANCODE_TRIAL_STEPS": steps}
    assert EMACS is not None
    proc = subprocess.run([EMACS, "--batch", "-l", str(TRIAL)], cwd=project, env=env,
                          capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    assert "Cannot open load file" not in output, (
        f"Emacs could not load Eglot: install elpa-eglot\n{output}")
    assert proc.returncode == 0 and "TRIAL" in proc.stdout, (
        f"the Eglot trial failed (exit {proc.returncode}):\n{output}")
    return proc.stdout


@needs_emacs
def test_eglot_completion_is_inserted(textstats: Path, tiny_model_path: Path) -> None:
    """textDocument/completion through Eglot's completion-at-point edits the buffer."""
    out = _run_trial(textstats, "smollm2-135m", "completion", timeout=300)
    assert "completion OK" in out, out
    assert re.search(r'completion line after accept: "    return \S', out), out


@needs_emacs
@pytest.mark.slow
def test_eglot_code_action_implements_median(textstats: Path,
                                             default_model_path: Path) -> None:
    """The code action runs plancode.implement; Eglot applies the edit; the tests pass."""
    out = _run_trial(textstats, "qwen2.5-coder-0.5b", "action", timeout=600)
    assert '("Implement with plan (verified)")' in out, out
    assert "action OK: numbers.py saved" in out, out
    source = (textstats / "textstats" / "numbers.py").read_text()
    assert "# plancode: verified" in source, source
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "-k", "median", "tests"], cwd=textstats, capture_output=True,
                           text=True, timeout=120)
    assert tests.returncode == 0 and "3 passed" in tests.stdout, (
        f"median as Eglot saved it fails the project's tests:\n{source}\n{tests.stdout}")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", DOC.read_text(), flags=re.M | re.S)


def test_doc_configs_parse_and_start_plancode_serve() -> None:
    """The Helix, Zed and Sublime Text configurations (untested in those editors here) are
    valid TOML/JSON and start `plancode serve` for Python."""
    helix = [tomllib.loads(b) for b in _blocks("toml")]
    servers = [h["language-server"]["plancode"] for h in helix if "language-server" in h]
    assert servers and all(s["command"] == "plancode" and s["args"] == ["serve"]
                           for s in servers), servers
    python = [lang for h in helix for lang in h.get("language", []) if lang["name"] == "python"]
    assert python and all(
        "plancode" in [s if isinstance(s, str) else s["name"] for s in lang["language-servers"]]
        for lang in python), python

    objects = [json.loads(b) for b in _blocks("json")]
    zed = [o for o in objects if "lsp" in o]
    assert zed and all("plancode" in o["lsp"] for o in zed), zed
    assert any("plancode" in o["languages"]["Python"]["language_servers"] for o in zed), zed
    sublime = [o["clients"]["plancode"] for o in objects if "clients" in o]
    assert sublime and all(c["command"] == ["plancode", "serve"] and
                           c["selector"] == "source.python" for c in sublime), sublime
