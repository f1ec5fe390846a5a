"""How the sandbox isolates a run: interpreter probing, bubblewrap command lines, the kernel
fallback's configuration, the runner's environment, and the sentences that describe each.

Three modes (see :class:`plancode.testing.sandbox.Sandbox`):

``bwrap``
    bubblewrap builds a new root from read-only system directories and the interpreter's own
    directories, plus the read-only view of the workspace (``view.py``) and a size-limited
    private /tmp and /dev/shm; own network (none), PID, IPC and UTS namespaces. Started as
    root it runs without a user namespace and the launcher drops to a fresh uid for the run;
    started as an ordinary user it uses an unprivileged user namespace.
``landlock``
    no bubblewrap: the launcher confines the run itself with kernel mechanisms. New mount, PID,
    network, IPC and UTS namespaces (through an unprivileged user namespace when not root;
    skipped when the kernel refuses them to an ordinary user), size-limited private /tmp and
    /dev/shm, the workspace view mounted; then a fresh uid (as root), Landlock (only system
    and Python directories and the view are readable, only /tmp and /dev/shm writable; no TCP
    without a network namespace; no signals out of the run) and a seccomp filter (no AF_UNIX
    or, outside a network namespace, internet sockets; no ptrace, keyrings or io_uring).
    Without namespaces the workspace is copied once per Sandbox, read-only to the runs.
``none``
    no isolation at all, only limits and the one copy: used only when the user set
    ``isolation = "none-i-accept-the-risk"``.

Probes run real processes once and are cached per interpreter.
"""

from __future__ import annotations

import functools
import json
import math
import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from plancode.errors import PlancodeError

SANDBOX_UID = 65534  # nobody: only used by the probes
SANDBOX_GID = 65534  # nogroup
RUN_UID_BASE = 2_000_000_000  # each run as root gets a fresh uid from this range
RUN_UID_SPAN = 100_000_000
NONE_OPT_IN = "none-i-accept-the-risk"
# What Sandbox.isolation reports when a run is confined (the modes above); "none" otherwise.
CONFINING = ("bwrap", "landlock")
INSIDE = "/sandbox"  # where the run's directories appear under bubblewrap
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
MASKED_ETC = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers",
              "/etc/sudoers.d", "/etc/ssh", "/etc/ssl/private", "/etc/security/opasswd",
              "/etc/krb5.keytab", "/etc/credstore", "/etc/credstore.encrypted")
PROBE_TIMEOUT = 60.0

_INTERPRETER_PROBE = r"""
import json, sys
info = {"executable": sys.executable, "version": sys.version.split()[0],
        "prefixes": [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix],
        "path": [p for p in sys.path if p], "pytest": None, "error": ""}
try:
    import pytest
    info["pytest"] = pytest.__version__
except BaseException as exc:
    info["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(info))
"""


@dataclass(frozen=True)
class Interpreter:
    """The Python that runs pytest in the sandbox, as it describes itself."""

    path: str  # what the sandbox executes
    executable: str  # its sys.executable
    version: str
    prefixes: tuple[str, ...]
    sys_path: tuple[str, ...]
    pytest_version: str | None
    error: str = ""  # why pytest could not be imported

    def directories(self) -> tuple[list[str], list[str]]:
        """(the interpreter's own directories: prefixes and bin directories; existing sys.path
        entries), absolute, each both as written and resolved, parents before children."""
        own = [*self.prefixes, os.path.dirname(self.path), os.path.dirname(self.executable),
               os.path.dirname(os.path.realpath(self.path))]
        return _normalized(own), _normalized(list(self.sys_path))


def _normalized(paths: list[str]) -> list[str]:
    seen: list[str] = []
    for entry in paths:
        if not entry or not os.path.isabs(entry) or not os.path.exists(entry):
            continue
        for candidate in (os.path.abspath(entry), os.path.realpath(entry)):
            if candidate not in seen:
                seen.append(candidate)
    return sorted(seen, key=len)


_interpreters: dict[str, Interpreter] = {}


