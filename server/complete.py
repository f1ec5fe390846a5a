"""``plancode complete PATH:LINE``: implement the function at a line, verified by its tests."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from plancode import progress
from plancode.analysis.functions import FunctionInfo, find_function
from plancode.config import Settings
from plancode.engine.factory import load_engine
from plancode.errors import PlancodeError
from plancode.pipeline import Pipeline, PipelineResult


def parse_target(target: str) -> tuple[Path, int]:
    """Split ``PATH:LINE`` (1-based line) with a clear error when it is malformed."""
    path, sep, line = target.rpartition(":")
    if not sep or not path or not line.isdigit() or int(line) < 1:
        raise PlancodeError(f"bad target {target!r}", "write it as PATH:LINE, e.g. src/util.py:12")
    return Path(path), int(line)


def read_source(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlancodeError(f"{path} does not exist", "check the path") from None
    except IsADirectoryError:
        raise PlancodeError(f"{path} is a directory", "give a Python file") from None
    except UnicodeDecodeError as exc:
        raise PlancodeError(f"{path} is not UTF-8 text ({exc.reason})",
                            "save the file as UTF-8") from None


def check_target(path: Path, line: int, source: str) -> FunctionInfo:
    """The function at ``line`` (1-based) of ``path``, or a clear error."""
    n_lines = source.count("\n") + 1
    if line > n_lines:
        raise PlancodeError(f"{path} has {n_lines} lines; line {line} is past the end",
                            "give a line number inside the file")
    info = find_function(source, line - 1)
    if info is None:
        raise PlancodeError(f"no function definition spans {path}:{line}",
                            "point at a line inside a def (its signature or docstring)")
    return info


def status_line(function: str, event: str, data: dict) -> str:
    """One pipeline event as the CLI's stderr line: :func:`plancode.progress.render`'s text,
    the same the editors show."""
    return progress.render(event, data, function)


def write_atomically(path: Path, expected: str, text: str) -> None:
    """Replace ``path`` with ``text`` unless it changed since it was read as ``expected``."""
    if path.read_text(encoding="utf-8") != expected:
        raise PlancodeError(f"{path} changed while plancode was working; not written",
                            "run the command again")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".plancode")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


HEADLINES = {
    "verified": "VERIFIED: passes all of your tests",
    "passes-tests": "PASSES YOUR TESTS (too few to call it verified)",
    "failing": "NOT VERIFIED: best candidate still fails some of your tests",
    "unverified": "UNVERIFIED: no tests of yours found; ranked on model-written tests",
}
"""The headline per status: "verified" only where the user's tests are strong enough and
were all checked out of the candidate's process."""
IN_PROCESS_HEADLINE = ("PASSES YOUR TESTS (checked in-process, in the candidate's own process: "
                       "not called verified)")


def headline(r: PipelineResult) -> str:
    """The CLI's headline for ``r``: its status, and why passing tests is not verified."""
    if r.status == "passes-tests" and r.not_verified_because == "in-process":
        return IN_PROCESS_HEADLINE
    return HEADLINES[r.status]


def run_complete(target: str, settings: Settings, as_json: bool = False,
                 write: bool = False, stream: bool = False, pool: bool = False) -> int:
    """``plancode complete``: run the pipeline on ``target`` (``FILE:LINE``), print the result
    (``as_json``; ``pool``: every candidate's plan, code and verdicts too) and optionally
    write the chosen code into the file."""
    path, line = parse_target(target)
    source = read_source(path)
    function = check_target(path, line, source).qualname
    where = settings.remote_url if settings.backend == "openai" else "this machine"
    print(f"loading {settings.model} ({where}) ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    engine = load_engine(settings)
    load_seconds = time.perf_counter() - t0

    def status(event: str, data: dict) -> None:
        print(status_line(function, event, data), file=sys.stderr, flush=True)

    def update(early: PipelineResult) -> None:
        """An answer before the final one: the first that passes the user's (weak) tests."""
        if as_json and stream:
            print(json.dumps({**early.to_json(), "written": False}), flush=True)
        elif not as_json:
            print(f"{function}: first answer after {early.first_answer_seconds or 0:.1f}s: "
                  f"{early.strength or early.status}; checking the alternatives ...",
                  file=sys.stderr, flush=True)

    result = Pipeline(engine, settings).run(path, line - 1, source=source, progress=status,
                                            cwd=Path.cwd(), on_update=update)
    result.timings["load"] = load_seconds
    if write and result.chosen is not None and result.chosen.spliced_text is not None:
        write_atomically(path, source, result.chosen.spliced_text)
    if as_json:
        data = result.to_json(pool=pool)
        data["written"] = bool(write and result.chosen is not None)
        print(json.dumps(data) if stream else json.dumps(data, indent=2))
    else:
        print_human(result, written=write and result.chosen is not None, path=path)
    return 0 if result.chosen is not None else 1


def print_human(r: PipelineResult, written: bool, path: Path) -> None:
    c = r.chosen
    if c is None:
        print(f"no usable candidate for {r.function}: "
              + "; ".join(f"#{x.index + 1} {x.strategy}: {x.error}" for x in r.candidates))
        return
    print(f"== {r.function}: {headline(r)} ==")
    if r.strength:
        print(f"evidence: {r.strength}")
    if r.change:
        print(f"changed since the first answer: {r.change}")
    if r.budget_reached:
        print(f"stopped at the {r.budget:g}s budget: this is the best answer found by then")
    print(f"strategy: {c.strategy} (candidate {c.index + 1} of {len(r.candidates)} tried)")
    if r.root:
        print(f"workspace: {r.root['path']} ({r.root['reason']}: {r.root['detail']})")
    if c.plan:
        print("\nplan:")
        print(c.plan)
    print("\ncode:")
    print(c.function_code.rstrip())
    if c.run:
        checked = f", checked {c.run.checked}" if c.run.checked else ""
        print(f"\ntests ({r.tests_source}, isolation: {r.isolation}{checked}):")
        for v in c.run.verdicts:
            msg = f"  {v.message}" if v.message and v.outcome != "passed" else ""
            print(f"  {v.outcome.upper():<8} {v.id}{msg}")
    elif r.tests_source == "none":
        print("\nno tests were found for this function and the model wrote none usable.")
    t = r.timings
    print(f"\n(model load {t.get('load', 0):.1f}s, generation {t.get('generation', 0):.1f}s, "
          f"tests {t.get('testing', 0):.1f}s, total {t.get('total', 0):.1f}s"
          + ("; stopped early" if r.stopped_early else "") + ")")
    print(f"written to {path}" if written else "file not changed (use --write to apply)")
