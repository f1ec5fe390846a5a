"""The one tree-sitter layer of the server: a Python parser per thread, and node helpers.

A tree-sitter ``Parser`` is not thread-safe, and the server parses on several threads at once
(the event loop for inline completion and code actions, the implement job's thread, the FIM
worker), so each thread gets its own parser. Trees and nodes are only read after parsing.
"""

from __future__ import annotations

import threading

import tree_sitter_python
from tree_sitter import Language, Node, Parser, Tree

_BOM = b"\xef\xbb\xbf"
_local = threading.local()
PYTHON = Language(tree_sitter_python.language())


def parser() -> Parser:
    """This thread's Python parser (made on first use)."""
    found = getattr(_local, "parser", None)
    if found is None:
        found = _local.parser = Parser(PYTHON)
    return found


def parse(source: bytes | str) -> Tree:
    """Parse Python source (a UTF-8 BOM is ignored); never raises on syntax errors."""
    data = source.encode("utf-8") if isinstance(source, str) else source
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    return parser().parse(data)


def text(node: Node | None) -> str:
    """A node's source text ('' for None)."""
    return node.text.decode("utf-8", errors="replace") if node is not None and node.text else ""
