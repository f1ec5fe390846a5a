"""Module names, import bindings and definition lookup: how a name used in one Python file
reaches a definition in another, worked out from source text alone.

Discovery never imports user code (it may be half-written, slow, or have side effects); it
reads files with tree-sitter and follows ``import`` statements the way Python would, so a test
that calls ``m.f()`` after ``import pkg.mod as m`` is known to call ``pkg.mod.f``. Every name is
resolved to a *fully qualified* dotted name; a definition is known by a set of such names (its
module's import names, package re-exports, and a file token for same-file uses).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import tree_sitter_python
from tree_sitter import Language, Node, Parser, Tree

_local = threading.local()

# Compound statements whose blocks still run at module (or class) level: definitions and
# imports inside ``if TYPE_CHECKING:``/``try:``/``with`` blocks are module attributes too.
# ERROR nodes are entered as well, so well-formed code around a syntax error is still seen.
_TRANSPARENT = {
    "if_statement", "elif_clause", "else_clause", "try_statement", "except_clause",
    "except_group_clause", "finally_clause", "with_statement", "for_statement",
    "while_statement", "block", "ERROR",
}
_BOM = b"\xef\xbb\xbf"


def parse(source: bytes | str) -> Tree:
    """Parse Python source (a UTF-8 BOM is ignored); never raises on syntax errors.

    Parsers are per thread because a tree-sitter ``Parser`` is not thread-safe.
    """
    data = source.encode("utf-8") if isinstance(source, str) else source
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = Parser(Language(tree_sitter_python.language()))
    return parser.parse(data)


def text(node: Node | None) -> str:
    return node.text.decode("utf-8", errors="replace") if node is not None and node.text else ""


def statements(node: Node) -> Iterator[Node]:
    """The statements of a module or class body, entering if/try/with/ERROR blocks but not
    function or class definitions."""
    for child in node.named_children:
        if child.type in _TRANSPARENT:
            yield from statements(child)
        else:
            yield child


def unwrap(node: Node) -> tuple[Node, list[Node]]:
    """A definition and its decorators (``decorated_definition`` is unwrapped)."""
    if node.type == "decorated_definition":
        definition = node.child_by_field_name("definition")
        decorators = [c for c in node.named_children if c.type == "decorator"]
        return (definition if definition is not None else node), decorators
    return node, []


def dotted(node: Node) -> str | None:
    """``a.b.c`` for an identifier or a chain of attribute accesses on one, else None."""
    parts: list[str] = []
    while node.type == "attribute":
        attr = node.child_by_field_name("attribute")
        obj = node.child_by_field_name("object")
        if attr is None or obj is None:
            return None
        parts.append(text(attr))
        node = obj
    if node.type != "identifier":
        return None
    parts.append(text(node))
    return ".".join(reversed(parts))


def workspace_path(root: Path, file: Path) -> Path:
    """``file`` made absolute: relative paths are taken relative to ``root`` when that file
    exists there, else to the current directory (as ``open`` would)."""
    file = Path(file)
    if not file.is_absolute() and (Path(root) / file).exists():
        file = Path(root) / file
    return file.resolve()


# --- module names -------------------------------------------------------------------------


def package_chain(file: Path) -> tuple[Path, list[str]]:
    """The directory Python (and pytest's default ``prepend`` import mode) imports ``file``
    from, and the module's dotted parts from there: ``__init__.py`` chains are followed up as
    far as the directory names are identifiers. ``pkg/sub/mod.py`` -> (dir of pkg, [pkg, sub,
    mod]); a file outside any package -> (its dir, [stem]); ``pkg/__init__.py`` -> [..., pkg].
    """
    parts = [] if file.name == "__init__.py" else [file.stem]
    directory = file.parent
    while (directory / "__init__.py").is_file() and directory.name.isidentifier():
        parts.insert(0, directory.name)
        if directory.parent == directory:
            break
        directory = directory.parent
    return directory, parts


def pytest_module_name(file: Path) -> str | None:
    """``__name__`` of ``file`` when pytest imports it (default ``prepend`` mode)."""
    _, parts = package_chain(file)
    return ".".join(parts) if parts and all(p.isidentifier() for p in parts) else None


def module_name(root: Path, file: Path) -> str | None:
    """Dotted module name of a ``.py`` file in the workspace, importable with ``root`` (or
    ``root/src``, the src layout) on ``sys.path``: ``root/pkg/mod.py`` -> ``pkg.mod``,
    ``root/src/pkg/mod.py`` -> ``pkg.mod``, ``root/mod.py`` -> ``mod``,
    ``root/pkg/__init__.py`` -> ``pkg``. Directories without ``__init__.py`` count as namespace
    packages. None outside ``root``, for non-``.py`` files, or when a part of the path is not
    an identifier (``my-scripts/x.py``)."""
    root, file = Path(root).resolve(), workspace_path(root, file)
    if file.suffix != ".py" or not file.is_relative_to(root):
        return None
    src = root / "src"
    base, parts = package_chain(file)
    if base in (root, src) and parts:
        return ".".join(parts)
    anchor = src if file.is_relative_to(src) and not (src / "__init__.py").is_file() else root
    rel = list(file.relative_to(anchor).with_suffix("").parts)
    if rel and rel[-1] == "__init__":
        rel.pop()
    if rel and all(p.isidentifier() for p in rel):
        return ".".join(rel)
    return None


def module_aliases(root: Path, file: Path) -> set[str]:
    """Every dotted name the module in ``file`` may be imported as: from the workspace root
    (or src/), and the way pytest imports it (e.g. ``helpers`` for ``tests/helpers.py`` when
    ``tests/`` has no ``__init__.py``, because pytest puts ``tests/`` on ``sys.path``)."""
    names = {module_name(root, file), pytest_module_name(file)}
    return {n for n in names if n}


# --- import bindings ----------------------------------------------------------------------


@dataclass
class Bindings:
    """Names a scope binds by imports: local name -> fully qualified names; ``import *``
    modules. ``import a.b`` binds ``a`` -> ``a``, so ``a.b.f`` resolves to itself."""

    names: dict[str, set[str]] = field(default_factory=dict)
    stars: list[str] = field(default_factory=list)

    def bind(self, local: str, full: str) -> None:
        self.names.setdefault(local, set()).add(full)


def _package_of(file: Path) -> list[str] | None:
    """The package a file's relative imports are relative to (None if not in a package)."""
    _, parts = package_chain(file)
    package = parts if file.name == "__init__.py" else parts[:-1]
    return package or None


def _from_module(node: Node, package: list[str] | None) -> str | None:
    """The absolute module of ``from X import ...`` (relative X resolved), or None."""
    module = node.child_by_field_name("module_name")
    if module is None:
        return None
    if module.type != "relative_import":
        return text(module)
    prefix = next((c for c in module.children if c.type == "import_prefix"), None)
    rest = next((c for c in module.named_children if c.type == "dotted_name"), None)
    level = text(prefix).count(".")
    if package is None or len(package) < level:
        return None  # "attempted relative import beyond top-level package"
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([text(rest)] if rest is not None else []))


