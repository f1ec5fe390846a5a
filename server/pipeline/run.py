"""Plan-then-code verified against the user's tests, for the function at a line of a file.

1. Find the function (tree-sitter) and the tests that exercise it (doctests, pytest and
   unittest tests resolved through imports). With none, say so, decode the direct greedy
   answer first and then fall back to model-written tests, labelled unverified.
2. Make the candidate pool (``pool.PoolMaker``): direct greedy, sampled direct answers,
   plans, each spliced under the user's own signature and docstring and tested in the sandbox
   *while the next candidate decodes*; stop as soon as one passes strong tests; when none
   passes, hotter samples and repairs of crashes.
3. Choose (``choose.choose``: by the tests, or with weak tests by behaviour on generated
   inputs), with a larger model joining when ``escalate`` says so; return everything measured.

The function's facts (docstring text, parameters, examples) are worked out once
(``analysis.facts``) and passed down.
"""

from __future__ import annotations

import ast
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from plancode.analysis import pyparse
from plancode.analysis.facts import FunctionFacts, facts_of
from plancode.analysis.functions import find_function
from plancode.config import Settings
from plancode.engine.types import CancelToken, Engine, SamplingParams
from plancode.errors import PlancodeError
from plancode.pipeline import escalate
from plancode.pipeline import visible_tests as visible
from plancode.pipeline.agreement import Agreement, is_weak, user_checks
from plancode.pipeline.budget import Deadline
from plancode.pipeline.choose import ChoiceContext, choose
from plancode.pipeline.generated_tests import write_tests
from plancode.pipeline.kinds import TestsSource, by_larger_model
from plancode.pipeline.pool import PoolMaker
from plancode.pipeline.result import Candidate, PipelineResult
from plancode.pipeline.work import Progress, Work
from plancode.progress import Event
from plancode.testing.discovery import WorkspaceIndex, discover, module_name
from plancode.testing.prose_examples import docstring_tests
from plancode.testing.sandbox import Sandbox
from plancode.testing.secrets import known_secrets
from plancode.testing.types import TestCase
from plancode.testing.workspace import infer_root

OnUpdate = Callable[[PipelineResult], None]
# the most of a module's docstring the prompt carries: networkx's isomorphvf2.py opens with
# 5,000 characters on the VF2 algorithm, ~1,400 tokens that cost the 0.5B ~15 s of its greedy
# answer's 19 s and the 1.5B three times that (held-out rows, benchmarks/results/heldout-escalate)
MODULE_DOC_CHARS = 800


def _noop(event: str, data: dict) -> None:
    pass


