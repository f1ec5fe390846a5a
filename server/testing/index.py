"""The tests of a workspace, indexed once and kept current: which test refers to what.

Each test file is parsed with tree-sitter into *units* (a test function, a helper, a fixture,
a ``setUp``), each holding the fully qualified names its body refers to, imports already
followed (see ``imports.py``). Asking which tests exercise a function is then a set lookup over
a test's unit and the units it pulls in:

* module-level helper functions it calls by name, and class helper methods it calls on
  ``self``, transitively (within the same file);
* fixtures it requests (parameters, ``@pytest.mark.usefixtures``), from its class, its file,
  or a ``conftest.py`` in its directory or above, transitively through their own requests;
* what runs before it anyway: ``setUp``/``setup_method``-style methods of its classes,
  ``setup_module``/``setup_function`` and autouse fixtures of its own file (not of conftests).

Calls through helpers imported from other modules are not followed.

``refresh`` is incremental: a file is re-parsed only when its (mtime_ns, size) changed.
"""

from __future__ import annotations

import configparser
import os
import threading
import time
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

from tree_sitter import Node

from plancode.testing.imports import (
    Bindings,
    Target,
    decorator_names,
    dotted,
    file_token,
    local_bindings,
    module_bindings,
    parse,
    resolve_target,
    statements,
    text,
    unwrap,
)
from plancode.testing.types import TestCase

SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", "build", "dist",
             "site-packages"}
MAX_FILE_BYTES = 2_000_000  # larger "test files" are generated data, not tests
CLASS_SETUP = {"setUp", "setUpClass", "asyncSetUp", "setup_method", "setup_class", "setup"}
MODULE_SETUP = {"setUpModule", "setup_module", "setup_function"}
DEFAULT_OPTIONS = {
    "python_files": ["test_*.py", "*_test.py"],
    "python_classes": ["Test"],
    "python_functions": ["test"],
}


@dataclass(frozen=True)
class Unit:
    """What one function body (decorators and defaults included) refers to."""

    refs: frozenset[str]  # fully qualified dotted names, imports followed
    names: frozenset[str]  # bare leading names, to find module-level helpers it calls
    attrs: frozenset[str]  # attribute names read or called (``b.close()`` -> ``close``)
    requests: tuple[str, ...]  # fixtures it asks for: parameters and usefixtures


@dataclass(frozen=True)
class TestDef:
    """One collectable test: its pytest node id and the unit of its body."""

    __test__ = False

    id: str
    kind: str  # "pytest" or "unittest"
    name: str
    scope: tuple[str, ...]  # enclosing test classes, outermost first
    unit: Unit


@dataclass
class ClassScope:
    """Non-test members of a test class that its tests may pull in."""

    methods: dict[str, Unit] = field(default_factory=dict)
    fixtures: dict[str, Unit] = field(default_factory=dict)
    implicit: list[Unit] = field(default_factory=list)  # setUp-style methods, autouse


@dataclass
class FileIndex:
    """Everything discovery needs from one indexed file."""

    rel: str
    mtime_ns: int
    size: int
    collectable: bool  # pytest collects tests from it (python_files), i.e. not a helper file
    has_error: bool  # syntax errors: pytest cannot import it
    tests: list[TestDef] = field(default_factory=list)
    helpers: dict[str, Unit] = field(default_factory=dict)
    fixtures: dict[str, Unit] = field(default_factory=dict)
    implicit: list[Unit] = field(default_factory=list)
    classes: dict[tuple[str, ...], ClassScope] = field(default_factory=dict)


def _matches(name: str, patterns: list[str]) -> bool:
    """pytest's rule for python_classes/python_functions: a prefix, or a glob if it has one."""
    return any(fnmatch(name, p) if any(c in p for c in "*?[") else name.startswith(p)
               for p in patterns)


