"""Data-flow graph (DFG) of Python code, as CodeBLEU builds it (Ren et al. 2020, "CodeBLEU: a
Method for Automatic Evaluation of Code Synthesis"; logic of ``DFG_python`` in
microsoft/CodeXGLUE ``parser/DFG.py``, ported to the current tree-sitter-python grammar).

Nodes are the code's *variable tokens*: identifiers and literals (CodeBLEU treats every named
leaf, and a whole string literal, as a variable; numbers and strings simply have no incoming
flow). Edges point from a token to where its value comes from:

* ``comesFrom``: a use of a name comes from its last definition(s) (several after an ``if``),
  a parameter default from its value, a name first seen (a parameter, a builtin) from nothing;
* ``computedFrom``: an assignment target (plain, augmented, tuple, ``for`` and comprehension
  targets, ``with ... as``/``except ... as``, ``:=``) is computed from the tokens on its right.

As in CodeBLEU, scopes are ignored, loops are walked twice (so uses see definitions from the
previous iteration) and only tokens on an edge are kept: a definition nobody uses and that has
no sources (``f`` in ``def f(): ...``) drops out. Offsets are Python ``str`` indices.

Two users: :mod:`plancode.trainer.codebleu` (data-flow match) and the structure-weighted loss,
which up-
weights :func:`def_use_spans` ("identifiers on a def-use edge of the data-flow graph").
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from dataclasses import dataclass

from tree_sitter import Node

from plancode.analysis.functions import parser

COMES_FROM = "comesFrom"
COMPUTED_FROM = "computedFrom"

_ASSIGNMENTS = {"assignment", "augmented_assignment", "for_in_clause", "as_pattern",
                "named_expression"}
_PARAMETERS_WITH_DEFAULT = {"default_parameter", "typed_default_parameter"}


@dataclass(frozen=True)
class Variable:
    """One variable token: ``code[start:end] == name``; ``index`` is its position in the code's
    token sequence (keywords and punctuation counted, comments not: CodeBLEU's token index)."""

    name: str
    index: int
    start: int
    end: int


@dataclass(frozen=True)
class Edge:
    """``target`` gets its value from ``sources`` (sorted by index; empty for a definition with
    no incoming flow that is used later, e.g. a parameter)."""

    target: Variable
    relation: str
    sources: tuple[Variable, ...]


# Internal DFG entries mirror CodeBLEU's tuples: (target index, relation, source indices).
_Entry = tuple[int, str, tuple[int, ...]]
_States = dict[str, list[int]]  # name -> indices of its reaching definitions
_Pass = Callable[[Node, _States], tuple[list[_Entry], _States]]


class _Graph:
    """The token table of one parse and the recursive DFG walk over it."""

    def __init__(self, code: str) -> None:
        data = code.encode("utf-8", "surrogatepass")
        self.root = parser().parse(data).root_node
        self.char_at = _byte_to_char(code, data)
        self.code = code
        self.tokens: dict[tuple[int, int], int] = {}  # byte span of a token -> its index
        self.variables: dict[int, Variable] = {}  # index -> variable token
        self._index_tokens(self.root)

    # -- tokens ---------------------------------------------------------------------------------
    @staticmethod
    def _is_token(node: Node) -> bool:
        return (not node.children or node.type == "string") and node.type != "comment"

    def _index_tokens(self, root: Node) -> None:
        stack = [root]
        while stack:
            node = stack.pop()
            if self._is_token(node):
                if node.end_byte > node.start_byte:  # skip zero-width MISSING tokens
                    span = (node.start_byte, node.end_byte)
                    if span not in self.tokens:
                        index = len(self.tokens)
                        self.tokens[span] = index
                        if node.is_named and not node.is_extra and node.type != "ERROR":
                            start, end = self.char_at[span[0]], self.char_at[span[1]]
                            self.variables[index] = Variable(self.code[start:end], index, start,
                                                             end)
                continue
            stack.extend(reversed(node.children))

    def variables_in(self, node: Node | None) -> list[int]:
        """Indices of the variable tokens under ``node``, in order (``tree_to_variable_index``)."""
        if node is None:
            return []
        if self._is_token(node):
            index = self.tokens.get((node.start_byte, node.end_byte))
            return [index] if index in self.variables else []
        return [i for child in node.children for i in self.variables_in(child)]

    # -- the walk (DFG_python) ------------------------------------------------------------------
    def walk(self, node: Node, states: _States) -> tuple[list[_Entry], _States]:
        states = dict(states)
        if self._is_token(node):
            return self._token(node, states)
        if node.type in _PARAMETERS_WITH_DEFAULT:
            return self._parameter(node, states)
        if node.type in _ASSIGNMENTS:
            return self._assignment(node, states)
        if node.type == "if_statement":
            return self._if(node, states)
        if node.type == "for_statement":
            return self._loop(node, states, self._for_pass)
        if node.type == "while_statement":
            return self._loop(node, states, self._children_pass)
        # comprehensions: bind the ``for ... in`` targets before walking the body
        first = [c for c in node.children if c.type == "for_in_clause"]
        rest = [c for c in node.children if c.type != "for_in_clause"]
        return self._walk_all(first + rest, states)

    def _walk_all(self, nodes: list[Node], states: _States) -> tuple[list[_Entry], _States]:
        entries: list[_Entry] = []
        for child in nodes:
            found, states = self.walk(child, states)
            entries += found
        return entries, states

    def _token(self, node: Node, states: _States) -> tuple[list[_Entry], _States]:
        index = self.tokens.get((node.start_byte, node.end_byte))
        if index not in self.variables:
            return [], states
        name = self.variables[index].name
        if name in states:
            return [(index, COMES_FROM, tuple(states[name]))], states
        if node.type == "identifier":
            states[name] = [index]
        return [(index, COMES_FROM, ())], states

    def _parameter(self, node: Node, states: _States) -> tuple[list[_Entry], _States]:
        names = self.variables_in(node.child_by_field_name("name"))
        value = node.child_by_field_name("value")
        entries: list[_Entry] = []
        if value is not None:
            entries, states = self.walk(value, states)
        sources = tuple(self.variables_in(value))
        for index in names:
            entries += [(index, COMES_FROM, (s,)) for s in sources]
            states[self.variables[index].name] = [index]
        return entries, states

    def _assignment(self, node: Node, states: _States) -> tuple[list[_Entry], _States]:
        if node.type == "for_in_clause":
            left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
            pairs = [(left, right or node.children[-1])]
        elif node.type == "as_pattern":  # with x as y / except E as e: y is computed from x
            pairs = [(node.child_by_field_name("alias"), node.children[0])]
        elif node.type == "named_expression":
            pairs = [(node.child_by_field_name("name"), node.child_by_field_name("value"))]
        else:
            left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
            if left is None or right is None:  # annotation only: ``x: int``
                return [], states
            pairs = _paired(left, right)
        return self._bind(pairs, states)

    def _bind(self, pairs: list[tuple[Node | None, Node | None]],
              states: _States) -> tuple[list[_Entry], _States]:
        """Walk the right-hand sides, then make each left token computed from its right side."""
        entries, states = self._walk_all([r for _, r in pairs if r is not None], states)
        for left, right in pairs:
            sources = tuple(self.variables_in(right))
            for index in self.variables_in(left):
                entries.append((index, COMPUTED_FROM, sources))
                states[self.variables[index].name] = [index]
        return entries, states

    def _if(self, node: Node, states: _States) -> tuple[list[_Entry], _States]:
        entries: list[_Entry] = []
        current, branches, has_else = dict(states), [], False
        for child in node.children:
            if child.type in ("elif_clause", "else_clause"):
                has_else = has_else or child.type == "else_clause"
                found, branch = self.walk(child, states)
                branches.append(branch)
            else:
                found, current = self.walk(child, current)
            entries += found
        branches.append(current)
        if not has_else:  # the condition may be false: the old definitions still reach
            branches.append(states)
        merged: _States = {}
        for branch in branches:
            for name, indices in branch.items():
                merged.setdefault(name, []).extend(indices)
        return entries, {name: sorted(set(indices)) for name, indices in merged.items()}

    def _for_pass(self, node: Node, states: _States) -> tuple[list[_Entry], _States]:
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        if left is None or right is None:
            return self._children_pass(node, states)
        entries, states = self._bind(_paired(left, right), states)
        for part in ("body", "alternative"):
            child = node.child_by_field_name(part)
            if child is not None:
                found, states = self.walk(child, states)
                entries += found
        return entries, states

    def _children_pass(self, node: Node, states: _States) -> tuple[list[_Entry], _States]:
        return self._walk_all(node.children, states)

    def _loop(self, node: Node, states: _States, one_pass: _Pass) -> tuple[list[_Entry], _States]:
        """Walk a loop twice so uses see the definitions of the previous iteration."""
        entries: list[_Entry] = []
        for _ in range(2):
            found, states = one_pass(node, states)
            entries += found
        return _merge(entries), states


def _paired(left: Node, right: Node) -> list[tuple[Node | None, Node | None]]:
    """``a, b = x, y`` pairs a with x and b with y; anything else pairs the whole sides."""
    lefts = [c for c in left.children if c.type != ","]
    rights = [c for c in right.children if c.type != ","]
    if lefts and len(lefts) == len(rights):
        return list(zip(lefts, rights, strict=True))
    return [(left, right)]


def _merge(entries: list[_Entry]) -> list[_Entry]:
    """One entry per target token, its sources the union of all its entries' sources."""
    merged: dict[int, tuple[str, set[int]]] = {}
    for target, relation, sources in entries:
        if target in merged:
            merged[target][1].update(sources)
        else:
            merged[target] = (relation, set(sources))
    return [(t, rel, tuple(sorted(src))) for t, (rel, src) in sorted(merged.items())]


def _byte_to_char(code: str, data: bytes) -> list[int]:
    """``char_at[b]`` is the ``str`` offset of UTF-8 byte offset ``b`` (identity for ASCII)."""
    if len(data) == len(code):
        return list(range(len(data) + 1))
    char_at = [0] * (len(data) + 1)
    offset = 0
    for i, ch in enumerate(code):
        width = len(ch.encode("utf-8", "surrogatepass"))
        char_at[offset:offset + width] = [i] * width
        offset += width
    char_at[offset] = len(code)
    return char_at


def dataflow(code: str) -> list[Edge]:
    """The DFG edges of ``code``, sorted by target position. Tolerates broken code (tree-sitter
    recovers); returns [] for empty code or code nested too deeply to walk."""
    if not code.strip():
        return []
    graph = _Graph(code)
    try:
        entries, _ = graph.walk(graph.root, {})
    except RecursionError:
        return []
    entries = _merge(entries)
    used = {s for _, _, sources in entries for s in sources}
    return [Edge(graph.variables[t], rel, tuple(graph.variables[s] for s in sources))
            for t, rel, sources in entries if sources or t in used]


def _is_identifier(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def def_use_spans(code: str) -> list[tuple[int, int]]:
    """Sorted, distinct ``(start, end)`` str spans of the identifiers on a DFG edge (as target or
    source). Literals (numbers, strings, True/None) are DFG nodes but not identifiers: left out."""
    spans = {(v.start, v.end)
             for edge in dataflow(code) for v in (edge.target, *edge.sources)
             if _is_identifier(v.name)}
    return sorted(spans)
