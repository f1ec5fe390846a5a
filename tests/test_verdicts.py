"""Golden cases for server/testing/verdicts.py, one per verdict rule (docs/pipeline.md,
"Verdict semantics").

The results channel is built line by line with :func:`sign`, in exactly the event shapes the
sandbox's pytest plugin (server/testing/pytest_plugin.py) writes; :func:`run` then does what
``Sandbox.run_tests`` does with it, so each case can also check ``RunResult.all_passed``.
Pure functions only: no process, no model.
"""

from __future__ import annotations

import json

import pytest

from plancode.testing.types import RunResult, TestCase
from plancode.testing.verdicts import (
    MAX_LINE,
    MAX_MESSAGE,
    Events,
    Node,
    Phase,
    RunEnd,
    build_verdicts,
    check_complete,
    describe_exit,
    flags_of,
    matches,
    node_verdict,
    parse_events,
    sign,
)

KEY = b"the run's secret, 32 bytes long!"
FILE = "tests/test_mod.py"
A, B, C = f"{FILE}::test_a", f"{FILE}::test_b", f"{FILE}::test_c"

FINISHED = RunEnd(timed_out=False, cancelled=False, returncode=0, timeout=30.0)
TIMED_OUT = RunEnd(timed_out=True, cancelled=False, returncode=None, timeout=30.0)
CANCELLED = RunEnd(timed_out=False, cancelled=True, returncode=None, timeout=30.0)
KILLED = RunEnd(timed_out=False, cancelled=False, returncode=137, timeout=30.0)


# -- the plugin's events (same keys and types as pytest_plugin.py writes) ----------------------

def selected(*nodeids: str) -> dict:
    return {"event": "selected", "nodeids": list(nodeids)}


def start(nodeid: str) -> dict:
    return {"event": "start", "nodeid": nodeid}


def report(nodeid: str, when: str, outcome: str = "passed", message: str = "",
           duration: float = 0.25, wasxfail: bool = False, skip_by_mark: bool = False,
           xfail_by_mark: bool = False) -> dict:
    return {"event": "report", "nodeid": nodeid, "when": when, "outcome": outcome,
            "duration": float(duration), "wasxfail": wasxfail, "skip_by_mark": skip_by_mark,
            "xfail_by_mark": xfail_by_mark, "message": message}


def collect(nodeid: str, outcome: str, message: str) -> dict:
    return {"event": "collect", "nodeid": nodeid, "outcome": outcome, "message": message}


def suspicious(nodeid: str, message: str) -> dict:
    return {"event": "suspicious", "nodeid": nodeid, "message": message}


def tamper(message: str) -> dict:
    return {"event": "tamper", "message": message}


def finish(exitstatus: int = 0) -> dict:
    return {"event": "finish", "exitstatus": exitstatus}


def ran(nodeid: str, call: str = "passed", message: str = "", **flags: bool) -> list[dict]:
    """A test that started and reported setup (passed), call and teardown (passed)."""
    return [start(nodeid), report(nodeid, "setup"),
            report(nodeid, "call", call, message, **flags), report(nodeid, "teardown")]


def line(seq: int, event: dict, key: bytes = KEY) -> bytes:
    return sign(key, seq, json.dumps(event)).encode()


def channel(*events: dict) -> bytes:
    """What the plugin writes for ``events``, in order, numbered from 0."""
    return b"".join(line(seq, event) for seq, event in enumerate(events))


def case(nodeid: str, kind: str = "pytest") -> TestCase:
    file, _, name = nodeid.partition("::")
    return TestCase(nodeid, kind, file, name)


def run(data: bytes, tests: list[str] | None = None, end: RunEnd = FINISHED,
        missing: frozenset[str] = frozenset()) -> RunResult:
    """What ``Sandbox.run_tests`` (server/testing/sandbox.py) makes of a results channel."""
    cases = [case(t) for t in (tests if tests is not None else [A])]
    events = parse_events(data, KEY, end.overflow)
    verdicts = build_verdicts(cases, events, end, set(missing))
    runner_ok = not events.tampered and end.returncode == 0 and events.exitstatus == 0
    return RunResult(verdicts, "none", "", 0.0, timed_out=end.timed_out,
                     cancelled=end.cancelled, runner_ok=runner_ok, tampered=events.tampered,
                     flags=flags_of(events))


