"""The server's half of a value run: from the child's signed lines to one verdict per test.

The child (``value_runner.py``) reports, per step of each test, what a call returned (data
only), printed or raised; here each report is compared with what the test expects
(``shapes.Check``), with the equality of ``values.py``. The rules, beside those of
``verdicts.py`` (docs/pipeline.md, "Verdict semantics"):

* a value that is not plain data never passes (and is flagged as a suspicious return type);
* a skip or xfail raised by the code (``pytest.skip``, ``unittest.SkipTest``) is
  ``skip-raised``; any other unexpected exception fails the test, as pytest would;
* every line must carry the run's secret, in sequence, name a step that exists, once, in
  order, and nothing may follow the finish; otherwise every value test is an ``error``
  (results tampered);
* a step with no report is ``timeout`` (the one running when the run was killed), ``not-run``
  (after it, or cancelled), or ``error`` (the process died, or ended without its finish).
"""

from __future__ import annotations

import doctest
import json
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from plancode.testing import values
from plancode.testing.shapes import Check, ValueTest
from plancode.testing.types import IN_PROCESS, OUT_OF_PROCESS, RunResult, TestCase, TestVerdict
from plancode.testing.verdicts import RunEnd, describe_exit, read_signed

if TYPE_CHECKING:
    from plancode.engine.types import CancelToken


class ValueRunner(Protocol):
    """What runs the calls: :class:`plancode.testing.sandbox.Sandbox` (named by its methods,
    so this module, which the sandbox imports, does not import it back)."""

    @property
    def isolation(self) -> str: ...

    @property
    def isolation_detail(self) -> str: ...

    def run_values(self, files: dict[str, str], request: dict,
                   cancel: CancelToken | None = None) -> tuple[RunEnd, bytes, bytes]: ...

# pytest names its outcome exceptions' module "builtins" (tidier tracebacks)
_SKIPS = {"_pytest.outcomes.Skipped": "skip", "builtins.Skipped": "skip",
          "_pytest.outcomes.XFailed": "xfail", "builtins.XFailed": "xfail",
          "unittest.case.SkipTest": "skip"}


@dataclass
class ValueRun:
    """What the child reported: per test, its set-up failure or its steps' results."""

    setup: dict[int, list] = field(default_factory=dict)
    steps: dict[tuple[int, int, int], list] = field(default_factory=dict)
    order: list[tuple[int, int, int]] = field(default_factory=list)
    finished: bool = False
    tampered: str = ""
    flags: list[str] = field(default_factory=list)


def request(tests: list[ValueTest], per_call: float | None = None) -> dict:
    return {"values": {"tests": [t.request() for t in tests], "per_call": per_call}}


def run(sandbox: ValueRunner, files: dict[str, str], cases: list[TestCase],
        shaped: dict[str, ValueTest], cancel: CancelToken | None) -> RunResult:
    """Check ``cases`` (all value-shaped) out of process: one sandboxed value run."""
    start = time.monotonic()
    tests = [shaped[c.id] for c in cases]
    end, data, key = sandbox.run_values(files, request(tests), cancel)
    found = parse(tests, data, key, end.overflow)
    out = verdicts(tests, cases, found, end)
    # what the child printed, then the server's summary in pytest's words (repair prompts)
    summary = [f"{v.outcome.upper()} {v.id} - {v.message}" for v in out if v.outcome != "passed"]
    tail = "\n".join([end.output_tail.rstrip(), *summary]).strip()[-4000:]
    return RunResult(out, sandbox.isolation, sandbox.isolation_detail,
                     seconds=time.monotonic() - start, timed_out=end.timed_out,
                     cancelled=end.cancelled, output_tail=tail,
                     extra={"returncode": end.returncode},
                     runner_ok=found.finished and not found.tampered and end.returncode == 0,
                     tampered=found.tampered, flags=sorted(set(found.flags)))