def pytest_options(root: Path) -> dict[str, list[str]]:
    """python_files/python_classes/python_functions from the workspace's pytest config
    (pytest.ini, pyproject.toml, tox.ini, setup.cfg, in pytest's order), else the defaults."""
    options = {k: list(v) for k, v in DEFAULT_OPTIONS.items()}
    found: dict = {}
    for name, section in ((("pytest.ini", "pytest"), (".pytest.ini", "pytest"),
                           ("pyproject.toml", None), ("tox.ini", "pytest"),
                           ("setup.cfg", "tool:pytest"))):
        path = root / name
        if not path.is_file():
            continue
        try:
            if section is None:
                tool = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {})
                pytest_table = tool.get("pytest", {})
                found = pytest_table.get("ini_options", pytest_table) if pytest_table else {}
            else:
                config = configparser.ConfigParser(interpolation=None)
                config.read(path, encoding="utf-8")
                found = dict(config[section]) if config.has_section(section) else {}
        except (OSError, ValueError, configparser.Error, tomllib.TOMLDecodeError):
            found = {}
        if found or name in {"pytest.ini", ".pytest.ini"}:
            break
    for key in options:
        value = found.get(key)
        if isinstance(value, str) and value.split():
            options[key] = value.split()
        elif isinstance(value, list) and value:
            options[key] = [str(v) for v in value]
    return options


