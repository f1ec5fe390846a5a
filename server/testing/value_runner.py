"""The sandboxed child of a value run: run the calls, send back what came out, decide nothing.

Copied into the sandbox as ``plancode_value_runner.py`` (standard library only, beside
``plancode_values.py``) and started as ``python -m plancode_value_runner`` in the workspace
copy. It reads the request (``$PLANCODE_REQUEST``, key ``values`` or ``probe``), runs each
step, and writes one signed line per step on the results pipe (``HMAC SEQ JSON``, the
format of ``plancode.testing.values.sign_line``): the value a call returned in the data-only
encoding, the type name of a value that is not plain data, or the exception it raised (module,
qualified name, message, and its classes' names). The server compares; nothing here knows
what a test expects.

The run's key goes straight from its pipe into a C-level HMAC object; no Python ``bytes``
object keeps it. Candidate code shares this process and can still reach the signer (and so
write lines of its own): the server's rules make that worthless — a line can only report a
value for a call, which the candidate could equally have returned (docs/security.md).
"""

from __future__ import annotations

import builtins
import contextlib
import importlib.util
import io
import json
import os
import signal
import sys
import types
import warnings
from collections.abc import Iterator
from typing import Any

import plancode_pytest_import as pytest_import  # type: ignore[import-not-found]
import plancode_values as values  # type: ignore[import-not-found]

MAX_TEXT = 20_000  # printed text kept per doctest example


def _channel() -> Any:
    """emit(event): one signed line on the results pipe."""
    import _hashlib

    fd_key = int(os.environ.get("PLANCODE_KEY_FD", "-1"))
    signer = None
    if fd_key >= 0:
        signer = _hashlib.hmac_new(os.read(fd_key, 64), digestmod="sha256")
        os.close(fd_key)
    fd = int(os.environ.get("PLANCODE_RESULTS_FD", "-1"))
    if fd >= 0:
        os.set_inheritable(fd, False)
    seq = [0]
    write, dumps, getpid = os.write, json.dumps, os.getpid
    owner = getpid()

    def emit(event: dict) -> None:
        if fd < 0 or signer is None or getpid() != owner:
            return
        body = f"{seq[0]} {dumps(event, separators=(',', ':'))}"
        seq[0] += 1
        mac = signer.copy()
        mac.update(body.encode("utf-8"))
        line = f"{mac.hexdigest()} {body}\n".encode()
        while line:
            try:
                line = line[write(fd, line):]
            except InterruptedError:
                continue
            except OSError:
                return

    return emit


_emit = _channel()


class _Slow(BaseException):
    """A call ran past its per-call time."""


def _alarm(*_: Any) -> None:
    raise _Slow()


def _value(value: Any, probe: bool = False) -> list:
    try:
        return ["value", values.encode(value)]
    except values.NotPlain as exc:
        shown = ""
        if probe:
            try:
                shown = repr(value)[:2000]
            except BaseException:  # noqa: BLE001
                shown = ""
        return ["notplain", str(exc), shown]
    except BaseException as exc:  # noqa: BLE001 - a value that breaks the encoder
        return ["notplain", f"{type(exc).__name__} while reading it", ""]


def _timed(per_call: float | None, fn: Any) -> tuple[bool, Any]:
    """(finished, (ok, result-or-exception))."""
    if per_call:
        signal.setitimer(signal.ITIMER_REAL, per_call)
    try:
        return True, (True, fn())
    except _Slow:
        return False, None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - SystemExit too: a test would fail on it
        return True, (False, exc)
    finally:
        if per_call:
            signal.setitimer(signal.ITIMER_REAL, 0)


# -- importing the way pytest does (rootdir, prepend import mode) -----------------------------

def _import(path: str) -> types.ModuleType:
    basedir, name = pytest_import.basedir_and_name(path)
    if basedir not in sys.path:
        sys.path.insert(0, basedir)
    return importlib.import_module(name)


_loaded: set[str] = set()


def _setup(index: int, path: str, root: str, paths: list[str]) -> types.ModuleType | None:
    """The test's module, imported after its conftests (and the project's ``pythonpath``
    put first on ``sys.path``, as pytest does); None (and a ``setup`` event saying what it
    raised) when that fails."""
    for entry in reversed(paths):
        full = os.path.normpath(os.path.join(root, entry))
        if full not in sys.path:
            sys.path.insert(0, full)
    finished, outcome = _timed(
        None, lambda: (pytest_import.conftests(path, root, _loaded), _import(path))[1])
    if finished and outcome[0]:
        return outcome[1]
    _emit({"event": "setup", "test": index,
           "result": values.raised(outcome[1]) if finished else ["timeout"]})
    return None


