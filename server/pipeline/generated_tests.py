"""Model-written tests for functions the user has no tests for (CodeT-style, unverified).

The model writes ``assert f(...) == ...`` lines; each becomes one pytest test in a file that
exists only inside the sandbox copy. They are labelled ``generated``: agreement on them ranks
candidates, but a result chosen this way is never called verified.
"""

from __future__ import annotations

import dataclasses

from plancode import prompts
from plancode.engine.types import CancelToken, Engine, SamplingParams
from plancode.testing.types import TestCase

FILE = "test_plancode_generated.py"


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
    limit: int = 8,
) -> GeneratedTests | None:
    """Ask the model for asserts on ``module.name``; None when it wrote none usable. Cut
    short by ``cancel``, the lines it finished still count."""
    gen = engine.chat(prompts.test_writing_messages(problem, name),
                      dataclasses.replace(base, temperature=0.0), cancel)
    text = gen.text
    if gen.finish_reason == "cancelled":  # a cut last line may state a wrong value: drop it
        text = text[:text.rfind("\n") + 1]
    asserts = prompts.parse_asserts(text, name)[:limit]
    if not asserts:
        return None
    lines = ["import pytest", "", f"from {module} import {name}", ""]
    tests = []
    for i, stmt in enumerate(asserts):
        lines += ["", f"def test_generated_{i}():", f"    {stmt}", ""]
        tests.append(TestCase(f"{FILE}::test_generated_{i}", "generated", FILE, stmt))
    return GeneratedTests(FILE, "\n".join(lines) + "\n", tests, asserts)
