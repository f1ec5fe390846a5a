"""The text a fill-in-the-middle request sends: a window around the cursor, built for KV reuse.

On a CPU, inline-completion latency is dominated by prompt evaluation, and the engine only
re-evaluates what follows the longest token prefix a prompt shares with the previous one. The
prefix window therefore starts on a line *snapped* to a multiple of ``snap``: while the user
types on one line (or across a few lines) the window start stays put, the prompt changes only
at its end, and each keystroke re-evaluates a handful of prefix tokens plus the suffix.

Lines are split as the LSP does (``\\r\\n``, ``\\r`` or ``\\n``) and joined with ``\\n``, so the
model sees one line-ending convention whatever the file uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPENERS = "([{"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
CUT_CHUNK = 256  # a cut inside one very long line moves in steps of this many characters


@dataclass(frozen=True)
class FimRequest:
    """What to fill and the facts about the cursor that the stop rules need.

    ``prefix``/``suffix`` are the window's text before/after the cursor (what the model sees);
    ``line_prefix``/``line_suffix`` are the cursor line's own text before/after the cursor
    (never cut); ``indent`` is the indentation a new line continuing at the cursor would have.
    """

    prefix: str
    suffix: str
    multiline: bool
    line_prefix: str
    line_suffix: str
    indent: str


def split_lines(text: str) -> list[str]:
    """The document's lines without endings, as the LSP counts them (trailing '' kept)."""
    return _LINE_BREAK.split(text)


def leading_ws(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def indent_width(ws: str) -> int:
    """Columns of an indentation string (tabs to the next multiple of 8, as Python reads them)."""
    return len(ws.expandtabs(8))


def build_request(
    text: str,
    line: int,
    character: int,
    prefix_lines: int = 64,
    suffix_lines: int = 16,
    snap: int = 16,
    max_chars: int = 12000,
) -> FimRequest:
    """The FIM request for the cursor at ``line``/``character`` (0-based, code points).

    Window: from line ``max(0, ((line - prefix_lines) // snap) * snap)`` (fixed while the user
    types within ``snap`` lines, so consecutive prompts share their head) to ``suffix_lines``
    lines after the cursor line. ``max_chars`` bounds pathological files (minified code, a
    50 000-character line): the prefix is cut at its far (top) end, on a line start when one
    is in reach and otherwise on a ``CUT_CHUNK`` boundary so the cut does not move with every
    keystroke; the suffix is cut at its far (bottom) end and gets at most a quarter.
    """
    lines = split_lines(text)
    line = min(max(line, 0), len(lines) - 1)
    current = lines[line]
    character = min(max(character, 0), len(current))
    line_prefix, line_suffix = current[:character], current[character:]

    start = max(0, ((line - prefix_lines) // max(snap, 1)) * max(snap, 1))
    head = "".join(f"{ln}\n" for ln in lines[start:line])
    prefix = head + line_prefix
    after = lines[line + 1 : line + 1 + suffix_lines]
    suffix = line_suffix + "".join(f"\n{ln}" for ln in after)
    if line + 1 + suffix_lines < len(lines):
        suffix += "\n"  # more text follows the window
    prefix, suffix = _cap(prefix, suffix, len(line_prefix), max_chars)

    previous = _previous_code_line(lines, line)
    unit = _indent_unit(lines[start : line + 1])
    return FimRequest(
        prefix=prefix,
        suffix=suffix,
        multiline=_is_multiline(line_prefix, line_suffix, previous),
        line_prefix=line_prefix,
        line_suffix=line_suffix,
        indent=_continuation_indent(line_prefix, previous, unit),
    )


def _cap(prefix: str, suffix: str, cursor_col: int, max_chars: int) -> tuple[str, str]:
    """Cut ``prefix`` at its top and ``suffix`` at its bottom so together they fit."""
    if len(prefix) + len(suffix) <= max_chars:
        return prefix, suffix
    suffix_budget = min(len(suffix), max_chars // 4)
    if len(suffix) > suffix_budget:
        end = suffix.rfind("\n", 0, suffix_budget)
        suffix = suffix[: end + 1] if end >= 0 else suffix[:suffix_budget]
    budget = max_chars - len(suffix)
    if len(prefix) > budget:
        first = len(prefix) - budget  # the earliest index that may be kept
        cursor_line_start = len(prefix) - cursor_col
        nl = prefix.find("\n", first - 1, cursor_line_start)  # a line start in reach?
        chunked = min(-(-first // CUT_CHUNK) * CUT_CHUNK, len(prefix))
        prefix = prefix[nl + 1 if nl >= 0 else chunked :]
    return prefix, suffix


def _previous_code_line(lines: list[str], line: int) -> str:
    """The nearest non-blank line above ``line`` ('' at the top of the file)."""
    for i in range(line - 1, -1, -1):
        if lines[i].strip():
            return lines[i]
    return ""


def _indent_unit(lines: list[str]) -> str:
    """One level of indentation as this code writes it: a tab, or the smallest step in spaces."""
    steps: list[int] = []
    last = 0
    for ln in lines:
        if not ln.strip():
            continue
        ws = leading_ws(ln)
        if "\t" in ws:
            return "\t"
        if len(ws) > last:
            steps.append(len(ws) - last)
        last = len(ws)
    return " " * min(steps) if steps else "    "


def _is_multiline(line_prefix: str, line_suffix: str, previous: str) -> bool:
    """Whether a block (several lines) may be suggested here rather than the rest of a line.

    Only where nothing follows the cursor on its line, and the cursor either stands in the
    indentation of a blank line, just after a ``:`` or an opening bracket, or on the first
    line of a block (the line above ends with ``:``).
    """
    if line_suffix.strip():
        return False
    before = line_prefix.rstrip()
    return (
        not before
        or before.endswith(":")
        or before[-1] in OPENERS
        or previous.rstrip().endswith(":")
    )


def _continuation_indent(line_prefix: str, previous: str, unit: str) -> str:
    """The indentation of a line that would continue the code at the cursor."""
    before = line_prefix.rstrip()
    if not before:  # a blank line: the new block under a ':' line, else where the cursor is
        if previous.rstrip().endswith(":"):
            return leading_ws(previous) + unit
        return line_prefix
    lead = leading_ws(line_prefix)
    if before.endswith(":") or before[-1] in OPENERS:
        return lead + unit
    return lead
