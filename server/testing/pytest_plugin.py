"""The pytest plugin the sandbox loads (``-p plancode_pytest_plugin``): authenticated results.

Copied into the sandbox outside the workspace copy, so it imports only the standard library and
pytest (never ``server``). pytest imports it while parsing its command line, before any
conftest, test file or candidate module, and at that moment it:

* reads the run's secret from the inherited fd ``$PLANCODE_KEY_FD`` and closes it, so code that
  runs later cannot read it from there;
* takes the write end of the results pipe (``$PLANCODE_RESULTS_FD``) and makes it
  non-inheritable, so subprocesses of the tests do not get it;
* keeps the functions it needs (``os.write``, ``hmac``, ``json.dumps``) and the pytest runtime
  functions it guards in a closure.

Every event is one line: an HMAC-SHA256 of ``SEQ JSON`` under the secret, ``SEQ`` and the JSON.
The host rejects a run with a line it cannot authenticate, out of sequence, or contradicting an
earlier one (see ``server/testing/verdicts.py``). Events: ``selected`` (node ids that will run),
``start``, ``report`` (one phase: outcome, duration, one-line message, and whether a skip or
xfail came from the user's marks), ``collect`` (a file that failed to collect or was skipped),
``suspicious`` (the function under test returned an object that claims equality with
anything), ``tamper`` (the plugin saw the test machinery changed under it), ``fallback`` and
``proxy-error`` (a split run's call proxy could not check a call out of process, or the
worker broke the protocol; ``nodeid`` "" when no test was running) and ``finish``.

In a split run (the request holds ``proxy``) this process is the *judge*: it holds the user's
original file of the function under test and no code of the candidate's; at import time,
before any conftest or test module, the plugin installs ``plancode_call_proxy``'s import hook,
which replaces the function by a proxy to the worker process that runs the candidate.

What it guards against, in-process (the host-side checks cover the results channel itself):
a plugin registered while the tests run that is neither pytest's own nor one of the workspace's
conftest files; pytest's runner functions replaced; a report that says "passed" although the
call raised, or a report changed between the makereport and logreport hooks. Code that
deliberately digs the secret out of this module's closures or the process memory can still
forge lines: docs/security.md says so.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import dataclasses
import doctest
import functools
import hashlib
import hmac
import json
import os
import re
import sys
from typing import Any

import _pytest.doctest
import _pytest.python
import _pytest.runner
import _pytest.skipping
import _pytest.unittest
import pytest

_MAX_MESSAGE = 300


def _signer(key: bytes) -> Any:
    """An HMAC-SHA256 object keyed with ``key``: OpenSSL's (the key lives in C memory only)
    where the interpreter has it, else the standard library's."""
    try:
        import _hashlib

        return _hashlib.hmac_new(key, digestmod="sha256")
    except (ImportError, ValueError, AttributeError):
        return hmac.new(key, digestmod=hashlib.sha256)


def _make_channel() -> tuple[Any, Any]:
    """(emit, guarded): ``emit(event)`` writes one signed line; ``guarded()`` names the first
    guarded runtime object that was replaced since import ("" when none). The secret and the
    primitives live only in this closure."""
    signer: Any = None
    fd = -1
    try:
        key_fd = int(os.environ.get("PLANCODE_KEY_FD", "-1"))
        if key_fd >= 0:
            # the key goes from the pipe into OpenSSL's HMAC context; no bytes object keeps it
            signer = _signer(os.read(key_fd, 64))
            os.close(key_fd)
        fd = int(os.environ.get("PLANCODE_RESULTS_FD", "-1"))
        if fd >= 0:
            os.set_inheritable(fd, False)
    except (OSError, ValueError):
        fd = -1
    write, dumps, getpid = os.write, json.dumps, os.getpid
    owner = getpid()
    seq = [0]
    originals = {
        "CallInfo.from_call": (_pytest.runner.CallInfo, "from_call",
                               _pytest.runner.CallInfo.__dict__["from_call"]),
        "runner.call_and_report": (_pytest.runner, "call_and_report",
                                   _pytest.runner.call_and_report),
        "runner.runtestprotocol": (_pytest.runner, "runtestprotocol",
                                   _pytest.runner.runtestprotocol),
        "Function.runtest": (_pytest.python.Function, "runtest",
                             _pytest.python.Function.runtest),
        "pytest_pyfunc_call": (_pytest.python, "pytest_pyfunc_call",
                               _pytest.python.pytest_pyfunc_call),
        "TestCaseFunction.runtest": (_pytest.unittest.TestCaseFunction, "runtest",
                                     _pytest.unittest.TestCaseFunction.runtest),
        "DoctestItem.runtest": (_pytest.doctest.DoctestItem, "runtest",
                                _pytest.doctest.DoctestItem.runtest),
        "skipping.pytest_runtest_makereport": (_pytest.skipping, "pytest_runtest_makereport",
                                               _pytest.skipping.pytest_runtest_makereport),
        "builtins.AssertionError": (builtins, "AssertionError", AssertionError),
        "doctest.DocTestRunner.run": (doctest.DocTestRunner, "run", doctest.DocTestRunner.run),
    }

    def emit(event: dict) -> None:
        if fd < 0 or signer is None or getpid() != owner:
            return
        body = f"{seq[0]} {dumps(event)}"
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

    def guarded() -> str:
        module = sys.modules.get(__name__)
        mine = getattr(module, "__dict__", {})
        for name in ("_emit", "_guarded", "_tamper", "_check_integrity", "suspicious"):
            if name in mine and name in own and mine[name] is not own[name]:
                return f"plancode plugin's {name}"
        for name, (function, state) in list(own_state.items()):
            if _state(function) != state:
                return f"plancode plugin's {name} (its code, defaults or closure)"
        for name, (owner_obj, attr, original) in originals.items():
            now = (owner_obj.__dict__.get(attr) if isinstance(owner_obj, type)
                   else getattr(owner_obj, attr, None))
            if now is not original:
                return name
        return ""

    return emit, guarded