def outcomes(result: RunResult) -> list[tuple[str, str]]:
    return [(v.outcome, v.message) for v in result.verdicts]


# -- a pass is a call phase that ran and passed --------------------------------------------

def test_a_test_passes_when_setup_call_and_teardown_all_pass():
    result = run(channel(selected(A), *ran(A), finish(0)))
    assert outcomes(result) == [("passed", "")]
    assert result.verdicts[0].seconds == pytest.approx(0.75)
    assert result.verdicts[0].kind == "pytest"
    assert result.tampered == ""
    assert result.all_passed


def test_a_failing_call_is_failed_with_its_message():
    result = run(channel(selected(A), *ran(A, "failed", "AssertionError: 1 != 2"), finish(1)))
    assert outcomes(result) == [("failed", "AssertionError: 1 != 2")]
    assert result.failed == 1
    assert not result.all_passed


def test_an_error_in_setup_is_an_error_not_a_pass():
    data = channel(selected(A), start(A), report(A, "setup", "failed", "fixture 'db' not found"),
                   report(A, "teardown"), finish(1))
    assert outcomes(run(data)) == [("error", "error in setup: fixture 'db' not found")]


def test_an_error_in_teardown_turns_a_passed_call_into_an_error():
    data = channel(selected(A), start(A), report(A, "setup"), report(A, "call"),
                   report(A, "teardown", "failed", "RuntimeError: leak"), finish(1))
    result = run(data)
    assert outcomes(result) == [("error", "error in teardown: RuntimeError: leak")]
    assert not result.all_passed


def test_a_failing_call_stays_failed_even_when_teardown_also_fails():
    data = channel(selected(A), start(A), report(A, "setup"), report(A, "call", "failed", "boom"),
                   report(A, "teardown", "failed", "leak"), finish(1))
    assert outcomes(run(data)) == [("failed", "boom")]


def test_a_test_that_finished_without_a_call_result_is_an_error():
    node = Node(starts=1, phases={"setup": Phase("passed"), "teardown": Phase("passed")})
    assert node_verdict(node, FINISHED, in_progress=False) == \
        ("error", "no result for the test call")


# -- a skip or xfail raised while the test ran counts against the candidate ------------------

def test_pytest_skip_called_by_the_test_is_skip_raised_and_counts_against_it():
    result = run(channel(selected(A, B), *ran(A, "skipped", "not now"), *ran(B), finish(0)),
                 [A, B])
    assert outcomes(result) == [
        ("skip-raised", "skip raised while the test ran (not a pass): not now"),
        ("passed", "")]
    assert result.failed == 1
    assert not result.all_passed


def test_a_skip_raised_by_a_fixture_during_setup_is_skip_raised():
    data = channel(selected(A), start(A), report(A, "setup", "skipped", "no network"),
                   report(A, "teardown"), finish(0))
    result = run(data)
    assert outcomes(result) == [
        ("skip-raised", "skip raised while the test ran (not a pass): no network")]
    assert not result.all_passed


def test_pytest_xfail_called_by_the_test_is_skip_raised():
    data = channel(selected(A), *ran(A, "skipped", "xfail: later", wasxfail=True), finish(0))
    result = run(data)
    assert outcomes(result) == [
        ("skip-raised", "xfail raised while the test ran (not a pass): xfail: later")]
    assert not result.all_passed


def test_a_skip_raised_inside_a_test_marked_xfail_is_still_skip_raised():
    data = channel(selected(A), *ran(A, "skipped", "dodge", xfail_by_mark=True), finish(0))
    assert outcomes(run(data)) == [
        ("skip-raised", "skip raised while the test ran (not a pass): dodge")]


