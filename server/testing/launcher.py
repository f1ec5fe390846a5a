"""The first process inside the sandbox: drop privileges, apply limits, exec the test runner.

This file is copied into the sandbox as ``plancode_launch.py`` and run as a script by the
chosen interpreter, so it uses the standard library only (never ``server``). It is invoked as
``python -I -S plancode_launch.py CONFIG_JSON`` where the JSON object holds:

``argv``
    the runner command to exec (``python -m pytest ...``).
``uid``, ``gid``
    drop to this user and group before exec (only when started as root), so that
    ``RLIMIT_NPROC`` applies (root is exempt from it) and file permissions bite.
``read_cap``
    keep ``CAP_DAC_READ_SEARCH`` (ambient) after dropping to ``uid``: needed when the
    interpreter lives where the unprivileged user cannot reach it (e.g. under ``/root``).
``limits``
    ``{"cpu": s, "as": bytes, "fsize": bytes, "nproc": n, "core": 0}``, set as both soft and
    hard limits just before exec.
``reaper``
    supervise instead of exec'ing directly: become a child subreaper, fork the runner and, when
    it ends or on SIGTERM, SIGKILL every descendant, including ones that left the process group
    with ``setsid``. Used without bubblewrap, where there is no PID namespace to do that.

It also provides :func:`block_network`, which the sandbox's ``sitecustomize.py`` calls in
rlimit mode: a best-effort, in-process block on non-Unix sockets.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import socket
import sys
import time

CAP_DAC_READ_SEARCH = 2
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
_CAP_VERSION_3 = 0x20080522

_LIMITS = {
    "cpu": resource.RLIMIT_CPU,
    "as": resource.RLIMIT_AS,
    "fsize": resource.RLIMIT_FSIZE,
    "nproc": resource.RLIMIT_NPROC,
    "core": resource.RLIMIT_CORE,
}


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, arg: int = 0, arg3: int = 0) -> None:
    libc = _libc()
    if libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(arg3), ctypes.c_ulong(0),
                  ctypes.c_ulong(0)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


def _keep_only_cap(cap: int) -> None:
    """Set effective, permitted and inheritable capabilities to just ``cap``, and raise it as
    an ambient capability so it survives exec of an ordinary binary."""
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)()
    data[0].effective = data[0].permitted = data[0].inheritable = 1 << cap
    if _libc().capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)


def drop_privileges(uid: int, gid: int, read_cap: bool) -> None:
    """Become ``uid``/``gid`` with no supplementary groups (and, if asked, keep only the
    capability to read and search any directory)."""
    if read_cap:
        _prctl(PR_SET_KEEPCAPS, 1)
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if read_cap:
        _keep_only_cap(CAP_DAC_READ_SEARCH)


def apply_limits(limits: dict[str, int]) -> None:
    """Lower each named resource limit to ``value`` (soft and hard); never raises one."""
    for name, value in limits.items():
        which = _LIMITS[name]
        _soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))


def exec_runner(config: dict) -> None:
    """Drop privileges if asked, apply limits, forbid privilege gain, exec the runner."""
    if config.get("uid") is not None and os.geteuid() == 0:
        drop_privileges(config["uid"], config["gid"], bool(config.get("read_cap")))
    apply_limits(config.get("limits", {}))
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    argv = config["argv"]
    os.execv(argv[0], argv)


def _descendants(root: int) -> list[tuple[int, bool]]:
    """(pid, is_zombie) for every live descendant of ``root``, from a scan of /proc."""
    children: dict[int, list[tuple[int, bool]]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) < 2:
            continue
        children.setdefault(int(fields[1]), []).append((int(name), fields[0] == b"Z"))
    found: list[tuple[int, bool]] = []
    todo = [root]
    while todo:
        for pid, zombie in children.get(todo.pop(), []):
            found.append((pid, zombie))
            todo.append(pid)
    return found


def _reap() -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_descendants(deadline_s: float = 5.0) -> None:
    """SIGKILL every descendant until none is left (a fork bomb keeps forking while we kill;
    the process limit bounds how long that takes)."""
    me = os.getpid()
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        live = [pid for pid, zombie in _descendants(me) if not zombie]
        for pid in live:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        _reap()
        if not live:
            return
        time.sleep(0.002)


class _Stop(Exception):
    """Raised by the signal handler to leave the wait loop."""


def _on_stop(signum: int, frame: object) -> None:
    raise _Stop


def supervise(config: dict) -> int:
    """Fork the runner as a subreaper; return its exit code once it and all descendants are
    gone (128 + signal when killed by a signal, 137 when stopped by SIGTERM)."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_stop)
    pid = os.fork()
    if pid == 0:
        try:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            exec_runner(config)
        except BaseException as exc:  # noqa: BLE001 - report anything, then die
            print(f"plancode sandbox: cannot start the runner: {exc}", file=sys.stderr)
        os._exit(127)
    code = 137
    try:
        while True:
            try:
                got, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if got == pid:
                code = os.waitstatus_to_exitcode(status)
                code = 128 - code if code < 0 else code
                break
    except _Stop:
        code = 137
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    kill_descendants()
    return code


class NetworkBlocked(PermissionError):
    """Raised for any attempt to use a non-Unix socket inside the rlimit sandbox."""


def block_network() -> None:
    """Make connect/connect_ex/bind/sendto/sendmsg raise for every non-AF_UNIX socket.

    In-process and best effort: a subprocess, a C extension or ``_socket`` used directly is
    not affected. Only used where bubblewrap (a real network namespace) is unavailable.
    """
    original = socket.socket

    def guard(name: str):
        method = getattr(original, name)

        def blocked(self, *args, **kwargs):
            if self.family != socket.AF_UNIX:
                raise NetworkBlocked(13, "network access is blocked in the plancode sandbox")
            return method(self, *args, **kwargs)

        blocked.__name__ = name
        return blocked

    for name in ("connect", "connect_ex", "bind", "sendto", "sendmsg"):
        setattr(original, name, guard(name))


def main(argv: list[str]) -> int:
    config = json.loads(argv[1])
    if config.get("reaper"):
        return supervise(config)
    try:
        exec_runner(config)
    except OSError as exc:
        print(f"plancode sandbox: cannot start the runner: {exc}", file=sys.stderr)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv))