own: dict[str, Any] = {}
own_state: dict[str, tuple[Any, tuple]] = {}
_emit, _guarded = _make_channel()
_current = [""]
_noted: set[tuple[str, str]] = set()  # (kind, nodeid) of the proxy's reports so far
_items: dict[str, Any] = {}  # nodeid -> selected item (the proxy asks about the running one)
_unsafe: dict[str, str] = {}  # nodeid -> why its calls may not cross ("" when they may)
# fixtures whose effect the worker would not share: patches of other modules, captured logs
# or file descriptors (printed text and warnings are replayed; tmp_path is checked per call)
_ENV_FIXTURES = ("monkeypatch", "mocker", "caplog", "capfd", "capfdbinary", "capsysbinary")
_PATCHING = re.compile(r"\b(mock|Mock|MagicMock|patch|monkeypatch|mocker)\b")


def _proxy_note(kind: str, message: str, nodeid: str | None = None,
                _emit: Any = _emit) -> None:
    """One ``fallback`` or ``proxy-error`` event per test (``nodeid`` "" outside tests)."""
    nodeid = _current[0] if nodeid is None else nodeid
    if (kind, nodeid) not in _noted:
        _noted.add((kind, nodeid))
        _emit({"event": kind, "nodeid": nodeid, "message": one_line(message)})