def combine(parts: list[RunResult], tests: list[TestCase], isolation: str,
            detail: str) -> RunResult:
    """One result from a value run and a plugin run, verdicts in the order of ``tests``
    (one cancelled before it ran says so); the plugin's verdicts are marked in-process."""
    for part in parts:
        for verdict in part.verdicts:
            verdict.checked = verdict.checked or IN_PROCESS
    by_id = {v.id: v for part in parts for v in part.verdicts}
    ordered = [by_id.get(t.id) or TestVerdict(t.id, "not-run", "cancelled", kind=t.kind)
               for t in tests]
    if len(parts) == 1 and len(parts[0].verdicts) == len(tests):
        parts[0].verdicts = ordered
        return parts[0]
    extra: dict = {}
    for part in parts:
        extra.update(part.extra)
    return RunResult(ordered, isolation, detail, seconds=sum(p.seconds for p in parts),
                     timed_out=any(p.timed_out for p in parts),
                     cancelled=any(p.cancelled for p in parts) or len(by_id) < len(tests),
                     output_tail="\n".join(p.output_tail for p in parts)[-4000:],
                     extra=extra, runner_ok=bool(parts) and all(p.runner_ok for p in parts),
                     tampered="; ".join(p.tampered for p in parts if p.tampered),
                     flags=sorted({f for p in parts for f in p.flags}))


def parse(tests: list[ValueTest], data: bytes, key: bytes, overflow: bool) -> ValueRun:
    """Decode the channel; never raises (anything malformed marks the run tampered)."""
    run = ValueRun()
    payloads, run.tampered = read_signed(data, key, overflow)
    for payload in payloads:
        if payload is None:
            continue
        try:
            _apply(run, tests, json.loads(payload))
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
            run.tampered = run.tampered or f"value results: {exc}"[:500]
    return run


def _apply(run: ValueRun, tests: list[ValueTest], event: Any) -> None:
    if not isinstance(event, dict):
        raise ValueError("an event is not an object")
    if run.finished:
        raise ValueError("an event after the finish")
    kind = event.get("event")
    if kind == "finish":
        run.finished = True
        return
    index = event.get("test")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(tests):
        raise ValueError("an event for a test that was not asked for")
    if not isinstance(event.get("result"), list):
        raise ValueError("a malformed result")
    if kind == "setup":
        if index in run.setup or any(k[0] == index for k in run.steps):
            raise ValueError("a set-up reported out of order")
        run.setup[index] = event["result"]
        return
    if kind != "step":
        raise ValueError(f"an unknown event {str(kind)[:40]!r}")
    key = (index, event.get("case"), event.get("step"))
    cases = tests[index].cases
    if not all(isinstance(k, int) and not isinstance(k, bool) for k in key[1:]) or \
            not 0 <= key[1] < len(cases) or not 0 <= key[2] < len(cases[key[1]]):
        raise ValueError("a result for a step that does not exist")
    if key in run.steps or (run.order and key <= run.order[-1]) or index in run.setup:
        raise ValueError("a step reported twice or out of order")
    run.steps[key] = event["result"]
    run.order.append(key)


def verdicts(tests: list[ValueTest], cases: list[TestCase], run: ValueRun,
             end: RunEnd) -> list[TestVerdict]:
    """One verdict per test, in order."""
    if end.overflow:
        run.tampered = run.tampered or "the results channel sent more than the sandbox accepts"
    if run.tampered:
        return [TestVerdict(c.id, "error", f"results tampered: {run.tampered}", kind=c.kind,
                            checked=OUT_OF_PROCESS) for c in cases]
    running = _in_progress(tests, run)
    out = []
    for index, (test, case) in enumerate(zip(tests, cases, strict=False)):
        outcome, message = _test_verdict(index, test, run, end, running)
        out.append(TestVerdict(case.id, outcome, message, kind=case.kind,
                               checked=OUT_OF_PROCESS))
    return out


