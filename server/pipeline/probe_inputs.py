"""What candidates are probed on: generated inputs, and model-written checks as statements.

Inputs are call expressions of the function: every argument tuple seen in the user's tests,
the docstring's examples and the model-written asserts (the *seeds*), then type-aware
one-argument mutations of them (empty, shorter, longer, reversed, edge numbers), round-robin
over the seeds so each contributes. Only literal arguments are used, and only values that
survive ``repr`` -> ``literal_eval``, so every input can be written into the probe script.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterable
from pathlib import Path

from plancode.analysis import pyparse
from plancode.analysis.facts import FunctionFacts
from plancode.testing.types import TestCase

MAX_INPUTS = 16


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
        tree = pyparse.parse(source)
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


def seeds(facts: FunctionFacts, test_texts: list[str], asserts: list[str]) -> list[tuple]:
    """Argument tuples seen in the tests' files, the docstring's examples and the asserts;
    where none of them calls the function, the values the docstring names for its
    parameters (``arr = [2, 1, 4]``)."""
    name = facts.name
    found: list[tuple] = []
    for text in test_texts:
        found += calls_in(text, name)
    for ex in facts.examples:
        found += calls_in(ex.call, name)
    for stmt in asserts:
        found += calls_in(stmt, name)
    return found or named_in_doc(facts.doc, facts.parameters)


_NONE = object()  # no literal found (None itself is one)


def _literal_prefix(text: str) -> object:
    """The longest prefix of ``text`` that is a Python literal (``_NONE`` when none is)."""
    for end in range(len(text), 0, -1):
        if text[end - 1] in " \t,.;:":
            continue
        try:
            return ast.literal_eval(text[:end])
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return _NONE


def named_in_doc(doc: str, params: tuple[str, ...]) -> list[tuple]:
    """Argument tuples from the values a docstring gives its parameters in prose, such as
    ``For example: arr = [2, 1, 1, 4]`` (HumanEval/105 states its inputs that way, with no
    call): the n-th value named for each parameter, for as many as every parameter has."""
    if not params:
        return []
    named: dict[str, list[object]] = {p: [] for p in params}
    for line in doc.splitlines():
        for p in params:
            # the value runs to the end of the line at most (a lookahead: a later naming of
            # a parameter on the same line is found too)
            for m in re.finditer(rf"(?<![\w.]){re.escape(p)}\s*=(?!=)\s*(?=(.+))", line):
                value = _literal_prefix(m.group(1).strip()[:200])
                if value is not _NONE:
                    named[p].append(value)
    count = min(len(v) for v in named.values())
    return [tuple(named[p][k] for p in params) for k in range(count)]


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


def as_checks(asserts: list[str]) -> list[str]:
    """Model-written asserts as probe statements; ``assert f(x) == ValueError`` (how small
    models write "raises") becomes a check that the call raises that exception."""
    out = []
    for stmt in asserts:
        try:
            node = pyparse.parse(stmt).body[0]
        except (SyntaxError, IndexError):
            continue
        test = getattr(node, "test", None)
        if (isinstance(test, ast.Compare) and len(test.ops) == 1
                and isinstance(test.ops[0], ast.Eq | ast.Is)
                and isinstance(test.comparators[0], ast.Name)
                and test.comparators[0].id.endswith(("Error", "Exception"))):
            call, exc = ast.unparse(test.left), test.comparators[0].id
            stmt = (f"try:\n    {call}\nexcept {exc}:\n    pass\n"
                    f"else:\n    raise AssertionError('no {exc}')")
        elif stmt.startswith("with pytest.raises("):
            stmt = f"import pytest\n{stmt}"
        out.append(stmt)
    return out
