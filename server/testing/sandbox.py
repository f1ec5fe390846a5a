"""Run a workspace's tests against one candidate, safely, and say what happened.

Every run works on a fresh throw-away copy of the workspace (``copying.py``: secrets left out)
with the candidate's files written into it; the real workspace is only ever read. The runner
(``python -m pytest``) starts through a small launcher (``launcher.py``) under bubblewrap when
it works, else under the kernel fallback (namespaces, Landlock, seccomp; ``isolation.py``), in
its own session, with a fresh uid when the server is root, resource limits and no privilege
gain. ``process.py`` enforces the wall-clock timeout and cancellation and reads the results
pipe; ``verdicts.py`` turns the plugin's authenticated events into verdicts. With neither
bubblewrap nor a usable kernel fallback, model code is not run unless the user opted in with
``isolation = "none-i-accept-the-risk"``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from plancode.errors import PlancodeError
from plancode.testing import copying, process, shapes, value_checks
from plancode.testing import isolation as iso
from plancode.testing.copying import MAX_COPY_MB, CopyRules
from plancode.testing.isolation import NONE_OPT_IN, BwrapVariant, Confinement, Interpreter, Limits
from plancode.testing.types import RunResult, TestCase, TestVerdict
from plancode.testing.verdicts import (
    RunEnd,
    build_verdicts,
    describe_exit,
    flags_of,
    parse_events,
    test_file,
)

if TYPE_CHECKING:
    from plancode.engine.types import CancelToken

# "rlimit" is the old name of the fallback; it now means the kernel fallback.
ISOLATIONS = ("auto", "bwrap", "landlock", "rlimit", NONE_OPT_IN)


class Sandbox:
    """Runs a workspace's tests against candidates, each run in a fresh throw-away copy.

    ``isolation``: ``auto`` (bubblewrap if it works here, else the kernel fallback, else
    refuse), ``bwrap`` or ``landlock`` (raise if that one does not work), or
    ``none-i-accept-the-risk`` (the kernel fallback if it works, else no isolation at all).
    ``python`` runs pytest; by default the workspace's ``.venv/bin/python`` when it can import
    pytest, else the server's own interpreter. ``exclude``: more file-name patterns kept out
    of the copy, besides the secret-looking ones. Use as a context manager, or call
    :meth:`close`, to remove the temporary directories.
    """

    def __init__(self, workspace: Path, isolation: str = "auto", timeout: float = 10.0,
                 memory_mb: int = 1024, max_file_mb: int = 64, max_procs: int = 64,
                 python: str | None = None, exclude: Iterable[str] = ()) -> None:
        if isolation not in ISOLATIONS:
            raise PlancodeError(f"unknown sandbox isolation {isolation!r}",
                                f"use one of: auto, bwrap, landlock, {NONE_OPT_IN}")
        self.workspace = Path(workspace).resolve()
        if not self.workspace.is_dir():
            raise PlancodeError(f"workspace {workspace} is not a directory",
                                "open a folder (the project root) as the workspace")
        self.rules = CopyRules(exclude)
        size = copying.workspace_size(self.workspace, self.rules)
        if size > MAX_COPY_MB * 1_000_000:
            raise copying.too_big(self.workspace, size)
        self.limits = Limits(timeout, memory_mb, max_file_mb, max_procs)
        self.timeout = timeout
        # check value-shaped tests out of process (shapes.py); False: every test runs under
        # pytest and the plugin, in process (the attack suite and benchmarks compare both)
        self.check_values = True
        self.interpreter: Interpreter = iso.choose_interpreter(self.workspace, python,
                                                               sys.executable)
        self._server_python = (os.path.realpath(self.interpreter.executable)
                               == os.path.realpath(sys.executable))
        self._root = Path(tempfile.mkdtemp(prefix="plancode-sandbox-"))
        # remove_tree copes with the read-only lib and ctl directories (as non-root too)
        self._finalizer = weakref.finalize(self, copying.remove_tree, self._root)
        self._root.chmod(0o711)  # the run's user must reach its run directory inside
        self._lib = self._root / "lib"
        self._install_lib()
        self._bwrap: str | None = None
        self._variant: BwrapVariant | None = None
        self._confinement: Confinement | None = None
        try:
            self._choose_isolation("landlock" if isolation == "rlimit" else isolation)
        except BaseException:
            self.close()
            raise

    # -- setup -----------------------------------------------------------------------------

    def _install_lib(self) -> None:
        """Launcher and plugin, read-only."""
        here = Path(__file__).parent
        self._lib.mkdir()
        shutil.copyfile(here / "launcher.py", self._lib / "plancode_launch.py")
        shutil.copyfile(here / "pytest_plugin.py", self._lib / "plancode_pytest_plugin.py")
        shutil.copyfile(here / "values.py", self._lib / "plancode_values.py")
        shutil.copyfile(here / "value_runner.py", self._lib / "plancode_value_runner.py")
        for path in self._lib.iterdir():
            path.chmod(0o444)
        self._lib.chmod(0o555)

    def _choose_isolation(self, isolation: str) -> None:
        why_bwrap = ""
        if isolation in ("auto", "bwrap"):
            bwrap = shutil.which("bwrap")
            variant, why_bwrap = iso.probe_bwrap(bwrap, self.interpreter, self._root,
                                                 self._lib, self.workspace)
            if variant is not None:
                self._bwrap, self._variant = bwrap, variant
                return
            if isolation == "bwrap":
                raise PlancodeError(
                    f"sandbox isolation 'bwrap' was asked for, but {why_bwrap}",
                    "`apt-get install bubblewrap`; if it is installed but fails, allow user "
                    "namespaces (Ubuntu 24.04: `sysctl kernel.apparmor_restrict_unprivileged_"
                    "userns=0`; Debian: `sysctl kernel.unprivileged_userns_clone=1`); or use "
                    "isolation 'landlock' or 'auto'")
        confinement, why = iso.probe_landlock(self.interpreter, self._root, self._lib,
                                              self.workspace)
        if confinement is not None:
            self._confinement = confinement
            return
        if isolation == NONE_OPT_IN:
            return
        because = f"{why_bwrap}; and {why}" if why_bwrap else why
        raise PlancodeError(
            f"no sandbox can confine model-written code on this machine: {because}",
            "`apt-get install bubblewrap` (or use a kernel with Landlock, 5.13 or later); "
            f"to run candidates with no isolation at all, set isolation = '{NONE_OPT_IN}'")

    # -- public ------------------------------------------------------------------------------

    @property
    def isolation(self) -> str:
        """``bwrap``, ``landlock`` or ``none``: the isolation actually in force."""
        if self._variant is not None:
            return "bwrap"
        return "landlock" if self._confinement is not None else "none"

    @property
    def isolation_detail(self) -> str:
        """One sentence: what is enforced and what is not."""
        if self._variant is not None:
            return iso.describe_bwrap(self._variant, self.limits)
        if self._confinement is not None:
            return iso.describe_landlock(self._confinement, self.limits)
        return iso.describe_none(self.limits)

    @property
    def drops_uid(self) -> bool:
        """Whether each run gets a fresh uid (only when the server is root)."""
        if self._variant is not None:
            return self._variant.drop_uid
        return self._confinement is not None and self._confinement.drop_uid

    def run_tests(self, files: dict[str, str], tests: list[TestCase],
                  cancel: CancelToken | None = None,
                  target: tuple[str, str] | None = None) -> RunResult:
        """Run ``tests`` against ``files`` laid over the workspace; one verdict per test, in
        order. Tests whose shape allows it (``shapes.py``) are checked *out of process*: the
        sandboxed child only runs the calls and sends the values back, and the server compares
        them (``value_checks.py``). The rest run under pytest with plancode's plugin, in the
        candidate's process; each verdict's ``checked`` says which."""
        if not tests:
            return RunResult([], self.isolation, self.isolation_detail, seconds=0.0)
        shaped = shapes.recognise(self.workspace, files, tests).tests if self.check_values \
            else {}
        rest = [t for t in tests if t.id not in shaped]
        parts = []
        if len(rest) < len(tests):
            parts.append(value_checks.run(self, files, [t for t in tests if t.id in shaped],
                                          shaped, cancel))
        if rest and not (cancel is not None and cancel.cancelled):
            parts.append(self._run_plugin_tests(files, rest, cancel, target))
        return value_checks.combine(parts, tests, self.isolation, self.isolation_detail)

    def run_values(self, files: dict[str, str], request: dict,
                   cancel: CancelToken | None = None) -> tuple[RunEnd, bytes, bytes]:
        """Run plancode's value runner (``value_runner.py``) on ``request`` with ``files``
        laid over the workspace: (how it ended, what its results channel delivered, the run's
        key). The server decides from those bytes, never the child."""
        with self._run_space(files) as (host, uid, channel):
            self._write_request(host, uid, [], None, [], extra=request)
            self._hand_over(host, uid, [])
            argv = [self.interpreter.path, "-m", "plancode_value_runner"]
            end = self._run_argv(host, uid, argv, [], channel, cancel)
            return end, bytes(channel.data), channel.key

    def _run_plugin_tests(self, files: dict[str, str], tests: list[TestCase],
                          cancel: CancelToken | None = None,
                          target: tuple[str, str] | None = None) -> RunResult:
        """Write ``files`` into a fresh copy of the workspace, run ``tests`` there, and return
        one verdict per test in the same order. ``target``: (workspace-relative file,
        qualified name) of the function under test, whose return values are checked for
        objects that claim equality with anything."""
        start = time.monotonic()
        info = self.isolation, self.isolation_detail
        if not tests:
            return RunResult([], *info, seconds=0.0)
        with self._run_space(files) as (host, uid, channel):
            ws = Path(host.ws)
            missing = {f for f in map(test_file, tests) if not (ws / f).is_file()}
            args = list(dict.fromkeys(f for f in map(test_file, tests) if f not in missing))
            # test files first: each is read before any module it imports can run
            args.sort(key=lambda f: not any(t.kind != "doctest" and test_file(t) == f
                                            for t in tests))
            protect = copying.protected_files(ws, args)
            self._write_request(host, uid, tests, target, protect)
            self._hand_over(host, uid, protect)
            if args:
                end = self._execute(host, uid, tests, args, protect, channel, cancel)
            else:
                end = RunEnd(False, False, 0, self.timeout, "")
            events = parse_events(bytes(channel.data), channel.key, channel.overflow)
            if not args:
                events.exitstatus = 0
            verdicts = build_verdicts(tests, events, end, missing)
            runner_ok = (not events.tampered and end.returncode == 0
                         and events.exitstatus == 0)
            return RunResult(verdicts, *info, seconds=time.monotonic() - start,
                             timed_out=end.timed_out, cancelled=end.cancelled,
                             output_tail=end.output_tail,
                             extra={"returncode": end.returncode,
                                    "pytest_exitstatus": events.exitstatus},
                             runner_ok=runner_ok, tampered=events.tampered,
                             flags=flags_of(events))

    @contextmanager
    def _run_space(self, files: dict[str, str]
                   ) -> Iterator[tuple[iso.Layout, int | None, process.Channel]]:
        """One run's fresh copy of the workspace with ``files`` written in, and its results
        channel: (host layout, the run's uid, channel); both are gone on the way out."""
        self._check_open()
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=self._root))
        channel = process.Channel.open()
        try:
            run_dir.chmod(0o711)
            host, uid = self._prepare(run_dir, files)
            yield host, uid, channel
        finally:
            channel.close()
            copying.remove_tree(run_dir)

    def run_command(self, files: dict[str, str], command: str,
                    cancel: CancelToken | None = None) -> RunResult:
        """Run a configured test command (``sh -c COMMAND`` in the copy) under the same
        isolation; one ``command`` verdict, passed when it exits 0. Such a verdict never
        verifies a candidate on its own (the candidate could end the process with status 0)."""
        start = time.monotonic()
        with self._run_space(files) as (host, uid, channel):
            self._write_request(host, uid, [], None, [])
            self._hand_over(host, uid, [])
            end = self._run_argv(host, uid, ["/bin/sh", "-c", command], [], channel, cancel)
        if end.timed_out:
            outcome, message = "timeout", f"timed out after {self.timeout:g}s"
        elif end.cancelled:
            outcome, message = "not-run", "cancelled"
        else:
            outcome = "passed" if end.returncode == 0 else "failed"
            last = [ln for ln in end.output_tail.splitlines() if ln.strip()][-1:]
            message = "" if outcome == "passed" else \
                (f"exit status {end.returncode}" if (end.returncode or 0) < 128
                 else describe_exit(end.returncode)) + (f": {last[0][:150]}" if last else "")
        verdict = TestVerdict(f"command: {command}", outcome, message,
                              time.monotonic() - start, kind="command")
        return RunResult([verdict], self.isolation, self.isolation_detail,
                         seconds=time.monotonic() - start, timed_out=end.timed_out,
                         cancelled=end.cancelled, output_tail=end.output_tail,
                         extra={"returncode": end.returncode},
                         runner_ok=end.returncode == 0 and not end.timed_out)

    def close(self) -> None:
        """Remove the sandbox's temporary directories (idempotent)."""
        self._finalizer()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one run -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if not self._finalizer.alive:
            raise PlancodeError("the sandbox was closed", "create a new Sandbox")

    def _prepare(self, run_dir: Path, files: dict[str, str]) -> tuple[iso.Layout, int | None]:
        host = iso.host_layout(run_dir, self._lib)
        ws = Path(host.ws)
        copying.copy_workspace(self.workspace, ws, MAX_COPY_MB * 1_000_000, self.rules)
        copying.write_files(ws, files)
        out, ctl = Path(host.out), Path(host.ctl)
        for d in (out, out / "home", out / "tmp", ctl):
            d.mkdir()
        return host, (iso.run_uid() if self.drops_uid else None)

    def _write_request(self, host: iso.Layout, uid: int | None, tests: list[TestCase],
                       target: tuple[str, str] | None, protect: list[str],
                       extra: dict | None = None) -> None:
        bwrap = self._variant is not None
        seen = iso.inside_layout() if bwrap else host

        def inside(path: str) -> str:
            return os.path.join(seen.ws, os.path.relpath(path, host.ws))

        request = {"tests": [t.id for t in tests],
                   "conftests": [inside(p) for p in copying.conftests(Path(host.ws))],
                   "target": ({"file": f"{seen.ws}/{target[0]}", "qualname": target[1]}
                              if target else None), **(extra or {})}
        ctl = Path(host.ctl)
        (ctl / "request.json").write_text(json.dumps(request), encoding="utf-8")
        (ctl / "request.json").chmod(0o444)
        (ctl / "output.log").touch(mode=0o600)  # the server writes it through its own fd
        ctl.chmod(0o555)

    def _hand_over(self, host: iso.Layout, uid: int | None, protect: list[str]) -> None:
        copying.make_read_only(protect)
        if uid is not None:
            copying.hand_over(Path(host.ws), uid, uid, keep=protect)
            copying.hand_over(Path(host.out), uid, uid)

    def _execute(self, host: iso.Layout, uid: int | None, tests: list[TestCase],
                 file_args: list[str], protect: list[str], channel: process.Channel,
                 cancel: CancelToken | None) -> RunEnd:
        seen = iso.inside_layout() if self._variant is not None else host
        pytest_argv = [self.interpreter.path, "-s", "-m", "pytest", "-q", "--tb=short",
                       "-p", "no:cacheprovider", "-p", "plancode_pytest_plugin",
                       "--rootdir", seen.ws]
        if any(t.kind == "doctest" for t in tests):
            pytest_argv.append("--doctest-modules")
        return self._run_argv(host, uid, pytest_argv + file_args, protect, channel, cancel)

    def _run_argv(self, host: iso.Layout, uid: int | None, runner_argv: list[str],
                  protect: list[str], channel: process.Channel,
                  cancel: CancelToken | None) -> RunEnd:
        bwrap = self._variant is not None
        seen = iso.inside_layout() if bwrap else host
        confinement = self._confinement
        private_tmp = bwrap or (confinement is not None and confinement.namespaces)
        env = iso.runner_env(self.interpreter, seen, private_tmp=private_tmp,
                             server_python=self._server_python)
        iso.add_src_to_pythonpath(env, seen, Path(host.ws))
        tmp_mb = max(64, 4 * self.limits.max_file_mb)
        config: dict = {"argv": runner_argv,
                        "limits": self.limits.rlimits(uid if uid is not None else os.geteuid(),
                                                      fresh_uid=uid is not None),
                        "uid": uid, "gid": uid, "reaper": not bwrap}
        if confinement is not None:
            config["read_cap"] = confinement.read_cap
            config["confine"] = confinement.config(self.interpreter, host, self.workspace,
                                                   tmp_mb, protect)
        argv = iso.launcher_command(self.interpreter, seen, config)
        if bwrap and self._bwrap is not None and self._variant is not None:
            argv = [*iso.bwrap_args(self._bwrap, self._variant, self.interpreter, host,
                                    self.workspace, tmp_mb, protect), *argv]
        return process.run(argv, host.ws, env, Path(host.ctl) / "output.log", channel,
                           self.timeout, cancel, supervised=not bwrap, info=bwrap)


