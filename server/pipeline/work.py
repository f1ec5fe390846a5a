"""One function's run: what making, testing and choosing its candidates share.

A run's ``Work`` is made once by ``Pipeline.run`` and handed to the pool maker
(``pool.PoolMaker``); when a larger model joins (``escalate``), its pool maker makes more
candidates for the same ``Work``: the same sandbox, tests, prompt and budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from plancode.analysis.facts import FunctionFacts
from plancode.analysis.functions import FunctionInfo
from plancode.engine.types import SamplingParams
from plancode.pipeline.budget import Deadline
from plancode.pipeline.kinds import TestsSource
from plancode.pipeline.result import Candidate
from plancode.testing.sandbox import Sandbox
from plancode.testing.types import TestCase

Progress = Callable[[str, dict], None]


@dataclass
class Work:
    """One function's run: what making, testing and choosing its candidates share (the
    escalation model's ``PoolMaker`` makes candidates for the same ``Work``)."""

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

    def allows(self, seconds: float) -> bool:
        """Whether ``seconds`` of work may still start (not cancelled, enough budget left)."""
        return self.cancel.allows(seconds)
