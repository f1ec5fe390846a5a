"""Where an inline suggestion ends: stop strings for the engine and ``trim`` for its output.

Small code models fill a FIM hole correctly and then keep going: they re-type the code below
the cursor, start the next function, or write a test harness (``if __name__ == "__main__":``,
``print(add(1, 2))``) after a correct body. Stop strings end decoding early where that is
certain (it saves decode time); ``trim`` then cuts the middle where the code around the
cursor resumes. The engine already stops at the FIM format's own special tokens.
"""

from __future__ import annotations

import re

from plancode.lsp.fim_context import OPENERS, FimRequest, indent_width, leading_ws

CLOSERS = ")]}"
_REPEATABLE = CLOSERS + ":;,"
# Col-0 starts that end a suggestion made inside an indented block (they leave the block).
_COL0_STOPS = ("def ", "async def ", "class ", "@", "if __name__", "print(", "assert ", "#",
               "import ", "from ")
# Col-0 starts that, after a blank line, begin a new top-level statement.
_TOP_LEVEL_STOPS = ("def ", "async def ", "class ", "@", "if __name__")
_HARNESS = re.compile(r"(if\s+__name__\s*==|print\(|assert\s|#\s*test|#\s*example)", re.I)
# Col-0 lines that continue the statement above them rather than start a new one.
_CONTINUES = re.compile(r"(else\b|elif\b|except\b|finally\b|[)\]}])")


def stop_strings(req: FimRequest) -> tuple[str, ...]:
    """Extra stop strings for the engine (the FIM format's special tokens stop it already).

    * single-line: ``"\\n"`` -- only the rest of the line is wanted.
    * multi-line: ``"\\n\\n\\n"`` (two blank lines separate top-level code in PEP 8: what
      follows is new code, not this block); the suffix's first line re-typed on a line of its
      own (the model re-typing the code below); and, inside an indented block, a newline
      followed by a col-0 ``def``/``class``/``@``/``print(``/``assert``/comment/import
      (leaving the block: ``trim`` would cut there anyway); at top level, a blank line
      followed by ``def``/``class``/``@``/``if __name__`` (a new top-level statement).
    """
    if not req.multiline:
        return ("\n",)
    stops = ["\n\n\n"]
    resumes = _first_code_line(req.suffix[len(req.line_suffix):])
    if resumes.strip():
        stops.append(f"\n{resumes}\n")
    if _known_floor(req) > 0:
        stops.extend(f"\n{s}" for s in _COL0_STOPS)
    else:
        stops.extend(f"\n\n{s}" for s in _TOP_LEVEL_STOPS)
    return tuple(dict.fromkeys(stops))


def trim(req: FimRequest, text: str, max_lines: int = 16) -> str:
    """The model's middle, cut where the code around it resumes ('' when nothing is left).

    Single-line requests keep the first line only (the user asked for the rest of a line),
    and drop a repeat of ``line_suffix`` (stripped) at its end -- all of it, or the closing
    punctuation it starts with (``)`` of ``):``): the model often writes the closing ``)``
    that already follows the cursor. The repeat is kept only when it closes a bracket the
    suggestion itself opened (``f(x)`` before ``)`` stays). A suffix is never repeated.

    Multi-line requests cut before the first line that

    * dedents below the block at the cursor (indentation smaller than the block's): the code
      of the enclosing scope resumes there, and the rest is the model's invention -- the next
      method, another function, a test harness;
    * at top level (the block at the cursor is at column 0), follows a blank line and starts
      a new statement at column 0 (``def``, ``class``, ``if __name__``, a call, an assignment,
      a comment -- anything but ``else``/``elif``/``except``/``finally`` or a closing
      bracket): the definition being written is over and the rest is invention;
    * equals (stripped) the first non-blank line of the suffix: the model is re-typing the
      code below the cursor, which would then be there twice;
    * is a test-harness line at column 0 (``if __name__ == "__main__":``, ``print(``,
      ``assert``, ``# Test``, ``# Example usage``) when the cursor is inside an indented block:
      small models append usage examples after a correct body;

    and after the line that closes the brackets left open on the cursor line (``foo(`` gets
    its arguments and ``)``, not the statements after it). At most ``max_lines`` lines are
    kept, and trailing whitespace and blank lines are dropped, so the suggestion never leaves
    the line ending in spaces only.
    """
    if not req.multiline:
        return _trim_single_line(req, text)
    lines = text.split("\n")
    fresh_first = not req.line_prefix.strip()  # the first line is a whole line of its own
    floor = _block_floor(req, lines)
    in_block = _inside_indented_block(req)
    resumes = _first_code_line(req.suffix[len(req.line_suffix):]).strip()
    depth = _open_depth(req.line_prefix)
    kept: list[str] = []
    seen_code = blank_after_code = False
    for i, raw in enumerate(lines[:max_lines]):
        line = raw.rstrip()
        col0 = (req.line_prefix if i == 0 else "") + line
        whole = i > 0 or fresh_first
        at_col0 = whole and not leading_ws(col0)
        if not line.strip():
            blank_after_code = seen_code
            kept.append("")
            continue
        if whole and resumes and line.strip() == resumes:
            break
        if i > 0 and indent_width(leading_ws(col0)) < floor:
            break
        if at_col0 and in_block and _HARNESS.match(col0):
            break
        if (i > 0 and floor == 0 and blank_after_code and at_col0
                and not _CONTINUES.match(col0)):
            break
        kept.append(line)
        seen_code = True
        blank_after_code = False
        if depth > 0:
            depth = _open_depth(line, depth)
            if depth <= 0:
                break
    out = "\n".join(kept).rstrip()
    return out if out.strip() else ""