@contextlib.contextmanager
def _warning_filters(filters: list[str]) -> Iterator[None]:
    """The warning filters pytest applies around a test: deprecations always shown, then the
    project's ``filterwarnings`` (an ``error`` filter turns a warning into a failure)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("always", category=DeprecationWarning)
        warnings.filterwarnings("always", category=PendingDeprecationWarning)
        if filters:
            try:
                from _pytest.config import parse_warning_filter
            except ImportError:
                parse_warning_filter = None
            for line in filters:
                with contextlib.suppress(Exception):  # pytest itself would refuse to start
                    if parse_warning_filter is not None:
                        warnings.filterwarnings(*parse_warning_filter(line, escape=False))
        yield


# -- tests ------------------------------------------------------------------------------------

def _run_test(index: int, test: dict, root: str, per_call: float | None) -> None:
    path = os.path.join(root, test["file"])
    module = _setup(index, path, root, list(test.get("paths", [])))
    if module is None:
        return
    for c, case in enumerate(test["cases"]):
        namespace = dict(vars(module))
        for s, step in enumerate(case):
            if step["mode"] == "doctest":
                result = _doctest_example(namespace, step["source"], test["id"], s, per_call)
            else:
                result = _step(namespace, step, test["file"], per_call)
            _emit({"event": "step", "test": index, "case": c, "step": s, "result": result})


def _step(namespace: dict, step: dict, filename: str, per_call: float | None,
          probe: bool = False) -> list:
    mode = "exec" if step["mode"] == "exec" else "eval"
    try:
        code = compile(step["source"], filename, mode)
    except (SyntaxError, ValueError) as exc:
        return values.raised(exc)
    finished, outcome = _timed(per_call, lambda: (eval if mode == "eval" else exec)(
        code, namespace))
    if not finished:
        return ["timeout"]
    ok, result = outcome
    if not ok:
        return values.raised(result)
    return ["ok"] if mode == "exec" else _value(result, probe)


class _Capture(io.TextIOBase):
    """sys.stdout while a doctest example runs: what it prints, kept in order with what the
    displayhook shows."""

    def __init__(self, chunks: list) -> None:
        self.chunks, self.size = chunks, 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        text = str.__str__(text) if isinstance(text, str) else str(text)
        room = MAX_TEXT - self.size
        if room > 0:
            self.size += len(text[:room])
            if self.chunks and self.chunks[-1][0] == "text":
                self.chunks[-1][1] += text[:room]
            else:
                self.chunks.append(["text", text[:room]])
        return len(text)


def _doctest_example(globs: dict, source: str, test_id: str, number: int,
                     per_call: float | None) -> list:
    """Run one example as doctest does (``single`` mode, stdout captured, the displayhook
    showing results) and send back what it printed and showed, and what it raised."""
    chunks: list = []
    capture = _Capture(chunks)

    def display(value: Any) -> None:
        if value is None:
            return
        builtins._ = value  # type: ignore[attr-defined]
        encoded = _value(value)
        chunks.append(["value", encoded[1]] if encoded[0] == "value"
                      else ["notplain", encoded[1]])

    try:
        code = compile(source, f"<doctest {test_id}[{number}]>", "single")
    except (SyntaxError, ValueError) as exc:
        return ["doctest", [], values.raised(exc)]
    saved = sys.stdout, sys.displayhook
    sys.stdout, sys.displayhook = capture, display
    try:
        finished, outcome = _timed(per_call, lambda: exec(code, globs))
    finally:
        sys.stdout, sys.displayhook = saved
    if not finished:
        return ["timeout"]
    ok, result = outcome
    return ["doctest", chunks, None if ok else values.raised(result)]


def _run_doctest(index: int, test: dict, root: str, per_call: float | None) -> None:
    path = os.path.join(root, test["file"])
    module = _setup(index, path, root, list(test.get("paths", [])))
    if module is None:
        return
    globs = dict(vars(module))
    for s, step in enumerate(test["cases"][0]):
        result = _doctest_example(globs, step["source"], test["id"], s, per_call)
        _emit({"event": "step", "test": index, "case": 0, "step": s, "result": result})


# -- probes -----------------------------------------------------------------------------------

def _run_probe(probe: dict) -> None:
    """One candidate's module text, executed under its module's name, then each input call
    and each model-written check, each under the per-call timer."""
    per_call = float(probe.get("per_call") or 1.0)
    module = probe["module"]
    namespace = {"__name__": module, "__package__": module.rpartition(".")[0],
                 "__file__": probe["file"], "__builtins__": builtins}
    loaded = _step(namespace, {"mode": "exec", "source": probe["text"]}, probe["file"],
                   per_call)
    _emit({"event": "load", "result": loaded})
    if loaded[0] != "ok":
        return
    for k, call in enumerate(probe["inputs"]):
        _emit({"event": "input", "index": k,
               "result": _step(namespace, {"mode": "eval", "source": call}, probe["file"],
                               per_call, probe=True)})
    for k, check in enumerate(probe["checks"]):
        _emit({"event": "check", "index": k,
               "result": _step(dict(namespace), {"mode": "exec", "source": check},
                               probe["file"], per_call)})


def main() -> None:
    with open(os.environ["PLANCODE_REQUEST"], encoding="utf-8") as f:
        request = json.load(f)
    signal.signal(signal.SIGALRM, _alarm)
    root = os.getcwd()
    if request.get("probe") is not None:
        _run_probe(request["probe"])
    else:
        job = request["values"]
        per_call = job.get("per_call")
        for index, test in enumerate(job["tests"]):
            with _warning_filters(list(test.get("warnings", []))):
                if test["setup"] == "doctest":
                    _run_doctest(index, test, root, per_call)
                else:
                    _run_test(index, test, root, per_call)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    _emit({"event": "finish"})


if __name__ == "__main__":
    main()