def test_a_test_the_user_marked_skip_is_skipped_and_counts_neither_way():
    marked = [start(B), report(B, "setup", "skipped", "not today", skip_by_mark=True),
              report(B, "teardown")]
    result = run(channel(selected(A, B), *ran(A), *marked, finish(0)), [A, B])
    assert outcomes(result) == [("passed", ""), ("skipped", "not today")]
    assert result.failed == 0
    assert result.all_passed
    alone = run(channel(selected(B), *marked, finish(0)), [B])
    assert outcomes(alone) == [("skipped", "not today")]
    assert not alone.all_passed  # nothing that counts passed


def test_a_test_the_user_marked_xfail_that_fails_is_xfail():
    data = channel(selected(A, B), *ran(A), *ran(B, "skipped", "xfail: known bug",
                                                 wasxfail=True, xfail_by_mark=True), finish(0))
    result = run(data, [A, B])
    assert outcomes(result) == [("passed", ""), ("xfail", "xfail: known bug")]
    assert result.all_passed


def test_a_test_the_user_marked_xfail_that_passes_is_xfail_xpass():
    data = channel(selected(A), *ran(A, "passed", wasxfail=True, xfail_by_mark=True), finish(0))
    assert outcomes(run(data)) == [("xfail", "xpass")]


def test_a_marked_xfail_test_not_run_at_setup_is_xfail():
    data = channel(selected(A), start(A),
                   report(A, "setup", "skipped", "xfail: run=False", wasxfail=True,
                          xfail_by_mark=True),
                   report(A, "teardown"), finish(0))
    assert outcomes(run(data)) == [("xfail", "xfail: run=False")]


# -- a return value that equals anything ------------------------------------------------------

def test_a_suspicious_return_value_fails_a_passing_test_and_is_flagged():
    why = "suspicious return type: mod.Any claims to be equal to anything"
    data = channel(selected(A, B), start(A), report(A, "setup"), suspicious(A, why),
                   report(A, "call"), report(A, "teardown"), start(B), report(B, "setup"),
                   suspicious(B, why), report(B, "call"), report(B, "teardown"), finish(0))
    result = run(data, [A, B])
    assert outcomes(result) == [("failed", why), ("failed", why)]
    assert result.flags == [why]  # one line per distinct warning
    assert not result.all_passed


# -- tampering: every verdict becomes an error and the run never passes ---------------------

def assert_tampered(result: RunResult, reason: str) -> None:
    assert result.tampered == reason
    assert outcomes(result) == [("error", f"results tampered: {reason}")] * len(result.verdicts)
    assert result.verdicts
    assert not result.all_passed


def test_a_line_signed_without_the_runs_secret_is_tampering():
    data = (line(0, selected(A)) + line(1, start(A)) + line(2, report(A, "setup"))
            + line(3, report(A, "call"), key=b"a guessed key")
            + line(4, report(A, "teardown")) + line(5, finish(0)))
    assert_tampered(run(data), "line 4: a line without the run's secret")


def test_a_line_with_an_edited_payload_is_tampering():
    good = channel(selected(A), *ran(A, "failed", "boom"), finish(1))
    forged = good.replace(b'"outcome": "failed"', b'"outcome": "passed"')
    assert forged != good
    assert_tampered(run(forged), "line 4: a line without the run's secret")


def test_a_skipped_sequence_number_is_tampering():
    events = [selected(A), *ran(A), finish(0)]
    data = b"".join(line(seq if seq < 2 else seq + 1, e) for seq, e in enumerate(events))
    assert_tampered(run(data), "line 3: a line out of sequence")


def test_a_replayed_line_is_tampering():
    lines = channel(selected(A), *ran(A), finish(0)).splitlines(keepends=True)
    data = b"".join(lines[:3] + [lines[2]] + lines[3:])
    assert_tampered(run(data), "line 4: a line out of sequence")


