"""Run a workspace's tests against one candidate, safely.

Every run works on a fresh throw-away copy of the workspace with the candidate's files written
into it; the real workspace is only ever read. The runner (``python -m pytest``) starts through
a small launcher (``launcher.py``) that drops root to ``nobody``, applies resource limits and
forbids privilege gain, in its own session and process group, under bubblewrap when it works
(see ``isolation.py``). A wall-clock timeout and a cancel token are polled every 50 ms; either
kills the whole tree. Verdicts come from the JSON lines our pytest plugin (``pytest_plugin.py``)
writes as it goes, never from pytest's text output.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from server.errors import PlancodeError
from server.testing import isolation as iso
from server.testing.isolation import (
    SANDBOX_GID,
    SANDBOX_UID,
    BwrapVariant,
    Interpreter,
    Limits,
    RlimitPrivileges,
)
from server.testing.types import RunResult, TestCase, TestVerdict

if TYPE_CHECKING:
    from server.engine.types import CancelToken

ISOLATIONS = ("auto", "bwrap", "rlimit")
MAX_COPY_MB = 200
IGNORED_ANYWHERE = frozenset({".git", ".hg", ".svn", ".venv", "venv", "node_modules",
                              "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache",
                              ".tox", ".nox"})
IGNORED_AT_TOP = frozenset({"build", "dist"})
POLL_SECONDS = 0.05
TAIL_CHARS = 4000
_RANK = {"error": 0, "timeout": 1, "failed": 2, "not-run": 3, "passed": 4, "skipped": 5}


def _ignored(root: Path, directory: str, name: str) -> bool:
    if name in IGNORED_ANYWHERE or name.endswith(".egg-info"):
        return True
    if name in IGNORED_AT_TOP and Path(directory) == root:
        return True
    try:  # sockets, FIFOs, devices: copying would block or fail
        mode = os.lstat(os.path.join(directory, name)).st_mode
    except OSError:
        return True
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode))


def _too_big(workspace: Path, size: int) -> PlancodeError:
    return PlancodeError(
        f"workspace {workspace} is too big to copy into the test sandbox "
        f"({size / 1e6:.0f} MB > {MAX_COPY_MB} MB, not counting .git, .venv, venv, "
        "node_modules, caches, build and dist)",
        "move large data files out of the workspace (the sandbox copies it for every run)")


def workspace_size(workspace: Path) -> int:
    """Bytes of regular files the sandbox would copy."""
    total = 0
    for directory, dirs, files in os.walk(workspace):
        dirs[:] = [d for d in dirs if not _ignored(workspace, directory, d)]
        for name in files:
            if not _ignored(workspace, directory, name):
                try:
                    st = os.lstat(os.path.join(directory, name))
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    total += st.st_size
    return total


def copy_workspace(workspace: Path, dest: Path, limit: int) -> None:
    """Copy the workspace (symlinks as symlinks, ignored directories left out) to ``dest``;
    raise when more than ``limit`` bytes would be copied."""
    copied = 0

    def copy(src: str, dst: str) -> str:
        nonlocal copied
        copied += os.lstat(src).st_size
        if copied > limit:
            raise _too_big(workspace, copied)
        return shutil.copy2(src, dst)

    shutil.copytree(workspace, dest, symlinks=True, copy_function=copy,
                    ignore=lambda d, names: {n for n in names if _ignored(workspace, d, n)})


def _safe_relative(path: str) -> PurePosixPath:
    rel = PurePosixPath(path)
    if rel.is_absolute() or not rel.parts or ".." in rel.parts:
        raise ValueError(f"sandbox files must be workspace-relative paths, got {path!r}")
    return rel


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """Hand the copy to the sandbox user, and make it traversable by everyone: the copy is
    ours, and bwrap (started by root without capabilities) must be able to enter it even when
    the user's workspace was mode 0700."""
    os.chown(root, uid, gid)
    os.chmod(root, os.stat(root).st_mode | 0o755)
    for directory, dirs, files in os.walk(root):
        for name in dirs:
            path = os.path.join(directory, name)
            os.chown(path, uid, gid, follow_symlinks=False)
            if not os.path.islink(path):
                os.chmod(path, os.lstat(path).st_mode | 0o755)
        for name in files:
            path = os.path.join(directory, name)
            os.chown(path, uid, gid, follow_symlinks=False)
            if not os.path.islink(path):
                os.chmod(path, os.lstat(path).st_mode | 0o644)