class Pipeline:
    """Runs plan-then-code for functions of one workspace with one engine."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        index: WorkspaceIndex | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.index = index
        self._index_lock = threading.Lock()

    def _index_for(self, root: Path) -> WorkspaceIndex:
        """The index of ``root`` (kept across runs; ``discover`` refreshes it)."""
        with self._index_lock:
            if self.index is None or self.index.root != root:
                self.index = WorkspaceIndex(root)
            return self.index

    def run(
        self,
        file: Path,
        line: int,
        source: str | None = None,
        cancel: CancelToken | None = None,
        progress: Progress = _noop,
        root: Path | None = None,
        folders: Sequence[Path] = (),
        cwd: Path | None = None,
        budget: float | None = None,
        on_update: OnUpdate | None = None,
    ) -> PipelineResult:
        """Implement the function around ``line`` (0-based) of ``file``.

        ``source`` is the file's current text (an editor's unsaved buffer); it defaults to the
        file on disk. The file itself is never written here. The workspace root is ``root``
        when given, else inferred (``infer_root``: markers, import root, one of the editor's
        workspace ``folders``, the CLI's ``cwd``).

        ``budget`` (seconds; default the ``budget`` setting) bounds the whole run: at the
        deadline decoding, tests, repairs and escalation stop and the best answer so far is
        returned with ``budget_reached``. ``on_update`` is told of each answer before the
        final one (``final`` false): the first candidate that passes the user's tests, the
        moment its tests end, while the search goes on.
        """
        t0 = time.perf_counter()
        deadline = Deadline(self.settings.budget if budget is None else budget, cancel)
        file = file.resolve()
        source = file.read_text(encoding="utf-8") if source is None else source
        info = find_function(source, line)
        if info is None:
            raise PlancodeError(f"no function definition spans {file}:{line + 1}",
                                "put the cursor inside a def (its signature or docstring)")
        facts = facts_of(info)
        where = infer_root(file, folders, cwd, given=root)
        root = where.path
        rel = file.relative_to(root).as_posix()
        timings: dict[str, float] = {}

        t = time.perf_counter()
        index = self._index_for(root)
        module = None if info.is_method else module_name(root, file)
        tests, files = self._user_tests(facts, root, file, source, module)
        timings["discovery"] = time.perf_counter() - t
        tests_source: TestsSource = "user" if tests else "none"
        progress(Event.DISCOVERED, {"tests": [tc.id for tc in tests], "function": info.qualname})

        s = self.settings
        base = SamplingParams(max_tokens=s.max_tokens, seed=s.seed)
        reset = getattr(self.engine, "reset_cache", None)
        if callable(reset):  # every run starts cold: the same seed gives the same candidates
            reset()  # whatever ran before (greedy text can differ between cold and warm cache)
        generated = None
        premade: list[Candidate] = []
        context = module_docstring(source) + info.context  # definitions the code may use
        if not tests and module:
            # the greedy answer before the model's tests: writing them took up to 28 s
            # (HumanEval/105) and may give nothing, and without user tests the prompt is the
            # problem alone, so this is the very answer the pool would start with
            premade = [PoolMaker(self.engine, s).greedy(info.problem, context, base, deadline,
                                                        progress, timings)]
            progress(Event.WRITING_TESTS, {})
            t = time.perf_counter()
            generated = write_tests(self.engine, info.problem, module, info.name, base,
                                    deadline, prefill=s.prefill_tests)
            timings["write_tests"] = time.perf_counter() - t
            if generated is not None:
                tests, tests_source = generated.tests, "generated"
                files[generated.file] = generated.text
        shown = visible.sources(root, tests, files) if tests_source == "user" else {}
        # the tests join the prompt only where the docstring shows no example of its own (a
        # docstring's examples already say it; repeating them changed good greedy answers)
        bare = not facts.has_examples
        prompt = (visible.with_tests(info.problem, tests, shown) if bare else info.problem,
                  context)
        ctx = ChoiceContext(facts, root, rel, module, tests, tests_source, files,
                            generated.asserts if generated else [], problem=prompt[0],
                            prefill_tests=s.prefill_tests)

        sandbox = Sandbox(root, isolation=s.isolation, timeout=s.test_timeout,
                          exclude=s.sandbox_exclude.split(","),
                          memory_mb=s.sandbox_memory_mb, write_mb=s.sandbox_write_mb)
        weak = is_weak(tests, info.docstring)
        work = Work(facts, source, rel, tests, tests_source, files, sandbox, base, deadline,
                    progress, timings, prompt, shown, weak,
                    secrets=known_secrets(root, sandbox.rules, os.environ), premade=premade)

        def result(pool: list[Candidate], chosen: Candidate | None, agreement: Agreement,
                   stopped: bool = False, final: bool = True) -> PipelineResult:
            return PipelineResult(
                file=str(file), function=info.qualname, line=info.start_line + 1,
                tests=tests, tests_source=tests_source, candidates=pool, chosen=chosen,
                isolation=sandbox.isolation, isolation_detail=sandbox.isolation_detail,
                stopped_early=stopped, timings=dict(timings), discovery=index.report(),
                root=where.to_json(), agreement=agreement, final=final,
                budget=deadline.seconds, first_answer=first.get("cand"),
                first_answer_seconds=first.get("seconds"))

        first: dict = {}  # the first answer shown: the first candidate to pass the user tests
        shown_lock = threading.Lock()

        def on_pass(cand: Candidate) -> None:
            with shown_lock:
                if first:
                    return
                first.update(cand=cand, seconds=time.perf_counter() - t0)
            timings["first_pass"] = first["seconds"]
            if on_update is not None and weak and not deadline.cancelled:
                progress(Event.ANSWER, {"candidate": cand.index, "strategy": cand.strategy})
                on_update(result([cand], cand, Agreement(
                    user_checks(tests, info.docstring), weak), final=False))

        work.on_pass = on_pass
        try:
            pool, stopped = PoolMaker(self.engine, s).make(work, early_exit=not work.weak)
            chosen, agreement, pool = self._select(work, ctx, pool)
        finally:
            sandbox.close()
        timings["total"] = time.perf_counter() - t0
        out = result(pool, chosen, agreement, stopped)
        out.budget_reached = deadline.expired
        out.change = change_reason(out)
        progress(Event.DONE, {"status": out.status})
        return out

    def _user_tests(self, facts: FunctionFacts, root: Path, file: Path, source: str,
                    module: str | None) -> tuple[list[TestCase], dict[str, str]]:
        """The user's tests of the function (discovered tests, its docstring's examples, the
        ``test_command``) and the sandbox-only files the examples run from."""
        tests = discover(root, file, facts.info.qualname, self._index_for(root), source=source)
        files: dict[str, str] = {}
        if not self.settings.docstring_examples:
            tests = [tc for tc in tests if tc.kind != "doctest"]
        elif module:
            found, files = docstring_tests(module, facts.name, list(facts.prose))
            tests += found
        command = self.settings.test_command.strip()
        if command:
            tests = [*tests, TestCase(f"command: {command}", "command", "", command)]
        return tests, files

    def _select(self, work: Work, ctx: ChoiceContext, pool: list[Candidate]
                ) -> tuple[Candidate | None, Agreement, list[Candidate]]:
        """The candidate to suggest, the evidence for it and the final pool: ``choose`` over
        the pool, where the larger model joins when every candidate failed, or when weak tests
        leave thin evidence (its candidates are added and it writes the checks ``choose``
        scores on)."""
        s, tests_source = self.settings, work.tests_source
        chooser = self.engine
        if ((escalate.wanted(s, pool, tests_source) or work.handed_over)
                and work.allows(escalate.MIN_SECONDS)):
            why = "few candidates pass" if any(c.all_passed for c in pool) else \
                "no candidate passed"
            chooser, more = self._escalate(work, pool, why)
            pool = pool + more
        work.progress(Event.SELECTING, {"candidates": len(pool)})
        t = time.perf_counter()
        chosen, agreement = choose(pool, ctx, chooser, work.sandbox, work.base, work.cancel)
        selecting = time.perf_counter() - t
        if (chooser is self.engine and escalate.wanted_on_weak(s, tests_source, agreement)
                and work.allows(escalate.MIN_SECONDS)):
            chooser, more = self._escalate(work, pool, "weak evidence")
            pool = pool + more
            work.progress(Event.SELECTING, {"candidates": len(pool)})
            t = time.perf_counter()
            chosen, agreement = choose(pool, ctx, chooser, work.sandbox, work.base,
                                       work.cancel)
            selecting += time.perf_counter() - t
        work.timings["selection"] = selecting
        if chooser is not self.engine:
            agreement.escalated = escalate.model_of(s)
            agreement.escalation_made = sum(by_larger_model(c.strategy) for c in pool)
        return chosen, agreement, pool

    def _escalate(self, work: Work, pool: list[Candidate], why: str
                  ) -> tuple[Engine, list[Candidate]]:
        """The larger model's engine and its candidates, numbered after ``pool`` (the smaller
        model's): with weak tests a whole pool to compare, else up to its first pass. Its time
        is ``timings.escalation``; the stage timings it shares keep the small model's values."""
        s = self.settings
        work.passing_before = sum(c.all_passed for c in pool)
        work.progress(Event.ESCALATING, {"model": escalate.model_of(s), "why": why})
        t = time.perf_counter()
        kept = dict(work.timings)
        engine = escalate.engine_for(s)
        reset = getattr(engine, "reset_cache", None)
        if callable(reset):  # cold, as the small model's run: the same request, the same
            reset()  # candidates (held-out dinic: the 1.5B's greedy answer, each time warm
            # from another function, passed in one run and failed in the next)
        larger = PoolMaker(engine, escalate.settings_for(s, work.weak))
        more, _ = larger.make(work, early_exit=not work.weak)
        work.timings.clear()
        work.timings.update(kept, escalation=time.perf_counter() - t)
        return engine, escalate.label(more, escalate.model_of(s), len(pool))