class _FileParser:
    """Turns one parsed file into a ``FileIndex``."""

    def __init__(self, path: Path, rel: str, data: bytes, options: dict[str, list[str]],
                 collectable: bool) -> None:
        self.path, self.rel, self.options, self.collectable = path, rel, options, collectable
        self.tree = parse(data)
        self.bindings = module_bindings(self.tree.root_node, path)
        self.defs = {
            text(d.child_by_field_name("name"))
            for d, _ in map(unwrap, statements(self.tree.root_node))
            if d.type in {"function_definition", "class_definition"}
        }

    def build(self, mtime_ns: int, size: int) -> FileIndex:
        out = FileIndex(self.rel, mtime_ns, size, self.collectable,
                        self.tree.root_node.has_error)
        tests: dict[str, TestDef] = {}  # redefinition replaces, as at runtime
        classes: dict[str, Node] = {}
        for stmt in statements(self.tree.root_node):
            definition, decorators = unwrap(stmt)
            name = text(definition.child_by_field_name("name"))
            if definition.type == "function_definition" and name:
                unit = self.unit(definition, decorators)
                fixture = _fixture(decorators, name)
                if fixture is not None:
                    out.fixtures[fixture[0]] = unit
                    if fixture[1]:
                        out.implicit.append(unit)
                elif self.collectable and _matches(name, self.options["python_functions"]):
                    if _type_check_case(decorators):
                        continue
                    test = TestDef(f"{self.rel}::{name}", "pytest", name, (), unit)
                    tests[test.id] = test
                else:
                    out.helpers[name] = unit
                    if name in MODULE_SETUP:
                        out.implicit.append(unit)
            elif definition.type == "class_definition" and name:
                classes[name] = definition
                self.test_class(definition, decorators, (), classes, out, tests)
        out.tests = list(tests.values())
        return out

    # --- classes ----------------------------------------------------------------------

    def test_class(self, node: Node, decorators: list[Node], outer: tuple[str, ...],
                   classes: dict[str, Node], out: FileIndex, tests: dict[str, TestDef]) -> None:
        """Index a class if pytest collects it: a ``unittest.TestCase`` subclass (module level)
        or a ``Test*`` class without ``__init__`` (nested ones inside it too)."""
        name = text(node.child_by_field_name("name"))
        if not outer and self.is_unittest(node, classes, set()):
            kind = "unittest"
        elif _matches(name, self.options["python_classes"]):
            kind = "pytest"
        else:
            return
        members = self.members(node, classes, set())
        if (kind == "pytest" and "__init__" in members) or not _test_flag(node, classes):
            return
        scope = (*outer, name)
        class_requests = _usefixtures(decorators)
        cs = out.classes.setdefault(scope, ClassScope())
        prefixes = ["test"] if kind == "unittest" else self.options["python_functions"]
        for member, (definition, member_decorators) in members.items():
            if definition.type == "class_definition":
                if kind == "pytest":
                    self.test_class(definition, member_decorators, scope, classes, out, tests)
                continue
            unit = self.unit(definition, member_decorators, class_requests)
            fixture = _fixture(member_decorators, member)
            if fixture is not None:
                cs.fixtures[fixture[0]] = unit
                if fixture[1]:
                    cs.implicit.append(unit)
            elif self.collectable and _matches(member, prefixes):
                test_id = "::".join([self.rel, *scope, member])
                tests[test_id] = TestDef(test_id, kind, ".".join([*scope, member]), scope, unit)
            else:
                cs.methods[member] = unit
                if member in CLASS_SETUP:
                    cs.implicit.append(unit)

    def bases(self, node: Node) -> list[str]:
        supers = node.child_by_field_name("superclasses")
        if supers is None:
            return []
        return [name for b in supers.named_children if (name := dotted(b)) is not None]

    def is_unittest(self, node: Node, classes: dict[str, Node], seen: set[str]) -> bool:
        """A base named ``*TestCase`` (``unittest.TestCase``, ``IsolatedAsyncioTestCase``,
        Django's ``TestCase``, ...), directly, via an import alias or via a local base class."""
        for base in self.bases(node):
            head, _, rest = base.partition(".")
            candidates = {base} | self.resolve(head, rest, Bindings())
            if any(c.rsplit(".", 1)[-1].endswith("TestCase") for c in candidates):
                return True
            if base in classes and base not in seen:
                seen.add(base)
                if self.is_unittest(classes[base], classes, seen):
                    return True
        return False

    def members(self, node: Node, classes: dict[str, Node],
                seen: set[str]) -> dict[str, tuple[Node, list[Node]]]:
        """Functions and classes of a class body, with those inherited from base classes
        defined earlier in the same file (first base wins, the class itself overrides)."""
        found: dict[str, tuple[Node, list[Node]]] = {}
        for base in reversed(self.bases(node)):
            if base in classes and base not in seen:
                found.update(self.members(classes[base], classes, seen | {base}))
        body = node.child_by_field_name("body")
        for stmt in statements(body) if body is not None else ():
            definition, decorators = unwrap(stmt)
            name = text(definition.child_by_field_name("name"))
            if definition.type in {"function_definition", "class_definition"} and name:
                found[name] = (definition, decorators)
        return found

    # --- references -------------------------------------------------------------------

    def resolve(self, head: str, rest: str, local: Bindings) -> set[str]:
        """Fully qualified names ``head.rest`` may denote in this file."""
        suffix = f".{rest}" if rest else ""
        fulls = local.names.get(head) or self.bindings.names.get(head) or set()
        out = {f + suffix for f in fulls}
        if head in self.defs:
            out.add(f"{file_token(self.rel)}.{head}{suffix}")
        if not out:
            out = {f"{s}.{head}{suffix}" for s in (*local.stars, *self.bindings.stars)}
        return out

    def unit(self, definition: Node, decorators: list[Node],
             extra_requests: tuple[str, ...] = ()) -> Unit:
        body = definition.child_by_field_name("body")
        local = local_bindings(body, self.path) if body is not None else Bindings()
        chains, attrs = _references([*decorators, definition])
        refs: set[str] = set()
        names: set[str] = set()
        for chain in chains:
            head, _, rest = chain.partition(".")
            names.add(head)
            refs |= self.resolve(head, rest, local)
        requests = (*_parameters(definition), *_usefixtures(decorators), *extra_requests)
        return Unit(frozenset(refs), frozenset(names), frozenset(attrs), requests)