def probe_interpreter(python: str) -> Interpreter:
    """Ask ``python`` for its prefixes and sys.path and whether it can import pytest (cached
    once it can, so installing pytest later is noticed)."""
    if python in _interpreters:
        return _interpreters[python]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    try:
        done = subprocess.run([python, "-s", "-c", _INTERPRETER_PROBE], capture_output=True,
                              text=True, env=env, cwd="/", timeout=PROBE_TIMEOUT, check=False)
        info = json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        raise PlancodeError(
            f"cannot run the Python interpreter {python} for the test sandbox: {exc}",
            "pass python= an interpreter that exists and runs (e.g. your project's "
            ".venv/bin/python)") from exc
    interp = Interpreter(path=python, executable=info["executable"], version=info["version"],
                         prefixes=tuple(info["prefixes"]), sys_path=tuple(info["path"]),
                         pytest_version=info["pytest"], error=info["error"])
    if interp.pytest_version:
        _interpreters[python] = interp
    return interp


def choose_interpreter(workspace: Path, python: str | None, default: str) -> Interpreter:
    """``python`` if given, else the workspace's ``.venv/bin/python`` when it can import pytest,
    else ``default``; raise when the choice cannot import pytest."""
    if python is None:
        venv_python = workspace / ".venv" / "bin" / "python"
        if venv_python.exists():
            try:
                local = probe_interpreter(str(venv_python))
            except PlancodeError:
                local = None
            if local is not None and local.pytest_version:
                return local
        python = default
    interp = probe_interpreter(python)
    if not interp.pytest_version:
        raise PlancodeError(
            f"pytest is not importable by {python} ({interp.error or 'no pytest'}), so the "
            "sandbox cannot run your tests",
            f"`{python} -m pip install pytest`, or pass python= an interpreter that has it")
    return interp


def is_within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def count_tasks(uid: int) -> int:
    """Processes and threads that ``uid`` runs now: they count against its RLIMIT_NPROC."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            total += len(os.listdir(f"/proc/{name}/task"))
        except OSError:
            continue
    return total


@dataclass(frozen=True)
class Limits:
    """Resource limits for the runner and everything it starts. ``write_mb``: everything a
    run can write (its private /tmp, which holds its HOME, /dev/shm and new files at the top
    of the workspace view, together)."""

    timeout: float
    memory_mb: int
    max_file_mb: int
    max_procs: int
    write_mb: int = 512

    def tmpfs_mb(self) -> tuple[int, int, int]:
        """(/tmp, /dev/shm, workspace top) sizes in MB: ``write_mb`` split 6:1:1."""
        return split_quota(self.write_mb)

    @property
    def cpu_seconds(self) -> int:
        return math.ceil(self.timeout) + 1

    def rlimits(self, uid: int, fresh_uid: bool) -> dict[str, int]:
        """The launcher's ``limits``: RLIMIT_NPROC counts every process of the uid, so with the
        user's own uid the budget is what it already runs plus ``max_procs``."""
        mb = 1024 * 1024
        nproc = self.max_procs if fresh_uid else count_tasks(uid) + self.max_procs
        return {"cpu": self.cpu_seconds, "as": self.memory_mb * mb,
                "fsize": self.max_file_mb * mb, "nproc": nproc, "core": 0}

    def summary(self) -> str:
        return (f"{self.timeout:g} s wall-clock, {self.cpu_seconds} s CPU per process, "
                f"{self.memory_mb} MB address space, {self.max_file_mb} MB per file and "
                f"{self.max_procs} processes")


