"""Split runs: the user's tests judged where the candidate's code cannot reach (issue 31).

Tests that are not value-shaped (fixtures, marks, loops, helpers, two computed values compared,
set-up methods) used to run under pytest in the candidate's own process, where code written
against plancode's plugin can forge a complete signed stream of passes. When the function
under test is a module-level function, such tests now run as two sandboxed processes, started
together and killed together (the run's timeout covers both):

* the **judge**: pytest and plancode's plugin, exactly as before, but its view of the
  workspace holds the *user's original* file of the function (every other file of the run is
  laid over it as before), and the plugin's import hook (``call_proxy.py``) replaces the
  function, once its module has run, by a proxy;
* the **worker** (``call_worker.py``): the candidate's files, the module imported as pytest
  would, serving the proxy's calls: plain data in, plain data out (``values.py``), with what
  the call printed, the warnings it raised and the arguments it mutated.

The server creates the two pipes (judge to worker, worker to judge) and hands one end of each
to each sandbox: the worker reaches nothing of the judge but the response pipe, and the judge
trusts nothing from it but strictly decoded plain data. Verdicts are ``out-of-process``.

A call that cannot cross (an argument or a return value that is not plain data, a test that
patches or writes files the worker cannot see) is reported by the judge (a signed ``fallback``
event); the server reruns *those tests* under pytest in the candidate's process, labelled
``in-process`` (weaker evidence: ``pipeline/result.py`` never calls a choice verified on it
alone). A worker that breaks the protocol makes its calls raise in the judge and their tests
``error`` (a signed ``proxy-error`` event), never pass.
"""

from __future__ import annotations

import ast
import functools
import os
import threading
import time
from pathlib import Path
from typing import Protocol

from plancode.analysis import pyparse
from plancode.engine.types import CancelToken
from plancode.testing import process, shapes, view
from plancode.testing.types import NEUTRAL, OUT_OF_PROCESS, RunResult, TestCase, TestVerdict
from plancode.testing.value_checks import combine
from plancode.testing.verdicts import Events, RunEnd, matches


class SplitRunner(Protocol):
    """What runs the two halves: :class:`plancode.testing.sandbox.Sandbox` (named by its
    methods, so this module, which the sandbox imports, does not import it back)."""

    workspace: Path

    @property
    def isolation(self) -> str: ...

    @property
    def isolation_detail(self) -> str: ...

    @property
    def uses_view(self) -> bool: ...

    def sees_original(self, rel: str) -> bool: ...

    def run_worker(self, files: dict[str, str], job: dict, handed: list[int],
                   cancel: CancelToken | None = None) -> RunEnd: ...

    def run_pytest(self, files: dict[str, str], tests: list[TestCase],
                   cancel: CancelToken | None = None, target: tuple[str, str] | None = None,
                   proxy: dict | None = None, handed: list[int] | None = None
                   ) -> tuple[RunResult, Events]: ...


def unsuitable(sandbox: SplitRunner, target: tuple[str, str] | None) -> str:
    """Why the tests of ``target`` cannot be split here ("" when they can)."""
    if not sandbox.uses_view:
        return "runs share the workspace's one copy here (no mount namespace)"
    if target is not None and (not target[0].endswith(".py")
                               or not sandbox.sees_original(target[0])):
        return f"{target[0]} is not a Python file the tests can see"
    return not_splittable(sandbox.workspace, target)


def not_splittable(workspace: Path, target: tuple[str, str] | None) -> str:
    """Why the tests of ``target`` cannot be split on any sandbox ("" when they can): the
    judge runs the user's own file, which must define it as a module-level function."""
    if target is None:
        return "no function under test was named"
    rel, qualname = target
    if "." in qualname:
        return "the function under test is not a module-level function"
    path = workspace / rel
    try:
        stat = path.stat()
    except OSError:
        return f"{rel} does not exist in the workspace"
    return _defines(str(path), stat.st_mtime_ns, stat.st_size, qualname)