def test_a_test_started_twice_is_tampering():
    data = channel(selected(A), *ran(A), *ran(A), finish(0))
    assert_tampered(run(data), f"line 6: {A} started twice")


def test_a_phase_reported_twice_is_tampering():
    data = channel(selected(A), start(A), report(A, "setup"), report(A, "call", "failed", "x"),
                   report(A, "call"), report(A, "teardown"), finish(0))
    assert_tampered(run(data), f"line 5: {A} reported its call twice")


def test_a_report_before_the_test_started_is_tampering():
    data = channel(selected(A), report(A, "setup"), report(A, "call"), finish(0))
    assert_tampered(run(data), f"line 2: a report for {A} before it started")


def test_phases_out_of_order_are_tampering():
    data = channel(selected(A), start(A), report(A, "call"), report(A, "setup"),
                   report(A, "teardown"), finish(0))
    assert_tampered(run(data), f"line 3: {A} reported call before setup")
    skipped_call = channel(selected(A), start(A), report(A, "setup"), report(A, "teardown"),
                           finish(0))
    assert_tampered(run(skipped_call), f"line 4: {A} reported teardown before call")


@pytest.mark.parametrize("event", [start(B), report(B, "call"), suspicious(B, "odd")],
                         ids=["start", "report", "suspicious"])
def test_an_event_for_a_test_that_was_not_selected_is_tampering(event: dict):
    data = channel(selected(A), *ran(A), event, finish(0))
    kind = event["event"]
    assert_tampered(run(data, [A, B]),
                    f"line 6: a {kind} event for a test that was not selected: {B}")


def test_an_event_before_the_selection_is_tampering():
    data = channel(start(A), selected(A), report(A, "setup"), finish(0))
    assert_tampered(run(data), f"line 1: a start event for a test that was not selected: {A}")


def test_the_selection_reported_twice_or_with_a_duplicate_is_tampering():
    twice = channel(selected(A), selected(A, B), *ran(A), finish(0))
    assert_tampered(run(twice), "line 2: the selection was reported twice")
    duplicate = channel(selected(A, A), *ran(A), finish(0))
    assert_tampered(run(duplicate), "line 1: a test was selected twice")
    malformed = channel({"event": "selected", "nodeids": A}, *ran(A), finish(0))
    assert_tampered(run(malformed), "line 1: a malformed selection")


def test_anything_after_the_finish_is_tampering():
    data = channel(selected(A), *ran(A, "failed", "boom"), finish(1), *ran(B))
    assert_tampered(run(data, [A, B]), "line 7: a 'start' event after the finish")
    again = channel(selected(A), *ran(A), finish(0), finish(0))
    assert_tampered(run(again), "line 7: a 'finish' event after the finish")


@pytest.mark.parametrize("returncode", [0, 1, 5])
def test_a_runner_that_exited_without_reporting_its_finish_is_tampering(returncode: int):
    end = RunEnd(False, False, returncode, 30.0)
    assert_tampered(run(channel(selected(A), *ran(A)), end=end),
                    "the test process exited without pytest's final report "
                    f"(exit code {returncode})")


def test_the_plugin_reporting_tampering_is_tampering():
    why = "pytest's runner.call_and_report was replaced while the tests ran"
    data = channel(selected(A, B), *ran(A), tamper(why), *ran(B), finish(0))
    result = run(data, [A, B])
    assert_tampered(result, why)
    assert len(result.verdicts) == 2


def test_tampered_verdicts_keep_the_test_kind():
    events = parse_events(channel(selected(A), *ran(A), tamper("x")), KEY)
    verdicts = build_verdicts([case(A, "doctest"), case(B, "generated")], events, FINISHED,
                              set())
    assert [(v.id, v.outcome, v.kind) for v in verdicts] == \
        [(A, "error", "doctest"), (B, "error", "generated")]


def test_the_first_reason_is_kept_capped_and_the_rest_still_read():
    data = channel(selected(A), tamper("x" * (2 * MAX_MESSAGE)), *ran(A), ran(A)[0], finish(0))
    events = parse_events(data, KEY)
    assert events.tampered == "x" * MAX_MESSAGE
    assert events.lines == 8
    assert events.exitstatus == 0