def run_checks(sandbox: Sandbox, files: dict[str, str], tests: list[TestCase],
               cancel: CancelToken, target: tuple[str, str] | None = None) -> RunResult:
    """Run the pytest-runnable tests, then the configured command (if any); one result. A
    command's verdict alone never verifies (see :attr:`RunResult.all_passed`)."""
    runnable = [t for t in tests if t.kind != "command"]
    commands = [t for t in tests if t.kind == "command"]
    results = [sandbox.run_tests(files, runnable, cancel, target)] if runnable else []
    for cmd in commands:
        if not cancel.cancelled:
            results.append(sandbox.run_command(files, cmd.name, cancel))
    if len(results) == 1:
        return results[0]
    verdicts = [v for r in results for v in r.verdicts]
    verdicts += [TestVerdict(c.id, "not-run", "cancelled", kind="command") for c in commands
                 if all(v.id != c.id for v in verdicts)]
    return RunResult(verdicts, sandbox.isolation, sandbox.isolation_detail,
                     seconds=sum(r.seconds for r in results),
                     timed_out=any(r.timed_out for r in results),
                     cancelled=any(r.cancelled for r in results),
                     output_tail="\n".join(r.output_tail for r in results)[-4000:],
                     runner_ok=bool(results) and all(r.runner_ok for r in results),
                     tampered="; ".join(r.tampered for r in results if r.tampered),
                     flags=[f for r in results for f in r.flags])
