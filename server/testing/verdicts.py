"""From the plugin's authenticated events and how the runner ended to one verdict per test.

Pure functions, no I/O: :func:`parse_events` reads the bytes the results channel delivered,
:func:`build_verdicts` turns them into :class:`~plancode.testing.types.TestVerdict` objects. The
rules (docs/pipeline.md, "Verdict semantics"):

* a test passes only when its call phase ran and passed (and setup and teardown did not fail);
* a skip or xfail raised while the test ran is ``skip-raised``: not a pass, and it counts
  against the candidate; a test the user marked skip/xfail is ``skipped``/``xfail`` and never
  counts either way;
* every line must carry the run's secret (an HMAC) and the next sequence number; each selected
  test may start once and report each phase once, nothing may be reported for a test that was
  not selected, nothing may follow the finish, and a runner that ended by itself must have
  reported its finish. Anything else is *tampering*: every verdict becomes ``error`` with the
  reason, and the run can never count as passed;
* a run that timed out, was cancelled, or whose runner exit status says failure is never a
  pass (see :attr:`plancode.testing.types.RunResult.all_passed`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
from dataclasses import dataclass, field
from typing import Any

from plancode.testing.types import TestCase, TestVerdict
from plancode.testing.values import sign_line

PHASES = ("setup", "call", "teardown")
USAGE_ERROR = 4  # pytest.ExitCode.USAGE_ERROR (no pytest import here)
# one event line at most: the "selected" event lists every selected test id on one line
# (64 KiB, the old cap, flagged an honest file of ~2,000 parametrized cases as tampering);
# the whole channel stays capped at process.MAX_RESULTS_BYTES (4 MiB)
MAX_LINE = 1024 * 1024
MAX_MESSAGE = 500
_RANK = {"error": 0, "timeout": 1, "failed": 2, "skip-raised": 2, "not-run": 3, "passed": 4,
         "xfail": 5, "skipped": 6}


def sign(key: bytes, seq: int, payload: str) -> str:
    """The line the plugin writes for one event (also used by tests)."""
    return sign_line(key, seq, payload)


@dataclass
class Phase:
    outcome: str
    message: str = ""
    duration: float = 0.0
    wasxfail: bool = False
    skip_by_mark: bool = False
    xfail_by_mark: bool = False


@dataclass
class Node:
    """What the events say about one selected test."""

    starts: int = 0
    phases: dict[str, Phase] = field(default_factory=dict)
    suspicious: str = ""

    @property
    def finished(self) -> bool:
        return "teardown" in self.phases

    @property
    def seconds(self) -> float:
        return sum(p.duration for p in self.phases.values())


@dataclass
class Events:
    """Everything the results channel delivered, and the first sign of tampering."""

    selected: list[str] | None = None
    nodes: dict[str, Node] = field(default_factory=dict)
    collect: list[dict[str, str]] = field(default_factory=list)
    exitstatus: int | None = None
    tampered: str = ""
    lines: int = 0
    # a split run's judge (call_proxy.py): per node id ("" = outside any test), why its calls
    # could not be checked out of process (rerun in process), or how the worker broke them
    fallback: dict[str, str] = field(default_factory=dict)
    proxy_errors: dict[str, str] = field(default_factory=dict)

    def tamper(self, reason: str) -> None:
        if not self.tampered:
            self.tampered = reason[:MAX_MESSAGE]


@dataclass(frozen=True)
class RunEnd:
    """How the runner ended."""

    timed_out: bool
    cancelled: bool
    returncode: int | None
    timeout: float
    output_tail: str = ""
    overflow: bool = False  # the results channel sent more than the host keeps

    @property
    def ended_by_itself(self) -> bool:
        """Exited (not timed out, cancelled or killed by a signal)."""
        return (not self.timed_out and not self.cancelled and self.returncode is not None
                and 0 <= self.returncode < 128)

    def last_output_line(self) -> str:
        lines = [line.strip() for line in self.output_tail.splitlines() if line.strip()]
        return lines[-1][:200] if lines else ""

    def error_line(self) -> str:
        """The last output line that reports an error (pytest's reason for refusing)."""
        lines = [line.strip() for line in self.output_tail.splitlines()
                 if "error" in line.lower()]
        return lines[-1][:200] if lines else self.last_output_line()


def _str(event: dict, key: str) -> str:
    value = event.get(key, "")
    if not isinstance(value, str):
        raise ValueError(f"{key} is not a string")
    return value[:MAX_MESSAGE]


def _bool(event: dict, key: str) -> bool:
    value = event.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{key} is not a boolean")
    return value


def _apply(events: Events, event: Any) -> None:
    """Fold one decoded event in; raise ValueError naming what is wrong with it."""
    if not isinstance(event, dict):
        raise ValueError("an event is not an object")
    kind = event.get("event")
    if events.exitstatus is not None:
        raise ValueError(f"a {kind!r} event after the finish")
    if kind == "selected":
        if events.selected is not None:
            raise ValueError("the selection was reported twice")
        ids = event.get("nodeids")
        if not isinstance(ids, list) or not all(isinstance(n, str) for n in ids):
            raise ValueError("a malformed selection")
        if len(set(ids)) != len(ids):
            raise ValueError("a test was selected twice")
        events.selected = list(ids)
        for nodeid in ids:
            events.nodes[nodeid] = Node()
    elif kind in ("start", "report", "suspicious"):
        nodeid = _str(event, "nodeid")
        node = events.nodes.get(nodeid)
        if node is None:
            raise ValueError(f"a {kind} event for a test that was not selected: {nodeid}")
        if kind == "start":
            node.starts += 1
            if node.starts > 1:
                raise ValueError(f"{nodeid} started twice")
        elif kind == "suspicious":
            node.suspicious = node.suspicious or _str(event, "message")
        else:
            _report(node, nodeid, event)
    elif kind == "collect":
        outcome = _str(event, "outcome")
        if outcome not in ("failed", "skipped"):
            raise ValueError(f"a collect event with outcome {outcome!r}")
        events.collect.append({"nodeid": _str(event, "nodeid"), "outcome": outcome,
                               "message": _str(event, "message")})
    elif kind in ("fallback", "proxy-error"):
        nodeid = _str(event, "nodeid")
        if nodeid and nodeid not in events.nodes:
            raise ValueError(f"a {kind} event for a test that was not selected: {nodeid}")
        found = events.fallback if kind == "fallback" else events.proxy_errors
        found.setdefault(nodeid, _str(event, "message") or kind)
    elif kind == "tamper":
        events.tamper(_str(event, "message") or "the plugin saw tampering")
    elif kind == "finish":
        status = event.get("exitstatus")
        if not isinstance(status, int) or isinstance(status, bool):
            raise ValueError("a malformed finish")
        events.exitstatus = status
    else:
        raise ValueError(f"an unknown event {str(kind)[:40]!r}")


def _report(node: Node, nodeid: str, event: dict) -> None:
    when = _str(event, "when")
    if when not in PHASES:
        raise ValueError(f"a report for phase {when!r}")
    if node.starts != 1:
        raise ValueError(f"a report for {nodeid} before it started")
    if when in node.phases:
        raise ValueError(f"{nodeid} reported its {when} twice")
    expected = [p for p in PHASES if p not in node.phases][0]
    setup = node.phases.get("setup")
    if when == "teardown" and setup is not None and setup.outcome != "passed":
        expected = "teardown"  # no call after a failed or skipped setup
    if when != expected:
        raise ValueError(f"{nodeid} reported {when} before {expected}")
    outcome = _str(event, "outcome")
    if outcome not in ("passed", "failed", "skipped"):
        raise ValueError(f"a report with outcome {outcome!r}")
    duration = event.get("duration", 0.0)
    if not isinstance(duration, int | float) or isinstance(duration, bool) or \
            not 0 <= duration < 1e7:
        raise ValueError("a malformed duration")
    node.phases[when] = Phase(outcome, _str(event, "message"), float(duration),
                              _bool(event, "wasxfail"), _bool(event, "skip_by_mark"),
                              _bool(event, "xfail_by_mark"))


def read_signed(data: bytes, key: bytes, overflow: bool = False
                ) -> tuple[list[str | None], str]:
    """(payloads, why tampered): the channel's lines that carry the run's secret and the next
    sequence number, in order (``HMAC SEQ PAYLOAD``, :func:`sign`); the first problem found
    ("" when none). Lines after a bad one are still read, for the record; a bad line's payload
    is None."""
    payloads: list[str | None] = []
    why = "the results channel sent more than the sandbox accepts" if overflow else ""
    chunks = data.split(b"\n")
    if chunks and chunks[-1]:
        why = why or "the results channel ended in the middle of a line"
    seq = 0
    for number_of_line, raw in enumerate(chunks[:-1] if chunks else [], start=1):
        try:
            if len(raw) > MAX_LINE:
                raise ValueError("an over-long line")
            text = raw.decode("utf-8")
            mac, _, body = text.partition(" ")
            number, _, payload = body.partition(" ")
            good = hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(mac.encode(), good.encode()):
                raise ValueError("a line without the run's secret")
            if number != str(seq):
                raise ValueError("a line out of sequence")
            seq += 1
            payloads.append(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            why = why or f"line {number_of_line}: {exc}"
            payloads.append(None)  # keeps the line numbers of later problems right
    return payloads, why[:MAX_MESSAGE]


def parse_events(data: bytes, key: bytes, overflow: bool = False) -> Events:
    """Decode the results channel's bytes. Never raises: a line without the run's secret, out
    of sequence, malformed or contradicting an earlier one marks the events tampered (the rest
    is still read, for the record)."""
    events = Events()
    payloads, why = read_signed(data, key, overflow)
    if why:
        events.tamper(why)
    for payload in payloads:
        events.lines += 1
        if payload is None:
            continue
        try:
            _apply(events, json.loads(payload))
        except (ValueError, RecursionError) as exc:
            events.tamper(f"line {events.lines}: {exc}")
    return events


def check_complete(events: Events, end: RunEnd) -> None:
    """The checks that need the whole stream: a runner that ended by itself must have reported
    its finish, and every finished test must have reported every phase it ran."""
    if end.overflow:
        events.tamper("the results channel sent more than the sandbox accepts")
    if end.ended_by_itself and events.exitstatus is None and end.returncode != 127 \
            and not refused_to_start(events, end):
        events.tamper("the test process exited without pytest's final report "
                      f"({describe_exit(end.returncode)})")
    for nodeid, node in events.nodes.items():
        setup = node.phases.get("setup")
        if node.finished and setup is None:
            events.tamper(f"{nodeid} finished without a setup report")
        elif node.finished and setup is not None and setup.outcome == "passed" \
                and "call" not in node.phases:
            events.tamper(f"{nodeid} finished without a call report")


def refused_to_start(events: Events, end: RunEnd) -> bool:
    """pytest's usage error before a single event: its command line or the project's pytest
    configuration (addopts, required_plugins) was refused. Candidate code that exits with
    the same status gains only this message: its tests are errors either way."""
    return events.lines == 0 and end.returncode == USAGE_ERROR


def describe_exit(code: int | None) -> str:
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


def test_file(test: TestCase) -> str:
    return test.file or test.id.split("::", 1)[0]


def matches(requested: str, nodeid: str) -> bool:
    return (nodeid == requested or nodeid.startswith(requested + "::")
            or nodeid.startswith(requested + "["))


def node_verdict(node: Node, end: RunEnd, in_progress: bool) -> tuple[str, str]:
    """(outcome, message) of one test node."""
    phases = node.phases
    setup = phases.get("setup")
    if setup and setup.outcome == "failed":
        return "error", f"error in setup: {setup.message}"
    if setup and setup.outcome == "skipped":
        if setup.skip_by_mark:
            return "skipped", setup.message
        if setup.wasxfail and setup.xfail_by_mark:
            return "xfail", setup.message or "xfail"
        return "skip-raised", _raised(setup)
    call = phases.get("call")
    if call:
        teardown = phases.get("teardown")
        if call.wasxfail:
            if call.xfail_by_mark and call.outcome in ("passed", "skipped"):
                return "xfail", call.message or ("xpass" if call.outcome == "passed"
                                                 else "xfail")
            if call.outcome != "failed":
                return "skip-raised", _raised(call)
        if call.outcome == "skipped":  # unittest's @skip on a method skips in the call
            return ("skipped", call.message) if call.skip_by_mark else (
                "skip-raised", _raised(call))
        if call.outcome == "passed" and node.suspicious:
            return "failed", node.suspicious
        if teardown and teardown.outcome == "failed" and call.outcome == "passed":
            return "error", f"error in teardown: {teardown.message}"
        return call.outcome, call.message
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
                         f"({describe_exit(end.returncode)})")
    return "not-run", f"not run: pytest stopped early ({describe_exit(end.returncode)})"


def _raised(phase: Phase) -> str:
    what = "xfail" if phase.wasxfail else "skip"
    return (f"{what} raised while the test ran (not a pass)"
            + (f": {phase.message}" if phase.message else ""))


def _uncollected(events: Events, end: RunEnd) -> tuple[str, str]:
    if events.selected is not None:
        return "not-run", "not collected: pytest found no test with this id"
    if end.timed_out:
        return "timeout", (f"timed out after {end.timeout:g} s before any test ran "
                           "(importing or collecting took too long)")
    if end.cancelled:
        return "not-run", "cancelled before any test ran"
    if refused_to_start(events, end):
        reason = end.error_line() or "no reason printed"
        return "error", (f"pytest refused to start (usage error): {reason}; check the "
                         "project's pytest configuration (addopts, required_plugins)")
    detail = end.last_output_line()
    return "error", (f"pytest ended before running tests ({describe_exit(end.returncode)})"
                     + (f": {detail}" if detail else ""))


def build_verdicts(tests: list[TestCase], events: Events, end: RunEnd,
                   missing: set[str]) -> list[TestVerdict]:
    """One verdict per requested test, in order. When the events were tampered with, every
    verdict is an ``error`` that says so."""
    check_complete(events, end)
    if events.tampered:
        return [TestVerdict(t.id, "error", f"results tampered: {events.tampered}", kind=t.kind)
                for t in tests]
    started = [n for n, node in events.nodes.items() if node.starts and not node.finished]
    in_progress = started[-1] if started else None
    verdicts: list[TestVerdict] = []
    for test in tests:
        file = test_file(test)
        if file in missing:
            verdicts.append(TestVerdict(test.id, "error",
                                        f"file not found in the candidate's copy: {file}",
                                        kind=test.kind))
            continue
        broken = [c for c in events.collect
                  if test.id == c["nodeid"] or test.id.startswith(c["nodeid"] + "::")
                  or test.id.startswith(c["nodeid"].rstrip("/") + "/")]
        if broken:
            worst = min(broken, key=lambda c: c["outcome"] != "failed")
            outcome = "error" if worst["outcome"] == "failed" else "skipped"
            message = worst["message"] or f"cannot collect {worst['nodeid']}"
            verdicts.append(TestVerdict(test.id, outcome, message, kind=test.kind))
            continue
        nodeids = [n for n in events.nodes if matches(test.id, n)]
        if not nodeids:
            verdicts.append(TestVerdict(test.id, *_uncollected(events, end), kind=test.kind))
            continue
        per_node = [(n, *node_verdict(events.nodes[n], end, n == in_progress))
                    for n in nodeids]
        nodeid, outcome, message = min(per_node, key=lambda v: _RANK[v[1]])
        if nodeid != test.id and len(per_node) > 1:
            message = f"{nodeid[len(test.id):].lstrip(':')}: {message}"
        seconds = sum(events.nodes[n].seconds for n in nodeids)
        verdicts.append(TestVerdict(test.id, outcome, message, seconds, kind=test.kind))
    return verdicts


def flags_of(events: Events) -> list[str]:
    """Warnings shown with the result (e.g. a suspicious return type), one line each."""
    return sorted({node.suspicious for node in events.nodes.values() if node.suspicious})
