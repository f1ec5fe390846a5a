"""The evidence behind a choice: how strong the user's tests are, and what clustering saw.

When are the user's tests *weak*? When they hold fewer than ``STRONG_CHECKS`` checks (a
pytest or unittest test counts one, each docstring example one, a doctest one per ``>>>``
example). Weak tests let a wrong candidate through (one example says nothing about empty
input, errors to raise, rounding...), so with weak tests the pipeline makes the whole pool and
compares behaviour (``choose``) instead of stopping at the first candidate that passes.

Where were the checks *decided*? :func:`decided` counts the user's checks a run passed by
where their verdict was made: out of process (the server compared values, or a split run's
judge decided without any code of the candidate's in its process) or in process (pytest and
plancode's plugin in the candidate's process, which code written against the plugin can
forge). A choice is *verified* only on checks decided out of process, at least
``STRONG_CHECKS`` of them, and none in process (``PipelineResult.verified``): otherwise a
candidate right on the out-of-process checks could force one test in process (return a
generator) and forge it.

``Agreement`` is what the result reports: "passes your 1 test; 4 of 5 candidates agree on 12
generated inputs; the choice passes 5 of 6 model-written checks". Data only: the modules that
choose fill it in, the result carries it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from plancode.pipeline.kinds import TestsSource
from plancode.testing.types import OUT_OF_PROCESS, TestCase, TestVerdict

STRONG_CHECKS = 3


def user_checks(tests: list[TestCase], docstring: str | None) -> int:
    """How many checks the user's tests hold (see the module docstring)."""
    examples = (docstring or "").count(">>>")
    return sum(max(1, examples) if t.kind == "doctest" else 1
               for t in tests if t.kind != "generated")


def decided(verdicts: list[TestVerdict], examples: int = 0) -> tuple[int, int]:
    """(out of process, in process): the user's checks among the *passed* verdicts, by where
    they were decided (a doctest counts ``examples`` checks, at least one; model-written
    tests and the configured command count none)."""
    out = inside = 0
    for v in verdicts:
        if v.outcome != "passed" or v.kind in ("generated", "command"):
            continue
        weight = max(1, examples) if v.kind == "doctest" else 1
        if v.checked == OUT_OF_PROCESS:
            out += weight
        else:
            inside += weight
    return out, inside


def strong_out_of_process(verdicts: list[TestVerdict], examples: int = 0) -> bool:
    """Whether passed checks decided out of process alone make strong evidence: at least
    ``STRONG_CHECKS`` of them, and none decided in the candidate's process."""
    out, inside = decided(verdicts, examples)
    return out >= STRONG_CHECKS and inside == 0


def is_weak(tests: list[TestCase], docstring: str | None) -> bool:
    """The user has tests, but fewer than ``STRONG_CHECKS`` checks."""
    return 0 < user_checks(tests, docstring) < STRONG_CHECKS


@dataclass
class Agreement:
    """What selection saw, for the result: how strong the choice is."""

    user_checks: int
    weak: bool
    examples: int = 0  # >>> examples in the docstring: a doctest counts that many checks
    pool: int = 0  # candidates compared (those that pass the most user tests)
    agreeing: int = 0  # of them, how many behave like the choice
    inputs: int = 0  # generated inputs they were run on
    groups: int = 0
    model_checks: int = 0
    model_checks_passed: int = 0  # by the choice
    selected: bool = False  # the choice came from clustering (not just the tests)
    error: str = ""  # why clustering could not run
    seconds: float = 0.0
    escalated: str = ""  # the larger model that added candidates and wrote the checks
    escalation_made: int = 0  # candidates the larger model finished within the budget
    inputs_shown: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, tests: list[TestCase], docstring: str | None) -> Agreement:
        """The evidence the user's ``tests`` can give, before any candidate ran."""
        return cls(user_checks(tests, docstring), is_weak(tests, docstring),
                   examples=(docstring or "").count(">>>"))

    def summary(self, tests_source: TestsSource, passed: int, total: int,
                in_process: bool = False) -> str:
        """One line. ``in_process``: some of the passed checks were decided in the
        candidate's own process (said right after the tests)."""
        parts = []
        if tests_source == "user":
            parts.append((f"passes {passed} of your {total} test{'s' * (total != 1)}"
                          if passed < total else
                          f"passes your {total} test{'s' * (total != 1)}")
                         + (" (checked in-process)" if in_process else ""))
        else:
            parts.append("no tests of yours")
        if self.pool > 1 and self.inputs and not self.error:
            parts.append(f"{self.agreeing} of {self.pool} candidates agree on {self.inputs} "
                         "generated inputs")
        if self.model_checks:
            parts.append(f"passes {self.model_checks_passed} of {self.model_checks} "
                         "model-written checks")
        if self.error:
            parts.append(f"no agreement measured ({self.error})")
        if self.escalated and (self.escalation_made or self.model_checks):
            parts.append(f"{self.escalated} helped")
        elif self.escalated:
            parts.append(f"{self.escalated} was tried and finished nothing in time")
        return "; ".join(parts)

    def to_json(self) -> dict:
        return {"user_checks": self.user_checks, "weak": self.weak,
                "examples": self.examples, "pool": self.pool,
                "agreeing": self.agreeing, "generated_inputs": self.inputs,
                "groups": self.groups, "model_checks": self.model_checks,
                "model_checks_passed": self.model_checks_passed, "selected": self.selected,
                "error": self.error, "seconds": round(self.seconds, 3),
                "escalated": self.escalated, "escalation_made": self.escalation_made}