def split_quota(write_mb: int) -> tuple[int, int, int]:
    """(/tmp, /dev/shm, workspace top) sizes in MB for a total write quota of ``write_mb``."""
    small = max(4, write_mb // 8)
    return max(4, write_mb - 2 * small), small, small


def run_uid() -> int:
    """A fresh uid (and gid) for one run started as root: no file, process or process limit
    is shared with anything else on the machine."""
    return RUN_UID_BASE + secrets.randbelow(RUN_UID_SPAN)


@dataclass(frozen=True)
class Layout:
    """Where a run's directories are, on the host and as the runner sees them.

    ``mounts`` is None for a plain writable ``ws`` directory (the probes), else the run's view
    of the real workspace ``source``: the mount operations of :func:`plancode.testing.view.mounts`
    (an empty list in the last-resort copy, where ``ws`` is that copy, read-only to the run).
    """

    ws: str  # the workspace as the run sees it (read-only unless a probe's)
    out: str  # HOME and TMPDIR when the run has no private /tmp (read-write)
    lib: str  # launcher and plugin (read-only)
    ctl: str  # request file (read-only)
    source: str = ""  # the real workspace behind a view
    mounts: list | None = field(default=None, compare=False, hash=False)


def host_layout(run_dir: Path, lib: Path) -> Layout:
    return Layout(ws=str(run_dir / "ws"), out=str(run_dir / "out"), lib=str(lib),
                  ctl=str(run_dir / "ctl"))


def inside_layout() -> Layout:
    return Layout(ws=f"{INSIDE}/ws", out=f"{INSIDE}/out", lib=f"{INSIDE}/lib",
                  ctl=f"{INSIDE}/ctl")


def runner_env(interp: Interpreter, seen: Layout, *, private_tmp: bool,
               server_python: bool) -> dict:
    """A clean environment for the runner (nothing of the server's, which may hold secrets).
    With the server's own interpreter, pytest's plugin autoload is off (plancode's own pytest
    plugins must not run in the user's tests); the user's interpreter keeps its plugins. With
    a private /tmp, HOME is in it (everything the run writes is under the one quota)."""
    env = {
        "PATH": f"{os.path.dirname(interp.path)}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp/home" if private_tmp else f"{seen.out}/home",
        "USER": "plancode",
        "LOGNAME": "plancode",
        "TMPDIR": "/tmp" if private_tmp else f"{seen.out}/tmp",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        # Bytecode is read from the usual __pycache__ directories and never written. The run
        # cannot plant a .pyc: the workspace view is read-only, and at its writable top
        # __pycache__ is a read-only empty directory (view.mounts). (It used to point
        # PYTHONPYCACHEPREFIX at a directory that does not exist, which made every run compile
        # pytest and the standard library from source: about 4 s of a 5 s run here.)
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "MALLOC_ARENA_MAX": "2",  # glibc reserves 64 MB of address space per arena
        "PYTHONPATH": f"{seen.lib}:{seen.ws}",
        "PLANCODE_SANDBOX": "1",
        "PLANCODE_REQUEST": f"{seen.ctl}/request.json",
    }
    if server_python:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return env


def add_src_to_pythonpath(env: dict, seen: Layout, host_ws: Path) -> None:
    """Put ``src/`` on PYTHONPATH after the copy's root when the project has a src layout."""
    if (host_ws / "src").is_dir():
        env["PYTHONPATH"] += f":{seen.ws}/src"


def launcher_command(interp: Interpreter, seen: Layout, config: dict) -> list[str]:
    """``python -I -S plancode_launch.py CONFIG``: fast start, ignores PYTHON* variables."""
    return [interp.path, "-I", "-S", f"{seen.lib}/plancode_launch.py", json.dumps(config)]


@dataclass(frozen=True)
class BwrapVariant:
    """How bubblewrap is started: as root without a user namespace (the launcher drops to a
    fresh uid inside), or in an unprivileged user namespace (no drop possible)."""

    name: str  # "root" or "userns"
    namespace_args: tuple[str, ...]
    drop_uid: bool


ROOT_VARIANT = BwrapVariant(
    "root", ("--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
             "--unshare-cgroup-try", "--cap-drop", "ALL", "--cap-add", "CAP_SETUID",
             "--cap-add", "CAP_SETGID"), drop_uid=True)
USERNS_VARIANT = BwrapVariant("userns", ("--unshare-all",), drop_uid=False)
USERNS_AS_ROOT_VARIANT = BwrapVariant("userns", ("--unshare-all", "--cap-drop", "ALL"),
                                      drop_uid=False)


@functools.cache
def bwrap_supports(bwrap: str, option: str) -> bool:
    try:
        done = subprocess.run([bwrap, "--help"], capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return option in done.stdout


def readable_dirs(interp: Interpreter, workspace: Path) -> list[str]:
    """The interpreter's directories and sys.path entries the run may read: never the real
    workspace (the copy is on PYTHONPATH), though the interpreter itself may live there
    (WORKSPACE/.venv)."""
    ws_real = os.path.realpath(workspace)
    own, sys_path = interp.directories()
    found: list[str] = []
    for path in sorted([*own, *sys_path], key=len):
        if is_within(path, ws_real) and (path == ws_real or path not in own):
            continue
        if path not in found:
            found.append(path)
    return found


def bwrap_args(bwrap: str, variant: BwrapVariant, interp: Interpreter, host: Layout,
               workspace: Path, tmp_mb: int, protect: list[str] = ()) -> list[str]:
    """The bubblewrap command line up to (not including) the command it runs. ``tmp_mb``:
    the write quota, split between /tmp (which holds HOME) and /dev/shm; ``protect``: files
    of a writable ``ws`` (host paths) bound read-only over themselves."""
    args = [bwrap, *variant.namespace_args, "--die-with-parent", "--new-session"]
    bound: list[str] = []  # host paths visible inside, at the same path
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
            bound.append(d)
    args += ["--ro-bind", "/etc", "/etc"]
    bound.append("/etc")
    for path in MASKED_ETC:
        if os.path.isdir(path) and not os.path.islink(path):
            args += ["--tmpfs", path]
        elif os.path.lexists(path):
            args += ["--ro-bind", "/dev/null", path]
    args += ["--proc", "/proc", "--dev", "/dev"]
    sized = bwrap_supports(bwrap, "--size")
    for tmp, mb in zip(("/tmp", "/dev/shm"), split_quota(tmp_mb)[:2], strict=True):
        size = ["--size", str(mb * 1024 * 1024)] if sized else []
        # world-writable like the real ones (multiprocessing)
        args += ["--perms", "1777", *size, "--tmpfs", tmp]
    args += ["--perms", "1777", "--dir", "/tmp/home"]
    made: set[str] = {"/", "/tmp"}
    ws_real = os.path.realpath(workspace)
    for path in readable_dirs(interp, workspace):
        if any(is_within(path, b) for b in bound):
            continue
        args += _parents(path, made, bound)
        args += ["--ro-bind", os.path.realpath(path), path]
        bound.append(path)
    for path in dict.fromkeys((ws_real, os.path.abspath(workspace))):
        if any(is_within(path, b) and path != b for b in bound):  # e.g. a workspace in /usr
            args += ["--tmpfs", path]
    inside = inside_layout()
    args += ["--perms", "0755", "--dir", INSIDE]
    if host.mounts is None:
        args += ["--bind", host.ws, inside.ws, "--bind", host.out, inside.out]
    else:
        args += ["--ro-bind", host.source, inside.ws]
        args += bwrap_view_args(host.mounts, inside.ws, sized)
    args += ["--ro-bind", host.lib, inside.lib, "--ro-bind", host.ctl, inside.ctl]
    for path in protect:
        rel = os.path.relpath(path, host.ws)
        args += ["--ro-bind", path, f"{inside.ws}/{rel}"]
    args += ["--chdir", inside.ws]
    return args


def bwrap_view_args(ops: list[dict], target: str, sized: bool) -> list[str]:
    """bubblewrap options that carry out :func:`plancode.testing.view.mounts` under
    ``target`` (the same operations the kernel fallback's launcher performs)."""
    args: list[str] = []
    for op in ops:
        dst = f"{target}/{op['dst']}" if op["dst"] else target
        kind = op["op"]
        if kind == "tmpfs":
            size = int(op.get("mb", 1)) << 20
            args += ["--perms", "1777" if op.get("writable") else "0755",
                     *(["--size", str(size)] if sized else []), "--tmpfs", dst]
        elif kind == "dir":
            args += ["--perms", "0755", "--dir", dst]
        elif kind == "symlink":
            args += ["--symlink", op["src"], dst]
        elif kind == "bind":
            args += ["--ro-bind", op["src"], dst]
        elif kind == "ro":
            args += ["--remount-ro", dst]
    return args


def _parents(path: str, made: set[str], bound: list[str]) -> list[str]:
    """``--dir`` with mode 0755 for each missing ancestor of ``path`` (bubblewrap would make
    them 0700, which the unprivileged runner cannot traverse)."""
    args: list[str] = []
    parts = Path(path).parents
    for parent in reversed([str(p) for p in parts]):
        if parent in made or any(is_within(parent, b) for b in bound):
            continue
        args += ["--perms", "0755", "--dir", parent]
        made.add(parent)
    return args


def _probe_layout(root: Path, lib: Path, uid: int | None) -> tuple[Path, Layout]:
    run_dir = Path(tempfile.mkdtemp(prefix="probe-", dir=root))
    run_dir.chmod(0o711)
    host = host_layout(run_dir, lib)
    for d in (host.ws, host.out, host.ctl):
        os.mkdir(d)
        os.chmod(d, 0o755)
        if uid is not None:
            os.chown(d, uid, uid)
    return run_dir, host


_PROBE_CODE = "import pytest, pathlib; pathlib.Path('probe.txt').write_text('ok')"


def _run_probe(argv: list[str], cwd: str, env: dict) -> tuple[bool, str, str]:
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT, check=False, start_new_session=True)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc), ""
    ok = done.returncode == 0 and (Path(cwd) / "probe.txt").exists()
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return ok, (lines[-1] if lines else f"exit code {done.returncode}"), done.stdout


