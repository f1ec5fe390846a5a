"""Which workspace names are secret or ignored (for the view, ``view.py``, and for the copy), and
the last-resort copy of the workspace: made once per Sandbox only where the kernel allows no
mount namespace; ownership and removal of a run's directories.

The real workspace is only ever read. Left out of the copy: version-control and virtualenv
directories, caches, ``build``/``dist`` at the top, and files that look like secrets
(:data:`SECRET_PATTERNS` plus the ``sandbox_exclude`` setting), so a candidate can neither read
them nor put them into a failure message that a remote model would see.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from plancode.errors import PlancodeError

MAX_COPY_MB = 200
IGNORED_ANYWHERE = frozenset({".git", ".hg", ".svn", ".venv", "venv", "node_modules",
                              "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache",
                              ".tox", ".nox"})
IGNORED_AT_TOP = frozenset({"build", "dist"})
# Names (fnmatch patterns, matched against each file or directory name) never copied.
SECRET_PATTERNS = (
    # environment files and private keys
    ".env", ".env.*", ".envrc", "*.pem", "*.key", "*.p12", "*.pfx", "*.keystore", "*.jks",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "*.ppk", "*.asc", "*.gpg",
    # secret and credential stores by name
    "secrets.*", "secret.*", ".secrets", "*.secrets", "*credentials*", ".git-credentials",
    "*.tfvars", "*.tfvars.json", "*.tfstate", "*.tfstate.*", ".vault-token", ".htpasswd",
    # tool configurations that hold tokens or passwords
    ".netrc", "_netrc", ".pypirc", ".npmrc", ".yarnrc", ".yarnrc.yml", ".pgpass", ".my.cnf",
    "kubeconfig", "*.kubeconfig", ".dockercfg",
    # whole directories: ssh, cloud, container and cluster credentials
    ".ssh", ".aws", ".azure", ".gcloud", ".gnupg", ".docker", ".kube", ".terraform.d")


class CopyRules:
    """Which names stay out of the copy: the fixed ignores plus secret-looking names."""

    def __init__(self, extra_patterns: Iterable[str] = ()) -> None:
        self.patterns = tuple(SECRET_PATTERNS) + tuple(p for p in extra_patterns if p)
        # one regular expression for all the patterns: a workspace scan asks for every name
        self._match = re.compile("|".join(fnmatch.translate(p) for p in self.patterns)).match

    def secret(self, name: str) -> bool:
        """Whether ``name`` looks like a secret store. Python source never does: the broad
        name patterns (``*credentials*``, ``secrets.*``) would otherwise hide a project's own
        ``auth/credentials.py`` or ``test_credentials.py`` and break its tests."""
        return not name.endswith((".py", ".pyi")) and self._match(name) is not None

    def ignored(self, root: Path, directory: str, name: str) -> bool:
        if name in IGNORED_ANYWHERE or name.endswith(".egg-info") or self.secret(name):
            return True
        if name in IGNORED_AT_TOP and Path(directory) == root:
            return True
        try:  # sockets, FIFOs, devices: copying would block or fail
            mode = os.lstat(os.path.join(directory, name)).st_mode
        except OSError:
            return True
        return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode))


def too_big(workspace: Path, size: int) -> PlancodeError:
    return PlancodeError(
        f"workspace {workspace} is too big to copy into the test sandbox "
        f"({size / 1e6:.0f} MB > {MAX_COPY_MB} MB, not counting .git, .venv, venv, "
        "node_modules, caches, build and dist); a copy is needed only because this kernel "
        "gives you no mount namespace",
        "allow unprivileged user namespaces (then nothing is copied), install bubblewrap, or "
        "add large data directories to the sandbox_exclude setting")


def workspace_size(workspace: Path, rules: CopyRules | None = None) -> int:
    """Bytes of regular files the sandbox would copy."""
    rules = rules or CopyRules()
    total = 0
    for directory, dirs, files in os.walk(workspace):
        dirs[:] = [d for d in dirs if not rules.ignored(workspace, directory, d)]
        for name in files:
            if not rules.ignored(workspace, directory, name):
                try:
                    st = os.lstat(os.path.join(directory, name))
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    total += st.st_size
    return total


def copy_workspace(workspace: Path, dest: Path, limit: int,
                   rules: CopyRules | None = None) -> None:
    """Copy the workspace (symlinks as symlinks, ignored and secret names left out) to
    ``dest``; raise when more than ``limit`` bytes would be copied."""
    rules = rules or CopyRules()
    copied = 0

    def copy(src: str, dst: str) -> str:
        nonlocal copied
        copied += os.lstat(src).st_size
        if copied > limit:
            raise too_big(workspace, copied)
        return shutil.copy2(src, dst)

    shutil.copytree(workspace, dest, symlinks=True, copy_function=copy,
                    ignore=lambda d, names: {n for n in names
                                             if rules.ignored(workspace, d, n)})


def safe_relative(path: str) -> PurePosixPath:
    rel = PurePosixPath(path)
    if rel.is_absolute() or not rel.parts or ".." in rel.parts:
        raise ValueError(f"sandbox files must be workspace-relative paths, got {path!r}")
    return rel


def write_files(ws: Path, files: dict[str, str]) -> None:
    """Write the candidate's files into the copy, never through a symlink out of it."""
    ws_real = ws.resolve()
    for rel, text in files.items():
        target = ws / safe_relative(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.parent.resolve().is_relative_to(ws_real):
            raise PlancodeError(
                f"cannot write {rel} into the sandbox: a symlink in the workspace leads "
                "out of it", "replace that symlink in your workspace by a real directory")
        if target.is_symlink():
            target.unlink()  # never write through a link out of the copy
        target.write_text(text, encoding="utf-8", newline="")


def protected_files(ws: Path, test_files: Iterable[str]) -> list[str]:
    """Absolute paths in the copy that the run may read but never change: the test files, every
    conftest.py and pytest configuration file from the copy's root down to each test file's
    directory. Symlinks are left out (the link itself cannot be bound)."""
    found: list[str] = []
    for rel in sorted(set(test_files)):
        path = ws / rel
        directory = path.parent
        candidates = [path]
        while True:
            candidates += [directory / n for n in ("conftest.py", "pytest.ini", "pyproject.toml",
                                                   "setup.cfg", "tox.ini", "__init__.py")]
            if directory == ws or ws not in directory.parents:
                break
            directory = directory.parent
        for candidate in candidates:
            try:
                mode = os.lstat(candidate).st_mode
            except OSError:
                continue
            if stat.S_ISREG(mode) and str(candidate) not in found:
                found.append(str(candidate))
    return found


def conftests(ws: Path) -> list[str]:
    """Every conftest.py in the copy before the run (the plugin accepts only these)."""
    return [os.path.join(d, "conftest.py") for d, _dirs, files in os.walk(ws)
            if "conftest.py" in files]


def hand_over(root: Path, uid: int, gid: int, keep: Iterable[str] = ()) -> None:
    """Give the copy to the run's user and make it traversable by everyone (bwrap, started by
    root without capabilities, must enter it even when the workspace was mode 0700). Paths in
    ``keep`` stay the server's and become read-only (0444)."""
    kept = set(keep)
    os.chown(root, uid, gid)
    os.chmod(root, os.stat(root).st_mode | 0o755)
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            if path in kept:
                os.chmod(path, 0o444)
                continue
            os.chown(path, uid, gid, follow_symlinks=False)
            if not os.path.islink(path):
                extra = 0o755 if name in dirs else 0o644
                os.chmod(path, os.lstat(path).st_mode | extra)


def make_read_only(paths: Iterable[str]) -> None:
    """Mode 0444 for files the run must not change (its own user keeps owning them when the
    server is not root; the read-only bind mount is what stops it then)."""
    for path in paths:
        os.chmod(path, 0o444)


def remove_tree(path: Path) -> None:
    """rmtree that also copes with directories a candidate made unreadable; never follows a
    symlink the candidate left."""
    def retry(func, target, _exc):
        try:
            parent = os.path.dirname(target)
            if not os.path.islink(parent):
                os.chmod(parent, 0o700)
            if os.path.isdir(target) and not os.path.islink(target):
                os.chmod(target, 0o700)
            if func is os.open:  # a directory it could not enter: now it can
                shutil.rmtree(target, onerror=retry)
            else:
                func(target)
        except OSError:
            pass

    shutil.rmtree(path, onerror=retry)
