"""Spec-driven selection among candidates that the user's tests cannot tell apart.

When are the user's tests *weak*? When they hold fewer than ``STRONG_CHECKS`` checks (a
pytest or unittest test counts one, each docstring example one, a doctest one per ``>>>``
example). Weak tests let a wrong candidate through (one example says nothing about empty
input, errors to raise, rounding...), so with weak tests the pipeline does not stop at the
first candidate that passes: it makes the whole pool and then

1. takes the candidates that pass every user test (if none does, those that pass the most);
2. runs them on *generated inputs* — the arguments of the user's tests, of the docstring's
   examples and of the model-written checks, plus type-aware mutations of them (empty,
   shorter, longer, reversed, edge numbers) — and groups candidates that give the same value
   (or raise the same exception) on every input: CodeT/AlphaCode-style behavioural clustering;
3. scores each group on the *model-written checks* (asserts the model derived from the
   docstring, labelled model-written and never counted as the user's tests);
4. chooses the group most consistent with those checks, then the largest, then the one
   holding the direct greedy answer, then the best mean log-probability.

With no user tests at all (the model wrote every test) the order is different, because then
nothing but model-written tests would speak against the model's own direct answer: the
largest group wins, then the group holding direct greedy, and only then the checks. The
direct greedy answer is never dropped for a candidate that only model-written tests prefer.

``Agreement`` is what the result reports: "passes your 1 test; 4 of 5 candidates agree on 12
generated inputs; the choice passes 5 of 6 model-written checks".
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from plancode.pipeline.candidates import DIRECT
from plancode.pipeline.probes import Behaviour
from plancode.pipeline.result import Candidate
from plancode.testing.types import TestCase

STRONG_CHECKS = 3
MAX_INPUTS = 16


# -- how strong the user's tests are --------------------------------------------------------


def user_checks(tests: list[TestCase], docstring: str | None) -> int:
    """How many checks the user's tests hold (see the module docstring)."""
    examples = (docstring or "").count(">>>")
    return sum(max(1, examples) if t.kind == "doctest" else 1
               for t in tests if t.kind != "generated")


def is_weak(tests: list[TestCase], docstring: str | None) -> bool:
    return 0 < user_checks(tests, docstring) < STRONG_CHECKS


# -- generated inputs -----------------------------------------------------------------------


def _literal_args(call: ast.Call) -> tuple | None:
    if call.keywords or any(isinstance(a, ast.Starred) for a in call.args):
        return None
    try:
        return tuple(ast.literal_eval(a) for a in call.args)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def calls_in(source: str, name: str) -> list[tuple]:
    """Literal argument tuples of every call of ``name`` (or ``x.name``) in ``source``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else \
                func.attr if isinstance(func, ast.Attribute) else None
            if called == name and (args := _literal_args(node)) is not None:
                found.append(args)
    return found


def test_sources(root: Path, tests: list[TestCase], extra_files: dict[str, str]) -> list[str]:
    """The text of every file holding one of ``tests`` (workspace files or generated ones)."""
    texts = []
    for rel in dict.fromkeys(t.file for t in tests if t.file):
        if rel in extra_files:
            texts.append(extra_files[rel])
            continue
        try:
            texts.append((root / rel).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
    return texts


def _mutations(value: object) -> list[object]:
    """Type-aware variants of one argument value, most telling first."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [0, -value if value else -1, value + 1, value * 2 if value else 10, 1]
    if isinstance(value, float):
        return [0.0, -value, value + 0.5, round(value * 2.5, 3)]
    if isinstance(value, str):
        return ["", f"  {value.upper()}  ", value + " " + value, value[::-1], value[:1],
                value.replace(" ", "  ,  ")]
    if isinstance(value, tuple):  # a record: vary one field at a time, keep its shape
        per_field = [[value[:i] + (m,) + value[i + 1:] for m in _mutations(value[i])[:2]]
                     for i in range(len(value))]
        return [v for row in itertools.zip_longest(*per_field) for v in row if v is not None]
    if isinstance(value, list):
        out: list[object] = [[], value[:1], value[::-1], value + value]
        if value:
            firsts = _mutations(value[0])[:4]
            out += [[m, *value[1:]] for m in firsts[:2]] + [value + [m] for m in firsts[2:]]
        return out
    if isinstance(value, dict):
        items = list(value.items())
        out = [{}, dict(items[:1]), dict(items[::-1])]
        if items:
            k, v = items[0]
            out += [{**value, k: m} for m in _mutations(v)[:2]]
        return out
    return []


def generated_inputs(name: str, seeds: Iterable[tuple], limit: int = MAX_INPUTS) -> list[str]:
    """Call expressions: every seed, then one-argument mutations of the seeds, round-robin."""
    seeds = list({repr(s): s for s in seeds if _reprs_back(s)}.values())
    calls: list[str] = []

    def add(args: tuple) -> None:
        call = f"{name}({', '.join(repr(a) for a in args)})"
        if call not in calls and _reprs_back(args):
            calls.append(call)

    for args in seeds:
        add(args)
    variants = [[args[:i] + (m,) + args[i + 1:] for i in range(len(args))
                 for m in _mutations(args[i])] for args in seeds]
    for group in itertools.zip_longest(*variants):
        for args in group:
            if args is not None and len(calls) < limit:
                add(args)
    return calls[:max(limit, len(seeds))]


def _reprs_back(args: tuple) -> bool:
    """The values survive ``repr`` -> ``literal_eval`` (no inf/nan, no odd objects)."""
    try:
        return ast.literal_eval(repr(args)) == args
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


# -- clustering and the choice --------------------------------------------------------------


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
        return max(self.members, key=lambda c: (c.strategy == DIRECT, c.mean_logprob,
                                                -c.index))


@dataclass
class Agreement:
    """What selection saw, for the result: how strong the choice is."""

    user_checks: int
    weak: bool
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
    inputs_shown: list[str] = field(default_factory=list)

    def summary(self, tests_source: str, passed: int, total: int) -> str:
        parts = []
        if tests_source == "user":
            parts.append(f"passes {passed} of your {total} test{'s' * (total != 1)}"
                         if passed < total else
                         f"passes your {total} test{'s' * (total != 1)}")
        elif tests_source == "generated":
            parts.append("no tests of yours")
        if self.pool > 1 and self.inputs and not self.error:
            parts.append(f"{self.agreeing} of {self.pool} candidates agree on {self.inputs} "
                         "generated inputs")
        if self.model_checks:
            parts.append(f"passes {self.model_checks_passed} of {self.model_checks} "
                         "model-written checks")
        if self.error:
            parts.append(f"no agreement measured ({self.error})")
        if self.escalated:
            parts.append(f"{self.escalated} helped")
        return "; ".join(parts)

    def to_json(self) -> dict:
        return {"user_checks": self.user_checks, "weak": self.weak, "pool": self.pool,
                "agreeing": self.agreeing, "generated_inputs": self.inputs,
                "groups": self.groups, "model_checks": self.model_checks,
                "model_checks_passed": self.model_checks_passed, "selected": self.selected,
                "error": self.error, "seconds": round(self.seconds, 3),
                "escalated": self.escalated}


def pool_of(candidates: list[Candidate]) -> list[Candidate]:
    """The usable candidates that pass the most user tests (all of them, where any does)."""
    usable = [c for c in candidates if c.function_code and not c.error and c.run]
    if not usable:
        return []
    best = max(c.passed for c in usable)
    return [c for c in usable if c.passed == best]


def cluster(pool: list[Candidate], behaviours: list[Behaviour]) -> list[Group]:
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
    return max(groups, key=lambda g: rank_key(g, user_tests)) if groups else None
