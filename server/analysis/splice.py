"""Put a model-written function into the user's file without disturbing anything else.

The model tends to rewrite the whole function — a different signature (``List`` for
``list``), its own docstring, ``from typing import *`` on top, a test harness below. None of
that is pasted. Only the *body* of the candidate's function is taken, re-indented to the
file's own style (spaces or tabs, CRLF or LF), and placed under the user's own signature and
docstring. Imports the body needs that the module lacks, and top-level helpers the body calls,
are carried along; everything else in the candidate is dropped.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass, field

from plancode.analysis import pyparse
from plancode.analysis.functions import FunctionInfo
from plancode.errors import PlancodeError


@dataclass
class Splice:
    """The spliced file text, and what went into it."""

    text: str
    body: str  # the new body as placed in the file (indented, file line endings)
    imports: list[str] = field(default_factory=list)  # import lines added to the module
    helpers: list[str] = field(default_factory=list)  # names of helper defs added


class SpliceError(PlancodeError):
    pass


def _find_target(tree: ast.Module, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    funcs = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in tree.body:
        if isinstance(node, funcs) and node.name == name:
            return node
    for node in tree.body:  # the model wrote the whole class
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, funcs) and item.name == name:
                    return item
    defs = [n for n in tree.body if isinstance(n, funcs)]
    return defs[0] if len(defs) == 1 else None


def _has_docstring(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    first = func.body[0] if func.body else None
    return (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str))


def _body_source(code: str, func: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """The candidate's body lines (comments kept, its docstring dropped), dedented."""
    lines = code.splitlines()
    stmts = func.body[1:] if _has_docstring(func) else func.body
    if not stmts:
        return "pass\n"
    if stmts[0].lineno == func.lineno:  # ``def f(x): return x``
        return ast.get_source_segment(code, stmts[0]) or "pass"
    start = func.body[0].end_lineno if _has_docstring(func) else func.body[0].lineno - 1
    if start is None:
        start = stmts[0].lineno - 1
    end = stmts[-1].end_lineno or stmts[-1].lineno
    chunk = "\n".join(lines[start:end]).strip("\n")
    return textwrap.dedent(chunk) + "\n"


def _indent_unit_of(code: str) -> int:
    for line in code.splitlines():
        stripped = line.lstrip(" ")
        if stripped and len(line) > len(stripped) and not line.startswith("\t"):
            return len(line) - len(stripped)
    return 4


def _reindent(body: str, base: str, unit: str) -> str:
    """Indent ``body`` (dedented, spaces) under ``base`` using the file's ``unit`` per level."""
    width = _indent_unit_of(body)
    out = []
    for line in body.splitlines():
        if not line.strip():
            out.append("")
            continue
        expanded = line.expandtabs(width)
        spaces = len(expanded) - len(expanded.lstrip(" "))
        level, rest = divmod(spaces, width)
        out.append(base + unit * level + " " * rest + expanded.lstrip(" "))
    return "\n".join(out) + "\n"


def _names_used(nodes: list[ast.AST]) -> set[str]:
    used: set[str] = set()
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                used.add(sub.id)
            elif isinstance(sub, ast.Attribute):
                root = sub
                while isinstance(root, ast.Attribute):
                    root = root.value  # type: ignore[assignment]
                if isinstance(root, ast.Name):
                    used.add(root.id)
    return used


def _bound_names(node: ast.Import | ast.ImportFrom) -> set[str]:
    return {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}


def _defined_in_file(source: str) -> set[str]:
    try:
        tree = pyparse.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= _bound_names(node)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def _helpers(tree: ast.Module, target: ast.AST, used: set[str], have: set[str]) -> list[ast.stmt]:
    """Top-level defs/constants of the candidate that the body needs (transitively)."""
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign)
    pool: dict[str, ast.stmt] = {}
    for node in tree.body:
        if node is target or not isinstance(node, kinds):
            continue
        if isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    pool[t.id] = node
        else:
            pool[node.name] = node
    chosen: list[ast.stmt] = []
    todo = [n for n in used if n in pool and n not in have]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        node = pool[name]
        if node not in chosen:
            chosen.append(node)
        todo.extend(n for n in _names_used([node]) if n in pool and n not in have)
    return sorted(chosen, key=lambda n: n.lineno)


