"""The worker of a split run: the candidate's process, which only serves calls (issue 31).

Copied into the sandbox as ``plancode_call_worker.py`` (standard library only, beside
``plancode_values.py``) and started as ``python -m plancode_call_worker`` in a view of the
workspace that holds the *candidate's* files. Its judge (pytest and plancode's plugin, in a
sandbox of its own, with the user's original file) replaces the function under test by a proxy
(``call_proxy.py``) that sends each call here over a pipe; this process imports the target
module as pytest would, calls the function and answers. It decides nothing: the verdicts are
made in the judge, which this process cannot reach (its only way out is the response pipe,
and the judge decodes what comes out of it as plain data only).

The request file (``$PLANCODE_REQUEST``, key ``worker``) names the file, the module name, the
function and the project's pytest ``pythonpath``; ``$PLANCODE_WORKER_FDS`` holds the read end
of the request pipe and the write end of the response pipe. Each request is one JSON line,
``{"seq": N, "args": [ENC...], "kwargs": [[NAME, ENC]...]}`` (``plancode_values`` encoding);
each response is one JSON line::

    {"seq": N, "result": R, "out": TEXT, "err": TEXT, "changed": [[KEY, ENC]...],
     "warnings": [[MODULE, QUALNAME, MRO, MESSAGE]...]}

where ``R`` is ``["value", ENC]``, ``["arg", KEY]`` (it returned one of its arguments),
``["notplain", TYPE]`` (a value that is not plain data: the judge reruns the test in
process), ``["raised", MODULE, QUALNAME, MESSAGE, MRO, ARGS-or-null]`` or ``["broken", WHY]``
(the module could not be imported); ``changed`` holds the arguments the call mutated
(``KEY``: position or keyword), ``out``/``err`` what it printed.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
import warnings
from typing import Any

import plancode_pytest_import as pytest_import  # type: ignore[import-not-found]
import plancode_values as values  # type: ignore[import-not-found]

MAX_TEXT = 1_000_000  # characters printed per call, per stream (more: not carried)
MAX_WARNINGS = 100


class _Capture(io.TextIOBase):
    """sys.stdout or sys.stderr during one call: what it printed, up to :data:`MAX_TEXT`."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.overflow = False
        self.buffer = _Bytes(self)

    def writable(self) -> bool:
        return True

    def write(self, text: Any) -> int:
        text = str.__str__(text) if isinstance(text, str) else str(text)
        if self.size + len(text) > MAX_TEXT:
            self.overflow = True
        else:
            self.parts.append(text)
            self.size += len(text)
        return len(text)

    def text(self) -> str:
        return "".join(self.parts)


class _Bytes(io.RawIOBase):
    """``sys.stdout.buffer`` during a call: bytes written there count as UTF-8 text."""

    def __init__(self, owner: _Capture) -> None:
        self.owner = owner

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        raw = bytes(data)
        self.owner.write(raw.decode("utf-8", errors="replace"))
        return len(raw)


def _raised(exc: BaseException) -> list:
    """:func:`values.raised` plus the exception's arguments where they are plain data (the
    proxy rebuilds the exception with them)."""
    try:
        args = values.encode(tuple(BaseException.__getattribute__(exc, "args")), exact=True)
    except BaseException:  # noqa: BLE001 - arguments that are not plain data stay here
        args = None
    return [*values.raised(exc), args]


# -- importing the target as pytest's prepend mode would ---------------------------------------

def load(job: dict, root: str) -> tuple[Any, str]:
    """(the function, "") or (None, why it cannot be called)."""
    path = os.path.join(root, job["file"])
    for entry in reversed(list(job.get("paths", []))):
        full = os.path.normpath(os.path.join(root, entry))
        if full not in sys.path:
            sys.path.insert(0, full)
    basedir, name = pytest_import.basedir_and_name(path)
    if basedir not in sys.path:
        sys.path.insert(0, basedir)
    name = job.get("module") or name
    try:
        try:
            module = importlib.import_module(name)
        except ImportError:  # a conftest may be what puts its imports on sys.path
            sys.modules.pop(name, None)
            pytest_import.conftests(path, root, set())
            module = importlib.import_module(name)
    except BaseException as exc:  # noqa: BLE001 - SystemExit too: the module is unusable
        return None, (f"the candidate's module raised {type(exc).__name__} while importing: "
                      f"{values.text(exc)}")
    if os.path.realpath(getattr(module, "__file__", None) or "") != os.path.realpath(path):
        return None, f"{name} was imported from another file than {job['file']}"
    function = getattr(module, job["qualname"], None)
    if not callable(function):
        return None, f"the candidate's module defines no function {job['qualname']}"
    return function, ""


