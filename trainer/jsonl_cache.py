"""Append-only JSONL caches that survive an interruption.

Each stage appends one row per finished unit of work and flushes it, so a run that is killed
resumes where it stopped: rows already on disk are skipped. A torn last line (the process died
mid-write) is ignored on read and overwritten by the next append. Processes that share a
cache split its work through :class:`Claims`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TypeVar

from plancode.trainer import blobs

T = TypeVar("T")


class JsonlCache:
    """Rows keyed by ``key(row)``; ``add`` appends and flushes immediately."""

    def __init__(self, path: Path, key: str = "key") -> None:
        self.path = path
        self.key = key
        self.rows: dict[str, dict] = {}
        self._read = 0  # bytes of the file already in ``rows``
        blobs.ensure(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            self._load()

    def _load(self) -> None:
        good = 0
        with self.path.open("rb") as fh:
            for raw in fh:
                try:
                    row = json.loads(raw)
                except json.JSONDecodeError:
                    break  # torn write: everything after it is dropped
                if not raw.endswith(b"\n"):
                    break
                self.rows[row[self.key]] = row
                good += len(raw)
        if good != self.path.stat().st_size:
            with self.path.open("r+b") as fh:
                fh.truncate(good)
        self._read = good

    def refresh(self) -> None:
        """Take in whole rows another process appended since the last read (a line still
        being written is left for the next refresh, never truncated)."""
        if not self.path.exists() or self.path.stat().st_size <= self._read:
            return
        with self.path.open("rb") as fh:
            fh.seek(self._read)
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break
                try:
                    row = json.loads(raw)
                except json.JSONDecodeError:
                    break
                self.rows[row[self.key]] = row
                self._read += len(raw)

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.rows.values())

    def get(self, key: str) -> dict | None:
        return self.rows.get(key)

    def add(self, row: dict) -> None:
        self.rows[row[self.key]] = row
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


class Claims:
    """Units of work a live process is doing now, so processes sharing one cache split the
    work instead of doing the same unit side by side (each would otherwise see the other's
    rows only once they are finished).

    A claim is an exclusive ``flock`` on a file beside the cache named for the unit (the model
    store's locks work the same way): the kernel drops it when its process ends, however it
    ends, so a killed worker never leaves a problem claimed."""

    def __init__(self, cache_path: Path) -> None:
        self.dir = cache_path.parent / f"{cache_path.name}.claims"
        self._held: dict[str, IO[str]] = {}

    def _file(self, key: str) -> Path:
        return self.dir / hashlib.sha256(key.encode()).hexdigest()[:16]

    def take(self, key: str) -> bool:
        """Claim ``key``; False while another holder (any process) has it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self._file(key)
        while True:
            fh = path.open("a")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                return False
            try:  # the holder before us may have released (and removed) it meanwhile
                if os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino:
                    self._held[key] = fh
                    return True
            except FileNotFoundError:
                pass
            fh.close()

    def held(self, key: str) -> bool:
        """Whether ``key`` is claimed (by this process or another)."""
        if key in self._held:
            return True
        try:
            fh = self._file(key).open("r")
        except FileNotFoundError:
            return False
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            return False

    def release(self, key: str) -> None:
        fh = self._held.pop(key, None)
        if fh is not None:
            self._file(key).unlink(missing_ok=True)
            fh.close()


def shared_work(items: Iterable[T], key: Callable[[T], str], needed: Callable[[T], bool],
                claims: Claims | None, poll: float = 5.0) -> Iterator[T]:
    """The items that still need work, each yielded while this process holds its claim, so
    processes sharing a cache split them: an item another process holds is passed over and
    revisited (every ``poll`` seconds once nothing else is left); one that no longer needs
    work by then (the other process cached it) is skipped. ``needed`` should re-read the
    cache. Without ``claims``, every needed item is yielded in order."""
    pending = list(items)
    while pending:
        deferred = []
        for item in pending:
            if not needed(item):
                continue
            if claims is None:
                yield item
                continue
            if not claims.take(key(item)):
                deferred.append(item)
                continue
            try:
                if needed(item):  # it may have been finished just before our claim
                    yield item
            finally:
                claims.release(key(item))
        if deferred and len(deferred) == len(pending):
            time.sleep(poll)  # all that is left is being worked on elsewhere
        pending = deferred
