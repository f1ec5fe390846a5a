"""A memory cap for a whole run (the runner and everything it starts), through a cgroup of its
own; where no cgroup can be made, the honest fallback is the per-process address-space limit
times the process limit, and the sandbox says so.

:func:`probe` (once per interpreter) looks for a memory controller the server may create child
cgroups under: cgroup v2 (the server's own cgroup, with ``memory`` delegated to its children)
or cgroup v1 (the ``memory`` hierarchy, typically as root in a container). For each run
:meth:`MemoryCap.join` makes ``plancode-run-XXXX`` with the cap, and the runner's first process
enters it through a tiny ``/bin/sh`` prefix before it execs bubblewrap or the launcher, so
nothing the run starts can be outside it; afterwards whatever is left in it is killed and the
cgroup removed. The kernel's OOM killer then stops a run at the cap, counting every process and
the run's tmpfs pages together (a fork bomb of big allocations included).
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

_PREFIX = 'echo $$ > "$0" && exec "$@"'


@dataclass(frozen=True)
class MemoryCap:
    """Where run cgroups are made (``kind`` "" when nowhere, with ``why``)."""

    kind: str  # "cgroup2", "cgroup1" or ""
    parent: str = ""
    why: str = ""

    @property
    def available(self) -> bool:
        return bool(self.kind)

    def describe(self, memory_mb: int, max_procs: int) -> str:
        if self.kind:
            version = "v2" if self.kind == "cgroup2" else "v1"
            return (f"{memory_mb} MB of memory for the whole run (all its processes and its "
                    f"/tmp together; cgroup {version})")
        return (f"no whole-run memory cap ({self.why}): {memory_mb} MB of address space per "
                f"process times {max_procs} processes")

    @contextlib.contextmanager
    def join(self, memory_mb: int) -> Iterator[Joined]:
        """A fresh cgroup capped at ``memory_mb`` for one run (a no-op when unavailable)."""
        if not self.kind:
            yield Joined("", self.kind)
            return
        path = os.path.join(self.parent, f"plancode-run-{secrets.token_hex(6)}")
        try:
            os.mkdir(path)
            _set_cap(self.kind, path, memory_mb * 1024 * 1024)
        except OSError as exc:
            _remove(path)
            raise OSError(exc.errno, f"cannot make the run's memory cgroup {path}: "
                          f"{exc.strerror}") from exc
        joined = Joined(path, self.kind)
        try:
            yield joined
        finally:
            joined.oom_kills = _oom_kills(self.kind, path)
            _remove(path)


@dataclass
class Joined:
    """One run's cgroup: the argv prefix that enters it, and what the kernel did there."""

    path: str
    kind: str
    oom_kills: int = 0
    prefix: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.path:
            self.prefix = ["/bin/sh", "-c", _PREFIX, os.path.join(self.path, "cgroup.procs")]


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(text)


def _set_cap(kind: str, path: str, limit: int) -> None:
    if kind == "cgroup2":
        _write(os.path.join(path, "memory.max"), str(limit))
        with contextlib.suppress(OSError):  # no swap accounting: nothing to cap
            _write(os.path.join(path, "memory.swap.max"), "0")
        with contextlib.suppress(OSError):
            _write(os.path.join(path, "memory.oom.group"), "1")
    else:
        _write(os.path.join(path, "memory.limit_in_bytes"), str(limit))
        with contextlib.suppress(OSError):  # only with swap accounting
            _write(os.path.join(path, "memory.memsw.limit_in_bytes"), str(limit))


def _oom_kills(kind: str, path: str) -> int:
    name = "memory.events" if kind == "cgroup2" else "memory.oom_control"
    try:
        with open(os.path.join(path, name), encoding="ascii") as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _remove(path: str, limit: float = 3.0) -> None:
    """Kill whatever is still in the cgroup, then remove it (retrying while it empties)."""
    end = time.monotonic() + limit
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > end:
                return
        try:
            with open(os.path.join(path, "cgroup.procs"), encoding="ascii") as f:
                pids = [int(p) for p in f.read().split()]
        except (OSError, ValueError):
            pids = []
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def _mounts() -> list[tuple[str, str, str, str]]:
    """(mount point, root within the hierarchy, fstype, super options) of cgroup mounts."""
    found = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields, tail = left.split(), right.split()
                if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
                    found.append((fields[4], fields[3], tail[0], tail[2]))
    except OSError:
        pass
    return found


def _own_cgroups() -> dict[str, str]:
    """{"": v2 path, controller: v1 path} of this process."""
    own: dict[str, str] = {}
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            for line in f:
                parts = line.rstrip("\n").split(":", 2)
                if len(parts) == 3:
                    for controller in parts[1].split(",") if parts[1] else [""]:
                        own[controller] = parts[2]
    except OSError:
        pass
    return own


def _inside(mount: str, root: str, path: str) -> str | None:
    if root != "/" and not (path == root or path.startswith(root.rstrip("/") + "/")):
        return None
    rel = path[len(root):] if root != "/" else path
    return os.path.join(mount, rel.lstrip("/"))


def _try(kind: str, parent: str) -> str:
    """"" when a child cgroup with a memory cap can be made under ``parent``, else why not."""
    probe = os.path.join(parent, f"plancode-probe-{secrets.token_hex(4)}")
    try:
        os.mkdir(probe)
    except OSError as exc:
        return f"cannot create a cgroup under {parent}: {exc.strerror}"
    try:
        if kind == "cgroup2":
            with open(os.path.join(probe, "cgroup.controllers"), encoding="ascii") as f:
                if "memory" not in f.read().split():
                    return f"the memory controller is not delegated to {parent}'s children"
        _set_cap(kind, probe, 1 << 30)
        return ""
    except OSError as exc:
        return f"cannot set a memory cap under {parent}: {exc.strerror}"
    finally:
        _remove(probe)


@functools.cache
def probe() -> MemoryCap:
    """The first cgroup hierarchy where this process can cap a child's memory."""
    own = _own_cgroups()
    why = "no cgroup file system is mounted"
    for mount, root, fstype, options in _mounts():
        if fstype == "cgroup2" and "" in own:
            parent = _inside(mount, root, own[""])
            kind = "cgroup2"
        elif fstype == "cgroup" and "memory" in options.split(",") and "memory" in own:
            parent = _inside(mount, root, own["memory"])
            kind = "cgroup1"
        else:
            continue
        if parent is None or not os.path.isdir(parent):
            why = f"this process's {kind} cgroup is not visible under {mount}"
            continue
        problem = _try(kind, parent)
        if not problem:
            return MemoryCap(kind, parent)
        why = problem
    return MemoryCap("", why=why)
