"""Which tests the server can check out of process, read statically with ``ast``.

A test has a *value shape* when everything it checks is a value compared with a literal, so
the sandboxed child only has to run the calls and send the values back (``values.py``): a
doctest whose displayed results are literals, a pytest or unittest test whose body is only

* bindings (``x = ...``; a name bound to a literal can be the expected side),
* ``assert EXPR == LITERAL`` (``!=``, ``is None``/``True``/``False``, ``in``, ``not``,
  ``pytest.approx(LITERAL)``, ``math.isclose(EXPR, LITERAL)``, a bare ``assert EXPR``),
* ``with pytest.raises(E[, match=...]): EXPR`` and unittest's ``assertEqual`` family,
  ``assertTrue``/``False``, ``assertIs[Not]None``, ``assertIn``, ``assertAlmostEqual``,
  ``assertCountEqual`` and ``assertRaises``,

with no fixtures (``@pytest.mark.parametrize`` with literal values is fine), no marks, no
set-up or tear-down, and no ``self`` beyond ``self.assert*``. Anything else keeps pytest and the
in-process plugin. Nothing here imports or runs code.
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plancode.analysis import pyparse

# pytest's default ``doctest_optionflags``
DOCTEST_FLAGS = doctest.ELLIPSIS
_CONFIGS = ("pytest.ini", "pyproject.toml", "setup.cfg", "tox.ini", ".pytest.ini")
_UNITTEST_EQUAL = {"assertEqual": None, "assertEquals": None, "assertListEqual": list,
                   "assertTupleEqual": tuple, "assertDictEqual": dict, "assertSetEqual": set,
                   "assertSequenceEqual": None, "assertMultiLineEqual": str}
_SETUP = re.compile(r"^(setup|teardown|setUp|tearDown)", re.IGNORECASE)


@dataclass(frozen=True)
class Check:
    """What the server requires of one step's outcome. ``how``: ``eq``, ``ne``, ``approx``,
    ``isclose``, ``almost``, ``count``, ``truthy``, ``falsy``, ``is``, ``is-not``, ``in``,
    ``not-in``, ``raises``, ``doctest``; ``expected``: the literal; ``options``: tolerances,
    exception names and ``match``, or the doctest example's (want, exc_msg, flags)."""

    how: str
    expected: Any = None
    options: tuple = ()
    text: str = ""  # the check as the test wrote it, for messages


@dataclass(frozen=True)
class Step:
    """One thing the child runs, in order: ``exec`` (a statement), ``eval`` (an expression
    whose value is sent back) or ``doctest`` (one example, run as doctest runs it)."""

    mode: str
    source: str
    check: Check | None = None


@dataclass(frozen=True)
class ValueTest:
    """A test the server checks from values. ``setup``: ``module`` (the test file's
    namespace) or ``doctest`` (a copy of the module's namespace, like doctest's globs);
    ``file``: the workspace-relative file; ``cases``: one list of steps per parametrized case."""

    test_id: str
    setup: str
    file: str
    cases: tuple[tuple[Step, ...], ...]
    paths: tuple[str, ...] = ()  # the project's pytest ``pythonpath``, relative to the root
    ids: tuple[str, ...] = ()  # pytest's id of each parametrized case ("1-2-3"), for messages
    warnings: tuple[str, ...] = ()  # the project's ``filterwarnings`` ("error" fails a test)

    def request(self) -> dict:
        """What the child needs: the code to run, none of the expectations."""
        return {"id": self.test_id, "setup": self.setup, "file": self.file,
                "paths": list(self.paths), "warnings": list(self.warnings),
                "cases": [[{"mode": s.mode, "source": s.source} for s in case]
                          for case in self.cases]}


@dataclass
class Shapes:
    """The value tests found, and why each other test keeps the in-process plugin."""

    tests: dict[str, ValueTest] = field(default_factory=dict)
    why_not: dict[str, str] = field(default_factory=dict)


