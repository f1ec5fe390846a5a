"""How the winner is picked: ``choose``, the one entry point, over a finished pool.

The pipeline calls ``choose`` once its candidates are made and tested (and again when the
escalation model added some). The rules, in order:

1. **Strong user tests** (``agreement.STRONG_CHECKS`` checks or more), a single comparable
   candidate, or nothing to probe with: the test ranking (``ranking.best_by_tests``: most
   tests passed, then agreement on per-test outcomes, then mean log-probability).
2. **Weak user tests**, **model-written tests only** or **no tests at all**: the candidates
   that pass the most user tests (otherwise every usable one) are run in the sandbox on
   *generated inputs* (``probe_inputs``: the arguments of the tests, the docstring's examples
   and the model-written checks, else the values the docstring names, plus mutations of
   them) by ``probes``; candidates that give the same value (or raise the same exception) on
   every input form a group (``clustering``), each group is scored on the *model-written
   checks* (asserts the model derived from the docstring, never counted as the user's
   tests), and the best-ranked group's best member wins (without user tests, the largest).

It returns the choice and an ``Agreement`` for the result, so the strength of a suggestion
("passes your 1 test; 4 of 5 candidates agree on 12 generated inputs") is always reported.
Whenever behaviour cannot be compared (no inputs, the probe failed, nothing loaded), the
test ranking's choice stands and ``Agreement.error`` says why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from plancode.analysis.facts import FunctionFacts
from plancode.engine.types import CancelToken, Engine, SamplingParams
from plancode.pipeline import clustering, probe_inputs
from plancode.pipeline.agreement import Agreement
from plancode.pipeline.budget import Reserve
from plancode.pipeline.generated_tests import write_tests
from plancode.pipeline.kinds import TestsSource
from plancode.pipeline.probes import probe_all
from plancode.pipeline.ranking import best_by_tests
from plancode.pipeline.result import Candidate
from plancode.testing.sandbox import Sandbox
from plancode.testing.types import TestCase

# the end of a run's budget the model-written checks leave to the behaviour probe (running
# five candidates on 16 inputs in the sandbox)
PROBE_RESERVE_SECONDS = 4.0


@dataclass
class ChoiceContext:
    """What the choice needs to know about the function and its tests."""

    facts: FunctionFacts
    root: Path
    rel: str  # the file, relative to root
    module: str | None  # its import name (None: cannot be probed)
    tests: list[TestCase]
    tests_source: TestsSource
    extra_files: dict[str, str]  # sandbox-only files (docstring examples, generated tests)
    generated_asserts: list[str]  # model-written asserts already made ([] when none)
    problem: str = ""  # the problem as the model saw it (with the user's tests); '' = info's
    prefill_tests: bool = True  # the checks' writer starts at its first assert


class Choice(NamedTuple):
    """The candidate to suggest (None when none produced usable code) and the evidence."""

    chosen: Candidate | None
    agreement: Agreement


def choose(
    candidates: list[Candidate],
    ctx: ChoiceContext,
    engine: Engine,
    sandbox: Sandbox,
    base: SamplingParams,
    cancel: CancelToken | None = None,
) -> Choice:
    """The candidate to suggest among ``candidates``, and how strongly the evidence supports
    it. ``engine`` writes the model-written checks when ``ctx`` holds none; ``sandbox`` runs
    the probes."""
    start = time.perf_counter()
    info = ctx.facts.info
    agreement = Agreement.of(ctx.tests, info.docstring)
    fallback = best_by_tests(candidates, ctx.tests_source)
    if ctx.tests_source != "user":  # model-written tests (or none) do not filter: all compete
        pool = [c for c in candidates if c.function_code and not c.error and c.spliced_text]
    else:
        pool = clustering.pool_of(candidates)
    agreement.pool = len(pool)
    wanted = ctx.tests_source != "user" or agreement.weak
    if (not wanted or len(pool) < 2 or ctx.module is None or info.is_method
            or (cancel is not None and cancel.cancelled)):
        agreement.agreeing = 1 if fallback in pool else 0
        return Choice(fallback, agreement)
    chosen = _by_behaviour(pool, ctx, ctx.module, agreement, engine, sandbox, base, cancel,
                           start)
    return Choice(fallback if chosen is None else chosen, agreement)


def _by_behaviour(pool: list[Candidate], ctx: ChoiceContext, module: str,
                  agreement: Agreement, engine: Engine, sandbox: Sandbox,
                  base: SamplingParams, cancel: CancelToken | None,
                  start: float) -> Candidate | None:
    """The best member of the best-ranked behaviour group of ``pool``, or None when
    behaviour could not be compared; fills in ``agreement`` (its ``seconds`` from ``start``,
    the beginning of the choice, to the end of the probe)."""
    name = ctx.facts.name
    asserts = ctx.generated_asserts
    # written up to the probe's reserve (the checks finished by then count); with no tests at
    # all the model already failed to write usable ones for this prompt
    if not asserts and ctx.tests_source != "none":
        made = write_tests(engine, ctx.problem or ctx.facts.info.problem, module, name, base,
                           Reserve(cancel, PROBE_RESERVE_SECONDS), prefill=ctx.prefill_tests)
        asserts = made.asserts if made is not None else []
    texts = probe_inputs.test_sources(ctx.root, [t for t in ctx.tests if t.kind != "command"],
                                      ctx.extra_files)
    inputs = probe_inputs.generated_inputs(name, probe_inputs.seeds(ctx.facts, texts, asserts))
    agreement.inputs, agreement.inputs_shown = len(inputs), inputs
    agreement.model_checks = len(asserts)
    if not inputs and not asserts:
        agreement.error = "no inputs to compare on"
        return None
    run = probe_all(sandbox, ctx.rel, module, [c.spliced_text or "" for c in pool], inputs,
                    probe_inputs.as_checks(asserts), cancel, ctx.extra_files)
    agreement.seconds = time.perf_counter() - start
    if run.error:
        agreement.error = run.error
        return None
    groups = clustering.cluster(pool, run.behaviours)
    for number, g in enumerate(groups):
        for cand in g.members:
            cand.group = number
            cand.model_checks_passed = g.behaviour.checks_passed
    group = clustering.choose_group(groups, user_tests=ctx.tests_source == "user")
    if group is None:
        agreement.error = "every candidate failed to load"
        return None
    agreement.groups = len(groups)
    agreement.agreeing = group.size
    agreement.model_checks_passed = group.behaviour.checks_passed
    agreement.selected = True
    return group.best
