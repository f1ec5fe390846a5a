"""Behavioural clustering: candidates that behave the same on every probe form a group.

As in CodeT and AlphaCode, behaviour shared by independently made candidates is more likely
right. A group's rank depends on what the tests are worth:

* weak user tests: the group most consistent with the model-written checks, then the
  largest, then the one holding the direct greedy answer, then the best log-probability;
* model-written tests only, or no tests at all: the largest group, then direct greedy, and
  only then the checks — nothing but model-written tests would otherwise speak against the
  model's own direct answer, so they never overrule it alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from plancode.pipeline.kinds import DIRECT, base_strategy, by_larger_model
from plancode.pipeline.probes import Behaviour
from plancode.pipeline.result import Candidate


@dataclass
class Group:
    """Candidates that behave the same on every generated input."""

    members: list[Candidate]
    behaviour: Behaviour

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def has_direct(self) -> bool:
        return any(c.strategy == DIRECT for c in self.members)

    @property
    def best(self) -> Candidate:
        """The member to suggest: the larger model's (it behaves the same on every probe,
        and where the probes do not reach it is the likelier to be right: on the realistic
        project's ``order_total`` the 1.5B's greedy answer shared a group with the 0.5B's
        and only the 1.5B's applied the discount at ``>= 10000``), then a greedy answer,
        then the likeliest."""
        return max(self.members, key=lambda c: (by_larger_model(c.strategy),
                                                base_strategy(c.strategy) == DIRECT,
                                                c.mean_logprob, -c.index))


def pool_of(candidates: list[Candidate]) -> list[Candidate]:
    """The usable candidates that pass the most user tests (all of them, where any does)."""
    usable = [c for c in candidates if c.function_code and not c.error and c.run]
    if not usable:
        return []
    best = max(c.passed for c in usable)
    return [c for c in usable if c.passed == best]


def cluster(pool: list[Candidate], behaviours: list[Behaviour]) -> list[Group]:
    """Group ``pool`` by behaviour (candidates that failed to load are left out)."""
    groups: dict[tuple[str, ...], Group] = {}
    for cand, beh in zip(pool, behaviours, strict=True):
        if beh.error:
            continue
        key = beh.outputs
        if key in groups:
            groups[key].members.append(cand)
        else:
            groups[key] = Group([cand], beh)
    return list(groups.values())


def rank_key(group: Group, user_tests: bool) -> tuple:
    """Weak user tests: checks, then size. Model-written tests only: size, then direct greedy,
    then checks (model-written tests alone never overrule the direct greedy answer)."""
    logprob = max(c.mean_logprob for c in group.members)
    if user_tests:
        return (group.behaviour.checks_passed, group.size, group.has_direct, logprob)
    return (group.size, group.has_direct, group.behaviour.checks_passed, logprob)


def choose_group(groups: list[Group], user_tests: bool) -> Group | None:
    """The best-ranked group, or None when there is none."""
    return max(groups, key=lambda g: rank_key(g, user_tests)) if groups else None
