"""Ranking candidates by their test outcomes alone (no further evidence gathered).

With the user's tests: most tests passed, then agreement (how many other candidates produced
the same per-test outcomes — behaviour shared by independent samples is more likely right,
as in CodeT), then mean token log-probability. With model-written tests only (unverified):
CodeT's dual agreement — candidates that pass the same set of generated tests form a group,
scored by group size times tests passed — then log-probability.

``choose`` falls back on this ranking whenever behaviour cannot be compared, and the repair
round uses it to find the best attempt so far.
"""

from __future__ import annotations

from collections import Counter

from plancode.pipeline.kinds import TestsSource
from plancode.pipeline.result import Candidate


def assign_agreement(candidates: list[Candidate]) -> None:
    """Set each candidate's ``agreement``: how many others had the same per-test outcomes."""
    vectors = Counter(c.outcome_vector() for c in candidates if c.run)
    for c in candidates:
        c.agreement = vectors[c.outcome_vector()] - 1 if c.run else 0


def codet_score(candidate: Candidate, candidates: list[Candidate]) -> int:
    """CodeT's score: the size of the group passing the same tests, times tests passed."""
    if not candidate.run:
        return 0
    passed = frozenset(v.id for v in candidate.run.verdicts if v.outcome == "passed")
    group = sum(
        1 for c in candidates
        if c.run and frozenset(v.id for v in c.run.verdicts if v.outcome == "passed") == passed
    )
    return group * len(passed)


def best_by_tests(candidates: list[Candidate], tests_source: TestsSource) -> Candidate | None:
    """The best candidate that produced usable code, or None when none did."""
    usable = [c for c in candidates if c.function_code and not c.error]
    if not usable:
        return None
    assign_agreement(candidates)
    if tests_source == "generated":
        return max(usable, key=lambda c: (codet_score(c, usable), c.mean_logprob, -c.index))
    return max(usable, key=lambda c: (c.passed, c.agreement, c.mean_logprob, -c.index))