def _remove_tree(path: Path) -> None:
    """rmtree that also copes with directories a candidate made unreadable."""
    def retry(func, target, _exc):
        try:
            os.chmod(os.path.dirname(target), 0o700)
            if os.path.isdir(target) and not os.path.islink(target):
                os.chmod(target, 0o700)
            func(target)
        except OSError:
            pass

    shutil.rmtree(path, onerror=retry)


def _test_file(test: TestCase) -> str:
    return test.file or test.id.split("::", 1)[0]


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit code"
    if code > 128:
        sig = code - 128
        names = {signal.SIGXCPU: "CPU time limit", signal.SIGXFSZ: "file size limit",
                 signal.SIGKILL: "SIGKILL", signal.SIGSEGV: "segmentation fault"}
        try:
            name = names.get(signal.Signals(sig), signal.Signals(sig).name)
        except ValueError:
            name = f"signal {sig}"
        return f"killed by {name}"
    return f"exit code {code}"


@dataclass
class _Node:
    """What the results file says about one collected test."""

    started: bool = False
    phases: dict[str, tuple[str, str]] = field(default_factory=dict)  # when -> (outcome, msg)
    seconds: float = 0.0

    @property
    def finished(self) -> bool:
        return "teardown" in self.phases


@dataclass
class _Results:
    nodes: dict[str, _Node] = field(default_factory=dict)
    selected: list[str] | None = None
    collect: list[dict] = field(default_factory=list)
    exitstatus: int | None = None

    @classmethod
    def read(cls, path: Path) -> _Results:
        results = cls()
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return results
        for line in text.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line cut short by the kill
            kind = event.get("event")
            if kind == "selected":
                results.selected = list(event.get("nodeids", []))
                for nodeid in results.selected:
                    results.nodes.setdefault(nodeid, _Node())
            elif kind == "start":
                results.nodes.setdefault(event["nodeid"], _Node()).started = True
            elif kind == "report":
                node = results.nodes.setdefault(event["nodeid"], _Node())
                node.started = True
                node.phases[event["when"]] = (event["outcome"], event.get("message", ""))
                node.seconds += float(event.get("duration", 0.0))
            elif kind == "collect":
                results.collect.append(event)
            elif kind == "finish":
                results.exitstatus = event.get("exitstatus")
        return results


@dataclass(frozen=True)
class _RunEnd:
    """How the runner ended."""

    timed_out: bool
    cancelled: bool
    returncode: int | None
    timeout: float
    output_tail: str

    def last_output_line(self) -> str:
        lines = [line.strip() for line in self.output_tail.splitlines() if line.strip()]
        return lines[-1][:200] if lines else ""


def _matches(requested: str, nodeid: str) -> bool:
    return (nodeid == requested or nodeid.startswith(requested + "::")
            or nodeid.startswith(requested + "["))


def _node_verdict(node: _Node, end: _RunEnd, in_progress: bool) -> tuple[str, str]:
    phases = node.phases
    setup = phases.get("setup")
    if setup and setup[0] == "failed":
        return "error", f"error in setup: {setup[1]}"
    if setup and setup[0] == "skipped":
        return "skipped", setup[1]
    call = phases.get("call")
    if call:
        outcome, message = call
        teardown = phases.get("teardown")
        if teardown and teardown[0] == "failed" and outcome == "passed":
            return "error", f"error in teardown: {teardown[1]}"
        return outcome, message
    if node.finished:
        return "error", "no result for the test call"
    if end.timed_out:
        if in_progress:
            return "timeout", f"timed out after {end.timeout:g} s (killed)"
        return "not-run", f"not reached: the run was killed at the {end.timeout:g} s timeout"
    if end.cancelled:
        return "not-run", "cancelled" + (" while running" if in_progress else " before it ran")
    if in_progress:
        return "error", (f"the test process died while this test ran "
                         f"({_describe_exit(end.returncode)})")
    return "not-run", f"not run: pytest stopped early ({_describe_exit(end.returncode)})"


def build_verdicts(tests: list[TestCase], results: _Results, end: _RunEnd,
                   missing: set[str]) -> list[TestVerdict]:
    """One verdict per requested test, in order, from the plugin's events and how the run
    ended (see :data:`server.testing.types.OUTCOMES`)."""
    started = [n for n, node in results.nodes.items() if node.started and not node.finished]
    in_progress = started[-1] if started else None
    verdicts: list[TestVerdict] = []
    for test in tests:
        file = _test_file(test)
        if file in missing:
            verdicts.append(TestVerdict(test.id, "error",
                                        f"file not found in the candidate's copy: {file}"))
            continue
        broken = [c for c in results.collect
                  if test.id == c["nodeid"] or test.id.startswith(c["nodeid"] + "::")
                  or test.id.startswith(c["nodeid"].rstrip("/") + "/")]
        if broken:
            worst = min(broken, key=lambda c: c["outcome"] != "failed")
            outcome = "error" if worst["outcome"] == "failed" else "skipped"
            message = worst["message"] or f"cannot collect {worst['nodeid']}"
            verdicts.append(TestVerdict(test.id, outcome, message))
            continue
        nodeids = [n for n in results.nodes if _matches(test.id, n)]
        if not nodeids:
            verdicts.append(TestVerdict(test.id, *_uncollected(results, end)))
            continue
        per_node = [(n, *_node_verdict(results.nodes[n], end, n == in_progress))
                    for n in nodeids]
        nodeid, outcome, message = min(per_node, key=lambda v: _RANK[v[1]])
        if nodeid != test.id and len(per_node) > 1:
            message = f"{nodeid[len(test.id):].lstrip(':')}: {message}"
        seconds = sum(results.nodes[n].seconds for n in nodeids)
        verdicts.append(TestVerdict(test.id, outcome, message, seconds))
    return verdicts


def _uncollected(results: _Results, end: _RunEnd) -> tuple[str, str]:
    if results.selected is not None:
        return "not-run", "not collected: pytest found no test with this id"
    if end.timed_out:
        return "timeout", (f"timed out after {end.timeout:g} s before any test ran "
                           "(importing or collecting took too long)")
    if end.cancelled:
        return "not-run", "cancelled before any test ran"
    detail = end.last_output_line()
    return "error", (f"pytest ended before running tests ({_describe_exit(end.returncode)})"
                     + (f": {detail}" if detail else ""))