@functools.lru_cache(maxsize=64)
def _defines(path: str, _mtime: int, _size: int, qualname: str) -> str:
    """Why the user's file does not define ``qualname`` as a module-level function ("" when
    it does): the judge runs that file, so it must import and hold the function."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            tree = pyparse.parse(f.read())
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError) as exc:
        return f"the user's file cannot be read ({type(exc).__name__})"
    found = [n for n in tree.body if getattr(n, "name", None) == qualname]
    if not found or not isinstance(found[-1], ast.FunctionDef):
        return f"the user's file does not define {qualname} as a plain function"
    return ""


def module_name(workspace: Path, rel: str) -> str:
    """The module name pytest's prepend mode gives ``rel`` (packages walked up)."""
    path = workspace / rel
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file() and folder.parent != folder:
        parts.insert(0, folder.name)
        folder = folder.parent
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def run(sandbox: SplitRunner, files: dict[str, str], tests: list[TestCase],
        target: tuple[str, str], cancel: CancelToken | None) -> RunResult:
    """Run ``tests`` as a split run (see the module docstring); the tests whose calls could
    not cross run again in process. One verdict per test, in order."""
    start = time.monotonic()
    rel, qualname = target
    module = module_name(sandbox.workspace, rel)
    judge_files = {k: v for k, v in files.items() if view.safe_relative(k).as_posix() != rel}
    try:
        paths = list(shapes.project_pythonpath(sandbox.workspace, files))
    except shapes.NotShaped:
        paths = []
    job = {"file": rel, "module": module, "qualname": qualname, "paths": paths}
    request_read, request_write = os.pipe()
    answer_read, answer_write = os.pipe()
    worker_fds, judge_fds = [request_read, answer_write], [request_write, answer_read]
    # cancelled when the request is, or when the judge is done (the worker is then killed)
    done = CancelToken(cancel)
    ended: dict = {}

    def work() -> None:
        try:
            if not done.cancelled:
                ended["end"] = sandbox.run_worker(files, job, worker_fds, done)
        except Exception as exc:  # noqa: BLE001 - the judge's calls fail; the tail says why
            ended["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            process.close_handed(worker_fds)

    worker = threading.Thread(target=work, name="plancode-call-worker", daemon=True)
    worker.start()
    try:
        proxy = {"qualname": qualname, "module": module, "fds": list(judge_fds)}
        judged, events = sandbox.run_pytest(judge_files, tests, cancel, target, proxy,
                                            judge_fds)
    finally:
        process.close_handed(judge_fds)
        done.cancel()
        worker.join()
    split, again, flags = _sort(tests, judged, events)
    part = _judged_part(judged, split, flags, ended, time.monotonic() - start)
    parts = [part]
    if again and not (cancel is not None and cancel.cancelled):
        parts.append(sandbox.run_pytest(files, again, cancel, target)[0])
    return combine(parts, tests, sandbox.isolation, sandbox.isolation_detail)


def _reasons(test: TestCase, found: dict[str, str]) -> str:
    """The first reason ``found`` gives for ``test`` (a node of it, or "" for every test)."""
    for nodeid, why in found.items():
        if not nodeid or matches(test.id, nodeid):
            return why
    return ""


def _sort(tests: list[TestCase], judged: RunResult, events: Events
          ) -> tuple[list[TestVerdict], list[TestCase], list[str]]:
    """(the judge's verdicts that stand, the tests to rerun in process, flags)."""
    rerun = not (judged.tampered or judged.timed_out or judged.cancelled)
    kept: list[TestVerdict] = []
    again: list[TestCase] = []
    flags: list[str] = []
    for test, verdict in zip(tests, judged.verdicts, strict=True):
        broken = _reasons(test, events.proxy_errors)
        fallback = _reasons(test, events.fallback)
        if broken and verdict.outcome != "timeout":
            verdict = TestVerdict(verdict.id, "error", broken, verdict.seconds, verdict.kind)
        elif fallback and rerun:
            again.append(test)
            flags.append(f"checked in process: {test.id} "
                         f"({fallback.removeprefix('plancode: ')})")
            continue
        verdict.checked = OUT_OF_PROCESS
        kept.append(verdict)
    return kept, again, flags


def _judged_part(judged: RunResult, kept: list[TestVerdict], flags: list[str],
                 ended: dict, seconds: float) -> RunResult:
    extra = dict(judged.extra)
    end: RunEnd | None = ended.get("end")
    extra["worker_returncode"] = end.returncode if end is not None else None
    runner_ok = judged.runner_ok or (
        len(kept) < len(judged.verdicts) and not judged.tampered
        and extra.get("returncode") == 1 and extra.get("pytest_exitstatus") == 1
        and all(v.outcome == "passed" or v.outcome in NEUTRAL for v in kept))
    worker_tail = ended.get("error", "") or (end.output_tail if end is not None else "")
    tail = judged.output_tail.rstrip()
    if worker_tail.strip():
        tail += "\n--- the candidate's process (split run worker) ---\n" + worker_tail.strip()
    return RunResult(kept, judged.isolation, judged.isolation_detail, seconds=seconds,
                     timed_out=judged.timed_out, cancelled=judged.cancelled,
                     output_tail=tail[-4000:], extra=extra, runner_ok=runner_ok,
                     tampered=judged.tampered, flags=sorted({*judged.flags, *flags}))