def _trim_single_line(req: FimRequest, text: str) -> str:
    line = text.split("\n", 1)[0]
    if not req.line_suffix.strip():
        return line.rstrip()
    repeat = req.line_suffix.strip()
    body = line.rstrip()
    for k in range(len(repeat), 0, -1):  # the longest repeat first
        part = repeat[:k]
        # a part of the suffix only when it is punctuation the model re-types: ``)`` of ``):``
        if k < len(repeat) and any(ch not in _REPEATABLE for ch in part):
            continue
        if body.endswith(part) and not _opens_unclosed(body[: len(body) - k], part):
            line = body[: len(body) - k]
            break
    return line if line.strip() else ""


def _opens_unclosed(head: str, tail: str) -> bool:
    """Whether ``tail``'s closing brackets close brackets that ``head`` opened itself."""
    stack: list[str] = []
    for ch in head:
        if ch in OPENERS:
            stack.append(ch)
        elif ch in CLOSERS and stack and OPENERS[CLOSERS.index(ch)] == stack[-1]:
            stack.pop()
    return any(ch in CLOSERS for ch in tail) and bool(stack)


def _open_depth(line: str, depth: int = 0) -> int:
    """Brackets still open after ``line``, starting from ``depth`` (quotes on one line skipped).

    Crude on purpose (no triple-quoted strings): it only decides where a bracket opened on
    the cursor line closes, and a miss just leaves the other rules to end the suggestion.
    """
    quote = ""
    for ch in line:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            break
        elif ch in OPENERS:
            depth += 1
        elif ch in CLOSERS:
            depth -= 1
    return depth


def _first_code_line(text: str) -> str:
    """The first non-blank line of ``text`` (with its indentation), '' when there is none."""
    return next((ln.rstrip() for ln in text.split("\n") if ln.strip()), "")


def _known_floor(req: FimRequest) -> int:
    """The block indentation known before generation (0 where the model's first line decides)."""
    before = req.line_prefix.rstrip()
    if before and not before.endswith(":"):
        return indent_width(leading_ws(req.line_prefix))
    return indent_width(req.indent)


def _block_floor(req: FimRequest, lines: list[str]) -> int:
    """The indentation of the block the suggestion is written in.

    After ``:`` it is the new block's (``req.indent``); on a line of code (an opening bracket
    included, so a closing bracket at the line's own level stays) the line's; on a blank line
    the cursor's column or the block a ``:`` line above opens. At column 0 with nothing to go
    by, the model's first line decides: indented means it continues the body above.
    """
    floor = _known_floor(req)
    if floor == 0 and not req.line_prefix:
        first = next((ln for ln in lines if ln.strip()), "")
        floor = indent_width(leading_ws(first))
    return floor


def _inside_indented_block(req: FimRequest) -> bool:
    """Whether the cursor is inside indented code (a function or class body, a loop...)."""
    if _known_floor(req) > 0 or leading_ws(req.line_prefix):
        return True
    head = req.prefix[: len(req.prefix) - len(req.line_prefix)]
    above = _first_code_line("\n".join(reversed(head.split("\n"))))
    return bool(leading_ws(above))
