"""The choice among finished candidates: by the tests, or by behaviour and the specification.

``choose_candidate`` is what the pipeline calls once its candidates are made and tested:

* strong user tests (or one candidate left): the test ranking (``ranking.choose``);
* weak user tests, or model-written tests only: behavioural clustering on generated inputs,
  scored on model-written checks (``selection``), run in the sandbox (``probes``).

It returns the choice and an ``Agreement`` for the result, so the strength of a suggestion
("passes your 1 test; 4 of 5 candidates agree on 12 generated inputs") is always reported.
"""

from __future__ import annotations

import ast
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from plancode.analysis.functions import FunctionInfo
from plancode.engine.types import CancelToken, Engine, SamplingParams
from plancode.pipeline import selection
from plancode.pipeline.generated_tests import write_tests
from plancode.pipeline.probes import probe_all
from plancode.pipeline.ranking import choose
from plancode.pipeline.result import Candidate
from plancode.testing.prose_examples import all_examples
from plancode.testing.sandbox import Sandbox
from plancode.testing.types import TestCase


@dataclass
class Context:
    """What the choice needs to know about the function and its tests."""

    info: FunctionInfo
    root: Path
    rel: str  # the file, relative to root
    module: str | None  # its import name (None: cannot be probed)
    tests: list[TestCase]
    tests_source: str
    extra_files: dict[str, str]  # sandbox-only files (docstring examples, generated tests)
    generated_asserts: list[str]  # model-written asserts already made ([] when none)
    problem: str = ""  # the problem as the model saw it (with the user's tests); '' = info's


def docstring_text(info: FunctionInfo) -> str:
    """The function's docstring as a string ('' when it has none)."""
    try:
        value = ast.literal_eval(info.docstring or "''")
    except (ValueError, SyntaxError):
        return info.docstring or ""
    return value if isinstance(value, str) else ""


def parameters(info: FunctionInfo) -> list[str]:
    """The function's parameter names, from its signature (self/cls dropped)."""
    try:
        tree = ast.parse(textwrap.dedent(info.header).strip() + "\n    pass\n")
    except SyntaxError:
        return []
    func = next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef
                                                         | ast.AsyncFunctionDef)), None)
    if func is None:
        return []
    names = [a.arg for a in [*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs]]
    return names[1:] if info.is_method and names[:1] in (["self"], ["cls"]) else names


def seeds(ctx: Context, asserts: list[str]) -> list[tuple]:
    """Argument tuples seen in the user's tests, the docstring and the model's asserts."""
    name = ctx.info.name
    found: list[tuple] = []
    for text in selection.test_sources(ctx.root, [t for t in ctx.tests if t.kind != "command"],
                                       ctx.extra_files):
        found += selection.calls_in(text, name)
    for ex in all_examples(docstring_text(ctx.info), name):
        found += selection.calls_in(ex.call, name)
    for stmt in asserts:
        found += selection.calls_in(stmt, name)
    return found


def as_checks(asserts: list[str]) -> list[str]:
    """Model-written asserts as probe statements; ``assert f(x) == ValueError`` (how small
    models write "raises") becomes a check that the call raises that exception."""
    out = []
    for stmt in asserts:
        try:
            node = ast.parse(stmt).body[0]
        except (SyntaxError, IndexError):
            continue
        test = getattr(node, "test", None)
        if (isinstance(test, ast.Compare) and len(test.ops) == 1
                and isinstance(test.ops[0], ast.Eq | ast.Is)
                and isinstance(test.comparators[0], ast.Name)
                and test.comparators[0].id.endswith(("Error", "Exception"))):
            call, exc = ast.unparse(test.left), test.comparators[0].id
            stmt = (f"try:\n    {call}\nexcept {exc}:\n    pass\n"
                    f"else:\n    raise AssertionError('no {exc}')")
        elif stmt.startswith("with pytest.raises("):
            stmt = f"import pytest\n{stmt}"
        out.append(stmt)
    return out


def choose_candidate(
    engine: Engine,
    ctx: Context,
    candidates: list[Candidate],
    sandbox: Sandbox,
    base: SamplingParams,
    cancel: CancelToken | None = None,
) -> tuple[Candidate | None, selection.Agreement]:
    """The candidate to suggest, and how strongly the evidence supports it."""
    start = time.perf_counter()
    weak = selection.is_weak(ctx.tests, ctx.info.docstring)
    agreement = selection.Agreement(selection.user_checks(ctx.tests, ctx.info.docstring), weak)
    fallback = choose(candidates, ctx.tests_source)
    if ctx.tests_source == "generated":  # model-written tests do not filter: all compete
        pool = [c for c in candidates if c.function_code and not c.error and c.spliced_text]
    else:
        pool = selection.pool_of(candidates)
    agreement.pool = len(pool)
    wanted = (ctx.tests_source == "user" and weak) or ctx.tests_source == "generated"
    if (not wanted or len(pool) < 2 or ctx.module is None or ctx.info.is_method
            or (cancel is not None and cancel.cancelled)):
        agreement.agreeing = 1 if fallback in pool else 0
        return fallback, agreement
    asserts = ctx.generated_asserts
    if not asserts:
        made = write_tests(engine, ctx.problem or ctx.info.problem, ctx.module, ctx.info.name,
                           base, cancel)
        asserts = made.asserts if made is not None else []
    inputs = selection.generated_inputs(ctx.info.name, seeds(ctx, asserts))
    agreement.inputs, agreement.inputs_shown = len(inputs), inputs
    agreement.model_checks = len(asserts)
    if not inputs and not asserts:
        agreement.error = "no inputs to compare on"
        return fallback, agreement
    texts = [c.spliced_text or "" for c in pool]
    run = probe_all(sandbox, ctx.rel, ctx.module, texts, inputs, as_checks(asserts), cancel,
                    ctx.extra_files)
    agreement.seconds = time.perf_counter() - start
    if run.error:
        agreement.error = run.error
        return fallback, agreement
    groups = selection.cluster(pool, run.behaviours)
    group = selection.choose_group(groups, user_tests=ctx.tests_source == "user")
    if group is None:
        agreement.error = "every candidate failed to load"
        return fallback, agreement
    agreement.groups = len(groups)
    agreement.agreeing = group.size
    agreement.model_checks_passed = group.behaviour.checks_passed
    agreement.selected = True
    return group.best, agreement