def _references(nodes: list[Node]) -> tuple[set[str], set[str]]:
    """Dotted name chains (``pkg.mod.f``, ``b``) and attribute names used under ``nodes``;
    definition names, parameter names, keyword-argument names and imports are not uses."""
    chains: set[str] = set()
    attrs: set[str] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        kind = node.type
        if kind in {"import_statement", "import_from_statement", "future_import_statement"}:
            continue
        if kind == "attribute":
            chain = dotted(node)
            if chain is not None:
                chains.add(chain)
                attrs.update(chain.split(".")[1:])
                continue
            attrs.add(text(node.child_by_field_name("attribute")))
            obj = node.child_by_field_name("object")
            if obj is not None:
                stack.append(obj)
        elif kind == "identifier":
            chains.add(text(node))
        elif kind == "keyword_argument":
            value = node.child_by_field_name("value")
            if value is not None:
                stack.append(value)
        elif kind in {"parameters", "lambda_parameters"}:
            for param in node.named_children:
                stack.extend(c for f in ("type", "value")
                             if (c := param.child_by_field_name(f)) is not None)
        elif kind in {"function_definition", "class_definition"}:
            name = node.child_by_field_name("name")
            stack.extend(c for c in node.named_children if name is None or c != name)
        else:
            stack.extend(node.named_children)
    return chains, attrs


def _parameters(definition: Node) -> list[str]:
    params = definition.child_by_field_name("parameters")
    names = []
    for param in params.named_children if params is not None else ():
        if param.type == "identifier":
            names.append(text(param))
        elif param.type in {"default_parameter", "typed_default_parameter"}:
            names.append(text(param.child_by_field_name("name")))
        elif param.type == "typed_parameter" and param.named_children:
            names.append(text(param.named_children[0]))
    return [n for n in names if n and n not in {"self", "cls"}]


def _decorator_calls(decorators: list[Node]) -> list[tuple[str, Node | None]]:
    """(dotted name, argument list or None) for each decorator."""
    out = []
    for decorator, name in zip(decorators, decorator_names(decorators), strict=False):
        expr = decorator.named_children[0] if decorator.named_children else None
        args = expr.child_by_field_name("arguments") if expr is not None and \
            expr.type == "call" else None
        out.append((name, args))
    return out


def _type_check_case(decorators: list[Node]) -> bool:
    """``@pytest.mark.mypy_testing``: a case for pytest-mypy-testing, which type-checks the
    function instead of running it (``reveal_type`` in it fails at run time whatever the
    code), so it verifies nothing."""
    return any(name.endswith("mark.mypy_testing") for name, _ in _decorator_calls(decorators))


def _fixture(decorators: list[Node], name: str) -> tuple[str, bool] | None:
    """(fixture name, autouse) when decorated with ``@pytest.fixture`` (or any ``*.fixture``)."""
    for deco, args in _decorator_calls(decorators):
        if deco.rsplit(".", 1)[-1] != "fixture":
            continue
        fixture_name, autouse = name, False
        for arg in args.named_children if args is not None else ():
            if arg.type == "keyword_argument":
                key = text(arg.child_by_field_name("name"))
                value = arg.child_by_field_name("value")
                if key == "name" and value is not None and value.type == "string":
                    fixture_name = _string(value) or name
                elif key == "autouse":
                    autouse = text(value) == "True"
        return fixture_name, autouse
    return None


def _usefixtures(decorators: list[Node]) -> tuple[str, ...]:
    names: list[str] = []
    for deco, args in _decorator_calls(decorators):
        if deco.rsplit(".", 1)[-1] == "usefixtures" and args is not None:
            names += [s for a in args.named_children if a.type == "string" and (s := _string(a))]
    return tuple(names)


def _string(node: Node) -> str:
    return "".join(text(c) for c in node.named_children if c.type == "string_content")


def _test_flag(node: Node, classes: dict[str, Node]) -> bool:
    """False when the class (or a local base) sets ``__test__ = False``."""
    body = node.child_by_field_name("body")
    for stmt in statements(body) if body is not None else ():
        assign = stmt.named_children[0] if stmt.type == "expression_statement" and \
            stmt.named_children else None
        if assign is not None and assign.type == "assignment" and \
                text(assign.child_by_field_name("left")) == "__test__":
            return text(assign.child_by_field_name("right")) != "False"
    supers = node.child_by_field_name("superclasses")
    for base in supers.named_children if supers is not None else ():
        if base.type == "identifier" and text(base) in classes and classes[text(base)] != node:
            return _test_flag(classes[text(base)], classes)
    return True


