"""Python functions in source text, found with tree-sitter (tolerant of half-typed code).

Given a file and a line, find the innermost function around it and describe it the way the
prompts and the splicer need: its signature, its docstring, the span of its body that a
candidate may replace, its indentation style, whether the body is still empty or only partly
written, and the *problem* text (module imports + signature + docstring) the model is asked
to implement. Offsets are ``str`` indices into the source (tree-sitter's UTF-8 byte offsets
are converted), lines are 0-based.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tree_sitter import Node

from plancode.analysis.syntax import parser

PLACEHOLDERS = re.compile(r"^\s*(pass|\.\.\.|raise\s+NotImplementedError\b.*)\s*$")


@dataclass(frozen=True)
class FunctionInfo:
    """One function definition in a file."""

    name: str
    qualname: str
    start_line: int  # first line of the definition, decorators included
    end_line: int  # last line of the body
    header: str  # decorators and the ``def ...:`` signature, as written (first line unindented)
    docstring: str | None  # the docstring literal as written (quotes included)
    def_indent: str  # indentation of the ``def`` line
    body_indent: str  # indentation of the body's statements
    body_state: str  # "empty" (docstring/pass/.../NotImplementedError), "partial" or "complete"
    body_start: int  # str offset where replaceable code starts (the line after the docstring)
    body_end: int  # str offset just past the body's last line (its newline included)
    newline: str  # "\n" or "\r\n", as the file uses
    imports: str  # the module's top-level imports, for context
    is_method: bool
    context: str = ""  # definitions it may use: the enclosing class, siblings it names

    @property
    def body_is_empty(self) -> bool:
        return self.body_state == "empty"

    @property
    def indent_unit(self) -> str:
        """One level of indentation in this file (the body's indent minus the def's)."""
        unit = self.body_indent[len(self.def_indent):]
        return unit or "    "

    @property
    def problem(self) -> str:
        """The task for the model: imports, signature and docstring (HumanEval prompt shape)."""
        parts = [self.imports.rstrip() + "\n\n"] if self.imports.strip() else []
        if self.is_method and "." in self.qualname:
            owner = self.qualname.rsplit(".", 1)[0]
            parts.append(f"# a method of class {owner}\n")
        parts.append(self.header.replace("\r\n", "\n"))
        if self.docstring:
            parts.append("\n" + _reindent_docstring(self.docstring.replace("\r\n", "\n"),
                                                    self.body_indent))
        return "".join(parts).rstrip() + "\n"


class _Source:
    """The source as text and UTF-8 bytes, with byte -> str offset conversion."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.data = text.encode("utf-8")
        self._ascii = len(self.data) == len(text)

    def offset(self, byte: int) -> int:
        return byte if self._ascii else len(self.data[:byte].decode("utf-8", errors="replace"))

    def line_start(self, byte: int) -> int:
        return self.data.rfind(b"\n", 0, byte) + 1

    def line_end(self, byte: int) -> int:
        """Byte offset just past the newline ending the line that holds ``byte``."""
        nl = self.data.find(b"\n", byte)
        return len(self.data) if nl < 0 else nl + 1

    def slice(self, start: int, end: int) -> str:
        return self.data[start:end].decode("utf-8", errors="replace")


def _text(node: Node | None) -> str:
    return node.text.decode("utf-8", errors="replace") if node is not None and node.text else ""


def _reindent_docstring(doc: str, body_indent: str) -> str:
    lines = doc.splitlines()
    out = ["    " + lines[0]]
    for line in lines[1:]:
        out.append("    " + line[len(body_indent):] if line.startswith(body_indent) else line)
    return "\n".join(out)


def _docstring_stmt(body: Node) -> Node | None:
    first = body.named_children[0] if body.named_children else None
    if first is not None and first.type == "expression_statement":
        inner = first.named_children[0] if first.named_children else None
        if inner is not None and inner.type in {"string", "concatenated_string"}:
            return first
    return None


def _body_state(body: Node, doc: Node | None) -> str:
    statements = [s for s in body.named_children if s is not doc and s.type != "comment"]
    if not statements or all(PLACEHOLDERS.match(_text(s)) for s in statements):
        return "empty"
    if body.has_error or any(PLACEHOLDERS.match(_text(s)) for s in statements):
        return "partial"
    if "TODO" in _text(body):
        return "partial"
    return "complete"


def _qualname(node: Node) -> str:
    names = []
    cur: Node | None = node
    while cur is not None:
        if cur.type in {"function_definition", "class_definition"}:
            name = cur.child_by_field_name("name")
            if name is not None:
                names.append(_text(name))
        cur = cur.parent
    return ".".join(reversed(names))


def _is_method(func: Node) -> bool:
    cur = func.parent
    while cur is not None and cur.type in {"decorated_definition", "block"}:
        if cur.type == "block" and cur.parent is not None:
            return cur.parent.type == "class_definition"
        cur = cur.parent
    return False


def _imports(root: Node) -> str:
    kinds = {"import_statement", "import_from_statement", "future_import_statement"}
    return "\n".join(_text(n) for n in root.named_children if n.type in kinds)


CONTEXT_CHARS = 2000


def _summary(node: Node, src: _Source, keep_body: bool = False,
             skip: Node | None = None) -> str:
    """A definition with its body elided to its docstring's first line and ``...``."""
    inner = node.child_by_field_name("definition") if node.type == "decorated_definition" \
        else node
    if inner is None:
        return ""
    body = inner.child_by_field_name("body")
    start = src.line_start(node.start_byte)
    if body is None or keep_body:
        return src.slice(start, node.end_byte)
    indent = src.slice(src.line_start(body.start_byte), body.start_byte) \
        if body.start_point[0] > inner.start_point[0] else "    "
    head = src.slice(start, body.start_byte).rstrip()
    lines = [head]
    doc = _docstring_stmt(body)
    if doc is not None:
        first = _text(doc).strip().splitlines()[0]
        quote = first[:3] if first[:3] in {'"""', "\'\'\'"} else first[:1]
        lines.append(f"{indent}{first}" + ("" if first.endswith(quote) and len(first) > 3
                                            else f" ...{quote}"))
    if inner.type == "class_definition":
        for child in body.named_children:
            member = child.child_by_field_name("definition") \
                if child.type == "decorated_definition" else child
            if member is None or member.type != "function_definition":
                if child.type == "expression_statement" and child is not doc \
                        and "=" in _text(child):
                    lines.append(indent + _text(child))
                continue
            if skip is not None and member.start_byte == skip.start_byte:
                continue
            name = _text(member.child_by_field_name("name"))
            lines.append("\n" + _summary(child, src, keep_body=name == "__init__").rstrip())
    else:
        lines.append(f"{indent}...")
    return "\n".join(lines)


def _def_name(node: Node) -> str:
    inner = node.child_by_field_name("definition") if node.type == "decorated_definition" \
        else node
    return _text(inner.child_by_field_name("name")) if inner is not None else ""


def _context(func: Node, root: Node, src: _Source) -> str:
    """What the function may use, bodies elided: its enclosing class, and the module's other
    top-level definitions that its signature or docstring names (small models get confused by
    unrelated siblings, so only named ones are shown)."""
    body = func.child_by_field_name("body")
    doc = _docstring_stmt(body) if body is not None else None
    mentioned = set(re.findall(r"[A-Za-z_]\w*", src.slice(
        func.start_byte, doc.end_byte if doc is not None else
        (body.start_byte if body is not None else func.end_byte))))
    top = func
    while top.parent is not None and top.parent.type != "module":
        top = top.parent
    pieces: list[str] = []
    size = 0
    for node in root.named_children:
        if node.type not in {"function_definition", "class_definition", "decorated_definition"}:
            continue
        if node.start_byte == top.start_byte:
            if top.type != "class_definition" and not (
                top.type == "decorated_definition"
                and (d := top.child_by_field_name("definition")) is not None
                and d.type == "class_definition"
            ):
                continue  # the target itself (or the function it is nested in)
            text = _summary(node, src, skip=func)  # the enclosing class, minus the target
        elif _def_name(node) in mentioned:
            text = _summary(node, src)
        else:
            continue
        if size + len(text) > CONTEXT_CHARS:
            break
        pieces.append(text)
        size += len(text)
    return "\n\n\n".join(p for p in pieces if p.strip()).replace("\r\n", "\n")


def _describe(func: Node, root: Node, src: _Source) -> FunctionInfo:
    parent = func.parent
    outer = parent if parent is not None and parent.type == "decorated_definition" else func
    body = func.child_by_field_name("body")
    newline = "\r\n" if "\r\n" in src.text else "\n"
    def_line = src.line_start(outer.start_byte)
    def_indent = src.slice(def_line, outer.start_byte)
    header_end = body.start_byte if body is not None else func.end_byte
    header_lines = src.slice(def_line, header_end).rstrip().split("\n")
    header = "\n".join(
        line[len(def_indent):] if line.startswith(def_indent) else line.lstrip()
        for line in (h.rstrip("\r") for h in header_lines)
    )
    doc = _docstring_stmt(body) if body is not None else None
    if body is not None and body.named_children and body.start_point[0] > func.start_point[0]:
        first = body.named_children[0]
        indent = src.slice(src.line_start(first.start_byte), first.start_byte)
    else:
        indent = def_indent + "    "
    if indent.strip():  # body on the def line (``def f(): pass``)
        indent = def_indent + "    "
    if body is None or not body.named_children:
        body_start = body_end = src.line_end(header_end)
        state = "empty"
    else:
        anchor = doc if doc is not None else None
        if anchor is not None:
            body_start = src.line_end(anchor.end_byte)
        elif body.start_point[0] == func.start_point[0]:
            body_start = body.start_byte  # one-liner: replace from after the colon
        else:
            body_start = src.line_start(body.start_byte)
        body_end = max(body_start, src.line_end(max(body.end_byte - 1, body.start_byte)))
        state = _body_state(body, doc)
    return FunctionInfo(
        name=_text(func.child_by_field_name("name")),
        qualname=_qualname(func),
        start_line=outer.start_point[0],
        end_line=func.end_point[0],
        header=header,
        docstring=_text(doc.named_children[0]) if doc is not None else None,
        def_indent=def_indent,
        body_indent=indent,
        body_state=state,
        body_start=src.offset(body_start),
        body_end=src.offset(body_end),
        newline=newline,
        imports=_imports(root),
        is_method=_is_method(func),
        context=_context(func, root, src),
    )


def functions(source: str) -> list[FunctionInfo]:
    """Every function definition in ``source``, outer before inner, in file order."""
    src = _Source(source)
    tree = parser().parse(src.data)
    found: list[FunctionInfo] = []

    def walk(node: Node) -> None:
        if node.type == "function_definition":
            found.append(_describe(node, tree.root_node, src))
        for child in node.named_children:
            walk(child)

    walk(tree.root_node)
    return found


def top_level_summaries(source: str) -> dict[str, str]:
    """Top-level functions and classes of ``source``: name -> the definition with its body
    elided to the docstring's first line and ``...`` (what code that calls it needs)."""
    src = _Source(source)
    root = parser().parse(src.data).root_node
    found: dict[str, str] = {}
    for node in root.named_children:
        if node.type in {"function_definition", "class_definition", "decorated_definition"}:
            name = _def_name(node)
            if name:
                found[name] = _summary(node, src).replace("\r\n", "\n")
    return found


def find_function(source: str, line: int) -> FunctionInfo | None:
    """The innermost function around ``line`` (0-based), if any.

    A line just below a function whose body is still empty (blank lines only in between) also
    belongs to it: that is where the cursor sits after typing a docstring.
    """
    candidates = functions(source)
    best: FunctionInfo | None = None
    for info in candidates:
        if info.start_line <= line <= info.end_line and (
            best is None or info.start_line >= best.start_line
        ):
            best = info
    if best is not None:
        return best
    lines = source.splitlines()
    for info in sorted(candidates, key=lambda f: f.end_line, reverse=True):
        gap = lines[info.end_line + 1 : line + 1]
        if info.end_line < line and info.body_is_empty and all(not g.strip() for g in gap):
            return info
    return None
