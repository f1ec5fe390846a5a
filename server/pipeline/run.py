"""Plan-then-code verified against the user's tests, for the function at a line of a file.

1. Find the function (tree-sitter) and the tests that exercise it (doctests, pytest and
   unittest tests resolved through imports). With none, say so, decode the direct greedy
   answer first and then fall back to model-written tests, labelled unverified.
2. Generate candidates one after another (direct greedy, plan greedy, sampled plans): the
   engine reuses the shared prompt prefix from its KV cache. Each candidate is spliced under
   the user's own signature and docstring and its tests run in the sandbox on a worker thread
   *while the next candidate decodes*.
3. Stop as soon as a candidate passes every test (a running generation is cancelled).
4. If none passed, one repair round shows the model its best attempt and the failures.
5. Choose (``choose.choose``: by the tests, or with weak tests by behaviour on generated
   inputs), with a larger model joining when ``escalate`` says so; return everything measured.

The function's facts (docstring text, parameters, examples) are worked out once
(``analysis.facts``) and passed down.
"""

from __future__ import annotations

import ast
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from plancode.analysis import pyparse
from plancode.analysis.facts import FunctionFacts, facts_of
from plancode.analysis.functions import FunctionInfo, find_function, functions
from plancode.analysis.splice import SpliceError, function_text, splice
from plancode.config import Settings
from plancode.engine.types import CancelToken, Engine, SamplingParams
from plancode.errors import PlancodeError
from plancode.pipeline import candidates as cands
from plancode.pipeline import escalate, static_repair
from plancode.pipeline import visible_tests as visible
from plancode.pipeline.agreement import Agreement, is_weak, user_checks
from plancode.pipeline.budget import Deadline, Reserve
from plancode.pipeline.choose import ChoiceContext, choose
from plancode.pipeline.generated_tests import write_tests
from plancode.pipeline.guards import code_cap
from plancode.pipeline.kinds import Strategy, TestsSource, by_larger_model
from plancode.pipeline.ranking import best_by_tests
from plancode.pipeline.result import Candidate, PipelineResult
from plancode.pipeline.test_runs import TestRuns
from plancode.progress import Event
from plancode.testing.discovery import WorkspaceIndex, discover, module_name
from plancode.testing.prose_examples import docstring_tests
from plancode.testing.sandbox import Sandbox
from plancode.testing.secrets import known_secrets
from plancode.testing.types import TestCase
from plancode.testing.workspace import infer_root

Progress = Callable[[str, dict], None]
OnUpdate = Callable[[PipelineResult], None]
# the least time left for which escalation (loading the larger model, a candidate or two)
# and a repair round are started at all: less is spent on choosing among what exists
ESCALATE_MIN_SECONDS = 20.0
REPAIR_MIN_SECONDS = 8.0
DIVERSITY_MIN_SECONDS = 10.0
DIVERSITY_TEMPERATURE = 1.0  # hotter than the pool's samples: different answers, not the same
# the end of the budget kept for the choice once a pool to compare has something to choose:
# writing the checks and probing took a median 9.7 s, p90 16.5 s (HumanEval-164 `weak`); 5 of
# its 11 runs that reached the 55-s budget lost their probe to it and fell back to the greedy
CHOICE_RESERVE_SECONDS = 15.0
# what the small model's batch leaves of the budget when its greedy answer failed the user's
# tests and a larger model waits: the larger model's load and greedy answer (the 1.5B's took
# 10-25 s on the held-out set). Without it the 0.5B's batch of three took 40 s of find_words'
# 55 and the 1.5B never started (benchmarks/results/heldout-escalate)
LARGER_MODEL_RESERVE_SECONDS = 30.0


def _noop(event: str, data: dict) -> None:
    pass