@pytest.mark.parametrize("payload, reason", [
    (b"not json", "Expecting value: line 1 column 1 (char 0)"),
    (b'["a list"]', "an event is not an object"),
    (b'{"event": "launch"}', "an unknown event 'launch'"),
    (json.dumps(report(A, "call", "passed!")).encode(), "a report with outcome 'passed!'"),
    (json.dumps(report(A, "run")).encode(), "a report for phase 'run'"),
    (json.dumps(report(A, "call", duration=-1.0)).encode(), "a malformed duration"),
    (json.dumps({**report(A, "call"), "duration": True}).encode(), "a malformed duration"),
    (json.dumps({**report(A, "call"), "message": 3}).encode(), "message is not a string"),
    (json.dumps({**report(A, "call"), "wasxfail": 1}).encode(), "wasxfail is not a boolean"),
    (json.dumps(collect(FILE, "passed", "")).encode(), "a collect event with outcome 'passed'"),
    (b'{"event": "finish", "exitstatus": true}', "a malformed finish"),
    (b"\xff\xfe", None),
], ids=["json", "list", "unknown", "outcome", "phase", "negative-duration",
        "bool-duration", "message-type", "flag-type", "collect-outcome", "finish", "utf8"])
def test_a_malformed_event_is_tampering(payload: bytes, reason: str | None):
    head = channel(selected(A), start(A), report(A, "setup"))
    if reason is None:  # not even text: rejected before its signature is checked
        result = run(head + payload + b"\n")
        assert result.tampered.startswith("line 4: 'utf-8' codec can't decode")
        assert outcomes(result) == [("error", f"results tampered: {result.tampered}")]
        assert not result.all_passed
        return
    assert_tampered(run(head + sign(KEY, 3, payload.decode()).encode()), f"line 4: {reason}")


def test_a_channel_that_ends_in_the_middle_of_a_line_is_tampering():
    data = channel(selected(A), *ran(A), finish(0))
    assert_tampered(run(data[:-1]), "the results channel ended in the middle of a line")


def test_a_results_channel_that_overflowed_is_tampering():
    data = channel(selected(A), *ran(A), finish(0))
    assert parse_events(data, KEY, overflow=True).tampered == \
        "the results channel sent more than the sandbox accepts"
    end = RunEnd(False, False, 0, 30.0, overflow=True)
    assert_tampered(run(data, end=end), "the results channel sent more than the sandbox accepts")
    events = parse_events(data, KEY)  # the end alone says so too
    check_complete(events, end)
    assert events.tampered == "the results channel sent more than the sandbox accepts"


def padded(seq: int, event: dict, size: int) -> bytes:
    """A correctly signed line of exactly ``size`` bytes (without its newline)."""
    bare = len(line(seq, {**event, "pad": ""})) - 1
    signed = line(seq, {**event, "pad": "x" * (size - bare)})
    assert len(signed) - 1 == size
    return signed


def test_a_line_up_to_the_limit_is_read_and_a_longer_one_is_tampering():
    head = channel(selected(A))
    tail = b"".join(line(seq, e) for seq, e in enumerate([*ran(A)[1:], finish(0)], start=2))
    fits = run(head + padded(1, start(A), MAX_LINE) + tail)
    assert outcomes(fits) == [("passed", "")]
    assert fits.all_passed
    assert_tampered(run(head + padded(1, start(A), MAX_LINE + 1) + tail),
                    "line 2: an over-long line")


