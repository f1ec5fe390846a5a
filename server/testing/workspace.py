"""The workspace a file belongs to: the folder tests are discovered in and copied from.

Inferred the way pytest finds its rootdir, so that the tests a user runs with ``pytest`` are
the tests plancode finds:

1. ``marker``: the nearest folder above the file holding a project marker (pyproject.toml,
   setup.py, setup.cfg, pytest.ini, tox.ini, .git);
2. ``import-root``: for a file inside a package (``__init__.py`` chain), the folder above the
   topmost package — where ``import pkg.mod`` works from, and where pytest's ``prepend``
   import mode puts it on ``sys.path``; for ``src/pkg/mod.py`` the folder above ``src``;
3. ``workspace-folder`` / ``cwd``: for a loose module, the innermost editor workspace folder,
   else the current directory of the CLI, that contains the file (at most ``MAX_DEPTH`` folders
   above it, so running from ``~`` does not make the home folder the workspace);
4. ``file-folder``: the file's own folder (``mod.py`` next to ``test_mod.py``).

The result carries the reason, so a user who sees no tests found can tell why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from plancode.testing.imports import package_chain

MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", "pytest.ini", "tox.ini", ".git")
MAX_DEPTH = 3  # how far above a loose module the cwd / a workspace folder may be


@dataclass(frozen=True)
class WorkspaceRoot:
    """The chosen root folder and why it was chosen."""

    path: Path
    reason: str  # given | marker | import-root | workspace-folder | cwd | file-folder
    detail: str  # one sentence for people

    def to_json(self) -> dict:
        return {"path": str(self.path), "reason": self.reason, "detail": self.detail}


def _marker_root(file: Path) -> WorkspaceRoot | None:
    for folder in file.parents:
        found = [m for m in MARKERS if (folder / m).exists()]
        if found:
            return WorkspaceRoot(folder, "marker", f"{found[0]} found in {folder}")
    return None


def _enclosing(file: Path, folders: Sequence[Path]) -> Path | None:
    """The innermost of ``folders`` that holds ``file`` at most MAX_DEPTH folders down."""
    inside = [f for f in folders if file.is_relative_to(f)
              and len(file.relative_to(f).parts) - 1 <= MAX_DEPTH]
    return max(inside, key=lambda f: len(f.parts)) if inside else None


def infer_root(file: Path, folders: Sequence[Path] = (), cwd: Path | None = None,
               given: Path | None = None) -> WorkspaceRoot:
    """Where ``file``'s tests live: see the module docstring for the order of the rules.

    ``folders``: the editor's workspace folders; ``cwd``: the CLI's current directory (None
    for the language server, whose cwd means nothing); ``given``: a root the caller insists on.
    """
    file = Path(file).resolve()
    if given is not None:
        return WorkspaceRoot(Path(given).resolve(), "given", "root given by the caller")
    marked = _marker_root(file)
    if marked is not None:
        return marked
    base, parts = package_chain(file)
    if len(parts) > 1 or file.name == "__init__.py":
        if base.name == "src" and not (base / "__init__.py").exists():
            return WorkspaceRoot(base.parent, "import-root",
                                 f"no project marker; {parts[0]}/ is a package under src/, so "
                                 f"its project is {base.parent}")
        return WorkspaceRoot(base, "import-root",
                             f"no project marker; {parts[0]}/ is the topmost package, "
                             f"imported from {base}")
    resolved = [Path(f).resolve() for f in folders]
    folder = _enclosing(file, resolved)
    if folder is not None:
        return WorkspaceRoot(folder, "workspace-folder",
                             f"no project marker or package; the editor's workspace folder "
                             f"{folder} holds the file")
    if cwd is not None and (here := _enclosing(file, [Path(cwd).resolve()])) is not None:
        return WorkspaceRoot(here, "cwd", f"no project marker or package; the current "
                             f"directory {here} holds the file")
    return WorkspaceRoot(file.parent, "file-folder",
                         "no project marker, package, workspace folder or current directory "
                         "holds the file; using its own folder")


def workspace_root(file: Path) -> Path:
    """The inferred root folder of ``file`` (no workspace folders, no cwd)."""
    return infer_root(file).path
