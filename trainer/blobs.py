"""A finished run's data, kept once by content: the store under ``distill/blobs/``.

A distillation run folder holds hours of work as JSONL caches (problems, teacher plans,
verdicts). Three runs that share their first stages used to carry three copies of each, which
made the checkout too big to copy into the test sandbox or onto a GPU machine. ``pack`` moves a
finished run's JSONL caches into one content-addressed store (``<sha256[:16]>.jsonl.gz``, shared
by every run), writes ``blobs.json`` (path -> digest and size) in the run folder and a
``.gitignore`` there for the paths it took out, so git keeps the manifest and the store, not the
copies. ``restore`` puts them back, digest-checked, before a run or a benchmark reads them; every
reader of a run's caches goes through :func:`restore` (it is a no-op when nothing is missing).

Checkpoints are not data: a finished run's ``train/portable/`` and ``export/*.gguf`` leave the
tree (the shipped adapter lives in ``server/models/adapters/``), and ``pack`` lists them so the
caller can delete them.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from plancode.errors import PlancodeError
from plancode.models.assemble import sha256_file

MANIFEST = "blobs.json"
# Caches that are data (kept once, by content) and files that are checkpoints (dropped).
DATA_GLOBS = ("*/*.jsonl",)
CHECKPOINT_GLOBS = ("train/portable/*", "train/train_state.json", "export/*.gguf",
                    "train/adapter/*")
MARK_PREFIX = "# written by plancode.trainer.blobs"
MARK = f"{MARK_PREFIX}: these files live in the blob store by content\n"


def default_store(run_dir: Path) -> Path:
    """The store beside the run folders (``distill/blobs`` for ``distill/real``)."""
    return run_dir.resolve().parent / "blobs"


@dataclass
class PackReport:
    packed: list[str]          # run-relative paths now in the store
    new_blobs: int             # store entries this call wrote (the rest were shared)
    checkpoints: list[Path]    # checkpoint files the caller may delete


def pack(run_dir: Path, store: Path | None = None, drop_checkpoints: bool = False,
         globs: tuple[str, ...] = DATA_GLOBS) -> PackReport:
    """Move the run's JSONL caches (``globs``, relative to ``run_dir``: by default every
    ``STAGE/FILE.jsonl``) into the store; with ``drop_checkpoints``, delete those too."""
    run_dir = run_dir.resolve()
    store = store or default_store(run_dir)
    store.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(run_dir)
    new = 0
    stale: set[str] = set()  # digests of earlier packs of a cache that has grown since
    for pattern in globs:
        for path in sorted(run_dir.glob(pattern)):
            if not path.is_file() or path.is_symlink():
                continue
            digest = sha256_file(path)
            blob = store / f"{digest[:16]}.jsonl.gz"
            if not blob.exists():
                tmp = blob.with_suffix(".tmp")
                with path.open("rb") as src, tmp.open("wb") as raw, \
                        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as dst:
                    shutil.copyfileobj(src, dst)
                tmp.replace(blob)
                new += 1
            rel = path.relative_to(run_dir).as_posix()
            replaced = manifest.get(rel, {}).get("sha256")
            manifest[rel] = {"sha256": digest, "bytes": path.stat().st_size}
            path.unlink()
            if replaced and replaced != digest:
                stale.add(replaced)
    _write_manifest(run_dir, manifest)
    _drop_unreferenced(store, stale)
    checkpoints = sorted(p for g in CHECKPOINT_GLOBS for p in run_dir.glob(g) if p.is_file())
    if drop_checkpoints:
        for path in checkpoints:
            path.unlink()
    return PackReport(sorted(manifest), new, checkpoints)


def restore(run_dir: Path, store: Path | None = None) -> list[str]:
    """Put back every manifest file that is missing; returns the paths restored."""
    run_dir = Path(run_dir)
    manifest = _read_manifest(run_dir)
    if not manifest:
        return []
    store = store or default_store(run_dir)
    restored = []
    for rel, entry in sorted(manifest.items()):
        target = run_dir / rel
        if target.exists():
            continue
        blob = store / f"{entry['sha256'][:16]}.jsonl.gz"
        if not blob.is_file():
            raise PlancodeError(
                f"{target} is kept in the blob store, but {blob} is missing",
                "check out the repository's distill/blobs/ folder (git checkout -- distill/blobs)")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".restoring")
        try:
            with gzip.open(blob, "rb") as src, tmp.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        except (OSError, EOFError):  # not gzip, or cut short: the digest check below says so
            tmp.write_bytes(b"")
        if sha256_file(tmp) != entry["sha256"]:
            tmp.unlink()
            raise PlancodeError(f"{blob} does not hold {rel} (sha256 differs)",
                                "restore distill/blobs/ from git (git checkout -- distill/blobs)")
        tmp.replace(target)
        restored.append(rel)
    return restored


def ensure(path: Path) -> None:
    """Before a run cache at ``RUN/STAGE/FILE`` is read: restore it when the store keeps it."""
    if not path.exists() and (path.parent.parent / MANIFEST).is_file():
        restore(path.parent.parent)


def _read_manifest(run_dir: Path) -> dict[str, dict]:
    path = run_dir / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_manifest(run_dir: Path, manifest: dict[str, dict]) -> None:
    """Write the manifest and the run's ``.gitignore``: the lines someone wrote there by hand
    stay, and the block below ``MARK`` lists the paths the store now keeps."""
    (run_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    ignore = run_dir / ".gitignore"
    own = ignore.read_text().split(MARK_PREFIX, 1)[0] if ignore.is_file() else ""
    if own and not own.endswith("\n"):
        own += "\n"
    ignore.write_text(own + MARK + "".join(f"/{rel}\n" for rel in sorted(manifest)))


def _drop_unreferenced(store: Path, digests: set[str]) -> None:
    """Delete the blobs of earlier packs that no manifest beside the store names any more
    (a cache packed again after it grew), so the store keeps one copy of each cache."""
    if not digests:
        return
    named = {entry["sha256"] for manifest in store.parent.glob(f"*/{MANIFEST}")
             for entry in json.loads(manifest.read_text()).values()}
    for digest in digests - named:
        (store / f"{digest[:16]}.jsonl.gz").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m plancode.trainer.blobs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("pack", "restore"))
    p.add_argument("runs", nargs="+", type=Path, help="run folders (e.g. distill/real)")
    p.add_argument("--drop-checkpoints", action="store_true",
                   help="with pack: also delete train/portable/, export/*.gguf and train state")
    p.add_argument("--glob", action="append", dest="globs",
                   help="with pack: only these FOLDER/FILE patterns (a finished benchmark's "
                        "rows: --glob 'ttfv-v4/*.jsonl' in benchmarks/results)")
    args = p.parse_args(argv)
    for run in args.runs:
        if args.action == "pack":
            rep = pack(run, drop_checkpoints=args.drop_checkpoints,
                       globs=tuple(args.globs) if args.globs else DATA_GLOBS)
            gone = "deleted" if args.drop_checkpoints else "left in place"
            print(f"{run}: {len(rep.packed)} files in the store ({rep.new_blobs} new blobs); "
                  f"{len(rep.checkpoints)} checkpoint files {gone}")
        else:
            done = restore(run)
            print(f"{run}: restored {len(done)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