# -- serving calls -------------------------------------------------------------------------------

def _changed(args: list, kwargs: dict, request: dict) -> tuple[list, str]:
    """([key, encoding] of each argument the call changed, why one cannot be sent back)."""
    out = []
    sent = [*enumerate(request["args"]), *((k, v) for k, v in request["kwargs"])]
    for key, before in sent:
        value = args[key] if isinstance(key, int) else kwargs[key]
        if type(value) not in (list, dict, set, bytearray, tuple):
            continue
        try:
            after = values.encode(value, exact=True)
        except values.NotPlain as exc:
            return [], f"an argument now holds {exc}"
        if after != before:
            out.append([key, after])
    return out, ""


def serve(function: Any, request: dict) -> dict:
    """Run one call; the response (see the module docstring)."""
    args = [values.decode(a) for a in request["args"]]
    kwargs = {str(k): values.decode(v) for k, v in request["kwargs"]}
    out, err = _Capture(), _Capture()
    saved = sys.stdout, sys.stderr
    result: list
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sys.stdout, sys.stderr = out, err
        try:
            value = function(*args, **kwargs)
            ok = True
        except BaseException as exc:  # noqa: BLE001 - SystemExit too: a test would see it
            value, ok = exc, False
        finally:
            sys.stdout, sys.stderr = saved
    if not ok:
        result = _raised(value)
    else:
        same = [k for k, a in [*enumerate(args), *kwargs.items()] if a is value
                and type(a) in (list, dict, set, bytearray)]
        if same:
            result = ["arg", same[0]]
        else:
            try:
                result = ["value", values.encode(value, exact=True)]
            except values.NotPlain as exc:
                result = ["notplain", str(exc)]
            except BaseException as exc:  # noqa: BLE001 - a value that breaks the encoder
                result = ["notplain", f"{type(exc).__name__} while reading it"]
    changed, why = _changed(args, kwargs, request)
    if why:
        result, changed = ["notplain", why], []
    if out.overflow or err.overflow:
        result, changed = ["notplain", f"more than {MAX_TEXT} characters printed"], []
    shown = []
    for w in caught[:MAX_WARNINGS]:
        kind = w.category if isinstance(w.category, type) else Warning
        shown.append([str(getattr(kind, "__module__", "?")), str(kind.__qualname__),
                      values.class_names(kind), values.text(w.message)])
    return {"seq": request["seq"], "result": result, "out": out.text(), "err": err.text(),
            "changed": changed, "warnings": shown}


def _send(fd: int, response: dict) -> bool:
    line = (json.dumps(response, separators=(",", ":")) + "\n").encode("utf-8")
    while line:
        try:
            line = line[os.write(fd, line):]
        except InterruptedError:
            continue
        except OSError:
            return False
    return True


def main() -> None:
    with open(os.environ["PLANCODE_REQUEST"], encoding="utf-8") as f:
        job = json.load(f)["worker"]
    fd_in, fd_out = (int(x) for x in os.environ["PLANCODE_WORKER_FDS"].split(","))
    for fd in (fd_in, fd_out):
        os.set_inheritable(fd, False)  # the candidate's subprocesses do not get them
    function, broken = load(job, os.getcwd())
    with os.fdopen(fd_in, "rb", buffering=65536) as requests:
        for line in requests:
            seq = None
            try:
                request = json.loads(line)
                seq = request["seq"]
                response = ({"seq": seq, "result": ["broken", broken], "out": "", "err": "",
                             "changed": [], "warnings": []} if broken
                            else serve(function, request))
            except (ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
                response = {"seq": seq, "result": ["broken", f"a malformed request: {exc}"],
                            "out": "", "err": "", "changed": [], "warnings": []}
            if not _send(fd_out, response):
                break
    with contextlib.suppress(Exception):
        sys.stdout.flush()


if __name__ == "__main__":
    main()
