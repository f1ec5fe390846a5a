"""Token-level structure of target code: the weights of the structure-aware loss and the node
labels of the AST alignment head (DESIGN.md, "The method").

tree-sitter parses the code; a token is flagged *structural* (the loss weighs it ``1 + alpha``,
others ``1``) when it lies in a structural span. Structural spans are:

* definitions: a ``def``/``class`` header up to its colon (name, parameters, annotations),
  and decorators;
* control-flow headers: ``if``/``elif``/``else``/``for``/``while``/``try``/``except``/
  ``finally``/``with``/``match``/``case`` up to the colon;
* ``return``/``yield``/``raise`` statements;
* calls: the callee (``f`` in ``f(x)``, ``obj.method`` in ``obj.method(x)``);
* assignment targets (``=``, augmented and annotated assignments, ``for`` targets);
* identifiers on a def-use edge of the data-flow graph (``plancode.trainer.dataflow``).

Tokens that are only punctuation or whitespace, and tokens inside comments or string bodies,
stay unflagged even inside a structural span: what the loss should stress is the skeleton
of the program, not its quoting.

A token's *node label* is the kind id of the smallest named tree-sitter node that contains its
first non-space character (``-100``, ignored, for tokens outside the code).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tree_sitter import Language, Node

# tree-sitter is imported where it is used, not at module level: the loss (``IGNORE``) and the
# trainer import this module, and benchmarks/gpu_check.py runs them on a GPU machine that has
# torch, transformers and peft but not tree-sitter.
IGNORE = -100

_HEADERS = {
    "function_definition": "body", "class_definition": "body", "if_statement": "consequence",
    "elif_clause": "consequence", "else_clause": "body", "for_statement": "body",
    "while_statement": "body", "try_statement": "body", "except_clause": None,
    "finally_clause": "body", "with_statement": "body", "match_statement": "body",
    "case_clause": "consequence",
}
_WHOLE = {"return_statement", "yield", "raise_statement", "decorator"}
_TARGETS = {"assignment": "left", "augmented_assignment": "left", "for_statement": "left",
            "for_in_clause": "left"}
_PLAIN = {"comment", "string_content", "escape_sequence"}


@lru_cache(maxsize=1)
def language() -> Language:
    import tree_sitter_python
    from tree_sitter import Language

    return Language(tree_sitter_python.language())


def node_type_count() -> int:
    """Size of the AST head's output: every node kind of the Python grammar."""
    return language().node_kind_count


@dataclass
class CodeStructure:
    """Character spans of one piece of code: structural ones and plain ones (comments,
    string bodies), plus the innermost named node at each character."""

    structural: list[tuple[int, int]]
    plain: list[tuple[int, int]]
    node_at: list[int]  # per character: kind id of the innermost named node (or IGNORE)


class _Offsets:
    """UTF-8 byte offsets (tree-sitter) to str indices."""

    def __init__(self, text: str) -> None:
        self.starts: list[int] = []
        pos = 0
        for ch in text:
            self.starts.append(pos)
            pos += len(ch.encode("utf-8"))
        self.starts.append(pos)

    def char(self, byte: int) -> int:
        return bisect.bisect_left(self.starts, byte)


def _header_end(node: Node) -> int:
    field = _HEADERS[node.type]
    body = node.child_by_field_name(field) if field else None
    if body is None:  # except_clause: up to its ':' child, else the first block
        colon = next((c for c in node.children if c.type == ":"), None)
        block = next((c for c in node.children if c.type == "block"), None)
        return colon.end_byte if colon is not None else (
            block.start_byte if block is not None else node.end_byte)
    return body.start_byte


def analyse(code: str) -> CodeStructure:
    """Parse ``code`` once and collect its structural and plain spans and node labels."""
    from plancode.analysis.functions import parser
    from plancode.trainer.dataflow import def_use_spans

    data = code.encode("utf-8")
    tree = parser().parse(data)
    off = _Offsets(code)
    structural: list[tuple[int, int]] = []
    plain: list[tuple[int, int]] = []
    node_at = [IGNORE] * len(code)

    def span(a: int, b: int) -> tuple[int, int]:
        return off.char(a), off.char(b)

    def visit(node: Node) -> None:
        if node.is_named:
            a, b = span(node.start_byte, node.end_byte)
            node_at[a:b] = [node.kind_id] * (b - a)
        kind = node.type
        if kind in _HEADERS:
            structural.append(span(node.start_byte, _header_end(node)))
        if kind in _WHOLE:
            structural.append(span(node.start_byte, node.end_byte))
        if kind == "call":
            fn = node.child_by_field_name("function")
            if fn is not None:
                structural.append(span(fn.start_byte, fn.end_byte))
        if kind in _TARGETS:
            target = node.child_by_field_name(_TARGETS[kind])
            if target is not None:
                structural.append(span(target.start_byte, target.end_byte))
        if kind in _PLAIN:
            plain.append(span(node.start_byte, node.end_byte))
        for child in node.children:
            visit(child)

    visit(tree.root_node)
    structural += def_use_spans(code)
    return CodeStructure(sorted(structural), sorted(plain), node_at)


def _overlaps(spans: list[tuple[int, int]], a: int, b: int) -> bool:
    return any(s < b and a < e for s, e in spans)


def _inside(spans: list[tuple[int, int]], a: int, b: int) -> bool:
    return any(s <= a and b <= e for s, e in spans)


def token_structure(code: str,
                    offsets: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Per-token (structural flag, node label) for tokens at char ``offsets`` into ``code``.

    The loss weights a token ``1 + alpha * flag``. Offsets outside the code (e.g. the
    reply's fences) get flag 0 and label IGNORE.
    """
    info = analyse(code)
    flags: list[int] = []
    labels: list[int] = []
    for a, b in offsets:
        a, b = max(a, 0), min(b, len(code))
        text = code[a:b] if a < b else ""
        core = len(text) - len(text.lstrip())
        first = a + core
        if not text.strip() or first >= b:
            flags.append(0)
            labels.append(IGNORE)
            continue
        labels.append(info.node_at[first])
        last = a + len(text.rstrip())
        punct = not any(ch.isalnum() or ch == "_" for ch in text)
        structural = (not punct and _overlaps(info.structural, first, last)
                      and not _inside(info.plain, first, last))
        flags.append(int(structural))
    return flags, labels
