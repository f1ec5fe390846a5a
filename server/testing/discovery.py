"""Test discovery for one function: its doctests, then the workspace tests that exercise it.

This is the entry point the pipeline calls. Nothing here imports or runs user code: doctests
are found in the function's docstring and addressed by the node id pytest's
``--doctest-modules`` gives them; other tests come from a ``WorkspaceIndex`` (``index.py``),
which follows imports (``imports.py``) so a test counts only when it refers to *this* function,
not to a namesake from another module.
"""

from __future__ import annotations

import re
from pathlib import Path

from tree_sitter import Node

from plancode.testing.imports import (
    find_definition,
    module_name,
    parse,
    pytest_module_name,
    text,
    workspace_path,
)
from plancode.testing.index import WorkspaceIndex
from plancode.testing.types import TestCase

__all__ = ["WorkspaceIndex", "discover", "doctests_for", "module_name"]

# An example line: ">>> " (or a bare ">>>") after indentation, as doctest requires.
_EXAMPLE = re.compile(r"^[ \t]*>>>(?: |$)", re.MULTILINE)


def _docstring(definition: Node) -> str | None:
    body = definition.child_by_field_name("body")
    first = body.named_children[0] if body is not None and body.named_children else None
    if first is None or first.type != "expression_statement" or not first.named_children:
        return None
    literal = first.named_children[0]
    if literal.type == "string" and not any(c.type == "interpolation"
                                            for c in literal.named_children):
        return text(literal)
    return text(literal) if literal.type == "concatenated_string" else None


def doctests_for(root: Path, file: Path, qualname: str,
                 source: str | None = None) -> list[TestCase]:
    """The doctest of ``qualname`` in ``file`` if its docstring has ``>>>`` examples.

    Its id is pytest's: ``<file relative to root>::<module>.<qualname>``, the module named as
    pytest imports it (``__init__.py`` chain, so ``src/pkg/mod.py`` is ``pkg.mod``).
    Doctests of functions nested in functions are not collected by doctest, so none is
    returned for them; nor for ``__main__.py`` and ``setup.py``, which pytest skips.
    ``file`` may be relative to ``root``; ``source`` is its current (possibly unsaved) text.
    """
    root, file = Path(root).resolve(), workspace_path(root, file)
    if not file.is_relative_to(root) or file.name == "__main__.py":
        return []
    try:
        data = source if source is not None else file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return []
    if file.name == "setup.py" and ("setuptools" in data or "distutils" in data):
        return []
    chain = find_definition(parse(data).root_node, qualname)
    module = pytest_module_name(file)
    if chain is None or module is None:
        return []
    if any(node.type == "function_definition" for node, _ in chain[:-1]):
        return []
    doc = _docstring(chain[-1][0])
    if doc is None or not _EXAMPLE.search(doc):
        return []
    rel = file.relative_to(root).as_posix()
    return [TestCase(f"{rel}::{module}.{qualname}", "doctest", rel, f"{qualname} (doctest)")]


def discover(root: Path, file: Path, qualname: str, index: WorkspaceIndex | None = None,
             source: str | None = None, refresh: bool = True) -> list[TestCase]:
    """Doctests first, then pytest/unittest tests that exercise the function, without
    duplicates. A given ``index`` is refreshed first (incremental: only changed files are
    parsed) unless ``refresh`` is False — a caller asking about many functions of an
    unchanged tree refreshes once itself; without an index, a fresh one of ``root`` is built."""
    if index is None:
        index, refresh = WorkspaceIndex(root), True
    if refresh:
        index.refresh()
    found: dict[str, TestCase] = {}
    for test in doctests_for(root, file, qualname, source) + index.tests_for(file, qualname,
                                                                            source):
        found.setdefault(test.id, test)
    return list(found.values())
