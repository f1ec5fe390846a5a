"""Parsing model-written code never crashes a run: a tree too deep to build is "does not
parse", and parses from the pipeline's threads never overlap (CPython 3.11's AST conversion
keeps its recursion depth in shared state: the held-out benchmark died of a SystemError)."""

from __future__ import annotations

import ast
import threading
import time

import pytest

from plancode.analysis import pyparse
from plancode.pipeline import static_repair

DEEP = "def f():\n    return 1" + " + 1" * 5000 + "\n"  # a model looping on "+ 1"


def test_a_tree_too_deep_to_build_is_a_syntax_error() -> None:
    with pytest.raises(RecursionError):
        ast.parse(DEEP)  # what the standard call does
    with pytest.raises(SyntaxError, match="RecursionError"):
        pyparse.parse(DEEP)


def test_such_a_candidate_is_reported_as_not_parsing_not_raised() -> None:
    checked = static_repair.check(DEEP)
    assert checked.error.startswith("code does not parse")


def test_parses_from_several_threads_never_overlap(monkeypatch: pytest.MonkeyPatch) -> None:
    inside, most = 0, 0
    real = ast.parse

    def slow_parse(*args, **kwargs):
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        time.sleep(0.01)  # lets the other threads run while this one is "parsing"
        try:
            return real(*args, **kwargs)
        finally:
            inside -= 1

    monkeypatch.setattr(pyparse.ast, "parse", slow_parse)
    threads = [threading.Thread(target=lambda: [pyparse.parse("x = 1") for _ in range(5)])
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 1