def _install_proxy() -> Any:
    """The call proxy of a split run (``plancode_call_proxy``), installed now: before any
    conftest, test module or module of the user's is imported. None when not a split run."""
    request = os.environ.get("PLANCODE_REQUEST")
    if not request:
        return None
    try:
        with open(request, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    config = data.get("proxy") if isinstance(data, dict) else None
    if not config:
        return None
    import plancode_call_proxy

    def report(kind: str, message: str) -> None:
        if kind == "proxy-broken":  # no answer of the worker's can be trusted: every test
            _proxy_note("proxy-error", message, "")
        else:
            _proxy_note(kind, message)

    proxy = plancode_call_proxy.install(config, report)
    proxy.unsafe = _unsafe_now
    return proxy


def _unsafe_now() -> str:
    """Why calls of the running test may not cross to the worker ("" when they may)."""
    nodeid = _current[0]
    item = _items.get(nodeid)
    if item is None:
        return ""
    if nodeid not in _unsafe:
        try:
            _unsafe[nodeid] = _unsafe_reason(item)
        except Exception as exc:  # noqa: BLE001 - unreadable: better in process
            _unsafe[nodeid] = f"the test cannot be read ({type(exc).__name__})"
    return _unsafe[nodeid]


def _unsafe_reason(item: Any) -> str:
    """A fixture or a patch in the test, its class or its fixtures that changes what the
    function sees in this process only."""
    names = set(getattr(item, "fixturenames", None) or ())
    for name in _ENV_FIXTURES:
        if name in names:
            return f"the test uses the {name} fixture, which the worker does not share"
    import inspect

    sources = [getattr(item, "obj", None), getattr(getattr(item, "parent", None), "obj", None)]
    info = getattr(item, "_fixtureinfo", None)
    for defs in (getattr(info, "name2fixturedefs", None) or {}).values():
        for fixturedef in defs:
            func = getattr(fixturedef, "func", None)
            if not str(getattr(func, "__module__", "")).startswith(("_pytest", "pytest")):
                sources.append(func)
    for obj in sources:
        if obj is None or isinstance(obj, type(sys)):
            continue
        try:
            text = inspect.getsource(inspect.unwrap(obj))
        except (OSError, TypeError, ValueError):
            continue
        found = _PATCHING.search(text)
        if found:
            return f"the test or its set-up uses {found.group(1)}, which the worker does not see"
    return ""


_proxy: Any = None  # the split run's call proxy (set at the end of this module)
_requested: list[str] = []
_target: dict[str, str] = {}
_conftests: set[str] = set()
_allowed: set[int] | None = None  # ids of the plugins registered when the session started
_seen: dict[tuple[str, str], str] = {}  # (nodeid, when) -> outcome seen in makereport
_suspicious: dict[str, str] = {}
_subtests: dict[str, _SubtestCounts] = {}  # nodeid -> what its subtests did so far
_tampered = [False]
# per requested test file: the classes and (class, method)s the user decorated with unittest's
# unconditional @skip, read from the source before any test or candidate code is imported.
# skipIf/skipUnless are left out: whether they skip is decided at run time, where a
# candidate's SkipTest inside a test whose condition is false would look the same
_unittest_skips: dict[str, set[tuple[str, ...]]] = {}
_UNITTEST_SKIPS = frozenset({"skip"})
# per requested test file: the scopes ((), (Class,), (Class, method), (function,)) whose
# source carries a skip/skipif or an xfail mark (read before any test or candidate code runs)
_source_marks: dict[str, dict[str, set[tuple[str, ...]]]] = {}
_conftest_marks = [False]  # a conftest adds marks itself (add_marker): trust the snapshot
# per selected test, taken once collection is over: its skip/skipif/xfail marks and its
# function's code object. A mark added or code swapped after that is the candidate's
_marks_snapshot: dict[str, tuple[Any, ...]] = {}
# per requested test file: the first line (decorators included) of each test function, by
# scope: a test's code object must come from its file, under its name, at that line
_source_lines: dict[str, dict[tuple[str, ...], int]] = {}
_code_snapshot: dict[str, tuple[Any, Any]] = {}
_MARK_NAMES = ("skip", "skipif", "xfail")


def matches(requested: str, nodeid: str) -> bool:
    """Whether ``nodeid`` is the requested test or inside it (a parametrized case, a method of
    a requested class, any test of a requested file)."""
    return (nodeid == requested or nodeid.startswith(requested + "::")
            or nodeid.startswith(requested + "["))


def one_line(text: str) -> str:
    """The first non-empty line of ``text``, stripped of pytest's ``E`` prefix and shortened."""
    for line in str(text).splitlines():
        line = line.strip()
        if line.startswith("E "):
            line = line[1:].strip()
        if line:
            return line if len(line) <= _MAX_MESSAGE else line[:_MAX_MESSAGE - 1] + "…"
    return ""


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def exception_message(exc: BaseException) -> str:
    """A one-line description of a test's exception (doctest failures spelled out)."""
    failures = getattr(exc, "failures", None)
    if failures and isinstance(failures, list | tuple):  # pytest's MultipleDoctestFailures
        exc = failures[0]
    if isinstance(exc, doctest.DocTestFailure):
        example = exc.example
        return one_line(f"doctest: {_short(example.source)} expected {_short(example.want)!s}"
                        f", got {_short(exc.got) or 'nothing'}")
    if isinstance(exc, doctest.UnexpectedException):
        _type, value, _tb = exc.exc_info
        return one_line(f"doctest: {_short(exc.example.source)} raised "
                        f"{type(value).__name__}: {value}")
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return one_line(text)


def report_message(report: Any) -> str:
    """The message stashed by our makereport hook, else reprcrash's, else longrepr's last
    meaningful line."""
    stashed = getattr(report, "plancode_message", "")
    if stashed:
        return stashed
    wasxfail = getattr(report, "wasxfail", None)
    if wasxfail is not None:
        return one_line(f"xfail: {wasxfail}" if wasxfail else "xfail")
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # skip: (path, line, reason)
        return one_line(str(longrepr[2]).removeprefix("Skipped: "))
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", ""):
        return one_line(crash.message)
    errorstring = getattr(longrepr, "errorstring", "")  # fixture lookup errors
    if errorstring:
        return one_line(errorstring)
    lines = [line for line in str(longrepr).splitlines() if line.strip()]
    errors = [line for line in lines if line.lstrip().startswith("E ")]
    return one_line((errors or lines or [""])[-1])


def _tamper(message: str, _emit: Any = _emit) -> None:
    if not _tampered[0]:
        _tampered[0] = True
        _emit({"event": "tamper", "message": message})


# -- the function under test: flag return values that claim equality with anything ------------

class _Probe:
    """A fresh object nothing legitimate is equal to."""

    def __eq__(self, other: object) -> bool:
        return NotImplemented  # type: ignore[return-value]

    __hash__ = object.__hash__


_PLAIN = (type(None), bool, int, float, complex, str, bytes, bytearray, range)


def suspicious(value: Any, depth: int = 0) -> str:
    """Why ``value`` looks built to pass any ``==`` test ("" when it does not)."""
    kind = type(value)
    if kind in _PLAIN:
        return ""
    if kind in (list, tuple, set, frozenset) and depth < 3:
        for item in list(value)[:50]:
            why = suspicious(item, depth + 1)
            if why:
                return why
        return ""
    if kind is dict and depth < 3:
        for item in list(value.values())[:50]:
            why = suspicious(item, depth + 1)
            if why:
                return why
        return ""
    if getattr(kind, "__eq__", None) is object.__eq__:
        return ""
    # a fresh object, and numbers and a string nothing honest equals: an object that claims
    # equality with every number but raises on anything else is caught by the numbers
    noise = int.from_bytes(os.urandom(6), "big")
    claims = False
    for probe in (_Probe(), -(10 ** 15) - noise, noise * 1e-300 + 5e-324, f"plancode-{noise}"):
        try:
            claims = claims or bool(value == probe)
        except Exception:  # noqa: BLE001 - numpy arrays and the like refuse bool()
            continue
    if claims:
        return (f"suspicious return type: {kind.__module__}.{kind.__qualname__} claims to be "
                "equal to anything (its __eq__ always answers True)")
    return ""


def _check_return(function: Any) -> Any:
    @functools.wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        value = function(*args, **kwargs)
        nodeid = _current[0]
        if nodeid and nodeid not in _suspicious:
            why = suspicious(value)
            if why:
                _suspicious[nodeid] = why
        return value

    checked.__plancode_checked__ = True  # type: ignore[attr-defined]
    return checked


def _docstrings(path: str) -> dict[str, str | None]:
    """Raw docstrings of the module and every function and class in the file at ``path``,
    by qualified name (read from the file, which the sandbox made read-only)."""
    import ast

    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    found: dict[str, str | None] = {"": ast.get_docstring(tree, clean=False)}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                found[name] = ast.get_docstring(child, clean=False)
                visit(child, name + ".")

    visit(tree, "")
    return found


def _check_doctests(items: list[pytest.Item]) -> None:
    """A doctest must run the examples the file holds: a candidate that rewrote a docstring at
    import time (``f.__doc__ = ...``) is tampering."""
    cache: dict[str, dict[str, str | None]] = {}
    for item in items:
        if not isinstance(item, _pytest.doctest.DoctestItem) or item.dtest is None:
            continue
        test = item.dtest
        if not test.filename or not test.filename.endswith(".py"):
            continue
        if test.filename not in cache:
            cache[test.filename] = _docstrings(test.filename)
        module = test.name.split(".")
        docs = cache[test.filename]
        for start in range(len(module) + 1):
            qualname = ".".join(module[start:])
            if qualname in docs:
                if (docs[qualname] or "") != (test.docstring or ""):
                    _tamper(f"{item.nodeid}: the doctest's examples differ from the file's")
                break


def _watch_target(items: list[pytest.Item]) -> None:
    """Wrap the function under test wherever the collected tests can reach it."""
    file, qualname = _target.get("file"), _target.get("qualname")
    if not file or not qualname or _proxy is not None:  # a judge's target is the proxy
        return
    path = os.path.realpath(file)
    module = next((m for m in list(sys.modules.values())
                   if os.path.realpath(getattr(m, "__file__", None) or "") == path), None)
    if module is None:
        return
    owner: Any = module
    parts = qualname.split(".")
    for part in parts[:-1]:
        owner = getattr(owner, part, None)
        if owner is None:
            return
    original = owner.__dict__.get(parts[-1]) if isinstance(owner, type) else \
        getattr(owner, parts[-1], None)
    if not callable(original) or isinstance(original, staticmethod | classmethod | type):
        return
    checked = _check_return(original)
    setattr(owner, parts[-1], checked)
    if isinstance(owner, type):
        return
    namespaces = [vars(m) for m in list(sys.modules.values()) if hasattr(m, "__dict__")]
    namespaces += [item.dtest.globs for item in items
                   if isinstance(item, _pytest.doctest.DoctestItem) and item.dtest is not None]
    for namespace in namespaces:
        try:
            for name, value in list(namespace.items()):
                if value is original:
                    namespace[name] = checked
        except (TypeError, RuntimeError):
            continue


# -- hooks ----------------------------------------------------------------------------------

def _remember_own() -> None:
    """The plugin's own functions as first defined, and the code, default arguments and
    closure contents of each of its functions (the guard compares against these: rebinding
    a hook's ``_emit`` default or a closure cell is tampering)."""
    module = sys.modules[__name__].__dict__
    for name in ("_emit", "_guarded", "_tamper", "_check_integrity", "suspicious"):
        own[name] = module[name]
    for name, value in list(module.items()):
        if isinstance(value, type(_remember_own)) and value.__module__ == __name__:
            own_state[name] = (value, _state(value))


def _state(function: Any) -> tuple:
    cells = tuple(id(c.cell_contents) if _filled(c) else None
                  for c in (function.__closure__ or ()))
    return (id(function.__code__), id(function.__defaults__), id(function.__kwdefaults__),
            tuple(map(id, function.__defaults__ or ())), cells)


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def unknown_addopts(addopts: list[str], unknown: set[str]) -> tuple[list[str], list[str]]:
    """(kept, dropped) of the ini ``addopts`` tokens: an option no loaded plugin defines is
    dropped, with its value when that is the next token (``--cov src``)."""
    kept: list[str] = []
    dropped: list[str] = []
    i = 0
    while i < len(addopts):
        token = addopts[i]
        if token not in unknown:
            kept.append(token)
        elif "=" not in token and i + 1 < len(addopts) and not addopts[i + 1].startswith("-"):
            dropped += [token, addopts[i + 1]]
            i += 1
        else:
            dropped.append(token)
        i += 1
    return kept, dropped


@pytest.hookimpl(hookwrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser,
                                  args: list[str]):
    """The project's ini ``addopts`` minus options of plugins this interpreter does not load
    (``--cov=...`` without pytest-cov, or with plugin autoloading off under the server's
    interpreter): pytest would refuse the whole command line for them. Checked after the
    initial conftests have added their options, as pytest itself checks."""
    yield
    addopts = [str(a) for a in early_config.getini("addopts")]
    if not addopts or args[: len(addopts)] != addopts:
        return
    _, unknown = parser.parse_known_and_unknown_args(addopts)
    kept, dropped = unknown_addopts(addopts, {u for u in unknown if u.startswith("-")})
    if dropped:
        args[: len(addopts)] = kept
        print(f"plancode: ignored from the project's pytest addopts (no loaded plugin defines "
              f"them): {' '.join(dropped)}", file=sys.stderr)


def pytest_configure(config: pytest.Config) -> None:
    global _requested, _target, _conftests
    request = os.environ.get("PLANCODE_REQUEST")
    if not request:
        return
    with open(request, encoding="utf-8") as f:
        data = json.load(f)
    if isinstance(data, list):  # the older format: just node ids
        data = {"tests": data}
    _requested = list(data.get("tests", []))
    _target = dict(data.get("target") or {})
    _conftests = {os.path.realpath(p) for p in data.get("conftests", [])}
    for path in {t.split("::")[0] for t in _requested if t.split("::")[0].endswith(".py")}:
        _unittest_skips[path] = _scan_unittest_skips(os.path.join(str(config.rootpath), path))
        _source_marks[path], _source_lines[path] = _scan_marks(
            os.path.join(str(config.rootpath), path))
    for conftest in _conftests:
        with contextlib.suppress(OSError, UnicodeDecodeError), \
                open(conftest, encoding="utf-8") as f:
            _conftest_marks[0] = _conftest_marks[0] or "add_marker" in f.read()


def _scan_marks(path: str) -> tuple[dict[str, set[tuple[str, ...]]],
                                     dict[tuple[str, ...], int]]:
    """Which scopes of the file the user marked skip/skipif ("skip") or xfail ("xfail"):
    decorators, ``pytestmark`` of the module or a class, ``pytest.param(..., marks=...)``
    in a decorator, and module-level names bound to such marks used as decorators; and the
    first line of every function and method (its code object's ``co_firstlineno``)."""
    found: dict[str, set[tuple[str, ...]]] = {"skip": set(), "xfail": set()}
    lines: dict[tuple[str, ...], int] = {}
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return found, lines
    aliases: dict[str, set[str]] = {}

    def kinds(node: ast.AST) -> set[str]:
        text = ast.unparse(node)
        out = {"skip"} if "mark.skip" in text else set()
        out |= {"xfail"} if "mark.xfail" in text else set()
        for name in {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} & set(aliases):
            out |= aliases[name]
        return out

    def mark(scope: tuple[str, ...], node: ast.AST) -> None:
        for kind in kinds(node):
            found[kind].add(scope)

    def visit(body: list[ast.stmt], outer: tuple[str, ...]) -> None:
        for node in body:
            if isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if "pytestmark" in names:
                    mark(outer, node.value)
                elif not outer:
                    for name in names:
                        aliases[name] = kinds(node.value)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                scope = (*outer, node.name)
                for deco in node.decorator_list:
                    mark(scope, deco)
                if all("mark." in ast.unparse(d) for d in node.decorator_list):
                    # a wrapping decorator (unittest.skip, mock.patch) runs code from elsewhere
                    lines[scope] = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if isinstance(node, ast.ClassDef):
                    visit(node.body, scope)

    visit(tree.body, ())
    return found, lines


def _marked_in_source(nodeid: str, kind: str) -> bool:
    """Whether the user's source marks this test (its class, its module) with ``kind``."""
    if _conftest_marks[0]:
        return True
    path, *names = nodeid.split("::")
    scopes = _source_marks.get(path, {}).get(kind, set())
    names = [n.split("[")[0] for n in names]
    return any(tuple(names[:i]) in scopes for i in range(len(names) + 1))


def _snapshot(items: list[pytest.Item]) -> None:
    """Each selected test's skip/skipif/xfail marks and its function's code, as collected."""
    for item in items:
        with contextlib.suppress(Exception):
            _marks_snapshot[item.nodeid] = _marks_of(item)
            function = _function_of(item)
            if function is not None:
                _code_snapshot[item.nodeid] = (function, function.__code__)
                why = _foreign_code(item.nodeid, function)
                if why:
                    _tamper(f"{item.nodeid}: {why}")


def _foreign_code(nodeid: str, function: Any) -> str:
    """Why the test's code object is not the one its file defines ("" when it is): a code
    swapped in before collection ended comes from elsewhere, under another name or line."""
    path, *names = nodeid.split("::")
    lines = _source_lines.get(path)
    scope = tuple(n.split("[")[0] for n in names)
    if not lines or scope not in lines:
        return ""
    code = function.__code__
    if os.path.basename(code.co_filename) != os.path.basename(path) \
            or code.co_name != scope[-1] or code.co_firstlineno != lines[scope]:
        return (f"the test function's code is not the one in its file ({code.co_name} from "
                f"{os.path.basename(code.co_filename)}:{code.co_firstlineno})")
    return ""


def _marks_of(item: pytest.Item) -> tuple[Any, ...]:
    return tuple(m for m in item.iter_markers() if m.name in _MARK_NAMES)


def _function_of(item: pytest.Item) -> Any:
    obj = getattr(item, "obj", None) if not isinstance(item, _pytest.doctest.DoctestItem) \
        else None
    obj = getattr(obj, "__func__", obj)
    return obj if isinstance(getattr(obj, "__code__", None), type(_function_of.__code__)) \
        else None


def _marks_changed(item: pytest.Item) -> bool:
    """Whether the test's skip/xfail marks differ from those it was collected with."""
    before = _marks_snapshot.get(item.nodeid)
    try:
        now = _marks_of(item)
    except Exception:  # noqa: BLE001 - marks that cannot be read are not the user's
        return True
    return before is None or len(now) != len(before) or \
        any(a is not b for a, b in zip(now, before, strict=True))


def _code_swapped(item: pytest.Item) -> bool:
    """Whether the test's function object or its code changed since collection."""
    known = _code_snapshot.get(item.nodeid)
    if known is None:
        return False
    try:
        function = _function_of(item)
    except Exception:  # noqa: BLE001
        return True
    return function is not known[0] or function.__code__ is not known[1]


def _scan_unittest_skips(path: str) -> set[tuple[str, ...]]:
    """(Class,) and (Class, method) that the source decorates with ``unittest.skip``. Read
    from the file, not from the classes at run time: a candidate's code could set
    ``__unittest_skip__`` on the user's classes to turn their failures into skips."""
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return set()
    found: set[tuple[str, ...]] = set()
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        if _unittest_skip_decorator(node.decorator_list):
            found.add((node.name,))
        for item in node.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) \
                    and _unittest_skip_decorator(item.decorator_list):
                found.add((node.name, item.name))
    return found


def _unittest_skip_decorator(decorators: list[ast.expr]) -> bool:
    for deco in decorators:
        target = deco.func if isinstance(deco, ast.Call) else deco
        if isinstance(target, ast.Name) and target.id in _UNITTEST_SKIPS:
            return True  # from unittest import skip
        if (isinstance(target, ast.Attribute) and target.attr in _UNITTEST_SKIPS
                and isinstance(target.value, ast.Name) and target.value.id == "unittest"):
            return True
    return False


def _unittest_skip_in_source(nodeid: str) -> bool:
    """Whether the user's source decorates this test (or its class) with a unittest skip."""
    path, *names = nodeid.split("::")
    skips = _unittest_skips.get(path)
    if not skips or not names:
        return False
    names = [n.split("[")[0] for n in names]
    return any(tuple(names[:i]) in skips for i in range(1, len(names) + 1))


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    global _allowed
    _allowed = {id(p) for p in session.config.pluginmanager.get_plugins()}


def _legitimate(plugin: object) -> bool:
    if isinstance(plugin, type(sys)):
        name = getattr(plugin, "__name__", "")
        file = os.path.realpath(getattr(plugin, "__file__", None) or "")
        return (name.startswith(("_pytest.", "pytest")) or file in _conftests)
    return type(plugin).__module__.startswith("_pytest.")