class Sandbox:
    """Runs a workspace's tests against candidates, each run in a fresh throw-away copy.

    ``isolation``: ``auto`` (bubblewrap if it works here, else rlimit), ``bwrap`` (raise if it
    does not work), ``rlimit``. ``python`` runs pytest; by default the workspace's
    ``.venv/bin/python`` when it can import pytest, else the server's own interpreter.
    Use as a context manager, or call :meth:`close`, to remove the temporary directories.
    """

    def __init__(self, workspace: Path, isolation: str = "auto", timeout: float = 10.0,
                 memory_mb: int = 1024, max_file_mb: int = 64, max_procs: int = 64,
                 python: str | None = None) -> None:
        if isolation not in ISOLATIONS:
            raise PlancodeError(f"unknown sandbox isolation {isolation!r}",
                                "use one of: auto, bwrap, rlimit")
        self.workspace = Path(workspace).resolve()
        if not self.workspace.is_dir():
            raise PlancodeError(f"workspace {workspace} is not a directory",
                                "open a folder (the project root) as the workspace")
        size = workspace_size(self.workspace)
        if size > MAX_COPY_MB * 1_000_000:
            raise _too_big(self.workspace, size)
        self.limits = Limits(timeout, memory_mb, max_file_mb, max_procs)
        self.timeout = timeout
        self.interpreter: Interpreter = iso.choose_interpreter(self.workspace, python,
                                                               sys.executable)
        self._root = Path(tempfile.mkdtemp(prefix="plancode-sandbox-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, self._root, True)
        self._root.chmod(0o711)  # nobody must reach its run directories inside
        self._lib = self._root / "lib"
        self._install_lib()
        self._bwrap: str | None = None
        self._variant: BwrapVariant | None = None
        self._privileges = RlimitPrivileges(False, False)
        try:
            self._choose_isolation(isolation)
        except BaseException:
            self.close()
            raise

    # -- setup -----------------------------------------------------------------------------

    def _install_lib(self) -> None:
        """Launcher, plugin and (for rlimit) the network-blocking sitecustomize, read-only."""
        here = Path(__file__).parent
        (self._lib / "net").mkdir(parents=True)
        shutil.copyfile(here / "launcher.py", self._lib / "plancode_launch.py")
        shutil.copyfile(here / "pytest_plugin.py", self._lib / "plancode_pytest_plugin.py")
        (self._lib / "net" / "sitecustomize.py").write_text(
            '"""plancode rlimit sandbox: best-effort, in-process network block."""\n'
            "import plancode_launch\n\nplancode_launch.block_network()\n", encoding="utf-8")
        for path in (self._lib, self._lib / "net"):
            path.chmod(0o755)

    def _choose_isolation(self, isolation: str) -> None:
        if isolation in ("auto", "bwrap"):
            bwrap = shutil.which("bwrap")
            variant, why = iso.probe_bwrap(bwrap, self.interpreter, self._root, self._lib,
                                           self.workspace)
            if variant is not None:
                self._bwrap, self._variant = bwrap, variant
                return
            if isolation == "bwrap":
                raise PlancodeError(
                    f"sandbox isolation 'bwrap' was asked for, but {why}",
                    "`apt-get install bubblewrap`; if it is installed but fails, allow user "
                    "namespaces (Ubuntu 24.04: `sysctl kernel.apparmor_restrict_unprivileged_"
                    "userns=0`; Debian: `sysctl kernel.unprivileged_userns_clone=1`); or use "
                    "isolation 'rlimit' (weaker) or 'auto'")
        self._privileges = iso.probe_rlimit(self.interpreter, self._root, self._lib)

    # -- public ------------------------------------------------------------------------------

    @property
    def isolation(self) -> str:
        """``bwrap`` or ``rlimit``: the isolation actually in force."""
        return "bwrap" if self._variant is not None else "rlimit"

    @property
    def isolation_detail(self) -> str:
        """One sentence: what is enforced and what is not."""
        if self._variant is not None:
            return iso.describe_bwrap(self._variant, self.limits)
        return iso.describe_rlimit(self._privileges, self.limits)

    @property
    def drops_to_nobody(self) -> bool:
        return (self._variant.drop_uid if self._variant is not None
                else self._privileges.drop_uid)

    def run_tests(self, files: dict[str, str], tests: list[TestCase],
                  cancel: CancelToken | None = None) -> RunResult:
        """Write ``files`` into a fresh copy of the workspace, run ``tests`` there, and return
        one verdict per test in the same order."""
        start = time.monotonic()
        info = self.isolation, self.isolation_detail
        if not tests:
            return RunResult([], *info, seconds=0.0)
        if not self._finalizer.alive:
            raise PlancodeError("the sandbox was closed", "create a new Sandbox")
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=self._root))
        try:
            run_dir.chmod(0o711)
            host = self._prepare(run_dir, files, tests)
            missing = {f for f in map(_test_file, tests) if not (Path(host.ws) / f).is_file()}
            args = list(dict.fromkeys(f for f in map(_test_file, tests) if f not in missing))
            if args:
                end = self._execute(host, tests, args, cancel)
            else:
                end = _RunEnd(False, False, None, self.timeout, "")
            results = _Results.read(Path(host.out) / "results.jsonl")
            verdicts = build_verdicts(tests, results, end, missing)
            return RunResult(verdicts, *info, seconds=time.monotonic() - start,
                             timed_out=end.timed_out, cancelled=end.cancelled,
                             output_tail=end.output_tail,
                             extra={"returncode": end.returncode,
                                    "pytest_exitstatus": results.exitstatus})
        finally:
            _remove_tree(run_dir)

    def close(self) -> None:
        """Remove the sandbox's temporary directories (idempotent)."""
        self._finalizer()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one run -----------------------------------------------------------------------------

    def _prepare(self, run_dir: Path, files: dict[str, str],
                 tests: list[TestCase]) -> iso.Layout:
        host = iso.host_layout(run_dir, self._lib)
        ws = Path(host.ws)
        copy_workspace(self.workspace, ws, MAX_COPY_MB * 1_000_000)
        ws_real = ws.resolve()
        for rel, text in files.items():
            target = ws / _safe_relative(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.parent.resolve().is_relative_to(ws_real):
                raise PlancodeError(
                    f"cannot write {rel} into the sandbox: a symlink in the workspace leads "
                    "out of it", "replace that symlink in your workspace by a real directory")
            if target.is_symlink():
                target.unlink()  # never write through a link out of the copy
            target.write_text(text, encoding="utf-8", newline="")
        out, ctl = Path(host.out), Path(host.ctl)
        for d in (out, out / "home", out / "tmp", ctl):
            d.mkdir()
        (out / "results.jsonl").touch()
        (ctl / "request.json").write_text(json.dumps([t.id for t in tests]), encoding="utf-8")
        ctl.chmod(0o755)
        (ctl / "request.json").chmod(0o644)
        if self.drops_to_nobody:
            _chown_tree(ws, SANDBOX_UID, SANDBOX_GID)
            _chown_tree(out, SANDBOX_UID, SANDBOX_GID)
        return host

    def _execute(self, host: iso.Layout, tests: list[TestCase], file_args: list[str],
                 cancel: CancelToken | None) -> _RunEnd:
        seen = iso.inside_layout() if self._variant is not None else host
        pytest_argv = [self.interpreter.path, "-s", "-m", "pytest", "-q", "--tb=short",
                       "-p", "no:cacheprovider", "-p", "plancode_pytest_plugin",
                       "--rootdir", seen.ws]
        if any(t.kind == "doctest" for t in tests):
            pytest_argv.append("--doctest-modules")
        return self._run_argv(host, pytest_argv + file_args, cancel)

    def run_command(self, files: dict[str, str], command: str,
                    cancel: CancelToken | None = None) -> RunResult:
        """Run a configured test command (``sh -c COMMAND`` in the copy) under the same
        isolation; one verdict: passed when it exits 0."""
        start = time.monotonic()
        if not self._finalizer.alive:
            raise PlancodeError("the sandbox was closed", "create a new Sandbox")
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=self._root))
        try:
            run_dir.chmod(0o711)
            host = self._prepare(run_dir, files, [])
            end = self._run_argv(host, ["/bin/sh", "-c", command], cancel)
        finally:
            _remove_tree(run_dir)
        if end.timed_out:
            outcome, message = "timeout", f"timed out after {self.timeout:g}s"
        elif end.cancelled:
            outcome, message = "not-run", "cancelled"
        else:
            outcome = "passed" if end.returncode == 0 else "failed"
            last = [ln for ln in end.output_tail.splitlines() if ln.strip()][-1:]
            message = "" if outcome == "passed" else \
                f"exit status {end.returncode}" + (f": {last[0][:150]}" if last else "")
        verdict = TestVerdict(f"command: {command}", outcome, message, time.monotonic() - start)
        return RunResult([verdict], self.isolation, self.isolation_detail,
                         seconds=time.monotonic() - start, timed_out=end.timed_out,
                         cancelled=end.cancelled, output_tail=end.output_tail,
                         extra={"returncode": end.returncode})

    def _run_argv(self, host: iso.Layout, runner_argv: list[str],
                  cancel: CancelToken | None) -> _RunEnd:
        bwrap = self._variant is not None
        seen = iso.inside_layout() if bwrap else host
        env = iso.runner_env(self.interpreter, seen, bwrap=bwrap, block_net=not bwrap)
        iso.add_src_to_pythonpath(env, seen, Path(host.ws))
        pytest_argv = runner_argv
        uid = SANDBOX_UID if self.drops_to_nobody else os.geteuid()
        config = {"argv": pytest_argv, "limits": self.limits.rlimits(uid),
                  "uid": SANDBOX_UID if self.drops_to_nobody else None, "gid": SANDBOX_GID,
                  "read_cap": self._privileges.read_cap, "reaper": not bwrap}
        argv = iso.launcher_command(self.interpreter, seen, config)
        info_read = info_write = -1
        if self._bwrap is not None and self._variant is not None:
            # bubblewrap reports the PID of the namespace's init on the info pipe
            info_read, info_write = os.pipe()
            tmp_mb = max(64, 4 * self.limits.max_file_mb)
            argv = [*iso.bwrap_args(self._bwrap, self._variant, self.interpreter, host,
                                    self.workspace, tmp_mb),
                    "--info-fd", str(info_write), *argv]
        log_path = Path(host.ctl) / "output.log"
        try:
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(argv, cwd=host.ws, env=env, stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True, close_fds=True,
                                        pass_fds=(info_write,) if info_write >= 0 else ())
        finally:
            if info_write >= 0:
                os.close(info_write)
        timed_out = cancelled = False
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                if cancel is not None and cancel.cancelled:
                    cancelled = True
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                try:  # returns as soon as the runner exits, else after one poll period
                    proc.wait(timeout=min(POLL_SECONDS, left))
                    break
                except subprocess.TimeoutExpired:
                    pass
        finally:
            returncode = self._stop(proc, supervised=not bwrap)
            if info_read >= 0:
                _wait_namespace_gone(info_read)
        return _RunEnd(timed_out, cancelled, returncode, self.timeout, _tail(log_path))

    @staticmethod
    def _stop(proc: subprocess.Popen, supervised: bool) -> int | None:
        """Kill whatever is left: the launcher sweeps its subreaped descendants on SIGTERM
        (rlimit); SIGKILL to the process group takes bubblewrap, and with it the PID
        namespace, or anything the sweep missed."""
        returncode = proc.poll()
        if returncode is None and supervised:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=3.0)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return returncode