def add_import(bindings: Bindings, node: Node, package: list[str] | None) -> None:
    """Record what one ``import`` / ``from ... import`` statement binds."""
    if node.type == "import_statement":
        for name in node.children_by_field_name("name"):
            if name.type == "aliased_import":
                alias = name.child_by_field_name("alias")
                target = name.child_by_field_name("name")
                if alias is not None and target is not None:
                    bindings.bind(text(alias), text(target))
            elif name.type == "dotted_name":
                full = text(name)
                bindings.bind(full.split(".")[0], full.split(".")[0])
    elif node.type == "import_from_statement":
        module = _from_module(node, package)
        if module is None:
            return
        if any(c.type == "wildcard_import" for c in node.named_children):
            bindings.stars.append(module)
        for name in node.children_by_field_name("name"):
            if name.type == "aliased_import":
                alias = name.child_by_field_name("alias")
                target = name.child_by_field_name("name")
                if alias is not None and target is not None:
                    bindings.bind(text(alias), f"{module}.{text(target)}")
            elif name.type == "dotted_name":
                bindings.bind(text(name), f"{module}.{text(name)}")


def module_bindings(tree_root: Node, file: Path) -> Bindings:
    """Imports at module level (including inside if/try/with blocks)."""
    bindings = Bindings()
    package = _package_of(file)
    for stmt in statements(tree_root):
        if stmt.type in {"import_statement", "import_from_statement"}:
            add_import(bindings, stmt, package)
    return bindings


def local_bindings(body: Node, file: Path) -> Bindings:
    """Imports anywhere inside a function (``def test_x(): from pkg import f``)."""
    bindings = Bindings()
    package = _package_of(file)
    stack = [body]
    while stack:
        node = stack.pop()
        if node.type in {"import_statement", "import_from_statement"}:
            add_import(bindings, node, package)
        else:
            stack.extend(node.named_children)
    return bindings


# --- definitions --------------------------------------------------------------------------