def pytest_plugin_registered(plugin: object, plugin_name: str,
                             manager: pytest.PytestPluginManager, _tamper: Any = _tamper) -> None:
    if _allowed is not None and not _legitimate(plugin):
        _tamper(f"a plugin was registered while the tests ran: {str(plugin_name)[:80]}")


def _check_integrity(config: pytest.Config, _guarded: Any = _guarded,
                     _tamper: Any = _tamper) -> None:
    replaced = _guarded()
    if replaced:
        _tamper(f"pytest's {replaced} was replaced while the tests ran")
        return
    if _allowed is None:
        return
    for plugin in config.pluginmanager.get_plugins():
        if id(plugin) not in _allowed and not _legitimate(plugin):
            _tamper("a plugin was registered while the tests ran: "
                    f"{str(config.pluginmanager.get_name(plugin))[:80]}")
            return


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item], _emit: Any = _emit) -> None:
    if _requested:
        selected, deselected = [], []
        for item in items:
            hit = any(matches(r, item.nodeid) for r in _requested)
            (selected if hit else deselected).append(item)
        items[:] = selected
        if deselected:
            config.hook.pytest_deselected(items=deselected)
    # a file that does not parse has its collection error reported anyway
    with contextlib.suppress(OSError, SyntaxError, ValueError):
        _check_doctests(items)
    with contextlib.suppress(Exception):  # the check is a bonus, never a reason to fail
        _watch_target(items)
    _snapshot(items)
    _items.update((i.nodeid, i) for i in items)
    _emit({"event": "selected", "nodeids": [i.nodeid for i in items]})


