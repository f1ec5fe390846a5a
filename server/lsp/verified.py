"""Verified bodies as suggestions: the plan comment and the body an inline answer may show.

Shared by the inline handlers (a finished verified job answers ghost text in an empty body)
and the implement handlers (the plan comment above applied code), so neither imports the
other.
"""

from __future__ import annotations

import re

from plancode.analysis.functions import FunctionInfo
from plancode.pipeline import PipelineResult

PLACEHOLDER_LINE = re.compile(r"^\s*(pass|\.\.\.)?\s*$")


def plan_comment(result: PipelineResult, indent: str) -> str:
    """A short comment block: the verdict and (when the winner had one) its plan."""
    c = result.chosen
    assert c is not None
    total = len(c.run.verdicts) if c.run else 0
    checked = ", checked in-process" if result.not_verified_because == "in-process" else ""
    head = (f"{indent}# plancode: {result.status}, {c.passed}/{total} tests pass{checked} "
            f"({c.strategy})")
    steps = [f"{indent}# {s[:96]}" for s in c.plan.splitlines()[:8]] if c.plan else []
    return "\n".join([head, *steps]) + "\n"


def verified_body(text: str, info: FunctionInfo, result: PipelineResult,
                  with_plan: bool) -> str | None:
    """The chosen body, when applying it changes nothing outside the function's body."""
    c = result.chosen
    if c is None or c.spliced_text is None:
        return None
    new = c.spliced_text
    tail = len(text) - info.body_end
    if new[: info.body_start] != text[: info.body_start] or new[len(new) - tail:] != text[
            info.body_end:]:
        return None  # it also adds imports or helpers: the code action applies those
    body = new[info.body_start : len(new) - tail].replace("\r\n", "\n")
    if with_plan:
        body = plan_comment(result, info.body_indent) + body
    return body.rstrip("\n")


def cursor_in_empty_body(info: FunctionInfo | None, lines: list[str], line: int) -> bool:
    """Whether the cursor is on a blank or placeholder line of a function with no body yet."""
    return (info is not None and info.body_is_empty and line > info.start_line
            and PLACEHOLDER_LINE.match(lines[line]) is not None)
