"""The first process inside the sandbox: confine, drop privileges, apply limits, exec the runner.

This file is copied into the sandbox as ``plancode_launch.py`` and run as a script by the
chosen interpreter, so it uses the standard library only (never ``server``). It is invoked as
``python -I -S plancode_launch.py CONFIG_JSON`` where the JSON object holds:

``argv``
    the runner command to exec (``python -m pytest ...``).
``uid``, ``gid``
    drop to this user and group before exec (only when started as root). The sandbox picks a
    fresh uid for every run, so ``RLIMIT_NPROC`` counts only this run's processes and no run can
    signal, trace or read another's.
``read_cap``
    keep ``CAP_DAC_READ_SEARCH`` (ambient) after dropping to ``uid``: needed when the
    interpreter lives where the unprivileged user cannot reach it (e.g. under ``/root``). Only
    ever used together with Landlock, which still limits what can be read.
``limits``
    ``{"cpu": s, "as": bytes, "fsize": bytes, "nproc": n, "core": 0}``, set as both soft and
    hard limits just before exec.
``reaper``
    supervise instead of exec'ing directly: become a child subreaper, fork the runner and, when
    it ends or on SIGTERM, SIGKILL every descendant. Used without bubblewrap.
``confine``
    the kernel fallback (no bubblewrap), see :func:`confine_namespaces` and
    :func:`confine_process`: ``{"namespaces": bool, "userns": bool, "tmp_mb": n,
    "shm_mb": n, "protect": [paths to bind read-only], "mask": [paths to hide],
    "view": {"source": real workspace, "target": where the run sees it, "ops": [...]} or
    null, "read": [...], "write": [...], "landlock": min ABI, "seccomp": bool,
    "require_netns": bool}``; ``view`` is carried out by :func:`apply_view`.
``probe``
    print one JSON line describing what confinement is in force, then exec the runner.

Fds named in ``PLANCODE_KEY_FD`` and ``PLANCODE_RESULTS_FD`` pass through untouched.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import platform
import resource
import signal
import struct
import sys
import time

CAP_DAC_READ_SEARCH = 2
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_SET_SECCOMP = 22
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
_CAP_VERSION_3 = 0x20080522

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

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


_LIBC: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _prctl(option: int, arg: int = 0, arg3: int = 0) -> None:
    _check(_libc().prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(arg3), ctypes.c_ulong(0),
                         ctypes.c_ulong(0)), f"prctl({option})")


def _keep_only_cap(cap: int) -> None:
    """Set effective, permitted and inheritable capabilities to just ``cap``, and raise it as
    an ambient capability so it survives exec of an ordinary binary."""
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)()
    data[0].effective = data[0].permitted = data[0].inheritable = 1 << cap
    _check(_libc().capset(ctypes.byref(header), data), "capset")
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


# -- namespaces (kernel fallback) ------------------------------------------------------------

def _mount(source: str, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    libc = _libc()
    _check(libc.mount(source.encode(), target.encode(),
                      fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                      data.encode() if data else None), f"mount {target}")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def confine_namespaces(confine: dict, state: dict) -> None:
    """New mount, PID, network, IPC and UTS namespaces (through a user namespace when not
    root); private /tmp and /dev/shm; the protected files bound read-only; secrets masked.
    Records what worked in ``state``; raises when a namespace that ``confine`` requires cannot
    be made."""
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    uid, gid = os.getuid(), os.getgid()
    if os.geteuid() != 0:
        flags |= CLONE_NEWUSER
    if _libc().unshare(ctypes.c_int(flags)) != 0:
        err = ctypes.get_errno()
        if confine.get("require_netns"):
            raise OSError(err, f"unshare: {os.strerror(err)}")
        state["namespaces"] = f"none ({os.strerror(err)})"
        return
    if flags & CLONE_NEWUSER:
        with contextlib.suppress(OSError):
            _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    state["namespaces"] = "mount, pid, net, ipc, uts" + (", user" if flags & CLONE_NEWUSER
                                                         else "")
    state["netns"] = True
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    temporary = [t for t in ("/tmp", "/dev/shm") if os.path.isdir(t) and not os.path.islink(t)]
    kept = _keep_open(confine, temporary)
    tmp_mb = int(confine.get("tmp_mb", 256))
    sizes = {"/tmp": tmp_mb, "/dev/shm": int(confine.get("shm_mb", tmp_mb))}
    for tmp in temporary:
        _mount("tmpfs", tmp, "tmpfs", MS_NOSUID | MS_NODEV, f"size={sizes[tmp]}m,mode=1777")
    for path, fd in kept:  # the run's own directories under /tmp come back, nothing else
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(path, mode=0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)
    state["private_tmp"] = True
    if "/tmp" in temporary:  # HOME, under the same quota as the rest of /tmp
        os.mkdir("/tmp/home", 0o755)
        os.chmod("/tmp/home", 0o1777)
    for path in confine.get("mask", []):
        if os.path.isdir(path) and not os.path.islink(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=4k,mode=755")
        elif os.path.lexists(path) and not os.path.islink(path):
            _mount("/dev/null", path, None, MS_BIND)
    for path in confine.get("protect", []):
        _mount(path, path, None, MS_BIND)
        _mount("none", path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    state["protected"] = len(confine.get("protect", []))
    if confine.get("view"):
        apply_view(confine["view"], state)
        os.chdir(confine["view"]["target"])  # the old cwd is the directory under the view


def _read_only(path: str) -> None:
    """Make the mount at ``path`` read-only, keeping the flags a user namespace may not drop."""
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV
    got = os.statvfs(path).f_flag
    for st_flag, ms_flag in ((8, MS_NOEXEC), (1024, MS_NOATIME), (2048, MS_NODIRATIME)):
        if got & st_flag:
            flags |= ms_flag
    _mount("none", path, None, flags)


def apply_view(view: dict, state: dict) -> None:
    """The run's view of the workspace (see ``plancode/testing/view.py``): the real workspace
    bound read-only over itself, the operations applied there (so the masks also cover the
    real path, which Landlock's rule for the view reaches too), then all of it bound at
    ``target``, where the run sees it. Sources inside the workspace are opened before any
    operation can cover them."""
    source, target = view["source"], view["target"]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    fds: dict[str, int] = {}
    for op in view["ops"]:
        src = op.get("src", "")
        if op["op"] == "bind" and _within(src, source) and src not in fds:
            fds[src] = os.open(src, os.O_PATH | os.O_CLOEXEC)
    try:
        _mount(source, source, None, MS_BIND)
        _read_only(source)
        for op in view["ops"]:
            dst = os.path.join(source, op["dst"]) if op["dst"] else source
            kind = op["op"]
            if kind == "tmpfs":
                mode = "1777" if op.get("writable") else "755"
                _mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV,
                       f"size={int(op.get('mb', 1))}m,mode={mode}")
            elif kind == "dir":
                os.mkdir(dst, 0o755)
            elif kind == "symlink":
                os.symlink(op["src"], dst)
            elif kind == "bind":
                src = f"/proc/self/fd/{fds[op['src']]}" if op["src"] in fds else op["src"]
                if not os.path.lexists(dst):  # in a shadowing tmpfs: make the mount point
                    if os.path.isdir(src):
                        os.mkdir(dst, 0o755)
                    else:
                        os.close(os.open(dst, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
                _mount(src, dst, None, MS_BIND)
                _read_only(dst)
            elif kind == "ro":
                _read_only(dst)
    finally:
        for fd in fds.values():
            os.close(fd)
    # every mount in the tree is read-only already, but the writable top (a tmpfs)
    _mount(source, target, None, MS_BIND | MS_REC)
    state["view"] = len(view["ops"])


def _within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _keep_open(confine: dict, temporary: list[str]) -> list[tuple[str, int]]:
    """O_PATH fds of the run's paths that lie under /tmp or /dev/shm (outermost only), opened
    before private file systems hide them there."""
    view = confine.get("view") or {}
    paths = [p for key in ("read", "write", "protect") for p in confine.get(key, [])]
    paths += [view[k] for k in ("source", "target") if view.get(k)]
    paths += [os.path.dirname(op["src"]) for op in view.get("ops", [])  # masks, run's files
              if op["op"] == "bind" and not _within(op["src"], view["source"])]
    wanted = sorted({os.path.abspath(p) for p in paths if os.path.exists(p)}, key=len)
    kept: list[tuple[str, int]] = []
    for path in wanted:
        if any(_within(path, t) and path != t for t in temporary) and \
                not any(_within(path, k) for k, _fd in kept):
            kept.append((path, os.open(path, os.O_PATH | os.O_CLOEXEC)))
    return kept


def _mount_proc(state: dict) -> None:
    """A /proc for the new PID namespace (only this run's processes); keeps the old one when
    the kernel refuses (Landlock still stops access to other processes)."""
    try:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | 8)  # 8 = MS_NOEXEC
        state["own_proc"] = True
    except OSError as exc:
        state["own_proc"] = f"no ({exc.strerror})"


# -- Landlock ----------------------------------------------------------------------------------

_SYS_LANDLOCK_CREATE = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT = 446
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1, 2, 4, 8
_FS_ABI1 = (1 << 13) - 1
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1, 2
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1, 2
_FILE_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is absent or disabled."""
    result = _libc().syscall(_SYS_LANDLOCK_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(int(result), 0)


def _fs_rights(abi: int) -> int:
    rights = _FS_ABI1
    if abi >= 2:
        rights |= _FS_REFER
    if abi >= 3:
        rights |= _FS_TRUNCATE
    if abi >= 5:
        rights |= _FS_IOCTL_DEV
    return rights


def apply_landlock(confine: dict, state: dict) -> None:
    """Restrict this process and its future children to reading ``read`` paths and reading and
    writing ``write`` paths; no TCP unless in its own network namespace; no signals or abstract
    sockets outside the run (ABI 6). Landlock also forbids ptrace and /proc access to
    processes outside the run, whatever their uid."""
    abi = landlock_abi()
    if abi < int(confine.get("landlock", 1)):
        raise OSError(errno.ENOSYS, f"Landlock ABI {abi} is below the {confine['landlock']} "
                      "the probe found")
    handled = _fs_rights(abi)
    net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 and not state.get("netns") else 0
    scoped = (_SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL) if abi >= 6 else 0
    attr = struct.pack("QQQ", handled, net, scoped)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    buf = ctypes.create_string_buffer(attr[:size], size)
    libc = _libc()
    ruleset = _check(libc.syscall(_SYS_LANDLOCK_CREATE, buf, ctypes.c_size_t(size),
                                  ctypes.c_uint32(0)), "landlock_create_ruleset")
    read = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
    write = handled
    rules = [(p, read) for p in confine.get("read", [])]
    rules += [(p, write) for p in confine.get("write", [])]
    if state.get("private_tmp"):
        rules += [("/tmp", write), ("/dev/shm", write)]
    rules += [(p, _FS_READ_FILE | _FS_WRITE_FILE) for p in
              ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")]
    added = 0
    try:
        for path, access in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # a path that does not exist here grants nothing
            try:
                if not os.path.isdir(path):
                    access &= _FILE_RIGHTS
                access &= handled
                rule = ctypes.create_string_buffer(struct.pack("=Qi", access, fd), 12)
                _check(libc.syscall(_SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset),
                                    ctypes.c_int(1), rule, ctypes.c_uint32(0)),
                       f"landlock_add_rule {path}")
                added += 1
            finally:
                os.close(fd)
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        _check(libc.syscall(_SYS_LANDLOCK_RESTRICT, ctypes.c_int(ruleset), ctypes.c_uint32(0)),
               "landlock_restrict_self")
    finally:
        os.close(ruleset)
    state["landlock"] = {"abi": abi, "rules": added, "tcp_blocked": bool(net),
                         "signals_scoped": bool(scoped)}


# -- seccomp -----------------------------------------------------------------------------------

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# socket, ptrace, process_vm_readv, process_vm_writev, add_key, request_key, keyctl,
# io_uring_setup/enter/register (io_uring can open sockets past this filter)
_SYSCALLS = {
    "x86_64": {"socket": 41, "deny": [101, 310, 311, 248, 249, 250, 425, 426, 427]},
    "aarch64": {"socket": 198, "deny": [117, 270, 271, 217, 218, 219, 425, 426, 427]},
}
_AF_INET, _AF_INET6, _AF_NETLINK = 2, 10, 16
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_BPF_LD_W_ABS, _BPF_JEQ_K, _BPF_JGE_K, _BPF_RET_K = 0x20, 0x15, 0x35, 0x06


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def seccomp_program(machine: str, inet_allowed: bool) -> bytes | None:
    """A BPF filter: ``socket()`` only for AF_NETLINK (and AF_INET/AF_INET6 inside the run's
    own network namespace), never AF_UNIX (``socketpair`` still works); no ptrace,
    process_vm_*, keyrings or io_uring. None on an architecture it does not know."""
    table = _SYSCALLS.get(machine)
    if table is None:
        return None
    deny = _RET_ERRNO | errno.EACCES
    prog: list[bytes] = [
        _insn(_BPF_LD_W_ABS, 0, 0, 4),  # arch
        _insn(_BPF_JEQ_K, 1, 0, _AUDIT_ARCH[machine]),
        _insn(_BPF_RET_K, 0, 0, deny),
        _insn(_BPF_LD_W_ABS, 0, 0, 0),  # syscall number
    ]
    if machine == "x86_64":  # x32 ABI numbers
        prog += [_insn(_BPF_JGE_K, 0, 1, 0x40000000), _insn(_BPF_RET_K, 0, 0, deny)]
    for nr in table["deny"]:
        prog += [_insn(_BPF_JEQ_K, 0, 1, nr), _insn(_BPF_RET_K, 0, 0, deny)]
    families = [_AF_NETLINK] + ([_AF_INET, _AF_INET6] if inet_allowed else [])
    # if nr == socket: load args[0] (low word) and allow only the listed families
    prog += [_insn(_BPF_JEQ_K, 0, 2 + 2 * len(families), table["socket"]),
             _insn(_BPF_LD_W_ABS, 0, 0, 16)]
    for family in families:
        prog += [_insn(_BPF_JEQ_K, 0, 1, family), _insn(_BPF_RET_K, 0, 0, _RET_ALLOW)]
    prog += [_insn(_BPF_RET_K, 0, 0, deny), _insn(_BPF_RET_K, 0, 0, _RET_ALLOW)]
    return b"".join(prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def apply_seccomp(state: dict) -> None:
    program = seccomp_program(platform.machine(), bool(state.get("netns")))
    if program is None:
        raise OSError(errno.ENOSYS, f"no seccomp filter for {platform.machine()}")
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _check(_libc().prctl(PR_SET_SECCOMP, ctypes.c_ulong(2), ctypes.byref(fprog),
                         ctypes.c_ulong(0), ctypes.c_ulong(0)), "seccomp")
    state["seccomp"] = True


def confine_process(config: dict, state: dict) -> None:
    """Drop privileges, then Landlock and seccomp (in that order: both need no privilege)."""
    confine = config.get("confine")
    if config.get("uid") is not None and os.geteuid() == 0:
        drop_privileges(config["uid"], config["gid"], bool(config.get("read_cap")))
    if confine:
        apply_landlock(confine, state)
        if confine.get("seccomp", True):
            apply_seccomp(state)


def exec_runner(config: dict, state: dict | None = None) -> None:
    """Confine, apply limits, forbid privilege gain, exec the runner."""
    state = {} if state is None else state
    confine_process(config, state)
    apply_limits(config.get("limits", {}))
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    if config.get("probe"):
        state["uid"] = os.getuid()
        print("PLANCODE-CONFINEMENT " + json.dumps(state), flush=True)
    argv = config["argv"]
    os.execv(argv[0], argv)


# -- supervision -------------------------------------------------------------------------------

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


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _namespace_init(config: dict, state: dict) -> int:
    """PID 1 of the run's PID namespace: mount its /proc, fork the runner, reap orphans, and
    exit with the runner's status (the kernel then kills whatever is left in the namespace)."""
    _mount_proc(state)
    pid = os.fork()
    if pid == 0:
        _start_child(config, state)
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 127
        if got == pid:
            return _exit_code(status)


def _start_child(config: dict, state: dict) -> None:
    try:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        exec_runner(config, state)
    except BaseException as exc:  # noqa: BLE001 - report anything, then die
        print(f"plancode sandbox: cannot start the runner: {exc}", file=sys.stderr, flush=True)
    os._exit(126)


def supervise(config: dict) -> int:
    """Fork the runner as a subreaper (inside new namespaces when ``confine`` asks); return its
    exit code once it and all descendants are gone (128 + signal when killed by a signal, 137
    when stopped by SIGTERM). Never runs the runner with less confinement than asked."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    state: dict = {}
    confine = config.get("confine")
    if confine and confine.get("namespaces"):
        try:
            confine_namespaces(confine, state)
        except OSError as exc:
            print(f"plancode sandbox: cannot confine the runner: {exc}", file=sys.stderr,
                  flush=True)
            return 126
    for sig in _STOP_SIGNALS:
        signal.signal(sig, _on_stop)
    pid = os.fork()
    if pid == 0:
        if state.get("netns"):  # the first child is PID 1 of the new PID namespace
            os._exit(_namespace_init(config, state))
        _start_child(config, state)
    code = 137
    try:
        while True:
            try:
                got, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if got == pid:
                code = _exit_code(status)
                break
    except _Stop:
        code = 137
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)  # PID 1 of the namespace: takes every process with it
    kill_descendants()
    return code


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