def _hits(refs: frozenset[str], names: frozenset[str]) -> bool:
    """Whether some reference is one of ``names`` or an attribute of one (``f.cache_clear``)."""
    for ref in refs:
        if ref in names:
            return True
        dot = ref.find(".")
        while dot != -1:
            if ref[:dot] in names:
                return True
            dot = ref.find(".", dot + 1)
    return False


def exercises(target: Target, refs: frozenset[str], attrs: frozenset[str]) -> bool:
    """Whether code with these references exercises ``target``.

    Functions and classes: one of their fully qualified names is referenced (called, or
    passed on, e.g. as a callback). Methods: ``Class.method`` is referenced directly, or the
    class is referenced (instantiated, usually) and an attribute with the method's name is read
    or called on something (``Box().close()``, ``b = Box(); b.close()``, ``b.size`` for a
    property). Dunder methods (``__init__``, ``__eq__``, ``__len__`` ...) run through syntax,
    not attribute access, so referencing the class is enough for them.
    """
    if _hits(refs, target.names):
        return True
    if target.kind != "method" or not _hits(refs, target.owner_names):
        return False
    member = target.member
    return (member.startswith("__") and member.endswith("__")) or member in attrs


class WorkspaceIndex:
    """Test files of one workspace, parsed with tree-sitter; see the module docstring.

    ``test_command`` is the user's configured test command, kept for the pipeline.
    ``parses`` counts file parses since creation (unchanged files are never re-parsed).
    Safe to share between threads: refreshes and queries take a lock.
    """

    def __init__(self, root: Path, test_command: str | None = None) -> None:
        self.root = Path(root).resolve()
        self.test_command = test_command
        self.parses = 0
        self._files: dict[str, FileIndex] = {}
        self._options = dict(DEFAULT_OPTIONS)
        self._effective: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        self._refreshed = False
        self._last: dict = {}
        self._lock = threading.RLock()

    # --- indexing ---------------------------------------------------------------------

    def _candidates(self) -> dict[str, Path]:
        """Test files and test-support files (conftest.py, anything under tests/ or test/)."""
        found: dict[str, Path] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            directory = Path(dirpath)
            if "pyvenv.cfg" in filenames and directory != self.root:
                dirnames[:] = []  # a virtual environment with an unusual name
                continue
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS
                                 and not d.startswith(".") and not d.endswith(".egg-info"))
            reldir = directory.relative_to(self.root)
            in_tests = any(part in {"tests", "test"} for part in reldir.parts)
            for name in filenames:
                if not name.endswith(".py"):
                    continue
                rel = (reldir / name).as_posix()
                if in_tests or name == "conftest.py" or self._collectable(rel):
                    found[rel] = directory / name
        return found

    def _collectable(self, rel: str) -> bool:
        name = PurePosixPath(rel).name
        return name != "conftest.py" and any(
            fnmatch(rel if "/" in p else name, p) for p in self._options["python_files"])

    def refresh(self) -> None:
        """Bring the index up to date: parse new and changed files, forget deleted ones."""
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        started = time.perf_counter()
        options = pytest_options(self.root)
        if options != self._options:
            self._options, self._files = options, {}  # collection rules changed: start over
        parsed, parse_seconds, skipped = 0, 0.0, []
        current = self._candidates()
        changed = False
        for rel in list(self._files):
            if rel not in current:
                del self._files[rel]
                changed = True
        for rel, path in current.items():
            try:
                st = path.stat()
            except OSError:
                continue
            old = self._files.get(rel)
            if old is not None and (old.mtime_ns, old.size) == (st.st_mtime_ns, st.st_size):
                continue
            if st.st_size > MAX_FILE_BYTES:
                skipped.append(rel)
                self._files.pop(rel, None)
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            t0 = time.perf_counter()
            self._files[rel] = _FileParser(path, rel, data, self._options,
                                           self._collectable(rel)).build(st.st_mtime_ns,
                                                                         st.st_size)
            parse_seconds += time.perf_counter() - t0
            parsed += 1
            changed = True
        self.parses += parsed
        if changed:
            self._effective.clear()
        self._refreshed = True
        self._last = {"parsed": parsed, "parse_seconds": round(parse_seconds, 4),
                      "refresh_seconds": round(time.perf_counter() - started, 4),
                      "skipped_large": skipped}

    def report(self) -> dict:
        """What is indexed, for the UI/CLI."""
        with self._lock:
            files = list(self._files.values())
            last = dict(self._last)
        return {
            "root": str(self.root),
            "test_files": sum(1 for f in files if f.tests),
            "support_files": sum(1 for f in files if not f.tests),
            "tests": sum(len(f.tests) for f in files),
            "files_with_errors": sorted(f.rel for f in files if f.has_error),
            "parses_total": self.parses,
            "test_command": self.test_command,
            **last,
        }

    # --- queries ----------------------------------------------------------------------

    def tests_for(self, file: Path, qualname: str, source: str | None = None,
                  include_broken: bool = False) -> list[TestCase]:
        """Tests that exercise ``qualname`` in ``file`` (absolute, or relative to the root), in
        file and definition order. ``source`` is the file's current text if it is unsaved.
        Tests in files with syntax errors are left out unless ``include_broken`` (pytest would
        fail to collect them). Refreshes only if never refreshed; call ``refresh`` after edits.
        """
        target = resolve_target(self.root, file, qualname, source)
        found = []
        with self._lock:
            if not self._refreshed:
                self._refresh()
            for rel in sorted(self._files):
                index = self._files[rel]
                if index.has_error and not include_broken:
                    continue
                for test in index.tests:
                    refs, attrs = self._closure(index, test)
                    if exercises(target, refs, attrs):
                        found.append(TestCase(test.id, test.kind, rel, test.name))
        return found

    def _closure(self, index: FileIndex, test: TestDef) -> tuple[frozenset[str], frozenset[str]]:
        """References of a test together with the helpers, fixtures and setup it pulls in."""
        cached = self._effective.get(test.id)
        if cached is not None:
            return cached
        scopes = [test.scope[:i] for i in range(len(test.scope), 0, -1)]  # innermost first
        queue: list[tuple[FileIndex, tuple[str, ...], Unit]] = [(index, test.scope, test.unit)]
        queue += [(index, (), u) for u in index.implicit]
        queue += [(index, s, u) for s in scopes for u in index.classes[s].implicit]
        refs: set[str] = set()
        attrs: set[str] = set()
        seen: set[int] = set()
        while queue:
            file, scope, unit = queue.pop()
            if id(unit) in seen:
                continue
            seen.add(id(unit))
            refs |= unit.refs
            attrs |= unit.attrs
            queue += [(file, (), file.helpers[n]) for n in unit.names if n in file.helpers]
            for s in (scope[:i] for i in range(len(scope), 0, -1)):
                methods = file.classes[s].methods
                queue += [(file, s, methods[a]) for a in unit.attrs if a in methods]
            for request in unit.requests:
                found = self._fixture(file, scope, request)
                if found is not None:
                    queue.append(found)
        result = frozenset(refs), frozenset(attrs)
        self._effective[test.id] = result
        return result

    def _fixture(self, file: FileIndex, scope: tuple[str, ...],
                 name: str) -> tuple[FileIndex, tuple[str, ...], Unit] | None:
        """The fixture ``name`` as pytest would find it: class, module, then conftest.py files
        from the test's directory up to the root."""
        for s in (scope[:i] for i in range(len(scope), 0, -1)):
            if name in file.classes[s].fixtures:
                return file, s, file.classes[s].fixtures[name]
        if name in file.fixtures:
            return file, (), file.fixtures[name]
        directory = PurePosixPath(file.rel).parent
        while True:
            rel = (directory / "conftest.py").as_posix()
            conftest = self._files.get(rel)
            if conftest is not None and conftest is not file and name in conftest.fixtures:
                return conftest, (), conftest.fixtures[name]
            if directory == PurePosixPath("."):
                return None
            directory = directory.parent