@dataclass
class Work:
    """One function's run: what making, testing and choosing its candidates share (a second
    ``Pipeline``, the escalation model's, makes candidates for the same ``Work``)."""

    facts: FunctionFacts
    source: str  # the file's text the candidates are spliced into
    rel: str  # the file, relative to the workspace root
    tests: list[TestCase]
    tests_source: TestsSource
    files: dict[str, str]  # sandbox-only files (docstring examples, generated tests)
    sandbox: Sandbox
    base: SamplingParams
    cancel: Deadline  # the user's cancel and the run's budget in one token
    progress: Progress
    timings: dict[str, float]
    prompt: tuple[str, str]  # (problem as the model sees it, context)
    shown: dict[str, str]  # test sources shown to the model (for repair reports)
    weak: bool  # the user's tests are weak: make the whole pool and compare
    on_pass: Callable[[Candidate], None] | None = None  # a candidate passed the user's tests
    cap: int | None = None  # code length cap, once the direct answer exists
    secrets: frozenset[str] = frozenset()  # values no repair prompt may carry (secrets.py)
    premade: list[Candidate] = field(default_factory=list)  # made before the pool: tested first
    handed_over: bool = False  # the small model stopped its pool for the larger one
    passing_before: int = 0  # the smaller model's candidates that passed, in escalation

    @property
    def info(self) -> FunctionInfo:
        return self.facts.info

    def cancelled(self) -> bool:
        return self.cancel.cancelled

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return self.cancel.elapsed()


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
            premade = [self._greedy(info.problem, context, base, deadline, progress, timings)]
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
            pool, stopped = self.make_candidates(work, early_exit=not work.weak)
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
                and _fits(work, ESCALATE_MIN_SECONDS)):
            why = "few candidates pass" if any(c.all_passed for c in pool) else \
                "no candidate passed"
            chooser, more = self._escalate(work, pool, why)
            pool = pool + more
        work.progress(Event.SELECTING, {"candidates": len(pool)})
        t = time.perf_counter()
        chosen, agreement = choose(pool, ctx, chooser, work.sandbox, work.base, work.cancel)
        selecting = time.perf_counter() - t
        if (chooser is self.engine and escalate.wanted_on_weak(s, tests_source, agreement)
                and _fits(work, ESCALATE_MIN_SECONDS)):
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
        larger = Pipeline(engine, escalate.settings_for(s, work.weak))
        more, _ = larger.make_candidates(work, early_exit=not work.weak)
        work.timings.clear()
        work.timings.update(kept, escalation=time.perf_counter() - t)
        return engine, escalate.label(more, escalate.model_of(s), len(pool))

    def make_candidates(self, work: Work, early_exit: bool = True
                        ) -> tuple[list[Candidate], bool]:
        """Make, test and (when every one fails) repair candidates for ``work`` with this
        pipeline's engine and settings; with ``early_exit`` and user tests, stop at the first
        that passes them all. Returns them and whether it stopped early. Public: escalation
        makes the larger model's candidates through a second pipeline's ``make_candidates``."""
        s = self.settings
        plan = cands.schedule(s.candidates, s.seed)
        early_exit = early_exit and work.tests_source == "user"
        batch = not early_exit and s.parallel_candidates > 1  # the whole pool is made anyway
        if batch:
            plan = cands.widen(plan, s.parallel_candidates, s.seed)
        done: list[Candidate] = []
        gen_cancel = CancelToken(work.cancel) if early_exit else Reserve(
            work.cancel, CHOICE_RESERVE_SECONDS, when=lambda: _choosable(work, runs, done))
        runs = TestRuns(work.sandbox, work.tests, work.files, work.rel, work.info.qualname,
                        work.tests_source == "user", gen_cancel if early_exit else None,
                        work.cancel, work.on_pass)
        work.timings["generation"] = 0.0  # every candidate's decoding, a cancelled one's too
        premade, work.premade = work.premade, []  # the first pipeline's, not escalation's
        try:
            for cand in premade:
                self._made(work, cand)
                if cand.error != "cancelled":
                    self._test(work, runs, cand, done)
            for k, (strategy, seed) in enumerate(plan):
                if (early_exit and runs.solved.is_set()) or gen_cancel.cancelled:
                    break  # solved, cancelled, or what is left of the budget is the choice's
                # the greedy answer is out and testing: now the batch
                if batch and k == 1:
                    if not self._test_batch(work, runs, plan, done,
                                            self._batch_cancel(work, runs, gen_cancel)):
                        break
                    if self._gives_way_after_tests(work, runs, done):
                        break  # the plan candidates' time is the larger model's
                if any(c.index == k for c in done):
                    continue  # made in the batch
                if (early_exit and strategy not in (cands.DIRECT, cands.DIRECT_SAMPLED)
                        and self._gives_way_after_tests(work, runs, done)):
                    break  # strong tests failing: its plan candidates' time is the larger's
                work.progress(Event.GENERATING, {"candidate": k, "of": len(plan),
                                                 "strategy": strategy})
                cand = cands.generate(self.engine, work.prompt[0], k, strategy, seed,
                                      work.base, s.temperature, gen_cancel, work.prompt[1],
                                      s.prefill_code, work.cap)
                if cand.error == "cancelled":
                    work.timings["generation"] += cand.generate_seconds
                    break  # a candidate passed (or the request was cancelled) meanwhile
                self._made(work, cand)
                self._test(work, runs, cand, done)
            done.sort(key=lambda c: c.index)  # the pool in plan order, however it was made
            runs.wait_all()
            failing = (work.tests_source == "user" and bool(done) and not runs.solved.is_set()
                       and not self._gives_way(work, done))
            if failing and s.parallel_candidates > 1 and _fits(work, DIVERSITY_MIN_SECONDS):
                self._diversify(work, runs, done, plan)
                runs.wait_all()
            if (failing and not runs.solved.is_set() and s.repair_rounds > 0
                    and crashed(best_by_tests(done, work.tests_source) or done[0])
                    and _fits(work, REPAIR_MIN_SECONDS)):
                self._repair(work, runs, gen_cancel, done)
        finally:
            runs.close()
        work.timings["testing"] = sum(c.run.seconds for c in done if c.run)
        return done, early_exit and runs.solved.is_set() and len(done) < len(plan)

    def _greedy(self, problem: str, context: str, base: SamplingParams, cancel: Deadline,
                progress: Progress, timings: dict[str, float]) -> Candidate:
        """The direct greedy answer, candidate 0, decoded before anything else of the run
        (``timings.direct``: when it was out)."""
        progress(Event.GENERATING, {"candidate": 0, "of": self.settings.candidates,
                                    "strategy": cands.DIRECT})
        cand = cands.generate(self.engine, problem, 0, cands.DIRECT, None, base,
                              self.settings.temperature, cancel, context,
                              self.settings.prefill_code)
        timings["direct"] = cancel.elapsed()
        return cand

    @staticmethod
    def _made(work: Work, cand: Candidate) -> None:
        """Account for a decoded candidate; the direct greedy answer sets the code length cap
        and the time of the answer direct mode would have given (``timings.direct``)."""
        work.timings["generation"] += cand.generate_seconds
        if cand.index == 0 and cand.strategy == cands.DIRECT and work.cap is None:
            work.cap = code_cap(cand.code)
            work.timings.setdefault("direct", work.elapsed())

    def _gives_way_after_tests(self, work: Work, runs: TestRuns,
                               done: list[Candidate]) -> bool:
        """``_gives_way`` once the tests started so far have ended; without a larger model
        there is nothing to wait for (the tests go on while the next candidate decodes)."""
        if not escalate.hands_over(self.settings, work.tests_source, 0):
            return False
        runs.wait_all()
        return self._gives_way(work, done)

    def _gives_way(self, work: Work, done: list[Candidate]) -> bool:
        """Whether this (small) model stops here for the larger one (``escalate.hands_over``),
        with the time escalation needs still left; remembered on ``work``."""
        passing = sum(c.all_passed for c in done)
        gives = (escalate.hands_over(self.settings, work.tests_source, passing)
                 and _fits(work, ESCALATE_MIN_SECONDS))
        work.handed_over = work.handed_over or gives
        return gives

    def _batch_cancel(self, work: Work, runs: TestRuns, gen_cancel: CancelToken
                      ) -> CancelToken:
        """The batch's cancel token: ``gen_cancel``, and when the greedy answer failed the
        user's tests and a larger model waits (``escalate.hands_over``), also the moment only
        LARGER_MODEL_RESERVE_SECONDS are left, if that moment is still ahead: the samples
        finished by then are kept, the rest of the time is the larger model's."""
        if not escalate.hands_over(self.settings, work.tests_source, 0):
            return gen_cancel
        runs.wait_all()  # the greedy answer's tests (well under a second)
        if runs.solved.is_set() or not _fits(work, LARGER_MODEL_RESERVE_SECONDS):
            return gen_cancel
        return Reserve(gen_cancel, LARGER_MODEL_RESERVE_SECONDS)

    def _test_batch(self, work: Work, runs: TestRuns, plan: list[tuple[Strategy, int | None]],
                    done: list[Candidate], cancel: CancelToken) -> bool:
        """Decode the plan's sampled direct candidates in one batch and start the tests of
        all of them at once, before the slower plan candidates are made: a sample that
        passes is shown without waiting for a plan (HumanEval `weak`: 11 of the 82 first
        answers were samples queued behind the greedy plan). The samples that finished before
        a cancel are tested too. False when it was cancelled."""
        whole = True
        for cand in self._batched(work, plan, cancel):
            work.timings["generation"] += cand.generate_seconds
            if cand.error == "cancelled":
                whole = False
                continue
            self._test(work, runs, cand, done)
        return whole

    def _batched(self, work: Work, plan: list[tuple[Strategy, int | None]],
                 cancel: CancelToken) -> list[Candidate]:
        """The plan's sampled direct candidates, decoded together in one llama.cpp batch, in
        plan order (``generate_direct_batch`` keeps its specs' order). The direct greedy
        answer itself is decoded by the engine as in every other mode, so it is exactly the
        answer direct generation gives."""
        specs = [(k, st, seed) for k, (st, seed) in enumerate(plan)
                 if st == cands.DIRECT_SAMPLED]
        work.progress(Event.GENERATING, {
            "candidate": 0, "of": len(plan),
            "strategy": f"{len(specs)} sampled candidates in one batch"})
        return cands.generate_direct_batch(self.engine, work.prompt[0], specs, work.base,
                                           self.settings.temperature, cancel,
                                           work.prompt[1], self.settings.prefill_code,
                                           work.cap)

    def _diversify(self, work: Work, runs: TestRuns, done: list[Candidate],
                   plan: list[tuple[Strategy, int | None]]) -> None:
        """Nothing passed the user's tests: one more batch of direct answers, sampled hotter
        and with new seeds, before any repair. Measured (docs/results.md): the 0.5B's repair
        rounds were chosen 24 times on the held-out set and right 0 times, and on HumanEval
        4 of 29; new samples are cheaper (one batch) and independent of the failed code."""
        seed = max((sd for _, sd in plan if sd is not None), default=self.settings.seed) + 1
        specs = [(len(done) + k, cands.DIRECT_SAMPLED, seed + k)
                 for k in range(self.settings.parallel_candidates)]
        work.progress(Event.GENERATING, {
            "candidate": len(done), "of": len(done) + len(specs),
            "strategy": f"{len(specs)} more samples (nothing passed yet)"})
        made = cands.generate_direct_batch(self.engine, work.prompt[0], specs, work.base,
                                           DIVERSITY_TEMPERATURE, work.cancel, work.prompt[1],
                                           self.settings.prefill_code, work.cap)
        for cand in made:
            work.timings["generation"] += cand.generate_seconds
            if cand.error != "cancelled":
                self._test(work, runs, cand, done)

    @staticmethod
    def _test(work: Work, runs: TestRuns, cand: Candidate, done: list[Candidate]) -> None:
        """Splice ``cand``, add it to ``done`` and start its tests."""
        _prepare(cand, work.source, work.info)
        done.append(cand)
        if runs.testable(cand):
            work.progress(Event.TESTING, {"candidate": cand.index, "strategy": cand.strategy})
            runs.submit(cand)

    def _repair(self, work: Work, runs: TestRuns, gen_cancel: CancelToken,
                done: list[Candidate]) -> None:
        """Repair rounds from the best candidate so far, while each gets closer (more tests
        pass, or a crash became a wrong value), up to ``repair_rounds``."""
        best_before: tuple[int, int] = (-1, -1)
        for _ in range(self.settings.repair_rounds):
            if not _fits(work, REPAIR_MIN_SECONDS):
                break
            best = best_by_tests(done, work.tests_source) or done[0]
            if done[-1].strategy == cands.REPAIR and closeness(done[-1]) <= best_before:
                break  # the last round got no closer: stop repairing
            best_before = closeness(best)
            work.progress(Event.REPAIRING, {"candidate": len(done), "from": best.index})
            failing = [v.id for v in best.run.verdicts
                       if v.outcome != "passed"] if best.run else []
            report = visible.failure_report(best.failures(work.secrets), failing,
                                            work.shown or {})
            cand = cands.repair(self.engine, work.prompt[0], len(done), best, work.base,
                                gen_cancel, work.prompt[1], report, work.cap)
            work.timings["generation"] += cand.generate_seconds
            if cand.error == "cancelled":
                break
            self._test(work, runs, cand, done)
            runs.wait_last()
            if runs.solved.is_set():
                break


