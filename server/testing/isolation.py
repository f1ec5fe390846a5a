"""How the sandbox isolates a run: interpreter probing, bubblewrap command lines, privilege
drop, resource limits and the runner's environment.

Two modes (see :class:`server.testing.sandbox.Sandbox`):

``bwrap``
    bubblewrap builds a new root from read-only system directories and the interpreter's own
    directories, plus the read-write workspace copy; own network (none), PID, IPC and UTS
    namespaces. Started as root it runs without a user namespace and the launcher drops to
    ``nobody`` inside (so the process limit applies); started as an ordinary user it uses an
    unprivileged user namespace.
``rlimit``
    no namespaces: the same copy, limits, process-group/subreaper kill and (as root) the same
    privilege drop, plus an in-process network block. Weaker, and says so.

Probes run real processes once and are cached per interpreter.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from server.errors import PlancodeError

SANDBOX_UID = 65534  # nobody
SANDBOX_GID = 65534  # nogroup
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
    """Resource limits for the runner and everything it starts."""

    timeout: float
    memory_mb: int
    max_file_mb: int
    max_procs: int

    @property
    def cpu_seconds(self) -> int:
        return math.ceil(self.timeout) + 1

    def rlimits(self, uid: int) -> dict[str, int]:
        """The launcher's ``limits``: RLIMIT_NPROC counts every process of the uid, so the
        budget is what it already runs plus ``max_procs``."""
        mb = 1024 * 1024
        return {"cpu": self.cpu_seconds, "as": self.memory_mb * mb,
                "fsize": self.max_file_mb * mb, "nproc": count_tasks(uid) + self.max_procs,
                "core": 0}

    def summary(self) -> str:
        return (f"{self.timeout:g} s wall-clock, {self.cpu_seconds} s CPU per process, "
                f"{self.memory_mb} MB address space, {self.max_file_mb} MB per file and "
                f"{self.max_procs} processes")


@dataclass(frozen=True)
class Layout:
    """Where a run's directories are, on the host and as the runner sees them."""

    ws: str  # the workspace copy (read-write)
    out: str  # results file, HOME and TMPDIR (read-write)
    lib: str  # launcher, plugin, sitecustomize (read-only)
    ctl: str  # request file (read-only)


def host_layout(run_dir: Path, lib: Path) -> Layout:
    return Layout(ws=str(run_dir / "ws"), out=str(run_dir / "out"), lib=str(lib),
                  ctl=str(run_dir / "ctl"))


def inside_layout() -> Layout:
    return Layout(ws=f"{INSIDE}/ws", out=f"{INSIDE}/out", lib=f"{INSIDE}/lib",
                  ctl=f"{INSIDE}/ctl")


def runner_env(interp: Interpreter, seen: Layout, *, bwrap: bool, block_net: bool) -> dict:
    """A clean environment for the runner (nothing of the server's, which may hold secrets)."""
    paths = [seen.lib, seen.ws]
    if block_net:
        paths.insert(0, f"{seen.lib}/net")
    env = {
        "PATH": f"{os.path.dirname(interp.path)}:/usr/local/bin:/usr/bin:/bin",
        "HOME": f"{seen.out}/home",
        "TMPDIR": "/tmp" if bwrap else f"{seen.out}/tmp",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "MALLOC_ARENA_MAX": "2",  # glibc reserves 64 MB of address space per arena
        "PYTHONPATH": ":".join(paths),
        "PLANCODE_SANDBOX": "1",
        "PLANCODE_RESULTS": f"{seen.out}/results.jsonl",
        "PLANCODE_REQUEST": f"{seen.ctl}/request.json",
    }
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
    """How bubblewrap is started: as root without a user namespace (the launcher drops to
    nobody inside), or in an unprivileged user namespace (no drop possible)."""

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