def find_definition(tree_root: Node, qualname: str) -> list[tuple[Node, list[Node]]] | None:
    """The chain of (definition, decorators) named by ``qualname`` (``Box.close`` -> the class,
    then the method), searching module and class bodies and nested function bodies; None if
    some part is missing."""
    chain: list[tuple[Node, list[Node]]] = []
    scope: Node | None = tree_root
    for part in qualname.split("."):
        if scope is None:
            return None
        found = None
        for stmt in statements(scope):
            definition, decorators = unwrap(stmt)
            if definition.type in {"function_definition", "class_definition"} and text(
                definition.child_by_field_name("name")
            ) == part:
                found = (definition, decorators)  # the last definition wins, as at runtime
        if found is None:
            return None
        chain.append(found)
        scope = found[0].child_by_field_name("body")
    return chain


def decorator_names(decorators: list[Node]) -> list[str]:
    """Dotted names of decorators, calls unwrapped: ``@pytest.fixture(...)`` -> pytest.fixture."""
    names = []
    for decorator in decorators:
        expr = decorator.named_children[0] if decorator.named_children else None
        if expr is not None and expr.type == "call":
            expr = expr.child_by_field_name("function")
        name = dotted(expr) if expr is not None else None
        if name:
            names.append(name)
    return names


# --- what a definition is called ----------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The function a search is for, as the set of fully qualified names that denote it.

    ``kind`` is ``function``, ``method`` or ``class``. For methods, ``owner_names`` denote the
    class and ``member`` is the method name. ``names`` includes a file token
    (``@path/rel.py.qual``) for uses inside the same file.
    """

    kind: str
    names: frozenset[str]
    owner_names: frozenset[str] = frozenset()
    member: str = ""


def file_token(rel: str) -> str:
    """Prefix for names defined in the file at ``rel`` (never a valid module name)."""
    return "@" + rel


def resolve_target(root: Path, file: Path, qualname: str, source: str | None = None) -> Target:
    """Describe ``qualname`` in ``file`` as a ``Target``.

    A function nested in another function cannot be called from outside, so it is searched
    for as its outermost enclosing function (or method): the tests of ``f`` exercise
    ``f.<locals>.g``. When the definition is not found (e.g. the file is mid-edit), a dotted
    qualname is assumed to be ``Class.method``.
    """
    root, file = Path(root).resolve(), workspace_path(root, file)
    rel = file.relative_to(root).as_posix() if file.is_relative_to(root) else file.as_posix()
    data = source.encode("utf-8") if source is not None else _read(file)
    chain = find_definition(parse(data).root_node, qualname) if data is not None else None
    parts = qualname.split(".")
    if chain is not None:
        kinds = [definition.type for definition, _ in chain]
        cut = next((i for i, k in enumerate(kinds) if k == "function_definition"), None)
        if cut is None:
            kind = "class"
        else:
            kind = "function" if cut == 0 else "method"
            parts = parts[: cut + 1]
    else:
        kind = "function" if len(parts) == 1 else "method"

    modules = module_aliases(root, file)
    tops = reexports(root, file, parts[0], modules) | {f"{file_token(rel)}.{parts[0]}"}
    if kind == "method":
        owners = frozenset(".".join([top, *parts[1:-1]]) for top in tops)
        return Target("method", frozenset(f"{o}.{parts[-1]}" for o in owners), owners, parts[-1])
    return Target(kind, frozenset(".".join([top, *parts[1:]]) for top in tops))


def _read(file: Path) -> bytes | None:
    try:
        return file.read_bytes()
    except OSError:
        return None


def reexports(root: Path, file: Path, name: str, modules: set[str]) -> set[str]:
    """Fully qualified names of the top-level ``name`` of the module in ``file``: its own
    (``pkg.sub.mod.f``) and those of enclosing packages that re-export it
    (``from .mod import f`` or ``from .mod import *`` in ``pkg/sub/__init__.py`` gives
    ``pkg.sub.f``; then ``from .sub import f`` in ``pkg/__init__.py`` gives ``pkg.f``)."""
    known = {f"{m}.{name}" for m in modules}
    directory = file.parent
    while (directory / "__init__.py").is_file() and directory.is_relative_to(root):
        init = directory / "__init__.py"
        data = _read(init) if init != file else None
        if data is not None:
            bindings = module_bindings(parse(data).root_node, init)
            packages = module_aliases(root, init)
            new = set()
            for local, fulls in bindings.names.items():
                if fulls & known:
                    new |= {f"{p}.{local}" for p in packages}
            if not name.startswith("_") and any(f"{s}.{name}" in known for s in bindings.stars):
                new |= {f"{p}.{name}" for p in packages}
            known |= new
        if directory == root:
            break
        directory = directory.parent
    return known
