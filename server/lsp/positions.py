"""LSP positions (in the negotiated encoding, UTF-16 by default) <-> Python string indices.

The protocol counts characters in UTF-16 code units unless the client negotiated otherwise, so
an emoji is two units; Python strings index code points. Every position a client sends goes
through here, and a position outside the document is an InvalidParams error, not a crash.
"""

from __future__ import annotations

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.workspace import TextDocument


def _units(doc: TextDocument, ch: str) -> int:
    return doc.position_codec.impl.code_units_for_char(ch)


def line_texts(text: str) -> list[str]:
    """The document's lines without their line endings (a trailing newline gives a last '')."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def to_index(doc: TextDocument, lines: list[str], pos: types.Position) -> tuple[int, int]:
    """(line, code-point column) for a client position; past-the-end columns clamp (as the
    spec says); a line past the end of the document is an error."""
    if pos.line < 0 or pos.character < 0 or pos.line >= len(lines):
        raise JsonRpcInvalidParams(
            f"position {pos.line}:{pos.character} is outside the document "
            f"({len(lines)} lines)")
    line = lines[pos.line]
    units = 0
    for col, ch in enumerate(line):
        if units >= pos.character:
            return pos.line, col
        units += _units(doc, ch)
    return pos.line, len(line)


def to_position(doc: TextDocument, lines: list[str], line: int, col: int) -> types.Position:
    """The client position of code-point column ``col`` on ``line``."""
    text = lines[line] if line < len(lines) else ""
    return types.Position(line=line, character=sum(_units(doc, ch) for ch in text[:col]))


def offset_to_position(doc: TextDocument, text: str, offset: int) -> types.Position:
    """The client position of a code-point offset into ``text`` (LF or CRLF endings)."""
    before = text[:offset]
    line = before.count("\n")
    col = len(before) - (before.rfind("\n") + 1)
    col -= 1 if before.endswith("\r") else 0
    return to_position(doc, line_texts(text), line, max(col, 0))
