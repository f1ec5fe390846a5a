"""``ast.parse`` that is safe to call from the pipeline's threads and on hostile code.

Two ways the standard call crashed a run instead of saying "does not parse":

* CPython 3.11 counts the AST conversion's recursion depth in per-interpreter state, so two
  threads parsing at once (the pipeline parses candidates while its test worker parses
  others) can fail with ``SystemError: AST constructor recursion depth mismatch`` (CPython
  gh-106905, fixed in later releases). The held-out benchmark died of it on a model's code.
  Parses here take one lock, so they never overlap.
* Deeply nested code (a model that loops on ``not not not ...``) raises ``RecursionError``
  or ``MemoryError`` rather than ``SyntaxError``.

Every failure to build the tree comes out as ``SyntaxError``, which every caller already
treats as code that does not parse.
"""

from __future__ import annotations

import ast
import threading

_LOCK = threading.Lock()


def parse(source: str | bytes, filename: str = "<unknown>", mode: str = "exec",
          **kwargs) -> ast.AST:
    """``ast.parse(source, filename, mode, **kwargs)``, one at a time in this process;
    a tree too deep or too large to build raises ``SyntaxError``."""
    with _LOCK:
        try:
            return ast.parse(source, filename, mode, **kwargs)
        except (RecursionError, MemoryError, SystemError) as e:
            raise SyntaxError(f"cannot parse: {type(e).__name__}: {e}") from e