def change_reason(out: PipelineResult) -> str:
    """Why the final answer differs from the first one shown ('' when it does not): the user
    saw an answer that passed their tests, so a replacement must say what outweighed it."""
    first, chosen = out.first_answer, out.chosen
    if first is None or chosen is None or first is chosen or out.agreement is None:
        return ""
    ag = out.agreement
    if ag.pool > 1 and ag.inputs and not ag.error:
        why = (f"{ag.agreeing} of {ag.pool} candidates that pass your tests behave like the "
               f"new answer on {ag.inputs} generated inputs")
        if ag.model_checks:
            why += f" and it passes {ag.model_checks_passed} of {ag.model_checks} checks " \
                   "written from the docstring"
        return f"replaced: {why}"
    return "replaced: another candidate ranks higher on your tests"


def module_docstring(source: str) -> str:
    """The module's docstring as a code block line for the prompt's context ('' if none): it
    often states the data's conventions ("an order line is (sku, quantity, price)"). A long
    one is cut to its first paragraphs (``MODULE_DOC_CHARS``)."""
    try:
        doc = ast.get_docstring(pyparse.parse(source))
    except SyntaxError:
        return ""
    doc = first_paragraphs(doc.strip(), MODULE_DOC_CHARS) if doc else ""
    return f'"""{doc}"""\n\n' if doc else ""


def first_paragraphs(text: str, limit: int) -> str:
    """``text`` whole when it fits in ``limit`` characters, else its first paragraphs that do
    (or the first paragraph's first lines, or its first ``limit`` characters), then ``...``."""
    if len(text) <= limit:
        return text
    for sep in ("\n\n", "\n"):
        kept = ""
        for part in text.split(sep):
            if len(kept) + len(sep) + len(part) > limit:
                break
            kept = f"{kept}{sep}{part}" if kept else part
        if kept:
            return f"{kept.rstrip()}\n..."
    return f"{text[:limit].rstrip()}..."