def _choosable(work: Work, runs: TestRuns, done: list[Candidate]) -> bool:
    """Whether a pool made to compare already holds a choice: two candidates pass the user's
    tests (counting the smaller model's, when this is the larger one's pool), or (model-written
    tests or none) two candidates compete. A single passer is no choice: the reserve would only
    idle (the realistic project's merge_lines ended 12 s early with the 1.5B's one passer
    and its batch cut)."""
    if work.tests_source == "user":
        return (runs.solved.is_set()
                and work.passing_before + sum(c.all_passed for c in done) >= 2)
    return sum(1 for c in done if c.spliced_text) >= 2


def _fits(work: Work, seconds: float) -> bool:
    """Whether ``seconds`` of work may still start (not cancelled, enough budget left)."""
    return work.cancel.allows(seconds)


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


def crashed(cand: Candidate) -> bool:
    """Whether ``cand`` failed by crashing (an exception other than a failed assertion, or
    code that could not be tested) rather than by returning wrong values. Small models fix
    crashes (a NameError, a TypeError) in a repair round; wrong values they rarely fix, so
    those go to more samples and the larger model instead."""
    if cand.run is None:
        return bool(cand.error) and cand.error != "cancelled"
    return any(v.outcome in ("failed", "error") and bool(_CRASH.match(v.message))
               for v in cand.run.verdicts)