class NotShaped(Exception):
    """The reason a test keeps the in-process plugin."""


def recognise(workspace: Path, files: dict[str, str], tests: list[Any]) -> Shapes:
    """Sort ``tests`` (TestCases) into value tests and the rest. ``files``: the candidate's
    run's files, read in preference to the workspace's."""
    found = Shapes()
    reader = _Reader(Path(workspace), files)
    for test in tests:
        try:
            found.tests[test.id] = _recognise(reader, test)
        except NotShaped as exc:
            found.why_not[test.id] = str(exc)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            found.why_not[test.id] = f"cannot read the test: {type(exc).__name__}"
    return found


def project_pythonpath(workspace: Path, files: dict[str, str]) -> tuple[str, ...]:
    """The project's pytest ``pythonpath`` entries, relative to the root (NotShaped when
    they cannot be read here or lead out of the workspace)."""
    return _Reader(Path(workspace), files).pythonpath()


class _Reader:
    """Sources of the run's files, cached, and the project's pytest set-up."""

    def __init__(self, workspace: Path, files: dict[str, str]) -> None:
        self.workspace, self.files = workspace, files
        self._cache: dict[str, str | None] = {}

    def text(self, rel: str) -> str | None:
        if rel not in self._cache:
            if rel in self.files:
                self._cache[rel] = self.files[rel]
            else:
                try:
                    self._cache[rel] = (self.workspace / rel).read_text(encoding="utf-8-sig")
                except (OSError, UnicodeDecodeError):
                    self._cache[rel] = None
        return self._cache[rel]

    def config_mentions(self, *words: str) -> str:
        for name in _CONFIGS:
            text = self.text(name) or ""
            for word in words:
                if word in text:
                    return f"{name} sets {word}"
        return ""

    def ini(self, key: str) -> tuple[str, ...]:
        """The values of ``key`` in the project's pytest configuration, in pytest's order of
        files (``pythonpath`` entries split on spaces, ``filterwarnings`` one per line);
        NotShaped when it is written in a way not read here."""
        import configparser
        import tomllib

        for name, section in (("pytest.ini", "pytest"), (".pytest.ini", "pytest"),
                              ("pyproject.toml", None), ("tox.ini", "pytest"),
                              ("setup.cfg", "tool:pytest")):
            text = self.text(name)
            if not text or key not in text:
                continue
            try:
                if section is None:
                    value = tomllib.loads(text).get("tool", {}).get("pytest", {}).get(
                        "ini_options", {}).get(key, [])
                else:
                    parser = configparser.ConfigParser(interpolation=None)
                    parser.read_string(text)
                    value = parser.get(section, key, fallback="")
            except (ValueError, configparser.Error) as exc:
                raise NotShaped(f"{name} cannot be read") from exc
            if isinstance(value, str):
                value = value.split() if key == "pythonpath" else \
                    [line.strip() for line in value.splitlines() if line.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise NotShaped(f"{name} sets a {key} not read here")
            return tuple(value)
        return ()

    def pythonpath(self) -> tuple[str, ...]:
        """The ``pythonpath`` entries (pytest puts them first on ``sys.path``)."""
        paths = self.ini("pythonpath")
        if any(v.startswith("/") or ".." in v.split("/") for v in paths):
            raise NotShaped("a pythonpath outside the workspace")
        return paths

    def conftest_trouble(self, rel: str) -> str:
        """Why a conftest on the test's path could change what the test sees ("" if none)."""
        parts = Path(rel).parts[:-1]
        for depth in range(len(parts) + 1):
            name = "/".join([*parts[:depth], "conftest.py"])
            text = self.text(name) or ""
            for word in ("autouse", "def pytest_", "doctest_namespace"):
                if word in text:
                    return f"{name} has {word.strip()}"
        return ""


def _recognise(reader: _Reader, test: Any) -> ValueTest:
    if test.kind == "doctest":
        return _doctest(reader, test)
    if test.kind not in ("pytest", "unittest", "docstring"):
        raise NotShaped(f"a {test.kind} test")
    path, _, rest = test.id.partition("::")
    if "[" in test.id:
        raise NotShaped("one parametrized case")
    source = reader.text(path)
    if source is None:
        raise NotShaped("the test file cannot be read")
    trouble = reader.conftest_trouble(path) or reader.config_mentions("required_plugins")
    if trouble:
        raise NotShaped(trouble)
    tree = pyparse.parse(source)
    module = _module_facts(tree)
    names = rest.split("::") if rest else []
    functions = _selected(tree, names)
    if not functions:
        raise NotShaped("no test function found by name")
    cases: list[tuple[Step, ...]] = []
    ids: list[str] = []
    for klass, function in functions:
        more, names = _function_cases(function, klass, module)
        cases += more
        ids += [f"{function.name}[{n}]" if len(functions) > 1 else n for n in names] \
            if any(names) else [function.name if len(functions) > 1 else ""] * len(more)
    return ValueTest(test.id, "module", path, tuple(cases), reader.pythonpath(), tuple(ids),
                     reader.ini("filterwarnings"))


# -- which functions a test id selects ------------------------------------------------------------

def _module_facts(tree: ast.Module) -> dict[str, Any]:
    """Literal module-level names; raises NotShaped for module-wide set-up or marks."""
    literals: dict[str, Any] = {}
    assigned: dict[str, int] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name in ("setup_module", "teardown_module", "setup_function",
                             "teardown_function", "setUpModule", "tearDownModule",
                             "load_tests", "setup", "teardown") or node.name.startswith("pytest_"):
                raise NotShaped(f"module-level {node.name}")
            if any("fixture" in ast.unparse(d) for d in node.decorator_list) and \
                    "autouse" in ast.unparse(node):
                raise NotShaped("an autouse fixture")
        for target in _assigned_names(node):
            assigned[target] = assigned.get(target, 0) + 1
            if target == "pytestmark":
                raise NotShaped("module-level pytestmark")
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name):
            with contextlib.suppress(NotShaped):
                literals[node.targets[0].id] = _literal(node.value, {})
    return {name: value for name, value in literals.items() if assigned.get(name) == 1}