def test_a_finished_test_without_setup_or_call_reports_is_tampering():
    no_setup = Events(selected=[A], nodes={A: Node(1, {"teardown": Phase("passed")})},
                      exitstatus=0)
    check_complete(no_setup, FINISHED)
    assert no_setup.tampered == f"{A} finished without a setup report"
    no_call = Events(selected=[A], nodes={A: Node(1, {"setup": Phase("passed"),
                                                      "teardown": Phase("passed")})},
                     exitstatus=0)
    check_complete(no_call, FINISHED)
    assert no_call.tampered == f"{A} finished without a call report"
    skipped_setup = Events(selected=[A], nodes={A: Node(1, {"setup": Phase("skipped"),
                                                            "teardown": Phase("passed")})},
                           exitstatus=0)
    check_complete(skipped_setup, FINISHED)
    assert skipped_setup.tampered == ""


# -- a run that timed out, was cancelled or failed is never a pass --------------------------

def test_a_timeout_marks_the_running_test_and_the_ones_not_reached():
    data = channel(selected(A, B, C), *ran(A), start(B), report(B, "setup"))
    result = run(data, [A, B, C], end=TIMED_OUT)
    assert outcomes(result) == [
        ("passed", ""),
        ("timeout", "timed out after 30 s (killed)"),
        ("not-run", "not reached: the run was killed at the 30 s timeout")]
    assert result.tampered == ""
    assert not result.all_passed


def test_a_run_that_timed_out_after_every_test_passed_is_not_a_pass():
    result = run(channel(selected(A), *ran(A)), end=TIMED_OUT)
    assert outcomes(result) == [("passed", "")]
    assert not result.all_passed


def test_a_cancelled_run_is_not_a_pass():
    data = channel(selected(A, B, C), *ran(A), start(B))
    result = run(data, [A, B, C], end=CANCELLED)
    assert outcomes(result) == [("passed", ""), ("not-run", "cancelled while running"),
                                ("not-run", "cancelled before it ran")]
    assert not result.all_passed


def test_a_runner_killed_by_a_signal_mid_test_is_an_error_for_that_test():
    data = channel(selected(A, B, C), *ran(A), start(B), report(B, "setup"))
    result = run(data, [A, B, C], end=KILLED)
    assert outcomes(result) == [
        ("passed", ""),
        ("error", "the test process died while this test ran (killed by SIGKILL)"),
        ("not-run", "not run: pytest stopped early (killed by SIGKILL)")]
    assert result.tampered == ""  # killed, not ended by itself: no finish expected
    assert not result.all_passed


@pytest.mark.parametrize("exitstatus, returncode", [(1, 1), (0, 1), (2, 2)])
def test_a_failing_runner_exit_status_is_never_a_pass(exitstatus: int, returncode: int):
    end = RunEnd(False, False, returncode, 30.0)
    result = run(channel(selected(A), *ran(A), finish(exitstatus)), end=end)
    assert outcomes(result) == [("passed", "")]
    assert result.tampered == ""
    assert not result.runner_ok
    assert not result.all_passed


def test_a_timeout_before_any_test_ran_blames_import_or_collection():
    result = run(b"", [A, B], end=TIMED_OUT)
    message = ("timed out after 30 s before any test ran "
               "(importing or collecting took too long)")
    assert outcomes(result) == [("timeout", message)] * 2
    assert not result.all_passed


def test_a_cancel_before_any_test_ran_is_not_run():
    assert outcomes(run(b"", end=CANCELLED)) == [("not-run", "cancelled before any test ran")]


def test_a_runner_that_could_not_start_is_an_error_not_tampering():
    end = RunEnd(False, False, 127, 30.0, "\nplancode sandbox: cannot start the runner: ENOENT\n")
    result = run(b"", end=end)
    assert result.tampered == ""
    assert outcomes(result) == [
        ("error", "pytest ended before running tests (exit code 127): "
                  "plancode sandbox: cannot start the runner: ENOENT")]
    assert not result.all_passed


# -- collection and selection ---------------------------------------------------------------

def test_a_test_whose_file_is_missing_is_an_error():
    result = run(channel(selected(A), *ran(A), finish(0)), [A, "tests/test_gone.py::test_x"],
                 missing=frozenset({"tests/test_gone.py"}))
    assert outcomes(result) == [
        ("passed", ""), ("error", "file not found in the candidate's copy: tests/test_gone.py")]
    assert not result.all_passed