def pytest_collectreport(report: pytest.CollectReport, _emit: Any = _emit) -> None:
    if report.failed or report.skipped:
        _emit({"event": "collect", "nodeid": report.nodeid, "outcome": report.outcome,
               "message": report_message(report)})


def pytest_runtest_logstart(nodeid: str, location: tuple, _emit: Any = _emit) -> None:
    _current[0] = nodeid
    _emit({"event": "start", "nodeid": nodeid})


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo,
                              _tamper: Any = _tamper, _check: Any = _check_integrity):
    raised = call.excinfo is not None
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is not None and report.failed:
        try:
            report.plancode_message = exception_message(call.excinfo.value)
        except Exception:  # noqa: BLE001 - a broken __str__ must not break reporting
            report.plancode_message = one_line(call.excinfo.typename)
    if report.passed and (raised or call.excinfo is not None):
        _tamper(f"{item.nodeid}: the {call.when} raised but its report says passed")
    if _code_swapped(item):
        _tamper(f"{item.nodeid}: the test function's code was replaced while the tests ran")
    # a skip or xfail counts as the user's only when the mark was there at collection and
    # the user's source writes it; a mark added later (from a frame walk to the running item,
    # say) is the candidate's: the test then counts as skip-raised, against it
    users = not _marks_changed(item)
    report.plancode_skip_by_mark = report.skipped and (
        _unittest_skip_in_source(item.nodeid)
        or (users and _marked_in_source(item.nodeid, "skip") and _skip_by_mark(item)))
    report.plancode_xfail_by_mark = users and _marked_in_source(item.nodeid, "xfail") and \
        item.stash.get(_pytest.skipping.xfailed_key, None) is not None
    if _proxy is not None and call.excinfo is not None:
        _note_proxy_exception(item.nodeid, call.excinfo.value)
    if _proxy is not None and call.when in ("call", "teardown"):
        broke = _proxy.pending()  # a second answer to a call: no answer can be trusted
        if broke:
            _proxy_note("proxy-error", broke, "")
    _seen[(item.nodeid, call.when)] = report.outcome
    _check(item.config)