def _in_progress(tests: list[ValueTest], run: ValueRun) -> tuple[int, int, int] | None:
    """The first step after the last report (set-ups included): the one that was running."""
    marks = [*run.order, *((t, -1, -1) for t in run.setup)]
    last = max(marks) if marks else None
    for t, test in enumerate(tests):
        if t in run.setup:
            continue
        for c, case in enumerate(test.cases):
            for s in range(len(case)):
                if last is None or (t, c, s) > last:
                    return t, c, s
    return None


def _test_verdict(index: int, test: ValueTest, run: ValueRun, end: RunEnd,
                  running: tuple[int, int, int] | None) -> tuple[str, str]:
    if index in run.setup:
        return _setup_failure(test, run.setup[index], end)
    for c, case in enumerate(test.cases):
        for s, step in enumerate(case):
            result = run.steps.get((index, c, s))
            if result is None:
                return _missing(run, end, (index, c, s) == running)
            failure = _judge(step.mode, step.check, result, run)
            if failure is not None:
                name = test.ids[c] if c < len(test.ids) and test.ids[c] else \
                    (f"case {c + 1}" if len(test.cases) > 1 else "")
                return failure[0], (f"[{name}]: " if name and "[" not in name else
                                    f"{name}: " if name else "") + failure[1]
    return "passed", ""


def _setup_failure(test: ValueTest, result: list, end: RunEnd) -> tuple[str, str]:
    if result[:1] == ["timeout"]:
        return "timeout", f"timed out after {end.timeout:g} s while importing {test.file}"
    skip = _skip_kind(result)
    if skip:
        return "skip-raised", f"{skip} raised while importing {test.file} (not a pass)"
    return "error", _exception(result)  # what pytest reports for a module it cannot import


def _missing(run: ValueRun, end: RunEnd, running: bool) -> tuple[str, str]:
    if end.timed_out and not run.order and not run.setup:
        return "timeout", (f"timed out after {end.timeout:g} s before any test ran "
                           "(importing took too long)")
    if end.timed_out:
        return ("timeout", f"timed out after {end.timeout:g} s (killed)") if running else \
            ("not-run", f"not reached: the run was killed at the {end.timeout:g} s timeout")
    if end.cancelled:
        return "not-run", "cancelled"
    how = describe_exit(end.returncode)
    if run.finished:
        return "error", "no result for this check"
    return "error", f"the test process died or ended early ({how})"


def _skip_kind(result: list) -> str:
    if result[:1] != ["raised"] or len(result) < 5 or not isinstance(result[4], list):
        return ""
    return next((_SKIPS[name] for name in result[4] if name in _SKIPS), "")


def _exception(result: list) -> str:
    qualname, message = str(result[2]), str(result[3])
    return f"{qualname}: {message}" if message else qualname


def _judge(mode: str, check: Check | None, result: list, run: ValueRun
           ) -> tuple[str, str] | None:
    """None when the step did what the test asks; else (outcome, message)."""
    tag = result[0] if result else None
    if tag == "timeout":
        return "timeout", "a call ran past the time limit"
    if mode == "doctest":
        if tag != "doctest" or len(result) != 3:
            raise_malformed()
        assert check is not None
        return _judge_doctest(check, result[1], result[2], run)
    if tag == "raised":
        if check is not None and check.how == "raises":
            return _judge_raises(check, result)
        skip = _skip_kind(result)
        if skip:
            why = str(result[3])[:200]
            return "skip-raised", f"{skip} raised while the test ran (not a pass)" + (
                f": {why}" if why else "")
        return "failed", _exception(result)  # as pytest words an exception in a test
    if check is None:
        return None if tag == "ok" else ("error", "a malformed result")
    if check.how == "raises":
        return "failed", f"DID NOT RAISE {' or '.join(check.options[0])}"
    if tag == "notplain":
        what = str(result[1])[:100]
        run.flags.append(f"suspicious return type: {what} is not plain data, so it cannot "
                         "be compared with the test's literal out of process")
        return "failed", f"{check.text}: returned {what}, which is not plain data (not a pass)"
    if tag != "value" or len(result) != 2:
        raise_malformed()
    return _compare(check, values.decode(result[1]))


