"""Run candidates on generated inputs and model-written checks, in the sandbox, one process each.

Behaviour is what clustering compares: for every candidate, the value (or the exception type)
each generated input gives, and whether each model-written check holds. Each candidate runs in
its own sandboxed value run (``testing/value_runner.py``, probe mode): its whole spliced module
is executed into a fresh namespace (named as the module, so relative imports and helpers
work), every call runs under a per-call timer, and each result comes back as one signed line
holding the value in the data-only encoding (``testing/values.py``). The server digests the
values; nothing a candidate prints counts, and a candidate can only ever report its own
behaviour — it never shares a process, a file layer or its text with another candidate (a
wrong one once printed a forged result line for all of them at exit and won selection). A
candidate whose run is malformed, crashes or times out gets that as its own behaviour; the
probe as a whole fails only when no candidate's run reported at all, and selection then falls
back to the test outcomes.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from plancode.engine.types import CancelToken
from plancode.testing import values
from plancode.testing.sandbox import Sandbox
from plancode.testing.verdicts import describe_exit, read_signed

PER_CALL_SECONDS = 1.0
WORKERS = 2  # candidates probed at once (each is its own sandboxed process)


@dataclass
class Behaviour:
    """One candidate's behaviour: a digest per input, a bool per check ('' load error)."""

    outputs: tuple[str, ...] = ()
    checks: tuple[bool, ...] = ()
    error: str = ""

    @property
    def checks_passed(self) -> int:
        return sum(self.checks)


@dataclass
class ProbeRun:
    """Behaviours of the probed candidates, in order; ``error`` when the probe failed."""

    behaviours: list[Behaviour] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0


def probe_all(sandbox: Sandbox, rel: str, module: str, texts: list[str], inputs: list[str],
              checks: list[str], cancel: CancelToken | None = None,
              extra_files: dict[str, str] | None = None) -> ProbeRun:
    """``probe`` for each candidate text, one sandboxed run each, ``WORKERS`` at a time."""
    total = ProbeRun()
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="plancode-probe") as pool:
        parts = list(pool.map(lambda text: probe(sandbox, rel, module, text, inputs, checks,
                                                 cancel, extra_files), texts))
    total.seconds = time.monotonic() - start
    if cancel is not None and cancel.cancelled:
        return ProbeRun(error="probe failed: cancelled", seconds=total.seconds)
    reported = any(p.reported for p in parts)
    why = next((p.error for p in parts if p.error), "")
    total.behaviours = [p.behaviour for p in parts]
    if texts and not reported:
        return ProbeRun(error=why or "probe failed: no output", seconds=total.seconds)
    return total


@dataclass
class _One:
    behaviour: Behaviour
    reported: bool  # the run reported at least its load
    error: str
    seconds: float


def probe(sandbox: Sandbox, rel: str, module: str, text: str, inputs: list[str],
          checks: list[str], cancel: CancelToken | None = None,
          extra_files: dict[str, str] | None = None) -> _One:
    """Run one module text (the candidate spliced into the file at ``rel``, executed as
    ``module``) on ``inputs`` (call expressions) and ``checks`` (statements)."""
    start = time.monotonic()
    request = {"probe": {"module": module, "file": rel, "text": text, "inputs": inputs,
                         "checks": checks, "per_call": PER_CALL_SECONDS}}
    end, data, key = sandbox.run_values(dict(extra_files or {}), request, cancel)
    seconds = time.monotonic() - start
    payloads, tampered = read_signed(data, key, end.overflow)
    events = []
    for payload in payloads:
        try:
            events.append(json.loads(payload) if payload is not None else None)
        except ValueError:
            events.append(None)
    if tampered or None in events:
        return _One(Behaviour(error="!tampered"), True, "", seconds)
    if not events:
        why = "timed out" if end.timed_out else "cancelled" if end.cancelled else \
            (end.last_output_line() or describe_exit(end.returncode))
        return _One(Behaviour(error="!crash"), False, f"probe failed: {why}", seconds)
    try:
        behaviour = _behaviour(events, len(inputs), len(checks))
    except (ValueError, TypeError, KeyError, IndexError, RecursionError):
        behaviour = Behaviour(error="!tampered")
    return _One(behaviour, True, "", seconds)


def _behaviour(events: list[dict], n_inputs: int, n_checks: int) -> Behaviour:
    """A candidate's behaviour from its run's events, which must come in order: load, each
    input, each check, finish; a run that stopped early gets ``!crash`` for the rest."""
    expected = [("load", None)] + [("input", k) for k in range(n_inputs)] + \
        [("check", k) for k in range(n_checks)] + [("finish", None)]
    first = events[0] if events else None
    if isinstance(first, dict) and first.get("result", ["ok"])[:1] != ["ok"]:
        expected = [("load", None), ("finish", None)]  # nothing runs after a failed load
    results: dict[tuple[str, int | None], list] = {}
    for event, want in zip(events, expected, strict=False):
        if not isinstance(event, dict) or (event.get("event"), event.get("index")) != want:
            raise ValueError("an event out of order")
        if want[0] != "finish":
            if not isinstance(event.get("result"), list) or not event["result"]:
                raise ValueError("a malformed result")
            results[want] = event["result"]
    if len(events) > len(expected):
        raise ValueError("an event after the finish")
    loaded = results.get(("load", None))
    if loaded is None:
        return Behaviour(error="!crash")
    if loaded[0] != "ok":
        return Behaviour(error=_outcome(loaded))
    outputs = tuple(_outcome(results[("input", k)]) if ("input", k) in results else "!crash"
                    for k in range(n_inputs))
    passed = tuple(results.get(("check", k), ["missing"])[0] == "ok" for k in range(n_checks))
    return Behaviour(outputs, passed)


def _outcome(result: list) -> str:
    """One call's behaviour as a short string: a digest of the value, or what went wrong."""
    tag = result[0]
    if tag == "timeout":
        return "!timeout"
    if tag == "raised":
        return "!raise:" + str(result[2])[:80]
    if tag == "value":
        return _digest(_norm(values.decode(result[1])))
    if tag == "notplain":
        shown = re.sub(r" at 0x[0-9a-fA-F]+", "", str(result[2]) if len(result) > 2 else "")
        return _digest(f"notplain:{result[1]}:{shown}")
    if tag == "ok":
        return "ok"
    raise ValueError("a malformed result")


def _norm(v: Any, depth: int = 0) -> str:
    """A canonical text of a plain value: floats to 6 decimal places (two candidates that
    differ in the last bits of a float behave alike), sets and dicts in sorted order."""
    if depth > 20:
        return "..."
    if isinstance(v, float):
        return "nan" if v != v else repr(round(v, 6) + 0.0)
    if isinstance(v, list | tuple):
        inner = ",".join(_norm(x, depth + 1) for x in v)
        return ("[%s]" if isinstance(v, list) else "(%s)") % inner
    if isinstance(v, dict):
        pairs = sorted(_norm(k, depth + 1) + ":" + _norm(x, depth + 1) for k, x in v.items())
        return "{" + ",".join(pairs) + "}"
    if isinstance(v, set | frozenset):
        return "set{" + ",".join(sorted(_norm(x, depth + 1) for x in v)) + "}"
    return type(v).__name__ + ":" + repr(v)[:2000]


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()[:10]