_evaluate_skip_marks = _pytest.skipping.evaluate_skip_marks


def _note_proxy_exception(nodeid: str, exc: BaseException) -> None:
    """A test that failed on the proxy's own exception (raised now, or cached by a fixture
    that called the function earlier): the same report for it."""
    module = sys.modules.get("plancode_call_proxy")
    for kind, name in (("fallback", "ProxyFallback"), ("proxy-error", "ProxyError")):
        klass = getattr(module, name, None)
        if isinstance(klass, type) and isinstance(exc, klass):
            _proxy_note(kind, str(exc), nodeid)


def _skip_by_mark(item: pytest.Item) -> bool:
    """Whether the test's skip/skipif marks skip it."""
    try:
        return _evaluate_skip_marks(item) is not None
    except Exception:  # noqa: BLE001 - a broken skipif condition is the test's error
        return False


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item, _tamper: Any = _tamper):
    """The test's code is the code collected, right before and right after it runs."""
    if _code_swapped(item):
        _tamper(f"{item.nodeid}: the test function's code was replaced before it ran")
    yield
    if _code_swapped(item):
        _tamper(f"{item.nodeid}: the test function's code was replaced while it ran")


@dataclasses.dataclass
class _SubtestCounts:
    """What a test's ``subTest`` blocks did: only failures and skips are counted."""

    failed: int = 0
    skipped: int = 0
    first_failure: str = ""  # the first failing block's message