def raise_malformed() -> None:
    raise ValueError("a malformed result")


def _judge_raises(check: Check, result: list) -> tuple[str, str] | None:
    names, match = check.options
    mro = [str(n).rsplit(".", 1)[-1] for n in result[4]] if isinstance(result[4], list) else []
    if not any(n in mro for n in names):
        return "failed", f"raised {_exception(result)}, not {' or '.join(names)}"
    if match is not None and not re.search(str(match), str(result[3])):
        return "failed", f"Regex pattern did not match: {str(match)[:80]!r}"
    return None


def _compare(check: Check, actual: Any) -> tuple[str, str] | None:
    how, expected, options = check.how, check.expected, check.options
    if how == "eq":
        ok = values.equal(actual, expected) and (
            not options or type(actual).__name__ == options[0])
    elif how == "ne":
        ok = not values.equal(actual, expected)
    elif how == "approx":
        ok = values.approx_equal(actual, expected, *options)
    elif how == "isclose":
        ok = values.is_close(actual, expected, *options)
    elif how == "almost":
        ok = values.almost_equal(actual, expected, *options)
    elif how == "count":
        ok = values.count_equal(actual, expected)
    elif how in ("truthy", "falsy"):
        ok = bool(actual) == (how == "truthy")
    elif how in ("is", "is-not"):
        ok = (actual is expected) == (how == "is")
    elif how in ("in", "not-in"):
        try:
            ok = (expected in actual) == (how == "in")
        except TypeError:
            ok = False
    else:
        raise ValueError(f"an unknown check {how!r}")
    if ok:
        return None
    if how in ("eq", "approx"):  # pytest's words for a failed assert
        return "failed", f"AssertionError: assert {values.show(actual)} == {values.show(expected)}"
    return "failed", f"AssertionError: {check.text[:150]}: got {values.show(actual)}"


def _judge_doctest(check: Check, chunks: Any, raised: Any, run: ValueRun
                   ) -> tuple[str, str] | None:
    want, exc_msg, flags = check.options
    if not isinstance(chunks, list):
        raise_malformed()
    shown: list = []
    for chunk in chunks:
        if not isinstance(chunk, list) or len(chunk) != 2:
            raise_malformed()
        if chunk[0] == "text" and isinstance(chunk[1], str):
            shown.append(("text", chunk[1]))
        elif chunk[0] == "value":
            shown.append(("value", values.decode(chunk[1])))
        elif chunk[0] == "notplain":
            what = str(chunk[1])[:100]
            run.flags.append(f"suspicious return type: {what} is not plain data, so it "
                             "cannot be compared with the doctest's literal out of process")
            return "failed", (f"doctest: {check.text[4:]} showed {what}, which is not plain "
                              "data (not a pass)")
        else:
            raise_malformed()
    if raised is not None:
        if not isinstance(raised, list) or raised[:1] != ["raised"] or len(raised) != 5:
            raise_malformed()
        if exc_msg is None:
            return "failed", f"doctest: {check.text[4:]} raised {_exception(raised)}"
        line = values.exception_line(str(raised[1]), str(raised[2]), str(raised[3]))
        if values.doctest_matches(exc_msg, line, flags):
            return None
        if flags & doctest.IGNORE_EXCEPTION_DETAIL and \
                _exception_name(exc_msg) == _exception_name(line):
            return None
        return "failed", (f"doctest: {check.text[4:]} expected {exc_msg.strip()[:80]}, "
                          f"got {line.strip()[:80]}")
    got = values.doctest_output(shown)
    if values.doctest_matches(want, got, flags):
        return None
    return "failed", (f"doctest: {check.text[4:]} expected {want.strip()[:80] or 'nothing'}, "
                      f"got {got.strip()[:80] or 'nothing'}")


def _exception_name(line: str) -> str:
    return line.split(":", 1)[0].strip().rsplit(".", 1)[-1]
