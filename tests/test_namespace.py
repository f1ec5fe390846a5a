"""plancode lives under one import name, ``plancode``: a user's own ``server/`` and ``trainer/``
packages neither shadow it nor are shadowed by it.

The VS Code extension's ``plancode.pythonPath`` mode runs ``PYTHON -m plancode serve`` with the
workspace as its working directory, so the workspace is first on ``sys.path``; before the move
to one namespace that ran the user's ``server`` package instead of plancode's.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.lsp.client import LanguageClient

TRAP = "raise SystemExit('the user\\'s {name} package was imported by plancode')\n"


@pytest.fixture
def web_project(tmp_path: Path) -> Path:
    """A web project with its own ``server`` and ``trainer`` packages that refuse to import."""
    for name in ("server", "trainer"):
        pkg = tmp_path / name
        pkg.mkdir()
        (pkg / "__init__.py").write_text(TRAP.format(name=name))
        (pkg / "cli.py").write_text("print('user cli')\n")
    (tmp_path / "app.py").write_text("def add(a, b):\n    \"\"\"a + b\"\"\"\n    return a + b\n")
    return tmp_path


def test_python_m_plancode_runs_plancode_in_a_project_with_its_own_server(web_project: Path):
    proc = subprocess.run([sys.executable, "-m", "plancode", "config"], cwd=web_project,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "n_threads" in proc.stdout and "user cli" not in proc.stdout


def test_plancode_installs_no_top_level_server_or_trainer(tmp_path: Path):
    # -P: not even the working directory on sys.path, only what is installed
    for name in ("server", "trainer"):
        proc = subprocess.run([sys.executable, "-P", "-c", f"import {name}"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert f"No module named '{name}'" in proc.stderr, (name, proc.stderr)
    proc = subprocess.run([sys.executable, "-P", "-c",
                           "import plancode, plancode.trainer; print(plancode.__name__)"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "plancode", proc.stderr


def test_user_code_still_imports_its_own_server(web_project: Path):
    proc = subprocess.run([sys.executable, "-c", "import server.cli"], cwd=web_project,
                          capture_output=True, text=True, timeout=60)
    assert "the user's server package was imported" in proc.stderr


async def test_language_server_starts_from_a_workspace_with_its_own_server(web_project: Path):
    """What VS Code's pythonPath mode does: ``PYTHON -m plancode serve``, cwd = workspace."""
    client = LanguageClient("namespace-test", "1")
    await client.start_io(sys.executable, "-m", "plancode", "serve", cwd=str(web_project))
    try:
        result = await asyncio.wait_for(client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            root_uri=web_project.as_uri(),
            initialization_options={"model": "smollm2-135m"})), timeout=60)
        assert result.server_info is not None and result.server_info.name == "plancode"
        assert result.capabilities.inline_completion_provider is not None
        await asyncio.wait_for(client.shutdown_async(None), timeout=30)
        client.exit(None)
    finally:
        await client.stop()