def bwrap_args(bwrap: str, variant: BwrapVariant, interp: Interpreter, host: Layout,
               workspace: Path, tmp_mb: int) -> list[str]:
    """The bubblewrap command line up to (not including) the command it runs."""
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
    size = ["--size", str(tmp_mb * 1024 * 1024)] if bwrap_supports(bwrap, "--size") else []
    for tmp in ("/tmp", "/dev/shm"):  # world-writable like the real ones (multiprocessing)
        args += ["--perms", "1777", *size, "--tmpfs", tmp]
    made: set[str] = {"/", "/tmp"}
    ws_real = os.path.realpath(workspace)
    own, sys_path = interp.directories()
    for path in sorted([*own, *sys_path], key=len):
        if any(is_within(path, b) for b in bound):
            continue
        # sys.path entries inside the real workspace stay out (the copy is on PYTHONPATH); the
        # interpreter itself may live there (WORKSPACE/.venv), but never the workspace root.
        if is_within(path, ws_real) and (path == ws_real or path not in own):
            continue
        args += _parents(path, made, bound)
        args += ["--ro-bind", os.path.realpath(path), path]
        bound.append(path)
    for path in dict.fromkeys((ws_real, os.path.abspath(workspace))):
        if any(is_within(path, b) and path != b for b in bound):  # e.g. a workspace in /usr
            args += ["--tmpfs", path]
    inside = inside_layout()
    args += ["--perms", "0755", "--dir", INSIDE,
             "--bind", host.ws, inside.ws, "--bind", host.out, inside.out,
             "--ro-bind", host.lib, inside.lib, "--ro-bind", host.ctl, inside.ctl,
             "--chdir", inside.ws]
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
        if uid is not None:
            os.chown(d, uid, SANDBOX_GID)
    return run_dir, host


_PROBE_CODE = "import pytest, pathlib; pathlib.Path('probe.txt').write_text('ok')"


def _run_probe(argv: list[str], cwd: str, env: dict) -> tuple[bool, str]:
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT, check=False, start_new_session=True)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    ok = done.returncode == 0 and (Path(cwd) / "probe.txt").exists()
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return ok, (lines[-1] if lines else f"exit code {done.returncode}")


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
            ok, why = _run_probe(argv, host.ws, {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        if ok:
            result = (variant, "")
            break
        result = (None, f"bubblewrap does not work here ({why})")
    _bwrap_cache[key] = result
    return result


@dataclass(frozen=True)
class RlimitPrivileges:
    """What the rlimit mode can do about its user: drop to nobody, and whether nobody needs
    CAP_DAC_READ_SEARCH to reach the interpreter."""

    drop_uid: bool
    read_cap: bool


_rlimit_cache: dict[str, RlimitPrivileges] = {}


def probe_rlimit(interp: Interpreter, root: Path, lib: Path) -> RlimitPrivileges:
    """As root: can the runner work as nobody (plainly, else with the read capability)?
    As anyone else there is nothing to drop."""
    if os.geteuid() != 0:
        return RlimitPrivileges(False, False)
    if interp.path in _rlimit_cache:
        return _rlimit_cache[interp.path]
    result = RlimitPrivileges(False, False)
    for read_cap in (False, True):
        run_dir, host = _probe_layout(root, lib, SANDBOX_UID)
        try:
            config = {"argv": [interp.path, "-s", "-c", _PROBE_CODE], "uid": SANDBOX_UID,
                      "gid": SANDBOX_GID, "read_cap": read_cap, "limits": {"core": 0}}
            ok, _why = _run_probe(launcher_command(interp, host, config), host.ws,
                                  {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        if ok:
            result = RlimitPrivileges(True, read_cap)
            break
    _rlimit_cache[interp.path] = result
    return result


def describe_bwrap(variant: BwrapVariant, limits: Limits) -> str:
    who = ("as uid 65534 (nobody)" if variant.drop_uid
           else "in a user namespace (as root it stays uid 0 outside, so the process limit "
                "does not apply)" if os.geteuid() == 0 else "in a user namespace as you")
    return (f"bubblewrap: the candidate runs {who} with no network and its own PID/IPC "
            "namespaces, sees only read-only system and Python directories plus its throw-away "
            "copy of the workspace (your home, the real workspace and other files are "
            f"invisible), under limits of {limits.summary()}, and everything it started is "
            "killed with the namespace on timeout or cancel; not enforced: total disk use in the "
            "copy and /tmp (only the per-file limit) and how many CPU cores it keeps busy.")


def describe_rlimit(privileges: RlimitPrivileges, limits: Limits) -> str:
    if privileges.drop_uid and privileges.read_cap:
        who = ("as uid 65534 (nobody) but with the capability to read any file (your "
               "Python lives where nobody cannot reach it)")
    elif privileges.drop_uid:
        who = "as uid 65534 (nobody)"
    elif os.geteuid() == 0:
        who = "as root (dropping to nobody failed, so the process limit does not apply)"
    else:
        who = "as you"
    return (f"rlimit (weaker than bubblewrap): the candidate runs {who} in a "
            f"throw-away copy of the workspace, under limits of {limits.summary()}, and its "
            "whole process tree is killed on timeout or cancel; but there is no filesystem "
            "isolation beyond the copy (it can read, and where permissions allow write, "
            "anything its user can) and the network block is in-process only (a Python socket "
            "hook that subprocesses and C extensions bypass).")
