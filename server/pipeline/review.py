"""The reviewer score: how likely the docstring is, given a candidate's code.

Coder-Reviewer reranking (Zhang et al., 2022): a program that does what its documentation
says makes that documentation likely. The model that wrote the candidates reads each
candidate's code *without* its docstring and is asked, in one forward pass, how probable the
user's docstring is after it. The docstring is the same text for every candidate of a
function, so the summed log-probabilities compare directly; no test is run and nothing is
generated. The score reads the prose and the examples the visible tests do not cover, which
is where weak tests leave wrong candidates standing.

This module is the text side (what is scored after what); the engine computes the numbers
(``Engine.score_text`` where it has one; remote servers do not, and then no score is made).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

from plancode.analysis import pyparse
from plancode.engine.types import CancelToken, Engine

INTRO = "# The function above, documented:\n"


def without_docstring(code: str) -> str | None:
    """``code`` (one function, as spliced) with its docstring removed, or None when it does
    not parse or holds no function. The docstring's lines go; the rest stays as written."""
    try:
        tree = pyparse.parse(code)
    except SyntaxError:
        return None
    func = next((n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)),
                None)
    if func is None:
        return None
    first = func.body[0] if func.body else None
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        return code
    lines = code.splitlines(keepends=True)
    start, end = first.lineno - 1, (first.end_lineno or first.lineno)
    rest = lines[:start] + lines[end:]
    if len(func.body) == 1:  # the docstring was the whole body
        rest.insert(start, " " * first.col_offset + "pass\n")
    return "".join(rest)


def review_prompt(code: str) -> str:
    """What the reviewer reads before the docstring: the code, then a cue for its docs."""
    return f"```python\n{code.rstrip()}\n```\n\n{INTRO}"


def review_answer(doc: str) -> str:
    """The scored text: the docstring, as a triple-quoted block."""
    return f'"""{doc.strip()}\n"""\n'


def scores(engine: Engine, codes: Sequence[str], doc: str,
           cancel: CancelToken | None = None) -> list[float | None]:
    """Each code's reviewer score (sum of the docstring's token log-probabilities after it),
    None where it cannot be made: no docstring, unparseable code, an engine without
    ``score_text`` (a remote server), or a cancel."""
    score_text = getattr(engine, "score_text", None)
    if not doc.strip() or score_text is None:
        return [None] * len(codes)
    out: list[float | None] = []
    answer = review_answer(doc)
    for code in codes:
        bare = without_docstring(code)
        if bare is None or (cancel is not None and cancel.cancelled):
            out.append(None)
            continue
        logprobs = score_text(review_prompt(bare), answer, cancel)
        out.append(None if logprobs is None else float(sum(logprobs)))
    return out
