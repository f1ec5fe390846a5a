"""The workspace a file belongs to: the folder tests are discovered in and copied from."""

from __future__ import annotations

from pathlib import Path

MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", "pytest.ini", "tox.ini", ".git")


def workspace_root(file: Path) -> Path:
    """The nearest folder above ``file`` holding a project marker, else the file's folder."""
    file = file.resolve()
    for folder in file.parents:
        if any((folder / m).exists() for m in MARKERS):
            return folder
    return file.parent