# a verdict message that names a raised exception other than a failed assertion
_CRASH = re.compile(r"(?!AssertionError\b)[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")


def closeness(cand: Candidate) -> tuple[int, int]:
    """How close a failing candidate is: tests passed, then tests that ran to a wrong value
    (an AssertionError) rather than crashing — a repair that turns a crash into a wrong value
    got closer, so another round is worth it."""
    if cand.run is None:
        return (-1, -1)
    wrong = sum(v.outcome == "failed" and v.message.startswith("AssertionError")
                for v in cand.run.verdicts)
    return (cand.passed, wrong)


def module_docstring(source: str) -> str:
    """The module's docstring as a code block line for the prompt's context ('' if none): it
    often states the data's conventions ("an order line is (sku, quantity, price)")."""
    try:
        doc = ast.get_docstring(pyparse.parse(source))
    except SyntaxError:
        return ""
    return f'"""{doc.strip()}"""\n\n' if doc and doc.strip() else ""


def _prepare(cand: Candidate, source: str, info: FunctionInfo) -> None:
    """Splice the candidate into the file text; record why not when it cannot be."""
    if cand.error:
        return
    try:
        spliced = splice(source, info, cand.code)
    except SpliceError as exc:
        cand.error = exc.message
        return
    fixed = static_repair.check(spliced.text)
    if fixed.error:
        cand.error = fixed.error  # code that does not parse is never tested
        return
    cand.static_fixes = fixed.added
    cand.spliced_text = fixed.text
    after = next((f for f in functions(cand.spliced_text)
                  if f.qualname == info.qualname and f.start_line >= info.start_line), None)
    cand.function_code = function_text(cand.spliced_text, after) if after else cand.code
