"""Model-written tests for functions the user has no tests for (CodeT-style, unverified).

The model writes ``assert f(...) == ...`` lines; each becomes one pytest test in a file that
exists only inside the sandbox copy. They are labelled ``generated``: agreement on them ranks
candidates, but a result chosen this way is never called verified.
"""

from __future__ import annotations

import dataclasses

from plancode import prompts
from plancode.engine.types import CancelToken, Engine, Generation, SamplingParams
from plancode.pipeline.guards import repetition
from plancode.testing.types import TestCase

FILE = "test_plancode_generated.py"
LIMIT = 8  # asserts used per function; the writer stops once it has this many


@dataclasses.dataclass
class GeneratedTests:
    file: str
    text: str
    tests: list[TestCase]
    asserts: list[str]


def write_tests(
    engine: Engine,
    problem: str,
    module: str,
    name: str,
    base: SamplingParams,
    cancel: CancelToken | None = None,
    limit: int = LIMIT,
    prefill: bool = True,
) -> GeneratedTests | None:
    """Ask the model for asserts on ``module.name``; None when it wrote none usable. Cut
    short by ``cancel``, the lines it finished still count. With ``prefill`` (and an engine
    that continues a started reply) the reply starts at its first assert
    (:func:`prompts.tests_prefill`)."""
    text, _ = reply(engine, problem, name, base, cancel, prefill, limit)
    asserts = prompts.parse_asserts(text, name)[:limit]
    if not asserts:
        return None
    lines = ["import pytest", "", f"from {module} import {name}", ""]
    tests = []
    for i, stmt in enumerate(asserts):
        lines += ["", f"def test_generated_{i}():", f"    {stmt}", ""]
        tests.append(TestCase(f"{FILE}::test_generated_{i}", "generated", FILE, stmt))
    return GeneratedTests(FILE, "\n".join(lines) + "\n", tests, asserts)


def reply(engine: Engine, problem: str, name: str, base: SamplingParams,
          cancel: CancelToken | None = None, prefill: bool = True,
          limit: int = LIMIT) -> tuple[str, Generation]:
    """The test-writing reply (its prefilled start included) and its generation, greedy,
    stopped once ``limit`` asserts are complete (more are not used, and a model that loops on
    one assert pattern would run on to its token limit). A line cut off by ``cancel`` or by
    that stop is dropped: it may state a wrong value."""
    start = prompts.tests_prefill(name) if prefill and getattr(engine, "prefills", False) else ""
    stop = CancelToken(cancel)
    judged = 0  # the reply's length at the last complete line counted

    def on_text(text: str) -> None:
        nonlocal judged
        end = text.rfind("\n") + 1
        if end > judged:
            judged = end
            done = start + text[:end]
            if len(prompts.parse_asserts(done, name)) >= limit or repetition(done):
                stop.cancel()

    gen = engine.chat(prompts.with_reply_start(prompts.test_writing_messages(problem, name),
                                               start),
                      dataclasses.replace(base, temperature=0.0), stop, on_text)
    text = start + gen.text
    if gen.finish_reason == "cancelled":
        text = text[:text.rfind("\n") + 1]
    return text, gen
