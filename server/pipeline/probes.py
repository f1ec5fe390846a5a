"""Run candidates on generated inputs and model-written checks, in the sandbox, in one process.

Behaviour is what clustering compares: for every candidate, the value (or the exception type)
each generated input gives, and whether each model-written check holds. All candidates run in
one sandboxed process (one copy of the workspace, one interpreter start): each candidate's
whole spliced module is executed into a fresh namespace (named as the module, so relative
imports and helpers work), every call runs under a per-call timer, and the process prints one
JSON line of short digests. A candidate that crashes the process costs the probe, not the
pipeline: the result then says the probe failed and selection falls back to the test outcomes.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from plancode.engine.types import CancelToken
from plancode.testing.sandbox import Sandbox

SCRIPT = "_plancode_probe.py"
DATA = "_plancode_probe.json"
MARK = "PLANCODE_PROBE "
PER_CALL_SECONDS = 1.0
CHUNK = 6  # candidates per sandbox run: their digests must fit the 4000-character output tail

PROBE_SOURCE = r'''
import hashlib, json, signal, sys, types

data = json.load(open(sys.argv[1], encoding="utf-8"))


class _Slow(BaseException):
    pass


def _alarm(*_):
    raise _Slow()


signal.signal(signal.SIGALRM, _alarm)


def _norm(v, depth=0):
    if depth > 20:
        return "..."
    if isinstance(v, float):
        return "nan" if v != v else repr(round(v, 6) + 0.0)
    if isinstance(v, (list, tuple)):
        inner = ",".join(_norm(x, depth + 1) for x in v)
        return ("[%s]" if isinstance(v, list) else "(%s)") % inner
    if isinstance(v, dict):
        return "{%s}" % ",".join(sorted(_norm(k, depth + 1) + ":" + _norm(x, depth + 1)
                                        for k, x in v.items()))
    if isinstance(v, (set, frozenset)):
        return "set{%s}" % ",".join(sorted(_norm(x, depth + 1) for x in v))
    if isinstance(v, types.GeneratorType):
        return "gen"
    return type(v).__name__ + ":" + repr(v)[:2000]


def _digest(text):
    return hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()[:10]


def _run(fn):
    signal.setitimer(signal.ITIMER_REAL, data["per_call"])
    try:
        return fn()
    except _Slow:
        return "!timeout"
    except BaseException as exc:  # noqa
        return "!raise:" + type(exc).__name__
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


out = []
module, package = data["module"], data["module"].rpartition(".")[0]
for text in data["candidates"]:
    ns = {"__name__": module, "__package__": package, "__file__": data["file"],
          "__builtins__": __builtins__}
    loaded = _run(lambda: exec(compile(text, data["file"], "exec"), ns))
    if isinstance(loaded, str):
        out.append({"load": loaded})
        continue
    outputs = []
    for call in data["inputs"]:
        value = _run(lambda: _norm(eval(call, ns)))
        outputs.append(value if value.startswith("!") else _digest(value))
    checks = []
    for stmt in data["checks"]:
        result = _run(lambda: exec(stmt, dict(ns)))
        checks.append(result is None)
    out.append({"outputs": outputs, "checks": checks})
sys.stdout.flush()
print("\n" + "PLANCODE_PROBE " + json.dumps(out, separators=(",", ":")))
'''


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
    """``probe`` in chunks of CHUNK candidates (the runner's output tail is bounded)."""
    total = ProbeRun()
    for i in range(0, len(texts), CHUNK):
        part = probe(sandbox, rel, module, texts[i:i + CHUNK], inputs, checks, cancel,
                     extra_files)
        total.seconds += part.seconds
        if part.error:
            return ProbeRun(error=part.error, seconds=total.seconds)
        total.behaviours += part.behaviours
    return total


def probe(sandbox: Sandbox, rel: str, module: str, texts: list[str], inputs: list[str],
          checks: list[str], cancel: CancelToken | None = None,
          extra_files: dict[str, str] | None = None) -> ProbeRun:
    """Run each module text in ``texts`` (the candidate spliced into the file at ``rel``,
    imported as ``module``) on ``inputs`` (call expressions) and ``checks`` (statements)."""
    data = {"module": module, "file": rel, "candidates": texts, "inputs": inputs,
            "checks": checks, "per_call": PER_CALL_SECONDS}
    files = {**(extra_files or {}), SCRIPT: PROBE_SOURCE, DATA: json.dumps(data)}
    python = shlex.quote(sandbox.interpreter.path)
    run = sandbox.run_command(files, f"{python} {SCRIPT} {DATA}", cancel)
    line = next((ln for ln in reversed(run.output_tail.splitlines()) if ln.startswith(MARK)),
                None)
    if line is None:
        last = [ln for ln in run.output_tail.splitlines() if ln.strip()][-1:]
        why = "timed out" if run.timed_out else "cancelled" if run.cancelled else \
            (last[0][:200] if last else "no output")
        return ProbeRun(error=f"probe failed: {why}", seconds=run.seconds)
    try:
        raw = json.loads(line[len(MARK):])
    except json.JSONDecodeError:
        return ProbeRun(error="probe output was cut off", seconds=run.seconds)
    behaviours = [Behaviour(error=r["load"]) if "load" in r
                  else Behaviour(tuple(r["outputs"]), tuple(r["checks"])) for r in raw]
    return ProbeRun(behaviours, seconds=run.seconds)
