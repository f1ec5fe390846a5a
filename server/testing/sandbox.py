"""Run a workspace's tests against one candidate, safely, and say what happened.

Every run sees the real workspace read-only, with secrets masked and the candidate's files laid
over it by bind mounts (``view.py``; scanned once per Sandbox, so a run costs the same on any
workspace size); only where the kernel allows no mount namespace is the workspace copied, once
per Sandbox (``copying.py``). What a run writes goes to its private, size-limited /tmp, and
its memory is capped as a whole where a cgroup can be made (``cgroups.py``). The runner
(``python -m pytest``) starts through a small launcher (``launcher.py``) under bubblewrap when
it works, else under the kernel fallback (namespaces, Landlock, seccomp; ``isolation.py``), in
its own session, with a fresh uid when the server is root, resource limits and no privilege
gain. ``process.py`` enforces the wall-clock timeout and cancellation and reads the results
pipe; ``verdicts.py`` turns the plugin's authenticated events into verdicts. With neither
bubblewrap nor a usable kernel fallback, model code is not run unless the user opted in with
``isolation = "none-i-accept-the-risk"``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from plancode.errors import PlancodeError
from plancode.testing import cgroups, copying, process, shapes, split_run, value_checks, view
from plancode.testing import isolation as iso
from plancode.testing.copying import MAX_COPY_MB, CopyRules
from plancode.testing.isolation import NONE_OPT_IN, BwrapVariant, Confinement, Interpreter, Limits
from plancode.testing.types import RunResult, TestCase, TestVerdict
from plancode.testing.verdicts import (
    Events,
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
WORKER_GRACE_S = 5.0  # a split run's worker outlives its judge's deadline by this, at most


class Sandbox:
    """Runs a workspace's tests against candidates, each run in a fresh view of the workspace.

    ``isolation``: ``auto`` (bubblewrap if it works here, else the kernel fallback, else
    refuse), ``bwrap`` or ``landlock`` (raise if that one does not work), or
    ``none-i-accept-the-risk`` (the kernel fallback if it works, else no isolation at all).
    ``python`` runs pytest; by default the workspace's ``.venv/bin/python`` when it can import
    pytest, else the server's own interpreter. ``exclude``: more file-name patterns hidden
    from the run, besides the secret-looking ones. ``memory_mb``: the whole run's memory where
    a cgroup can be made (else per process); ``write_mb``: all a run may write. Use as a
    context manager, or call :meth:`close`, to remove the temporary directories.
    """

    def __init__(self, workspace: Path, isolation: str = "auto", timeout: float = 10.0,
                 memory_mb: int = 1024, max_file_mb: int = 64, max_procs: int = 64,
                 python: str | None = None, exclude: Iterable[str] = (),
                 write_mb: int = 512) -> None:
        if isolation not in ISOLATIONS:
            raise PlancodeError(f"unknown sandbox isolation {isolation!r}",
                                f"use one of: auto, bwrap, landlock, {NONE_OPT_IN}")
        self.workspace = Path(workspace).resolve()
        if not self.workspace.is_dir():
            raise PlancodeError(f"workspace {workspace} is not a directory",
                                "open a folder (the project root) as the workspace")
        self.rules = CopyRules(exclude)
        self.limits = Limits(timeout, memory_mb, max_file_mb, max_procs, write_mb)
        self.timeout = timeout
        # check value-shaped tests out of process (shapes.py); False: every test runs under
        # pytest and the plugin, in process (the attack suite and benchmarks compare both)
        self.check_values = True
        # run the other tests as a split run where the function under test allows it
        # (split_run.py: pytest in a judge process that calls the candidate's function in a
        # worker process); False, or check_values False: under pytest and the plugin in the
        # candidate's process
        self.split_calls = True
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
        self._copy_lock = threading.Lock()
        self._placed: dict[str, dict[str, str]] = {}  # per run (by its ws): its own files
        self.memory_cap = cgroups.probe()
        try:
            self._choose_isolation("landlock" if isolation == "rlimit" else isolation)
            self._prepare_view()
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
        shutil.copyfile(here / "pytest_import.py", self._lib / "plancode_pytest_import.py")
        shutil.copyfile(here / "value_runner.py", self._lib / "plancode_value_runner.py")
        shutil.copyfile(here / "call_proxy.py", self._lib / "plancode_call_proxy.py")
        shutil.copyfile(here / "call_worker.py", self._lib / "plancode_call_worker.py")
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

    def _prepare_view(self) -> None:
        """Scan the workspace once (mount namespaces: the view) or, where the kernel allows
        none, copy it once (the last resort, read-only to every run)."""
        self._masks = view.MaskSources.create(self._root / "view")
        self._base: Path | None = None
        source = self.workspace
        if not self.uses_view:
            self._base = self._root / "view" / "copy"
            with contextlib.suppress(shutil.Error):  # files it cannot read stay out of it
                copying.copy_workspace(self.workspace, self._base, MAX_COPY_MB * 1_000_000,
                                       self.rules)
            self._base.chmod(0o755)
            source = self._base
        own, _path = self.interpreter.directories()
        self._scan = view.scan(source, self.rules, fresh_uid=self.drops_uid and self.uses_view,
                               keep=tuple(own))
        view.copy_private(self._scan, self._root / "view" / "private")

    # -- public ------------------------------------------------------------------------------

    @property
    def uses_view(self) -> bool:
        """Whether runs see the workspace through mounts (else through the one copy)."""
        return self._variant is not None or (self._confinement is not None
                                             and self._confinement.namespaces)

    @property
    def isolation(self) -> str:
        """``bwrap``, ``landlock`` or ``none``: the isolation actually in force."""
        if self._variant is not None:
            return "bwrap"
        return "landlock" if self._confinement is not None else "none"

    @property
    def isolation_detail(self) -> str:
        """What is enforced and what is not: isolation, workspace view, quotas."""
        if self._variant is not None:
            text = iso.describe_bwrap(self._variant, self.limits)
        elif self._confinement is not None:
            text = iso.describe_landlock(self._confinement, self.limits)
        else:
            text = iso.describe_none(self.limits)
        return f"{text} {self.view_detail}"

    @property
    def view_detail(self) -> str:
        """How the run sees the workspace, what it may write, and its memory cap."""
        memory = self.memory_cap.describe(self.limits.memory_mb, self.limits.max_procs)
        scanned = self._scan.summary() if hasattr(self, "_scan") else ""
        if self.uses_view:
            tmp, shm, top = self.limits.tmpfs_mb()
            return (f"Workspace: the real one, read-only, nothing copied ({scanned}); the "
                    f"candidate's files are bound over it. Writes: at most "
                    f"{self.limits.write_mb} MB in all ({tmp} MB /tmp with HOME, {shm} MB "
                    f"/dev/shm, {top} MB of new files at the workspace's top). "
                    f"Memory: {memory}.")
        return (f"Workspace: copied once for this pipeline run (no mount namespace here; "
                f"{scanned}), read-only to the run. Writes: HOME and TMPDIR in the run's "
                f"directory, {self.limits.max_file_mb} MB per file, no total cap. "
                f"Memory: {memory}.")

    def sees_original(self, rel: str) -> bool:
        """Whether runs see the workspace's own file ``rel`` (not masked, not missing)."""
        return hasattr(self, "_scan") and view.visible(self._scan, {}, rel)

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
        order. Every verdict it can is decided *out of process*, where the candidate's code
        cannot reach: tests whose shape allows it (``shapes.py``) by the server, from the
        values the sandboxed calls returned (``value_checks.py``); the rest, when the function
        under test is a module-level function, by pytest in a judge process that sends each
        call to the candidate's process (``split_run.py``). What is left (and a call that
        cannot cross, e.g. a generator returned) runs under pytest with plancode's plugin in
        the candidate's process; each verdict's ``checked`` says which."""
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
            split = self.check_values and self.split_calls and \
                not split_run.unsuitable(self, target)
            parts.append(split_run.run(self, files, rest, target, cancel) if split and target
                         else self._run_plugin_tests(files, rest, cancel, target))
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

    def run_worker(self, files: dict[str, str], job: dict, handed: list[int],
                   cancel: CancelToken | None = None) -> RunEnd:
        """Run a split run's worker (``call_worker.py``) on ``job`` with ``files`` laid over
        the workspace; ``handed``: its ends of the two pipes (request read, response write),
        closed here once it started. How it ended; what it said went to its judge."""
        with self._run_space(files) as (host, uid, channel):
            self._write_request(host, uid, [], None, [], extra={"worker": job})
            self._hand_over(host, uid, [])
            argv = [self.interpreter.path, "-m", "plancode_call_worker"]
            # the judge's timeout ends the run (the worker is stopped with it); the worker's
            # own deadline is later, so a hung call reads as the judge's timeout, not as a
            # worker that died mid-call
            return self._run_argv(host, uid, argv, [], channel, cancel, handed,
                                  {"PLANCODE_WORKER_FDS": ",".join(map(str, handed))},
                                  timeout=self.timeout + WORKER_GRACE_S)

    def _run_plugin_tests(self, files: dict[str, str], tests: list[TestCase],
                          cancel: CancelToken | None = None,
                          target: tuple[str, str] | None = None) -> RunResult:
        """Lay ``files`` over a fresh view of the workspace, run ``tests`` there, and return
        one verdict per test in the same order. ``target``: (workspace-relative file,
        qualified name) of the function under test, whose return values are checked for
        objects that claim equality with anything."""
        return self.run_pytest(files, tests, cancel, target)[0]

    def run_pytest(self, files: dict[str, str], tests: list[TestCase],
                   cancel: CancelToken | None = None, target: tuple[str, str] | None = None,
                   proxy: dict | None = None, handed: list[int] | None = None
                   ) -> tuple[RunResult, Events]:
        """:meth:`_run_plugin_tests`, and the plugin's events. ``proxy``: a split run's judge
        (the call proxy's settings, ``split_run.py``), with its pipe ends ``handed``."""
        start = time.monotonic()
        info = self.isolation, self.isolation_detail
        if not tests:
            return RunResult([], *info, seconds=0.0), Events()
        with self._run_space(files) as (host, uid, channel):
            missing = {f for f in map(test_file, tests) if not self._sees_file(host, f)}
            args = list(dict.fromkeys(f for f in map(test_file, tests) if f not in missing))
            # test files first: each is read before any module it imports can run
            args.sort(key=lambda f: not any(t.kind != "doctest" and test_file(t) == f
                                            for t in tests))
            protect: list[str] = []  # the whole view is read-only
            self._write_request(host, uid, tests, target, protect,
                                {"proxy": proxy} if proxy is not None else None)
            self._hand_over(host, uid, protect)
            if args:
                end = self._execute(host, uid, tests, args, protect, channel, cancel, handed)
            else:
                process.close_handed(handed or [])
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
                             flags=flags_of(events)), events

    @contextmanager
    def _run_space(self, files: dict[str, str]
                   ) -> Iterator[tuple[iso.Layout, int | None, process.Channel]]:
        """One run's view of the workspace with ``files`` laid over it, and its results
        channel: (host layout, the run's uid, channel); both are gone on the way out. In the
        last-resort copy the files are written into the one copy and taken out again after
        the run (runs take turns there)."""
        self._check_open()
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=self._root))
        channel = process.Channel.open()
        turn = contextlib.nullcontext() if self.uses_view else self._copy_lock
        try:
            run_dir.chmod(0o711)
            with turn:
                host, uid, restore = self._prepare(run_dir, files)
                try:
                    yield host, uid, channel
                finally:
                    restore()
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

    def _prepare(self, run_dir: Path, files: dict[str, str]
                 ) -> tuple[iso.Layout, int | None, Callable[[], None]]:
        """The run's layout (with its mount operations), uid, and what undoes it."""
        plain = iso.host_layout(run_dir, self._lib)
        out, ctl = Path(plain.out), Path(plain.ctl)
        for d in (out, out / "home", out / "tmp", ctl):
            d.mkdir()
        uid = iso.run_uid() if self.drops_uid else None
        if self._base is None:
            placed = view.write_layer(run_dir / "files", files)
            ops = view.mounts(self._scan, self._masks, placed, self.limits.tmpfs_mb()[2])
            os.mkdir(plain.ws, 0o755)  # the kernel fallback's mount point
            host = iso.Layout(plain.ws, plain.out, plain.lib, plain.ctl,
                              source=str(self.workspace), mounts=ops)
            self._placed[host.ws] = placed
            return host, uid, lambda: self._placed.pop(host.ws, None)
        undo = view.write_into_copy(self._base, files)
        host = iso.Layout(str(self._base), plain.out, plain.lib, plain.ctl,
                          source=str(self.workspace), mounts=[])
        self._placed[host.ws] = {view.safe_relative(r).as_posix(): "" for r in files}
        return host, uid, lambda: (undo(), self._placed.pop(host.ws, None))

    def _sees_file(self, host: iso.Layout, rel: str) -> bool:
        """Whether the run sees ``rel`` as a file (its own or the workspace's)."""
        placed = self._placed.get(host.ws, {})
        if host.mounts is None or self._base is not None:
            return (Path(host.ws) / rel).is_file()
        return view.visible(self._scan, placed, rel)

    def _conftests(self, host: iso.Layout) -> list[str]:
        """Absolute paths, on the host side of the run's layout, of the conftests it sees."""
        if host.mounts is None or self._base is not None:
            return copying.conftests(Path(host.ws))
        rels = view.conftests(self._scan, self._placed.get(host.ws, {}))
        return [os.path.join(host.ws, r) for r in rels]

    def _write_request(self, host: iso.Layout, uid: int | None, tests: list[TestCase],
                       target: tuple[str, str] | None, protect: list[str],
                       extra: dict | None = None) -> None:
        bwrap = self._variant is not None
        seen = iso.inside_layout() if bwrap else host

        def inside(path: str) -> str:
            return os.path.join(seen.ws, os.path.relpath(path, host.ws))

        request = {"tests": [t.id for t in tests],
                   "conftests": [inside(p) for p in self._conftests(host)],
                   "target": ({"file": f"{seen.ws}/{target[0]}", "qualname": target[1]}
                              if target else None), **(extra or {})}
        if request.get("proxy") is not None and target:  # the target, as the judge sees it
            request["proxy"] = {**request["proxy"], "file": f"{seen.ws}/{target[0]}",
                                "real": str(self.workspace / target[0])}
        ctl = Path(host.ctl)
        (ctl / "request.json").write_text(json.dumps(request), encoding="utf-8")
        (ctl / "request.json").chmod(0o444)
        (ctl / "output.log").touch(mode=0o600)  # the server writes it through its own fd
        ctl.chmod(0o555)

    def _hand_over(self, host: iso.Layout, uid: int | None, protect: list[str]) -> None:
        """Give the run's ``out`` directory to its uid (the workspace stays the user's: the
        run sees it read-only and never owns it)."""
        if host.mounts is None:
            copying.make_read_only(protect)
            if uid is not None:
                copying.hand_over(Path(host.ws), uid, uid, keep=protect)
        if uid is not None:
            copying.hand_over(Path(host.out), uid, uid)

    def _execute(self, host: iso.Layout, uid: int | None, tests: list[TestCase],
                 file_args: list[str], protect: list[str], channel: process.Channel,
                 cancel: CancelToken | None, handed: list[int] | None = None) -> RunEnd:
        seen = iso.inside_layout() if self._variant is not None else host
        pytest_argv = [self.interpreter.path, "-s", "-m", "pytest", "-q", "--tb=short",
                       "-p", "no:cacheprovider", "-p", "plancode_pytest_plugin",
                       "--rootdir", seen.ws]
        if any(t.kind == "doctest" for t in tests):
            pytest_argv.append("--doctest-modules")
        return self._run_argv(host, uid, pytest_argv + file_args, protect, channel, cancel,
                              handed)

    def _run_argv(self, host: iso.Layout, uid: int | None, runner_argv: list[str],
                  protect: list[str], channel: process.Channel,
                  cancel: CancelToken | None, handed: list[int] | None = None,
                  more_env: dict[str, str] | None = None,
                  timeout: float | None = None) -> RunEnd:
        bwrap = self._variant is not None
        seen = iso.inside_layout() if bwrap else host
        confinement = self._confinement
        private_tmp = bwrap or (confinement is not None and confinement.namespaces)
        env = iso.runner_env(self.interpreter, seen, private_tmp=private_tmp,
                             server_python=self._server_python)
        env.update(more_env or {})
        iso.add_src_to_pythonpath(env, seen, Path(host.source or host.ws))
        tmp_mb = self.limits.write_mb
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
        with self.memory_cap.join(self.limits.memory_mb) as joined:
            end = process.run(argv, host.ws, env, Path(host.ctl) / "output.log", channel,
                              timeout or self.timeout, cancel, supervised=not bwrap,
                              info=bwrap, prefix=joined.prefix, handed=handed)
        if joined.oom_kills:
            note = (f"\nplancode sandbox: the run reached its memory cap of "
                    f"{self.limits.memory_mb} MB; the kernel killed {joined.oom_kills} of its "
                    "processes")
            end = dataclasses.replace(end, output_tail=(end.output_tail + note)[-4000:])
        return end


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