def splice(source: str, info: FunctionInfo, candidate: str) -> Splice:
    """``source`` with ``info``'s body replaced by the body of the candidate's function."""
    try:
        tree = pyparse.parse(textwrap.dedent(candidate))
    except SyntaxError as exc:
        raise SpliceError(f"candidate code does not parse: {exc.msg} (line {exc.lineno})",
                          "the model wrote invalid Python; try another candidate") from None
    code = textwrap.dedent(candidate)
    target = _find_target(tree, info.name)
    if target is not None:
        body = _body_source(code, target)
        body_nodes: list[ast.AST] = list(target.body)
    else:
        if any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
               for n in tree.body):
            raise SpliceError(f"candidate defines no function named {info.name!r}",
                              "the model implemented something else; try another candidate")
        body = code.strip("\n") + "\n"  # a bare body
        body_nodes = list(tree.body)
    nl = info.newline
    new_body = _reindent(body, info.body_indent, info.indent_unit).replace("\n", nl)

    have = _defined_in_file(source) | {info.name}
    used = _names_used(body_nodes)
    helpers = _helpers(tree, target, used, have) if target is not None else []
    used |= _names_used(list(helpers))
    imports = [
        ast.get_source_segment(code, node) or ""
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        and not (isinstance(node, ast.ImportFrom) and node.module == "__future__")
        and _bound_names(node) & used
        and not _bound_names(node) <= have
    ]

    text = source[: info.body_start] + new_body + source[info.body_end :]
    if info.body_start > 0 and source[info.body_start - 1] not in "\n":
        text = source[: info.body_start] + nl + new_body + source[info.body_end :]
    if helpers:
        helper_text = "\n\n".join(ast.get_source_segment(code, h) or "" for h in helpers)
        anchor = _line_offset(text, _top_level_start(source, info))
        block = (helper_text + "\n\n\n").replace("\n", nl)
        text = text[:anchor] + block + text[anchor:]
    if imports:
        at = _import_anchor(text)
        block = "".join(line + "\n" for line in imports).replace("\n", nl)
        text = text[:at] + block + text[at:]
    names = [getattr(h, "name", None) or _assign_name(h) for h in helpers]
    return Splice(text=text, body=new_body, imports=imports, helpers=names)


def _assign_name(node: ast.stmt) -> str:
    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    return "?"


def _line_offset(text: str, line: int) -> int:
    pos = 0
    for _ in range(line):
        nxt = text.find("\n", pos)
        if nxt < 0:
            return len(text)
        pos = nxt + 1
    return pos


def _top_level_start(source: str, info: FunctionInfo) -> int:
    """First line of the top-level statement that contains the function (class for methods)."""
    lines = source.splitlines()
    line = info.start_line
    while line > 0 and lines[line][:1] in (" ", "\t", ""):
        line -= 1
    while line > 0 and lines[line - 1].startswith("@"):
        line -= 1
    return line


def _import_anchor(text: str) -> int:
    """Offset just after the module's last top-level import (or its docstring, or 0)."""
    try:
        tree = pyparse.parse(text)
    except SyntaxError:
        return _line_offset(text, _import_anchor_by_lines(text))
    last = 0
    for node in tree.body:
        module_doc = (node is tree.body[0] and isinstance(node, ast.Expr)
                      and isinstance(node.value, ast.Constant)
                      and isinstance(node.value.value, str))
        if not (isinstance(node, ast.Import | ast.ImportFrom) or module_doc):
            break
        last = node.end_lineno or node.lineno
    return _line_offset(text, last)


def _import_anchor_by_lines(text: str) -> int:
    """Line after the last column-0 import before the first def/class (text that won't parse)."""
    last = 0
    for i, line in enumerate(text.splitlines()):
        if line.startswith(("def ", "class ", "async def ", "@")):
            break
        if line.startswith(("import ", "from ")):
            last = i + 1
    return last


def function_text(spliced: str, info_after: FunctionInfo) -> str:
    """The function as it reads in the spliced file (for showing a suggestion)."""
    lines = spliced.splitlines()
    return "\n".join(lines[info_after.start_line : info_after.end_line + 1]) + "\n"
