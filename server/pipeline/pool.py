"""Making a function's candidate pool with one model: decode, test, stop, diversify, repair.

Candidates are made in the schedule's order (``candidates.schedule``: direct greedy, sampled
direct answers, plans), each spliced under the user's signature and tested in the sandbox on a
worker thread while the next one decodes (``TestRuns``). With strong user tests the pool stops
at the first candidate that passes them all; with weak tests the whole pool is made to
compare, its sampled direct answers decoded together in one llama.cpp batch. When nothing
passes: one hotter batch of samples, then repair rounds, but only for crashes (small models fix
a NameError; wrong values go to the larger model). Every step asks the budget first, and the
end of it is kept for what must follow: the choice (CHOICE_RESERVE_SECONDS) or a larger model
waiting to join (LARGER_MODEL_RESERVE_SECONDS).
"""

from __future__ import annotations

import re

from plancode.analysis.functions import FunctionInfo, functions
from plancode.analysis.splice import SpliceError, function_text, splice
from plancode.config import Settings
from plancode.engine.types import CancelToken, Engine, SamplingParams
from plancode.pipeline import candidates as cands
from plancode.pipeline import escalate, static_repair
from plancode.pipeline import visible_tests as visible
from plancode.pipeline.budget import Deadline, Reserve
from plancode.pipeline.guards import code_cap
from plancode.pipeline.kinds import Strategy
from plancode.pipeline.ranking import best_by_tests
from plancode.pipeline.result import Candidate
from plancode.pipeline.test_runs import TestRuns
from plancode.pipeline.work import Progress, Work
from plancode.progress import Event

# the least time left for which a repair round and the hotter samples are started at all
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
# whether the small model stops as soon as its greedy answer failed the user's tests when a
# larger model waits, so the larger model has all the time left. Off: under test
# (benchmarks.heldout_ab). The case for it, from the held-out rows with escalation: of the 88
# runs whose 0.5B greedy answer failed, its later candidates were right in 14, 6 of them
# where the 1.5B was not; the 1.5B was right in 24, on about 25 s
GIVE_WAY_AFTER_GREEDY = False


class PoolMaker:
    """Makes one model's candidates for a run's ``Work`` (the larger model's too, in
    escalation: a second maker, the same ``Work``)."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def make(self, work: Work, early_exit: bool = True) -> tuple[list[Candidate], bool]:
        """Make, test and (when every one fails) repair candidates for ``work`` with this
        maker's engine and settings; with ``early_exit`` and user tests, stop at the first
        that passes them all. Returns them and whether it stopped early."""
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
                if k == 1 and self._gives_way_after_greedy(work, runs, done):
                    break  # the rest of the budget is the larger model's
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
            if failing and s.parallel_candidates > 1 and work.allows(DIVERSITY_MIN_SECONDS):
                self._diversify(work, runs, done, plan)
                runs.wait_all()
            if (failing and not runs.solved.is_set() and s.repair_rounds > 0
                    and crashed(best_by_tests(done, work.tests_source) or done[0])
                    and work.allows(REPAIR_MIN_SECONDS)):
                self._repair(work, runs, gen_cancel, done)
        finally:
            runs.close()
        work.timings["testing"] = sum(c.run.seconds for c in done if c.run)
        return done, early_exit and runs.solved.is_set() and len(done) < len(plan)

    def greedy(self, problem: str, context: str, base: SamplingParams, cancel: Deadline,
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

    def _gives_way_after_greedy(self, work: Work, runs: TestRuns,
                                done: list[Candidate]) -> bool:
        """With GIVE_WAY_AFTER_GREEDY: the greedy answer failed the user's tests and a larger
        model waits (``_gives_way``), so nothing more of this model's is made."""
        if not GIVE_WAY_AFTER_GREEDY or not escalate.hands_over(self.settings,
                                                                 work.tests_source, 0):
            return False
        runs.wait_all()
        return not any(c.all_passed for c in done) and self._gives_way(work, done)

    def _gives_way(self, work: Work, done: list[Candidate]) -> bool:
        """Whether this (small) model stops here for the larger one (``escalate.hands_over``),
        with the time escalation needs still left; remembered on ``work``."""
        passing = sum(c.all_passed for c in done)
        gives = (escalate.hands_over(self.settings, work.tests_source, passing)
                 and work.allows(escalate.MIN_SECONDS))
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
        if runs.solved.is_set() or not work.allows(LARGER_MODEL_RESERVE_SECONDS):
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
            if not work.allows(REPAIR_MIN_SECONDS):
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