def _wait_namespace_gone(info_fd: int, limit: float = 5.0) -> None:
    """Read bubblewrap's info (the PID of the sandbox's init) and wait until that process is
    gone or a zombie: the kernel kills every process of a PID namespace before its init
    finishes exiting, so then nothing the candidate started is left."""
    try:  # bubblewrap writes it before starting the command; never block on the pipe
        os.set_blocking(info_fd, False)
        with os.fdopen(info_fd, "rb") as f:
            info = json.loads(f.read() or b"{}")
        pid = int(info.get("child-pid", 0))
    except (OSError, ValueError, TypeError):
        return
    if pid <= 0:
        return
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat_line = f.read()
        except OSError:
            return
        if stat_line[stat_line.rfind(b")") + 2:].startswith(b"Z"):
            return
        time.sleep(0.005)


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - TAIL_CHARS))
            data = f.read()
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")


def run_checks(sandbox: Sandbox, files: dict[str, str], tests: list[TestCase],
               cancel: CancelToken) -> RunResult:
    """Run the pytest-runnable tests, then the configured command (if any); one result."""
    runnable = [t for t in tests if t.kind != "command"]
    commands = [t for t in tests if t.kind == "command"]
    results = [sandbox.run_tests(files, runnable, cancel)] if runnable else []
    for cmd in commands:
        if not cancel.cancelled:
            results.append(sandbox.run_command(files, cmd.name, cancel))
    if len(results) == 1:
        return results[0]
    verdicts = [v for r in results for v in r.verdicts]
    verdicts += [TestVerdict(c.id, "not-run", "cancelled") for c in commands
                 if all(v.id != c.id for v in verdicts)]
    return RunResult(verdicts, sandbox.isolation, sandbox.isolation_detail,
                     seconds=sum(r.seconds for r in results),
                     timed_out=any(r.timed_out for r in results),
                     cancelled=any(r.cancelled for r in results),
                     output_tail="\n".join(r.output_tail for r in results)[-4000:])
