"""The pytest plugin the sandbox loads (``-p plancode_pytest_plugin``): machine-readable results.

Copied into the sandbox outside the workspace copy, so it imports only the standard library and
pytest (never ``server``). It does two things:

* keeps only the requested tests: ``$PLANCODE_REQUEST`` names a JSON file with the requested
  node ids; collected items matching none of them are deselected (the sandbox passes files on
  the command line, not node ids, so one missing id cannot abort the whole run);
* appends one JSON object per line to ``$PLANCODE_RESULTS``, flushed as it goes, so that a run
  killed half-way still leaves the results it got to. Events: ``selected`` (node ids that will
  run), ``start`` (a test began), ``report`` (one phase of a test: setup/call/teardown, with
  outcome, duration and a one-line message), ``collect`` (a file or class that failed to
  collect, or was skipped), ``finish`` (pytest's exit status).

Only the process that loaded the plugin writes: a test that forks must not report twice.
"""

from __future__ import annotations

import doctest
import json
import os
from typing import IO, Any

import pytest

_MAX_MESSAGE = 300

_out: IO[str] | None = None
_pid = 0
_requested: list[str] = []


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


def _write(event: dict) -> None:
    if _out is None or os.getpid() != _pid:
        return
    _out.write(json.dumps(event) + "\n")
    _out.flush()


def pytest_configure(config: pytest.Config) -> None:
    global _out, _pid, _requested
    path = os.environ.get("PLANCODE_RESULTS")
    if not path or _out is not None:
        return
    _out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole session
    _pid = os.getpid()
    request = os.environ.get("PLANCODE_REQUEST")
    if request:
        with open(request, encoding="utf-8") as f:
            _requested = list(json.load(f))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    if _requested:
        selected, deselected = [], []
        for item in items:
            hit = any(matches(r, item.nodeid) for r in _requested)
            (selected if hit else deselected).append(item)
        items[:] = selected
        if deselected:
            config.hook.pytest_deselected(items=deselected)
    _write({"event": "selected", "nodeids": [i.nodeid for i in items]})


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed or report.skipped:
        _write({"event": "collect", "nodeid": report.nodeid, "outcome": report.outcome,
                "message": report_message(report)})


def pytest_runtest_logstart(nodeid: str, location: tuple) -> None:
    _write({"event": "start", "nodeid": nodeid})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is not None and report.failed:
        try:
            report.plancode_message = exception_message(call.excinfo.value)
        except Exception:  # noqa: BLE001 - a broken __str__ must not break reporting
            report.plancode_message = one_line(call.excinfo.typename)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _write({"event": "report", "nodeid": report.nodeid, "when": report.when,
            "outcome": report.outcome, "duration": report.duration,
            "xfail": bool(getattr(report, "wasxfail", None) is not None),
            "message": report_message(report) if not report.passed else ""})


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _write({"event": "finish", "exitstatus": int(exitstatus)})