def test_a_file_that_fails_to_collect_is_an_error_for_each_of_its_tests():
    data = channel(collect(FILE, "failed", "ImportError: cannot import name 'add'"),
                   selected(), finish(2))
    result = run(data, [A, B], end=RunEnd(False, False, 2, 30.0))
    assert outcomes(result) == [("error", "ImportError: cannot import name 'add'")] * 2
    assert not result.all_passed


def test_a_module_skipped_at_collection_is_skipped():
    data = channel(collect(FILE, "skipped", "needs numpy"), selected(), finish(5))
    assert outcomes(run(data, end=RunEnd(False, False, 5, 30.0))) == [("skipped", "needs numpy")]


def test_a_requested_test_pytest_did_not_collect_is_not_run():
    result = run(channel(selected(A), *ran(A), finish(0)), [A, B])
    assert outcomes(result) == [
        ("passed", ""), ("not-run", "not collected: pytest found no test with this id")]
    assert not result.all_passed


def test_a_parametrized_test_takes_its_worst_case_and_names_it():
    one, two = f"{A}[1]", f"{A}[2]"
    data = channel(selected(one, two), *ran(one), *ran(two, "failed", "assert 4 == 5"),
                   finish(1))
    result = run(data, [A], end=RunEnd(False, False, 1, 30.0))
    assert outcomes(result) == [("failed", "[2]: assert 4 == 5")]
    assert result.verdicts[0].seconds == pytest.approx(1.5)


def test_a_requested_class_takes_its_worst_method_and_names_it():
    cls = f"{FILE}::TestMath"
    add, mul = f"{cls}::test_add", f"{cls}::test_mul"
    data = channel(selected(add, mul), *ran(add, "skipped", "later"), *ran(mul), finish(0))
    assert outcomes(run(data, [cls])) == [
        ("skip-raised", "test_add: skip raised while the test ran (not a pass): later")]


def test_matches_a_test_its_cases_and_methods_but_not_a_longer_name():
    assert matches(A, A)
    assert matches(A, f"{A}[x-1]")
    assert matches(f"{FILE}::TestMath", f"{FILE}::TestMath::test_add")
    assert matches(FILE, A)
    assert not matches(A, f"{A}_more")
    assert not matches(f"{FILE}::TestMath", f"{FILE}::TestMathExtra::test_add")


# -- describing how the runner ended ------------------------------------------------------

@pytest.mark.parametrize("code, text", [
    (None, "no exit code"),
    (0, "exit code 0"),
    (1, "exit code 1"),
    (128, "exit code 128"),
    (137, "killed by SIGKILL"),
    (139, "killed by segmentation fault"),
    (143, "killed by SIGTERM"),
    (152, "killed by CPU time limit"),
    (153, "killed by file size limit"),
    (228, "killed by signal 100"),
])
def test_describe_exit_names_signals_and_plain_codes(code: int | None, text: str):
    assert describe_exit(code) == text


@pytest.mark.parametrize("end, by_itself", [
    (FINISHED, True),
    (RunEnd(False, False, 1, 30.0), True),
    (RunEnd(False, False, 127, 30.0), True),
    (KILLED, False),
    (RunEnd(False, False, None, 30.0), False),
    (RunEnd(True, False, 0, 30.0), False),
    (RunEnd(False, True, 0, 30.0), False),
])
def test_only_a_plain_exit_counts_as_ending_by_itself(end: RunEnd, by_itself: bool):
    assert end.ended_by_itself is by_itself


def test_the_last_output_line_is_the_last_non_blank_one_capped():
    assert RunEnd(False, False, 1, 1.0, "a\n  b  \n\n").last_output_line() == "b"
    assert RunEnd(False, False, 1, 1.0, "x" * 300).last_output_line() == "x" * 200
    assert RunEnd(False, False, 1, 1.0, "").last_output_line() == ""
