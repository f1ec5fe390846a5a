"""What a plan-then-code run produced: candidates, verdicts, the choice, and timings.

Data at the bottom of the pipeline: it imports only the vocabulary (``kinds``), the evidence
(``agreement``) and the test types, never the modules that make or choose candidates.

``PipelineResult.to_json`` is the ``plancode complete --json`` schema, documented in
docs/complete-json.md; the LSP's ``plancode/implement`` request returns the same object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from plancode.pipeline.agreement import Agreement, decided, strong_out_of_process
from plancode.pipeline.kinds import TestsSource
from plancode.testing.scrub import scrub
from plancode.testing.types import NEUTRAL, RunResult, TestCase


@dataclass
class Candidate:
    """One attempt at the function: how it was made, its code, and how it fared."""

    index: int
    strategy: str  # a kinds.Strategy; escalated ones are prefixed "model:" (see kinds.py)
    seed: int | None
    plan: str = ""
    code: str = ""  # the code block the model wrote
    function_code: str = ""  # the function as it reads once spliced into the user's file
    spliced_text: str | None = None  # the whole file with the candidate in it
    error: str = ""  # why the candidate could not be tested (no code, does not parse, ...)
    run: RunResult | None = None
    mean_logprob: float = 0.0
    completion_tokens: int = 0
    generate_seconds: float = 0.0
    agreement: int = 0  # other candidates with the same per-test outcomes
    static_fixes: list[str] = field(default_factory=list)  # imports added before testing
    # its behaviour group (same outputs on every generated input), numbered in the order
    # found; None where outputs were not compared
    group: int | None = None
    model_checks_passed: int | None = None  # of the model-written checks, by its group

    @property
    def passed(self) -> int:
        return self.run.passed if self.run else 0

    @property
    def failed(self) -> int:
        return self.run.failed if self.run else 0

    @property
    def all_passed(self) -> bool:
        return bool(self.run and self.run.all_passed)

    def outcome_vector(self) -> tuple[str, ...]:
        return tuple(v.outcome for v in self.run.verdicts) if self.run else ()

    def failures(self, secrets: frozenset[str] = frozenset()) -> str:
        """The failing tests' messages, for a repair prompt: written by the candidate's
        process, so capped and scrubbed of anything that looks like a key and of ``secrets``
        in any encoding (a remote backend sends prompts over the network)."""
        if self.error:
            return scrub(self.error, secrets=secrets)
        if not self.run:
            return ""
        lines = [f"{v.id}: {v.outcome}: {v.message}" for v in self.run.verdicts
                 if v.outcome != "passed" and v.outcome not in NEUTRAL]
        return scrub("\n".join(lines) or self.run.output_tail, secrets=secrets)

    def to_json(self, full: bool = False) -> dict:
        data: dict = {
            "index": self.index,
            "strategy": self.strategy,
            "seed": self.seed,
            "tests_passed": self.passed,
            "tests_failed": self.failed,
            "all_passed": self.all_passed,
            "error": self.error,
            "mean_logprob": round(self.mean_logprob, 4),
            "agreement": self.agreement,
            "group": self.group,
            "model_checks_passed": self.model_checks_passed,
            "static_fixes": self.static_fixes,
            "completion_tokens": self.completion_tokens,
            "generate_seconds": round(self.generate_seconds, 3),
            "test_seconds": round(self.run.seconds, 3) if self.run else 0.0,
        }
        if self.run is not None:
            data["flags"] = list(self.run.flags)
            data["tampered"] = self.run.tampered
            data["checked"] = self.run.checked
        if full:
            data["plan"] = self.plan
            data["code"] = self.function_code or self.code
            data["verdicts"] = [v.to_json() for v in self.run.verdicts] if self.run else []
        return data


@dataclass
class PipelineResult:
    """The outcome for one function."""

    file: str
    function: str
    line: int  # 1-based line of the definition
    tests: list[TestCase]
    tests_source: TestsSource  # "user" (found in the workspace), "generated", "none"
    candidates: list[Candidate]
    chosen: Candidate | None
    isolation: str
    isolation_detail: str
    stopped_early: bool
    timings: dict[str, float] = field(default_factory=dict)
    discovery: dict = field(default_factory=dict)
    root: dict = field(default_factory=dict)  # WorkspaceRoot.to_json(): path, reason, detail
    agreement: Agreement | None = None  # how strongly the evidence supports the choice
    final: bool = True  # False: a progressive update while the search goes on
    budget: float = 0.0  # the run's time budget in seconds (0: none)
    budget_reached: bool = False  # the run stopped at its budget with what it had
    first_answer: Candidate | None = None  # the first candidate shown (it passed your tests)
    first_answer_seconds: float | None = None  # when it was shown, from the run's start
    change: str = ""  # why the answer now differs from the first one shown ('' if it does not)

    @property
    def passes_user_tests(self) -> bool:
        """The chosen candidate passed every one of the user's own tests."""
        return self.tests_source == "user" and bool(self.chosen and self.chosen.all_passed)

    @property
    def weak_evidence(self) -> bool:
        """The user's tests hold fewer checks than it takes to call code verified."""
        return bool(self.agreement and self.agreement.weak)

    @property
    def strength(self) -> str:
        """One line: "passes your 1 test; 4 of 5 candidates agree on 12 generated inputs"
        ("passes your 5 tests (checked in-process); ..." when some were decided in the
        candidate's process)."""
        if self.agreement is None or self.chosen is None:
            return ""
        own = [t for t in self.tests if t.kind != "generated"]
        return self.agreement.summary(self.tests_source, min(self.chosen.passed, len(own)),
                                      len(own), in_process=self.decided[1] > 0)

    @property
    def decided(self) -> tuple[int, int]:
        """(out of process, in process): the user's checks the choice passed, by where their
        verdicts were decided (``agreement.decided``)."""
        if self.chosen is None or self.chosen.run is None:
            return 0, 0
        return decided(self.chosen.run.verdicts,
                       self.agreement.examples if self.agreement else 0)

    @property
    def checked(self) -> str:
        """How the chosen candidate's tests were checked: ``out-of-process`` (the server
        compared the values its calls returned), ``in-process`` (pytest and plancode's plugin
        in the candidate's own process: weaker, see docs/security.md), ``mixed``, or ""."""
        return self.chosen.run.checked if self.chosen and self.chosen.run else ""

    @property
    def verified(self) -> bool:
        """Strong evidence: the choice passes every one of the user's tests, they hold enough
        checks (``agreement.STRONG_CHECKS``), and every one of those verdicts was decided out
        of process, where the candidate's code cannot reach (``agreement.strong_out_of_process``).
        Passing one or two visible tests is not called verified (on a held-out project 4 of 5
        such answers were wrong), nor is passing tests checked in the candidate's own process
        (code written against plancode's plugin can forge those): that status is
        ``passes-tests``, and the strength line says how many tests it rests on and whether
        they were checked in-process (:attr:`not_verified_because`)."""
        return (self.passes_user_tests and not self.weak_evidence and self.chosen is not None
                and self.chosen.run is not None and strong_out_of_process(
                    self.chosen.run.verdicts, self.agreement.examples if self.agreement else 0))

    @property
    def not_verified_because(self) -> str:
        """Why a choice that passes every one of the user's tests is not called verified:
        ``few-tests`` (fewer checks than it takes) or ``in-process`` (some were decided in the
        candidate's own process); "" when it is verified or does not pass them."""
        if not self.passes_user_tests or self.verified:
            return ""
        return "in-process" if self.decided[1] and not self.weak_evidence else "few-tests"

    @property
    def status(self) -> str:
        """verified | passes-tests (passes your few tests) | failing | unverified (no tests
        of yours) | no-candidate."""
        if self.chosen is None:
            return "no-candidate"
        if self.verified:
            return "verified"
        if self.passes_user_tests:
            return "passes-tests"
        if self.tests_source == "user":
            return "failing"
        return "unverified"

    def to_json(self, pool: bool = False) -> dict:
        """The result for editors and the CLI (``pool``: every candidate's plan, code and
        verdicts, not only the chosen one's)."""
        chosen = self.chosen
        return {
            "file": self.file,
            "function": self.function,
            "line": self.line,
            "status": self.status,
            "verified": self.verified,
            "passes_user_tests": self.passes_user_tests,
            "final": self.final,
            "budget": round(self.budget, 3),
            "budget_reached": self.budget_reached,
            "first_answer": None if self.first_answer is None else {
                "index": self.first_answer.index,
                "strategy": self.first_answer.strategy,
                "seconds": round(self.first_answer_seconds or 0.0, 3),
                "kept": self.first_answer is self.chosen,
            },
            "change": self.change,
            "tests_source": self.tests_source,
            "tests": [t.to_json() for t in self.tests],
            "chosen": None if chosen is None else {
                **chosen.to_json(full=True),
                "tests_passed_names": [v.id for v in chosen.run.verdicts
                                       if v.outcome == "passed"] if chosen.run else [],
                "tests_failed_names": [v.id for v in chosen.run.verdicts
                                       if v.outcome != "passed" and v.outcome not in NEUTRAL]
                if chosen.run else [],
            },
            "candidates": [c.to_json(full=pool) for c in self.candidates],
            "isolation": self.isolation,
            "isolation_detail": self.isolation_detail,
            "checked": self.checked,
            "checks_out_of_process": self.decided[0],
            "checks_in_process": self.decided[1],
            "not_verified_because": self.not_verified_because,
            "stopped_early": self.stopped_early,
            "discovery": self.discovery,
            "root": self.root,
            "strength": self.strength,
            "agreement": self.agreement.to_json() if self.agreement else None,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }
