"""Python functions in source text, found with tree-sitter (tolerant of half-typed code).

Given a file and a line, find the innermost function around it and describe it the way the
prompts need: its signature, its docstring, whether its body is still empty, and the
*problem* text (module imports + signature + docstring) the model is asked to implement.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import tree_sitter_python
from tree_sitter import Language, Node, Parser


@lru_cache(maxsize=1)
def parser() -> Parser:
    return Parser(Language(tree_sitter_python.language()))


@dataclass(frozen=True)
class FunctionInfo:
    """One function definition in a file. Lines are 0-based; byte offsets index UTF-8."""

    name: str
    qualname: str
    start_line: int  # first line of the definition, decorators included
    end_line: int
    header: str  # decorators and the ``def ...:`` signature, as written
    docstring: str | None  # the docstring literal as written (quotes included)
    body_indent: str
    body_is_empty: bool  # only a docstring, ``pass`` or ``...``
    imports: str  # the module's top-level imports, for context

    @property
    def problem(self) -> str:
        """The task for the model: imports, signature and docstring (HumanEval prompt shape)."""
        parts = [self.imports.rstrip() + "\n\n"] if self.imports.strip() else []
        parts.append(_dedent_block(self.header))
        if self.docstring:
            parts.append("\n" + _reindent_docstring(self.docstring, self.body_indent))
        return "".join(parts).rstrip() + "\n"


def _text(node: Node) -> str:
    return node.text.decode("utf-8", errors="replace") if node.text else ""


def _dedent_block(text: str) -> str:
    lines = text.splitlines()
    if not lines:
        return text
    indent = len(lines[0]) - len(lines[0].lstrip())
    return "\n".join(line[indent:] if line[:indent].isspace() else line for line in lines)


def _reindent_docstring(doc: str, body_indent: str) -> str:
    lines = doc.splitlines()
    out = ["    " + lines[0]]
    for line in lines[1:]:
        out.append("    " + line[len(body_indent):] if line.startswith(body_indent) else line)
    return "\n".join(out)


def _docstring_node(body: Node) -> Node | None:
    first = body.named_children[0] if body.named_children else None
    if first is not None and first.type == "expression_statement":
        inner = first.named_children[0] if first.named_children else None
        if inner is not None and inner.type in {"string", "concatenated_string"}:
            return inner
    return None


def _is_empty_body(body: Node, doc: Node | None) -> bool:
    for stmt in body.named_children:
        if doc is not None and stmt.start_byte <= doc.start_byte < stmt.end_byte:
            continue
        if stmt.type == "pass_statement" or stmt.type == "comment":
            continue
        if stmt.type == "expression_statement" and _text(stmt).strip() == "...":
            continue
        return False
    return True


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


def _imports(root: Node) -> str:
    kinds = {"import_statement", "import_from_statement", "future_import_statement"}
    return "\n".join(_text(n) for n in root.named_children if n.type in kinds)


def _describe(func: Node, root: Node, source: bytes) -> FunctionInfo:
    parent = func.parent
    outer = parent if parent is not None and parent.type == "decorated_definition" else func
    body = func.child_by_field_name("body")
    name = _text(func.child_by_field_name("name")) if func.child_by_field_name("name") else ""
    header_end = body.start_byte if body is not None else func.end_byte
    line_start = source.rfind(b"\n", 0, outer.start_byte) + 1
    header = source[line_start:header_end].decode("utf-8", errors="replace").rstrip()
    doc = _docstring_node(body) if body is not None else None
    if body is not None and body.named_children:
        first = body.named_children[0]
        first_line_start = source.rfind(b"\n", 0, first.start_byte) + 1
        indent = source[first_line_start:first.start_byte].decode("utf-8", errors="replace")
    else:
        indent = "    "
    return FunctionInfo(
        name=name,
        qualname=_qualname(func),
        start_line=outer.start_point[0],
        end_line=func.end_point[0],
        header=header,
        docstring=_text(doc) if doc is not None else None,
        body_indent=indent if indent.strip() == "" else "    ",
        body_is_empty=_is_empty_body(body, doc) if body is not None else True,
        imports=_imports(root),
    )


def functions(source: str) -> list[FunctionInfo]:
    """Every function definition in ``source``, outer before inner, in file order."""
    data = source.encode("utf-8")
    tree = parser().parse(data)
    found: list[FunctionInfo] = []

    def walk(node: Node) -> None:
        if node.type == "function_definition":
            found.append(_describe(node, tree.root_node, data))
        for child in node.named_children:
            walk(child)

    walk(tree.root_node)
    return found


def find_function(source: str, line: int) -> FunctionInfo | None:
    """The innermost function whose definition spans ``line`` (0-based), if any."""
    best: FunctionInfo | None = None
    for info in functions(source):
        if info.start_line <= line <= info.end_line and (
            best is None or info.start_line >= best.start_line
        ):
            best = info
    return best