_bwrap_cache: dict[tuple[str, str, int], tuple[BwrapVariant | None, str]] = {}


def probe_bwrap(bwrap: str | None, interp: Interpreter, root: Path, lib: Path,
                workspace: Path) -> tuple[BwrapVariant | None, str]:
    """The first bubblewrap variant that really runs the interpreter (importing pytest and
    writing to the copy), or None and why not. Cached per (bwrap, interpreter, euid)."""
    if bwrap is None:
        return None, "bubblewrap (bwrap) is not installed"
    key = (bwrap, interp.path, os.geteuid())
    if key in _bwrap_cache:
        return _bwrap_cache[key]
    variants = ([ROOT_VARIANT, USERNS_AS_ROOT_VARIANT] if os.geteuid() == 0
                else [USERNS_VARIANT])
    why = ""
    result: tuple[BwrapVariant | None, str] = (None, "")
    for variant in variants:
        uid = SANDBOX_UID if variant.drop_uid else None
        run_dir, host = _probe_layout(root, lib, uid)
        try:
            inside = inside_layout()
            config = {"argv": [interp.path, "-s", "-c", _PROBE_CODE],
                      "uid": uid, "gid": SANDBOX_GID, "limits": {"core": 0}}
            argv = (bwrap_args(bwrap, variant, interp, host, workspace, 64)
                    + launcher_command(interp, inside, config))
            ok, why, _out = _run_probe(argv, host.ws,
                                       {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        if ok:
            result = (variant, "")
            break
        result = (None, f"bubblewrap does not work here ({why})")
    _bwrap_cache[key] = result
    return result


@dataclass(frozen=True)
class Confinement:
    """What the kernel fallback achieved in its probe, and so requires of every run."""

    namespaces: bool  # mount/PID/network/IPC/UTS namespaces (and private /tmp, /dev/shm)
    landlock_abi: int
    read_cap: bool  # as root: the run's uid needs CAP_DAC_READ_SEARCH to reach the interpreter
    drop_uid: bool  # as root: a fresh uid per run
    state: dict = field(default_factory=dict, compare=False)

    def config(self, interp: Interpreter, host: Layout, workspace: Path, tmp_mb: int,
               protect: list[str]) -> dict:
        """The launcher's ``confine`` object for one run. With a view (``host.mounts``), the
        run reads the workspace through it and writes only its private /tmp (namespaces) or
        ``out`` (the last-resort copy, read-only to the run)."""
        read = [*SYSTEM_DIRS, "/etc", "/proc", "/sys/devices/system/cpu",
                *readable_dirs(interp, workspace), host.lib, host.ctl]
        write = [host.ws, host.out]
        view = None
        if host.mounts is not None:
            read.append(host.ws)
            write = [] if self.namespaces else [host.out]
            if self.namespaces:
                view = {"source": host.source, "target": host.ws, "ops": host.mounts}
        tmp, shm, _top = split_quota(tmp_mb)
        return {"namespaces": self.namespaces, "require_netns": self.namespaces,
                "userns": os.geteuid() != 0, "tmp_mb": tmp, "shm_mb": shm,
                "protect": list(protect), "mask": list(MASKED_ETC), "view": view,
                "read": [p for p in read if os.path.exists(p)],
                "write": write, "landlock": self.landlock_abi, "seccomp": True}


_landlock_cache: dict[tuple[str, int], tuple[Confinement | None, str]] = {}


def probe_landlock(interp: Interpreter, root: Path, lib: Path,
                   workspace: Path) -> tuple[Confinement | None, str]:
    """The strongest kernel confinement that really runs the interpreter here: namespaces plus
    Landlock plus seccomp, else (an ordinary user whose kernel refuses user namespaces)
    Landlock plus seccomp; None and why when Landlock is missing or nothing works."""
    key = (interp.path, os.geteuid())
    if key in _landlock_cache:
        return _landlock_cache[key]
    root_user = os.geteuid() == 0
    tries = [(True, False), (True, True)] if root_user else [(True, False), (False, False)]
    why = "no kernel confinement worked"
    result: tuple[Confinement | None, str] = (None, why)
    for namespaces, read_cap in tries:
        uid = run_uid() if root_user else None
        run_dir, host = _probe_layout(root, lib, uid)
        try:
            trial = Confinement(namespaces, 1, read_cap, root_user)
            config = {"argv": [interp.path, "-s", "-c", _PROBE_CODE], "uid": uid, "gid": uid,
                      "read_cap": read_cap, "limits": {"core": 0}, "reaper": True,
                      "probe": True,
                      "confine": trial.config(interp, host, workspace, 16, [])}
            ok, why, out = _run_probe(launcher_command(interp, host, config), host.ws,
                                      {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        state = _confinement_state(out)
        if ok and state.get("landlock"):
            result = (Confinement(namespaces, int(state["landlock"]["abi"]), read_cap,
                                  root_user, state), "")
            break
        result = (None, f"the kernel fallback does not work here ({why})")
    _landlock_cache[key] = result
    return result


def _confinement_state(stdout: str) -> dict:
    for line in stdout.splitlines():
        if line.startswith("PLANCODE-CONFINEMENT "):
            try:
                return json.loads(line.split(" ", 1)[1])
            except ValueError:
                return {}
    return {}


def describe_bwrap(variant: BwrapVariant, limits: Limits) -> str:
    who = ("as a fresh uid of its own" if variant.drop_uid
           else "in a user namespace (as root it stays uid 0 outside, so the process limit "
                "does not apply)" if os.geteuid() == 0 else "in a user namespace as you")
    return (f"bubblewrap: the candidate runs {who} with no network and its own PID/IPC "
            "namespaces, sees only read-only system and Python directories plus a read-only "
            "view of the workspace with secrets masked (your home and other files are "
            "invisible), writes only its private /tmp, under limits of "
            f"{limits.summary()}, and everything it started is killed with the namespace on "
            "timeout or cancel; not enforced: how many CPU cores it keeps busy.")


def describe_landlock(confinement: Confinement, limits: Limits) -> str:
    who = "as a fresh uid of its own" if confinement.drop_uid else "as you"
    if confinement.namespaces:
        spaces = ("in its own mount, PID, network (none) and IPC namespaces with a private "
                  "/tmp and /dev/shm and a read-only view of the workspace, secrets masked")
        where = "its private /tmp"
    else:
        spaces = ("without namespaces (the kernel refuses them to you), so with no /tmp or "
                  "/dev/shm and no network at all, in a copy of the workspace made once per "
                  "pipeline run (secrets left out) that it may only read")
        where = "its own HOME and TMPDIR"
    scoped = ("signals to other processes are blocked by Landlock"
              if confinement.landlock_abi >= 6 else
              "other processes are out of reach by PID namespace" if confinement.namespaces
              else "it may signal your other processes (Landlock ABI < 6)")
    return (f"kernel fallback (no bubblewrap; Landlock ABI {confinement.landlock_abi} and "
            f"seccomp): the candidate runs {who} {spaces}; it can read only system and Python "
            f"directories and the workspace, and write only {where} (your home, the real "
            "workspace and other files are out of reach); no AF_UNIX sockets, ptrace or "
            "keyrings; "
            f"{scoped}; limits of {limits.summary()}; everything it started is killed on "
            "timeout or cancel.")


def describe_none(limits: Limits) -> str:
    return (f"NO ISOLATION ({NONE_OPT_IN}): the candidate runs as you in a copy of the "
            f"workspace under limits of {limits.summary()}, but it can read and write "
            "everything you can, use the network and signal your processes.")
