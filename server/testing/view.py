"""What a run sees of the workspace: the real workspace, read-only, with secrets masked and the
candidate's files laid over it, built from bind mounts instead of a copy.

:func:`scan` walks the workspace once per :class:`~plancode.testing.sandbox.Sandbox` (bounded
by :data:`MAX_ENTRIES`) and finds what must not be seen as it is:

- secret-looking names (:class:`~plancode.testing.copying.CopyRules`: ``SECRET_PATTERNS`` plus
  the ``sandbox_exclude`` setting) and version-control or tool directories that may hold
  credentials or are large and never needed by tests (``.git``, ``.venv``, ``node_modules``,
  ...): masked by an empty file or directory;
- sockets, FIFOs and devices: masked (opening a FIFO would hang a test);
- as root, files and directories whose owner cannot read them (the user made them unreadable):
  masked by an unreadable file or directory, so not even a run that keeps the capability to
  read any file (the kernel fallback's ``read_cap``) gets their content;
- as root (each run gets a fresh uid that only has the "other" permission bits), directories
  private to their owner (``0700``, e.g. a temporary directory): *shadowed*, i.e. replaced by a
  read-only tmpfs into which each of their entries is bound, so the run can enter them without
  changing the workspace; files private to their owner (``0600``) are copied once per Sandbox
  (at most :data:`MAX_PRIVATE_BYTES`) and the copy, readable by the run, is bound over them.

:func:`mounts` turns that scan plus one run's files into an ordered list of mount operations
relative to the workspace; bubblewrap (``isolation.bwrap_view_args``) and the kernel
fallback's launcher (``launcher.apply_view``) both execute the same list. A candidate file that
replaces an existing one is bound over it; a new file is made visible by shadowing its nearest
existing directory. Everything the run sees of the workspace is read-only: writes go to its
private, size-limited ``/tmp``.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from plancode.errors import PlancodeError
from plancode.testing.copying import IGNORED_ANYWHERE, CopyRules, safe_relative

MAX_ENTRIES = 1_000_000  # directory entries the scan looks at before giving up
NOT_WALKED = frozenset({"__pycache__"})  # never hold anything a test needs to be hidden
MAX_PRIVATE_BYTES = 64 * 1024 * 1024  # owner-only files copied for a run of another uid


@dataclass
class Scan:
    """The result of one bounded walk of the workspace (paths relative to it, POSIX form)."""

    workspace: Path
    hidden_dirs: list[str] = field(default_factory=list)  # masked by an empty directory
    hidden_files: list[str] = field(default_factory=list)  # masked by an empty file
    unreadable_dirs: list[str] = field(default_factory=list)  # masked by a 000 directory
    unreadable_files: list[str] = field(default_factory=list)  # masked by a 000 file
    shadowed: list[str] = field(default_factory=list)  # private directories, entered anew
    private_files: list[str] = field(default_factory=list)  # owner-only files (fresh uid)
    private_copies: dict[str, str] = field(default_factory=dict)  # rel -> readable copy
    conftests: list[str] = field(default_factory=list)
    entries: int = 0

    def masked(self, rel: str) -> bool:
        """Whether ``rel`` (or a directory above it) is hidden from the run."""
        dirs = (*self.hidden_dirs, *self.unreadable_dirs)
        return (rel in self.hidden_files or rel in self.unreadable_files
                or any(rel == d or rel.startswith(d + "/") for d in dirs))

    def visible_file(self, rel: str) -> bool:
        """Whether the run sees ``rel`` as a regular file of the real workspace."""
        return not self.masked(rel) and (self.workspace / rel).is_file()

    def summary(self) -> str:
        return (f"{len(self.hidden_dirs) + len(self.hidden_files)} secret-looking or tool "
                f"paths masked, {len(self.unreadable_dirs) + len(self.unreadable_files)} "
                f"unreadable ones kept unreadable, {len(self.shadowed)} private directories "
                f"shadowed, {self.entries} entries scanned")


def scan(workspace: Path, rules: CopyRules, fresh_uid: bool,
         keep: tuple[str, ...] = ()) -> Scan:
    """Walk ``workspace`` once (never following symlinks) and record what the run must not
    see as it is. ``fresh_uid``: runs use a uid of their own (the server is root), so private
    directories are shadowed and owner-unreadable paths masked. ``keep``: absolute paths that
    must stay visible (the interpreter's own directories, e.g. ``WORKSPACE/.venv``)."""
    found = Scan(workspace)
    root = str(workspace)
    kept = [os.path.realpath(k) for k in keep]

    def holds_kept(path: str) -> bool:
        return any(k == path or k.startswith(path + "/") for k in kept)

    todo = [root]
    while todo:
        directory = todo.pop()
        rel_dir = os.path.relpath(directory, root)
        try:
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError:  # the server cannot list it: neither may the run
            if directory != root and not holds_kept(directory):
                found.unreadable_dirs.append(rel_dir)
            continue
        found.entries += len(entries)
        if found.entries > MAX_ENTRIES:
            raise PlancodeError(
                f"workspace {workspace} has more than {MAX_ENTRIES:,} files and directories "
                "to check for secrets before tests can run in it",
                "add the big data directories to the sandbox_exclude setting (they are then "
                "hidden from tests and not scanned)")
        for entry in entries:
            name, path = entry.name, entry.path
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            try:
                if entry.is_symlink():
                    continue  # resolved inside the view: to a masked path or out of reach
                # the type comes with the listing; the mode bits matter only to a fresh uid
                mode = entry.stat(follow_symlinks=False).st_mode if fresh_uid else (
                    stat.S_IFDIR if entry.is_dir(follow_symlinks=False) else
                    stat.S_IFREG if entry.is_file(follow_symlinks=False) else 0)
            except OSError:
                continue
            is_dir = stat.S_ISDIR(mode)
            hide = rules.secret(name) or (is_dir and name in IGNORED_ANYWHERE
                                          and name not in NOT_WALKED)
            if hide and not holds_kept(path):
                (found.hidden_dirs if is_dir else found.hidden_files).append(rel)
                continue
            if not is_dir and not stat.S_ISREG(mode):
                found.hidden_files.append(rel)  # socket, FIFO, device
                continue
            owner = stat.S_IRUSR | (stat.S_IXUSR if is_dir else 0)
            if fresh_uid and mode & owner != owner and not holds_kept(path):
                (found.unreadable_dirs if is_dir else found.unreadable_files).append(rel)
                continue
            if is_dir:
                if fresh_uid and mode & 0o005 != 0o005:
                    found.shadowed.append(rel)
                if name not in NOT_WALKED:
                    todo.append(path)
            else:
                if fresh_uid and not mode & stat.S_IROTH:
                    found.private_files.append(rel)
                if name == "conftest.py":
                    found.conftests.append(rel)
    if fresh_uid and os.stat(root).st_mode & 0o005 != 0o005:
        found.shadowed.insert(0, "")
    found.conftests.sort()
    found.shadowed.sort(key=lambda r: (r.count("/") if r else -1, r))
    return found


def copy_private(found: Scan, where: Path, limit: int = MAX_PRIVATE_BYTES) -> None:
    """Copy the owner-only files of the scan (readable by all, read-only) under ``where``,
    once per Sandbox, up to ``limit`` bytes in all; those beyond stay unreadable to the run."""
    total = 0
    for rel in found.private_files:
        src = found.workspace / rel
        try:
            size = src.stat().st_size
            if total + size > limit:
                continue
            data = src.read_bytes()
        except OSError:
            continue
        total += size
        target = where / rel
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        target.write_bytes(data)
        target.chmod(0o444)
        found.private_copies[rel] = str(target)
    if where.exists():
        for directory, _dirs, _files in os.walk(where):
            os.chmod(directory, 0o755)


@dataclass(frozen=True)
class MaskSources:
    """Files and directories bound over what is hidden (created once per Sandbox)."""

    empty_file: str
    empty_dir: str
    closed_file: str  # mode 000
    closed_dir: str  # mode 000

    @classmethod
    def create(cls, where: Path) -> MaskSources:
        where.mkdir(mode=0o755)
        made = cls(str(where / "empty"), str(where / "empty.d"), str(where / "closed"),
                   str(where / "closed.d"))
        for path, mode, is_dir in ((made.empty_file, 0o444, False),
                                   (made.empty_dir, 0o555, True),
                                   (made.closed_file, 0, False), (made.closed_dir, 0, True)):
            if is_dir:
                os.mkdir(path)
            else:
                Path(path).touch()
            os.chmod(path, mode)
        return made


def write_layer(layer: Path, files: dict[str, str]) -> dict[str, str]:
    """Write one run's files under ``layer`` (readable by any uid, read-only); return
    {workspace-relative path: host path}."""
    placed: dict[str, str] = {}
    layer.mkdir(mode=0o755)
    for rel, text in files.items():
        clean = safe_relative(rel).as_posix()
        target = layer / clean
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        target.write_text(text, encoding="utf-8", newline="")
        target.chmod(0o444)
        placed[clean] = str(target)
    for directory, _dirs, _files in os.walk(layer):
        os.chmod(directory, 0o755)
    return placed


def mounts(found: Scan, masks: MaskSources, placed: dict[str, str], top_mb: int) -> list[dict]:
    """The ordered mount operations of one run, targets relative to the workspace root:
    ``{"op": "tmpfs"|"bind"|"symlink"|"dir"|"ro", "dst": rel, "src": ...}``. Shadowed
    directories first (parents before children), then masks, then the run's files; last the
    read-only remount of every tmpfs made. The top of the workspace is always shadowed by a
    *writable* tmpfs of ``top_mb``: a test may create files in its working directory (they
    go nowhere else), while everything that exists stays read-only."""
    ws = found.workspace
    placed = {_inside(ws, rel): src for rel, src in placed.items()}
    shadows = list(dict.fromkeys(["", *found.shadowed]))
    extra_dirs: list[str] = []  # directories the run's new files need, made in a tmpfs
    for rel in placed:
        if (ws / rel).exists() or (ws / rel).is_symlink():
            continue
        parts = PurePosixPath(rel).parts
        anchor = ""
        for i in range(len(parts) - 1, -1, -1):
            candidate = "/".join(parts[:i])
            if (ws / candidate).is_dir() and not (ws / candidate).is_symlink():
                anchor = candidate
                break
        if found.masked(anchor) if anchor else False:
            raise PlancodeError(f"cannot place {rel} in the sandbox: {anchor} is hidden from "
                                "tests (a secret-looking or ignored directory)",
                                "keep tests and code out of such directories")
        if anchor not in shadows:
            shadows.append(anchor)
        extra_dirs += ["/".join(parts[:j]) for j in range(len(anchor.split("/")) + 1
                                                            if anchor else 1, len(parts))]
    shadows.sort(key=lambda r: (r.count("/") if r else -1, r))
    ops: list[dict] = []
    for rel in shadows:
        ops.append({"op": "tmpfs", "dst": rel, "writable": True, "mb": top_mb} if rel == ""
                   else {"op": "tmpfs", "dst": rel})
        directory = ws / rel
        names = sorted(os.listdir(directory))
        if rel == "" and "__pycache__" not in names:  # no bytecode planted at the top
            ops += [{"op": "dir", "dst": "__pycache__"},
                    {"op": "bind", "src": masks.empty_dir, "dst": "__pycache__"}]
        for name in names:
            src = directory / name
            dst = f"{rel}/{name}" if rel else name
            try:
                mode = os.lstat(src).st_mode
            except OSError:
                continue
            if stat.S_ISLNK(mode):
                ops.append({"op": "symlink", "src": os.readlink(src), "dst": dst})
            elif stat.S_ISDIR(mode) or stat.S_ISREG(mode):
                ops.append({"op": "bind", "src": str(src), "dst": dst})
    for rel in dict.fromkeys(extra_dirs):
        if not (ws / rel).exists():
            ops.append({"op": "dir", "dst": rel})
    ops += [{"op": "bind", "src": masks.empty_dir, "dst": r} for r in found.hidden_dirs]
    ops += [{"op": "bind", "src": masks.empty_file, "dst": r} for r in found.hidden_files]
    ops += [{"op": "bind", "src": masks.closed_dir, "dst": r} for r in found.unreadable_dirs]
    ops += [{"op": "bind", "src": masks.closed_file, "dst": r} for r in found.unreadable_files]
    ops += [{"op": "bind", "src": src, "dst": rel} for rel, src in
            found.private_copies.items() if rel not in placed]
    ops += [{"op": "bind", "src": src, "dst": rel} for rel, src in placed.items()]
    ops += [{"op": "ro", "dst": rel} for rel in reversed(shadows) if rel]
    return ops


def write_into_copy(base: Path, files: dict[str, str]) -> Callable[[], None]:
    """The last resort (no mount namespace): write one run's files into the Sandbox's single
    copy of the workspace, never through a symlink out of it; return what puts the copy back
    as it was (the run itself cannot change it: Landlock lets it only read there)."""
    saved: list[tuple[Path, bytes | None, int]] = []
    made: list[Path] = []
    base_real = base.resolve()
    for rel, text in files.items():
        target = base / safe_relative(rel)
        missing = [p for p in [target.parent, *target.parent.parents] if not p.exists()]
        target.parent.mkdir(parents=True, exist_ok=True)
        made += reversed(missing)
        if not target.parent.resolve().is_relative_to(base_real):
            raise PlancodeError(
                f"cannot write {rel} into the sandbox: a symlink in the workspace leads "
                "out of it", "replace that symlink in your workspace by a real directory")
        plain = target.is_file() and not target.is_symlink()
        old = target.read_bytes() if plain else None
        saved.append((target, old, target.stat().st_mode & 0o7777 if plain else 0))
        if target.is_symlink():
            target.unlink()
        target.write_text(text, encoding="utf-8", newline="")
        target.chmod(0o644)

    def undo() -> None:
        for target, old, mode in reversed(saved):
            if old is None:
                target.unlink(missing_ok=True)
            else:
                target.write_bytes(old)
                target.chmod(mode)
        for directory in reversed(made):
            with contextlib.suppress(OSError):
                directory.rmdir()

    return undo


def _inside(ws: Path, rel: str) -> str:
    """``rel`` with the workspace's symlinks resolved; an error when they lead out of it (a
    mount would otherwise cover whatever they point to)."""
    real = os.path.realpath(ws / rel)
    root = os.path.realpath(ws)
    if not (real == root or real.startswith(root + "/")) or real == root:
        raise PlancodeError(
            f"cannot write {rel} into the sandbox: a symlink in the workspace leads out of it",
            "replace that symlink in your workspace by a real directory")
    return os.path.relpath(real, root)


def visible(found: Scan, placed: dict[str, str], rel: str) -> bool:
    """Whether the run sees ``rel`` as a file: one of its own files or a visible real one."""
    return rel in placed or found.visible_file(rel)


def conftests(found: Scan, placed: dict[str, str]) -> list[str]:
    """Workspace-relative conftest.py files the run sees before it starts."""
    own = [rel for rel in placed if PurePosixPath(rel).name == "conftest.py"]
    return sorted(set(found.conftests) | set(own))