def _is_subtest(report: Any) -> bool:
    """A report of one ``subTest``/``subtests.test`` block (pytest 9's ``SubtestReport``,
    the pytest-subtests plugin's ``SubTestReport``), logged before its test's own call."""
    return type(report).__name__ in ("SubtestReport", "SubTestReport") \
        and hasattr(report, "context")


def _fold_subtest(report: Any) -> None:
    """Count a subtest's failure or skip against its test; a subtest only ever makes its test
    worse (its "passed" is not reported at all)."""
    _seen.pop((report.nodeid, report.when), None)
    counts = _subtests.setdefault(report.nodeid, _SubtestCounts())
    if report.failed:
        counts.failed += 1
        counts.first_failure = counts.first_failure or report_message(report)
    elif report.skipped:
        counts.skipped += 1


def pytest_runtest_logreport(report: pytest.TestReport, _emit: Any = _emit,
                             _tamper: Any = _tamper) -> None:
    if _is_subtest(report):
        _fold_subtest(report)
        return
    subtests = (_subtests.pop(report.nodeid, _SubtestCounts()) if report.when == "call"
                else _SubtestCounts())
    failed, skipped = subtests.failed, subtests.skipped
    seen = _seen.pop((report.nodeid, report.when), None)
    # pytest itself turns a passed test with failed subtests into a failure
    failed_by_subtests = failed and (seen, report.outcome) == ("passed", "failed")
    if (seen is None or seen != report.outcome) and not failed_by_subtests:
        _tamper(f"{report.nodeid}: the {report.when} report changed after it was made")
    if report.when == "call" and report.nodeid in _suspicious:
        _emit({"event": "suspicious", "nodeid": report.nodeid,
               "message": _suspicious[report.nodeid]})
    outcome = report.outcome
    message = report_message(report) if not report.passed else ""
    wasxfail = getattr(report, "wasxfail", None) is not None
    skip_by_mark = bool(getattr(report, "plancode_skip_by_mark", False))
    if failed and (outcome != "failed" or failed_by_subtests):
        outcome, message, wasxfail = ("failed", f"{failed} failed subtest(s): "
                                      f"{subtests.first_failure}", False)
    elif skipped and outcome == "passed":  # a skip raised inside a subtest is no pass
        outcome, message, skip_by_mark = "skipped", f"{skipped} subtest(s) skipped", False
    _emit({"event": "report", "nodeid": report.nodeid, "when": report.when,
           "outcome": outcome, "duration": float(report.duration), "wasxfail": wasxfail,
           "skip_by_mark": skip_by_mark,
           "xfail_by_mark": bool(getattr(report, "plancode_xfail_by_mark", False)),
           "message": one_line(message)})


def pytest_sessionfinish(session: pytest.Session, exitstatus: int, _emit: Any = _emit,
                         _check: Any = _check_integrity) -> None:
    _check(session.config)
    if _proxy is not None:  # a module of the target's file that escaped the import hook
        why = _proxy.unpatched()
        if why:
            _proxy_note("fallback", f"plancode: cannot check these tests out of process: {why}",
                        "")
        broke = _proxy.pending()  # an answer nobody asked for, noticed only now: every test
        if broke:
            _proxy_note("proxy-error", broke, "")
    _emit({"event": "finish", "exitstatus": int(exitstatus)})


_proxy = _install_proxy()
_remember_own()