def _assigned_names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Assign):
        return [n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    if isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    if isinstance(node, ast.Import | ast.ImportFrom):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    return []


def _selected(tree: ast.Module, names: list[str]
              ) -> list[tuple[ast.ClassDef | None, ast.FunctionDef]]:
    """(class, function) pairs the test id names: a function, a class's test methods, or every
    test of the file."""
    out: list[tuple[ast.ClassDef | None, ast.FunctionDef]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name.startswith("test") and (not names or names == [node.name]):
                if isinstance(node, ast.AsyncFunctionDef):
                    raise NotShaped("an async test")
                out.append((None, node))
        elif isinstance(node, ast.ClassDef) and (not names or names[0] == node.name):
            unittest = _unittest_class(node)
            if not unittest and not node.name.startswith("Test"):
                continue
            _check_class(node, unittest)
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and \
                        item.name.startswith("test") and (len(names) < 2 or names[1] == item.name):
                    if isinstance(item, ast.AsyncFunctionDef):
                        raise NotShaped("an async test")
                    out.append((node, item))
    return out


def _unittest_class(node: ast.ClassDef) -> bool:
    bases = [ast.unparse(b) for b in node.bases]
    if not bases or bases == ["object"]:
        return False
    if bases in (["unittest.TestCase"], ["TestCase"]):
        return True
    raise NotShaped(f"class {node.name} has bases {', '.join(bases)[:60]}")


def _check_class(node: ast.ClassDef, unittest: bool) -> None:
    if node.decorator_list or node.keywords:
        raise NotShaped(f"class {node.name} is decorated")
    for item in node.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            if _SETUP.match(item.name) or item.name in ("__init__", "run", "__call__"):
                raise NotShaped(f"{node.name}.{item.name} sets up or runs tests")
            if item.decorator_list and not item.name.startswith("test"):
                raise NotShaped(f"{node.name}.{item.name} is decorated")
        elif not isinstance(item, ast.Expr | ast.Pass):  # a docstring
            raise NotShaped(f"class {node.name} has class-level state")
    del unittest


# -- one test function ---------------------------------------------------------------------

def _function_cases(function: ast.FunctionDef, klass: ast.ClassDef | None,
                    module: dict[str, Any]) -> tuple[list[tuple[Step, ...]], list[str]]:
    """The function's cases (one per parametrized combination) and pytest's ids for them."""
    params = [a.arg for a in function.args.args]
    if klass is not None:
        if not params or params[0] != "self":
            raise NotShaped("a method without self")
        params = params[1:]
    if function.args.vararg or function.args.kwarg or function.args.kwonlyargs \
            or function.args.defaults:
        raise NotShaped("a test with special parameters")
    grid = _parametrize(function.decorator_list)
    given = [name for names, _ in grid for name in names]
    if sorted(given) != sorted(params):
        raise NotShaped("a test with fixtures")
    cases, ids = [], []
    # pytest applies the decorator nearest the function first: its ids come first
    grid = grid[::-1]
    for combo in itertools.product(*[list(enumerate(rows)) for _, rows in grid]) if grid \
            else [()]:
        bound = {name: value for (names, _), (_, row) in zip(grid, combo, strict=True)
                 for name, value in zip(names, row, strict=True)}
        binds = [Step("exec", f"{name} = {_source(value)}") for name, value in bound.items()]
        cases.append(tuple(binds) + _checks(function.body, {**module, **bound}))
        ids.append("-".join(_param_id(name, value, k)
                            for (names, _), (k, row) in zip(grid, combo, strict=True)
                            for name, value in zip(names, row, strict=True)))
    return cases, _unique(ids)


def _param_id(name: str, value: Any, index: int) -> str:
    """pytest's id for one parameter value: the value for numbers, strings, bools and None,
    else the argument's name and the row's index."""
    if isinstance(value, str):
        return value.encode("unicode_escape").decode("ascii")
    if value is None or isinstance(value, int | float | complex):
        return str(value)
    return f"{name}{index}"


def _unique(ids: list[str]) -> list[str]:
    """pytest's suffixes for ids that repeat (``a0``, ``a1``)."""
    counts = {i: ids.count(i) for i in ids}
    seen: dict[str, int] = {}
    out = []
    for i in ids:
        if counts[i] > 1:
            out.append(f"{i}{seen.get(i, 0)}")
            seen[i] = seen.get(i, 0) + 1
        else:
            out.append(i)
    return out


def _source(value: Any) -> str:
    """Python source for a literal value (``float('nan')`` where repr would say ``nan``)."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return f"float({repr(value)!r})"
    if isinstance(value, list | tuple | set | frozenset) and value:
        inner = ", ".join(_source(v) for v in value)
        if isinstance(value, list):
            return f"[{inner}]"
        if isinstance(value, tuple):
            return f"({inner},)"
        return f"{type(value).__name__}([{inner}])"
    if isinstance(value, dict) and value:
        return "{" + ", ".join(f"{_source(k)}: {_source(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _parametrize(decorators: list[ast.expr]) -> list[tuple[list[str], list[tuple]]]:
    grid = []
    for deco in decorators:
        text = ast.unparse(deco.func if isinstance(deco, ast.Call) else deco)
        if text not in ("pytest.mark.parametrize", "mark.parametrize", "parametrize"):
            raise NotShaped(f"decorated with {text[:40]}")
        assert isinstance(deco, ast.Call)
        if len(deco.args) != 2 or any(k.arg not in ("ids",) for k in deco.keywords):
            raise NotShaped("a parametrize this reader does not follow")
        names = _literal(deco.args[0], {})
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        rows = _literal(deco.args[1], {})
        if not isinstance(rows, list | tuple):
            raise NotShaped("parametrize values that are not a literal list")
        rows = [tuple(r) if len(names) > 1 else (r,) for r in rows]
        if any(len(r) != len(names) for r in rows):
            raise NotShaped("parametrize rows of the wrong length")
        grid.append((names, rows))
    return grid


def _checks(body: list[ast.stmt], names: dict[str, Any]) -> tuple[Step, ...]:
    steps: list[Step] = []
    statements = body[1:] if body and _is_docstring(body[0]) else body
    if not statements:
        raise NotShaped("an empty test")
    local: dict[str, Any] = dict(names)
    for stmt in statements:
        steps.append(_statement(stmt, local))
    if not any(s.check is not None for s in steps):
        raise NotShaped("a test that checks nothing")
    return tuple(steps)


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) \
        and isinstance(stmt.value.value, str)


def _statement(stmt: ast.stmt, local: dict[str, Any]) -> Step:
    if isinstance(stmt, ast.Assign | ast.AnnAssign):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        if stmt.value is None or not all(isinstance(t, ast.Name | ast.Tuple) for t in targets):
            raise NotShaped("an assignment to something other than names")
        _free_of_self(stmt)
        for target in targets:
            for node in ast.walk(target):
                if isinstance(node, ast.Name):
                    local.pop(node.id, None)
        if len(targets) == 1 and isinstance(targets[0], ast.Name):
            with contextlib.suppress(NotShaped):
                local[targets[0].id] = _literal(stmt.value, local)
        return Step("exec", ast.unparse(stmt))
    if isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
        _free_of_self(stmt)
        local.pop(stmt.target.id, None)
        return Step("exec", ast.unparse(stmt))
    if isinstance(stmt, ast.Assert):
        return _assert(stmt.test, local)
    if isinstance(stmt, ast.With):
        return _with_raises(stmt, local)
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        return _unittest_assert(stmt.value, local)
    raise NotShaped(f"a {type(stmt).__name__} statement")


def _free_of_self(node: ast.AST) -> None:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id in ("self", "cls"):
            raise NotShaped("uses self")
        if isinstance(sub, ast.Yield | ast.YieldFrom | ast.Await | ast.NamedExpr):
            raise NotShaped(f"a {type(sub).__name__}")


def _actual(node: ast.expr) -> str:
    _free_of_self(node)
    return ast.unparse(node)


def _eval(node: ast.expr, how: str, expected: Any = None, options: tuple = (),
          text: str = "") -> Step:
    return Step("eval", _actual(node), Check(how, expected, options, text))


def _assert(test: ast.expr, local: dict[str, Any]) -> Step:
    text = f"assert {ast.unparse(test)}"
    if isinstance(test, ast.Compare) and len(test.comparators) == 1:
        test = ast.Compare(_decided(test.left, local), test.ops,
                           [_decided(test.comparators[0], local)])
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return _eval(test.operand, "falsy", text=text)
    if isinstance(test, ast.Call) and ast.unparse(test.func) in ("math.isclose", "isclose"):
        if len(test.args) != 2 or any(k.arg not in ("rel_tol", "abs_tol") for k in test.keywords):
            raise NotShaped("an isclose this reader does not follow")
        tol = {k.arg: _literal(k.value, local) for k in test.keywords}
        actual, expected = _split(test.args[0], test.args[1], local)
        return _eval(actual, "isclose", expected,
                     (tol.get("rel_tol", 1e-9), tol.get("abs_tol", 0.0)), text)
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, op, right = test.left, test.ops[0], test.comparators[0]
        if isinstance(op, ast.Is | ast.IsNot):
            if not (isinstance(right, ast.Constant) and right.value in (None, True, False)):
                raise NotShaped("an identity check against a non-constant")
            return _eval(left, "is" if isinstance(op, ast.Is) else "is-not", right.value,
                         text=text)
        if isinstance(op, ast.In | ast.NotIn):
            return _eval(right, "in" if isinstance(op, ast.In) else "not-in",
                         _literal(left, local), text=text)
        if isinstance(op, ast.Eq | ast.NotEq):
            approx = _approx(right, local) or _approx(left, local)
            if approx is not None:
                actual = left if _approx(right, local) else right
                if isinstance(op, ast.NotEq):
                    raise NotShaped("a != approx")
                return _eval(actual, "approx", approx[0], approx[1], text)
            actual, expected = _split(left, right, local)
            return _eval(actual, "eq" if isinstance(op, ast.Eq) else "ne", expected, text=text)
        raise NotShaped(f"an assert with {type(op).__name__}")
    if isinstance(test, ast.Compare | ast.BoolOp):
        raise NotShaped("a compound assert")
    return _eval(test, "truthy", text=text)


def _decided(node: ast.expr, local: dict[str, Any]) -> ast.expr:
    """``A if isinstance(LITERAL, TYPE) else B`` with the condition decided statically (the
    benchmark's weak tests write ``pytest.approx(x) if isinstance(x, float) else x``)."""
    if not isinstance(node, ast.IfExp):
        return node
    cond = node.test
    types = {"float": float, "int": int, "str": str, "bool": bool, "list": list, "tuple": tuple,
             "dict": dict, "set": set, "bytes": bytes}
    if isinstance(cond, ast.Call) and isinstance(cond.func, ast.Name) and \
            cond.func.id == "isinstance" and len(cond.args) == 2 and not cond.keywords:
        kinds = cond.args[1].elts if isinstance(cond.args[1], ast.Tuple) else [cond.args[1]]
        if all(isinstance(k, ast.Name) and k.id in types for k in kinds):
            value = _literal(cond.args[0], local)
            hit = isinstance(value, tuple(types[k.id] for k in kinds))  # type: ignore[union-attr]
            return node.body if hit else node.orelse
    raise NotShaped("a conditional expected value")


def _split(a: ast.expr, b: ast.expr, local: dict[str, Any]) -> tuple[ast.expr, Any]:
    """(actual expression, expected literal): the literal side is the expected one."""
    for actual, other in ((a, b), (b, a)):
        try:
            return actual, _literal(other, local)
        except NotShaped:
            continue
    raise NotShaped("a comparison with no literal side")


def _approx(node: ast.expr, local: dict[str, Any]) -> tuple[Any, tuple] | None:
    if not (isinstance(node, ast.Call) and ast.unparse(node.func) in ("pytest.approx", "approx")):
        return None
    if len(node.args) != 1 or any(k.arg not in ("rel", "abs") for k in node.keywords):
        raise NotShaped("an approx this reader does not follow")
    tol = {k.arg: _literal(k.value, local) for k in node.keywords}
    return _literal(node.args[0], local), (tol.get("rel"), tol.get("abs"))


def _exceptions(node: ast.expr) -> tuple[str, ...]:
    items = node.elts if isinstance(node, ast.Tuple) else [node]
    if not all(isinstance(i, ast.Name | ast.Attribute) for i in items):
        raise NotShaped("an expected exception that is not a name")
    return tuple(ast.unparse(i).rsplit(".", 1)[-1] for i in items)


def _with_raises(stmt: ast.With, local: dict[str, Any]) -> Step:
    if len(stmt.items) != 1 or stmt.items[0].optional_vars is not None or len(stmt.body) != 1:
        raise NotShaped("a with block this reader does not follow")
    call = stmt.items[0].context_expr
    if not isinstance(call, ast.Call):
        raise NotShaped("a with block that is not pytest.raises")
    func = ast.unparse(call.func)
    if func in ("pytest.raises", "raises"):
        if len(call.args) != 1 or any(k.arg != "match" for k in call.keywords):
            raise NotShaped("a pytest.raises this reader does not follow")
        match = _literal(call.keywords[0].value, local) if call.keywords else None
    elif func in ("self.assertRaises", "self.assertRaisesRegex"):
        if len(call.args) != (1 if func.endswith("Raises") else 2) or call.keywords:
            raise NotShaped("an assertRaises this reader does not follow")
        match = _literal(call.args[1], local) if len(call.args) == 2 else None
    else:
        raise NotShaped(f"a with {func[:40]} block")
    body = stmt.body[0]
    if isinstance(body, ast.Expr):
        source = _actual(body.value)
    elif isinstance(body, ast.Assign):
        _free_of_self(body)
        source = ast.unparse(body.value)
    else:
        raise NotShaped("a raises block with a statement")
    names = _exceptions(call.args[0])
    return Step("eval", source, Check("raises", None, (names, match),
                                      f"{func}({ast.unparse(call.args[0])})"))


def _unittest_assert(call: ast.Call, local: dict[str, Any]) -> Step:
    func = call.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
            and func.value.id == "self"):
        raise NotShaped("a call statement")
    name, args = func.attr, list(call.args)
    keywords = {k.arg: k.value for k in call.keywords if k.arg != "msg"}
    text = f"self.{name}(...)"
    if name in _UNITTEST_EQUAL or name in ("assertNotEqual", "assertCountEqual",
                                           "assertAlmostEqual", "assertNotAlmostEqual"):
        if len(args) < 2:
            raise NotShaped(f"{name} with keyword arguments")
        actual, expected = _split(args[0], args[1], local)
        if name in _UNITTEST_EQUAL and not keywords and len(args) <= 3:
            kind = _UNITTEST_EQUAL[name]
            return _eval(actual, "eq", expected, (kind.__name__,) if kind else (), text)
        if name == "assertNotEqual" and not keywords:
            return _eval(actual, "ne", expected, text=text)
        if name == "assertCountEqual" and not keywords:
            return _eval(actual, "count", expected, text=text)
        if name == "assertAlmostEqual" and set(keywords) <= {"places", "delta"}:
            places = _literal(args[2], local) if len(args) > 2 else \
                (_literal(keywords["places"], local) if "places" in keywords else None)
            delta = _literal(keywords["delta"], local) if "delta" in keywords else None
            return _eval(actual, "almost", expected, (places, delta), text)
        raise NotShaped(f"{name} with options")
    if keywords or not args:
        raise NotShaped(f"{name} with options")
    simple = {"assertTrue": ("truthy", None), "assertFalse": ("falsy", None),
              "assertIsNone": ("is", None), "assertIsNotNone": ("is-not", None)}
    if name in simple and len(args) <= 2:
        how, expected = simple[name]
        return _eval(args[0], how, expected, text=text)
    if name in ("assertIn", "assertNotIn") and len(args) in (2, 3):
        return _eval(args[1], "in" if name == "assertIn" else "not-in",
                     _literal(args[0], local), text=text)
    if name in ("assertIs", "assertIsNot") and len(args) in (2, 3):
        other = args[1]
        if not (isinstance(other, ast.Constant) and other.value in (None, True, False)):
            raise NotShaped(f"{name} against a non-constant")
        return _eval(args[0], "is" if name == "assertIs" else "is-not", other.value, text=text)
    if name == "assertRaises" and len(args) >= 2:
        source = f"{_actual(args[1])}({', '.join(_actual(a) for a in args[2:])})"
        return Step("eval", source, Check("raises", None, (_exceptions(args[0]), None), text))
    raise NotShaped(f"a {name} call")


_CONSTRUCTORS = {"set": set, "frozenset": frozenset, "tuple": tuple, "list": list, "dict": dict}


def _literal(node: ast.expr, local: dict[str, Any]) -> Any:
    """The value of a literal expression (or of a name bound to one); NotShaped otherwise."""
    if isinstance(node, ast.Name):
        if node.id in local:
            return local[node.id]
        raise NotShaped(f"{node.id} is not a literal")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        if node.func.id in _CONSTRUCTORS and len(node.args) <= 1:
            inner = _literal(node.args[0], local) if node.args else ()
            return _CONSTRUCTORS[node.func.id](inner)
        if node.func.id == "float" and len(node.args) == 1 and \
                isinstance(node.args[0], ast.Constant) and \
                str(node.args[0].value).strip().lower().lstrip("+-") in ("inf", "nan",
                                                                       "infinity"):
            return float(node.args[0].value)
    if isinstance(node, ast.Attribute) and ast.unparse(node) in ("math.inf", "math.nan"):
        return float(node.attr)
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        items = [_literal(e, local) for e in node.elts]
        return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise NotShaped("a dict with **")
        return {_literal(k, local): _literal(v, local)  # type: ignore[arg-type]
                for k, v in zip(node.keys, node.values, strict=False)}
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise NotShaped(f"{ast.unparse(node)[:40]} is not a literal") from exc


# -- doctests -----------------------------------------------------------------------------------

def _doctest(reader: _Reader, test: Any) -> ValueTest:
    path, _, dotted = test.id.partition("::")
    source = reader.text(path)
    if source is None:
        raise NotShaped("the module cannot be read")
    trouble = reader.conftest_trouble(path) or reader.config_mentions(
        "doctest_optionflags", "doctest_encoding", "required_plugins")
    if trouble:
        raise NotShaped(trouble)
    doc = _docstring(pyparse.parse(source), dotted)
    if doc is None:
        raise NotShaped("no docstring found for the doctest")
    examples = doctest.DocTestParser().get_examples(doc)
    if not examples:
        raise NotShaped("no examples")
    steps = []
    for ex in examples:
        flags = DOCTEST_FLAGS
        for flag, on in ex.options.items():
            flags = flags | flag if on else flags & ~flag
        if flags & doctest.SKIP:
            continue  # doctest does not run it either
        if "getfixture" in ex.source:
            raise NotShaped("an example that uses a pytest fixture")
        _doctest_example_shape(ex)
        steps.append(Step("doctest", ex.source,
                          Check("doctest", None, (ex.want, ex.exc_msg, flags),
                                f">>> {ex.source.strip()[:80]}")))
    if not steps:
        raise NotShaped("every example is skipped")
    return ValueTest(test.id, "doctest", path, (tuple(steps),), reader.pythonpath(),
                     warnings=reader.ini("filterwarnings"))


def _doctest_example_shape(ex: doctest.Example) -> None:
    """Whether the server can judge this example from plain values: results shown must be
    literals (a custom object's repr is not plain data)."""
    tree = pyparse.parse(ex.source, mode="exec")
    if not ex.want.strip() or ex.exc_msg is not None:
        return
    shown = [n for n in ast.walk(tree) if isinstance(n, ast.Expr)
             and not (isinstance(n.value, ast.Call) and ast.unparse(n.value.func) == "print")]
    if not shown:
        return  # only printed text
    for line in ex.want.strip().splitlines():
        try:
            ast.literal_eval(line.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            if not (len(shown) == 1 and _literal_text(ex.want)):
                raise NotShaped("an example that shows something other than a literal") from None


def _literal_text(want: str) -> bool:
    try:
        ast.literal_eval(want.strip())
        return True
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def _docstring(tree: ast.Module, dotted: str) -> str | None:
    """The raw docstring of the object a doctest id names (``pkg.mod.Class.func``)."""
    parts = dotted.split(".")
    for start in range(len(parts) + 1):
        node: ast.AST = tree
        for name in parts[start:]:
            found = next((c for c in ast.iter_child_nodes(node)
                          if isinstance(c, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                          and c.name == name), None)
            if found is None:
                break
            node = found
        else:
            if node is not tree:
                return ast.get_docstring(node, clean=False)  # type: ignore[arg-type]
    return None
