"""The package's shape, checked from the source text alone (nothing is imported).

Every ``.py`` file under ``server/`` (the package ``plancode``) and ``trainer/``
(``plancode.trainer``) is parsed with ``ast``; every import counts, at module level, under
``if TYPE_CHECKING:`` or inside a function, because each is a dependency a reader must follow
and a type-only circle is still a circle in the design. The rules (DESIGN.md, "Layout and
dependency rule"):

* no import cycles among plancode modules;
* the runtime (``plancode`` outside ``plancode.trainer``) never imports the trainer, torch,
  transformers, peft or accelerate: installing the server stays light;
* nothing imports the old top-level names ``server`` or ``trainer``;
* every package folder is listed in pyproject.toml's ``[tool.setuptools] packages``.

Packages: ``from plancode.pipeline import Pipeline`` needs ``plancode/pipeline/__init__.py``,
so it is an edge to ``plancode.pipeline``; ``from plancode.pipeline import candidates`` is an
edge to the submodule ``plancode.pipeline.candidates`` (and to the packages whose
``__init__`` that import runs). A module never gets an edge to a package it lives in merely
for importing one of that package's submodules: Python has begun that package's ``__init__``
before the module runs, so such an edge would make every re-exporting ``__init__`` a circle.
Reaching for a name that only ``__init__`` defines (``from plancode.pipeline import
Candidate`` inside ``plancode.pipeline``) does count.
"""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOTS = {"server": "plancode", "trainer": "plancode.trainer"}  # folder -> package name
TRAINER = "plancode.trainer"
HEAVY = ("torch", "transformers", "peft", "accelerate")
OLD_NAMES = ("server", "trainer")


@dataclass
class Module:
    """One source file: its module name and what it imports."""

    name: str
    path: Path
    is_package: bool
    imports: list[Import] = field(default_factory=list)

    @property
    def package(self) -> str:
        """The package relative imports start from."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


@dataclass(frozen=True)
class Import:
    """One imported target: ``module`` and, for ``from module import name``, the name."""

    module: str  # absolute dotted name ('' for a relative import that cannot be resolved)
    name: str | None
    line: int
    level: int = 0  # the leading dots of a relative import


def module_name(path: Path) -> tuple[str, bool]:
    """``server/x/y.py`` -> (plancode.x.y, False); ``trainer/a/__init__.py`` ->
    (plancode.trainer.a, True)."""
    rel = path.relative_to(REPO)
    parts = [ROOTS[rel.parts[0]], *rel.parts[1:]]
    is_package = parts[-1] == "__init__.py"
    parts = parts[:-1] if is_package else [*parts[:-1], parts[-1].removesuffix(".py")]
    return ".".join(parts), is_package


def source_files(folders: tuple[str, ...] = tuple(ROOTS)) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py")
                  if "__pycache__" not in p.parts)


def resolve(package: str, level: int, module: str | None) -> str:
    """The absolute name of ``from <level dots><module> import ...`` inside ``package``."""
    if level == 0:
        return module or ""
    if not package:
        return ""
    parts = package.split(".")
    if level - 1 >= len(parts):
        return ""
    base = parts[:len(parts) - (level - 1)]
    return ".".join([*base, module] if module else base)


def parse(path: Path, name: str, is_package: bool) -> Module:
    mod = Module(name, path, is_package)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):  # every import: module level, TYPE_CHECKING, function-local
        if isinstance(node, ast.Import):
            mod.imports += [Import(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = resolve(mod.package, node.level, node.module)
            mod.imports += [Import(base, alias.name, node.lineno, node.level)
                            for alias in node.names]
    return mod


def load(folders: tuple[str, ...] = tuple(ROOTS)) -> dict[str, Module]:
    modules = {}
    for path in source_files(folders):
        name, is_package = module_name(path)
        modules[name] = parse(path, name, is_package)
    return modules


def prefixes(name: str) -> list[str]:
    """``a.b.c`` -> [a, a.b, a.b.c]."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def edges(modules: dict[str, Module]) -> dict[str, dict[str, int]]:
    """Module -> {plancode module it depends on: line of the first import that says so}."""
    graph: dict[str, dict[str, int]] = {name: {} for name in modules}
    for mod in modules.values():
        inside = set(prefixes(mod.package)) if mod.package else set()
        for imp in mod.imports:
            if not imp.module:
                continue
            full = f"{imp.module}.{imp.name}" if imp.name and imp.name != "*" else ""
            if full in modules:  # from package import submodule: the packages on the way
                needed, own = prefixes(full), ""
            else:  # import a.b, or from a.b import name: a.b's own namespace too
                needed, own = prefixes(imp.module), imp.module
            for target in needed:
                if target in modules and target != mod.name and (
                        target == own or target not in inside):
                    graph[mod.name].setdefault(target, imp.line)
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle as a path (first == last), or None; deterministic (sorted order)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


def describe(cycle: list[str], graph: dict[str, dict[str, int]],
             modules: dict[str, Module]) -> str:
    steps = [f"  {a} ({modules[a].path.relative_to(REPO)}:{graph[a][b]}) imports {b}"
             for a, b in zip(cycle, cycle[1:], strict=False)]
    return "import cycle: " + " -> ".join(cycle) + "\n" + "\n".join(steps)


def test_no_import_cycles() -> None:
    modules = load()
    graph = edges(modules)
    cycle = find_cycle(graph)
    assert cycle is None, describe(cycle, graph, modules)


def test_the_cycle_finder_sees_type_only_and_local_imports(tmp_path: Path) -> None:
    """The rule itself: a TYPE_CHECKING import and a function-local one close a cycle."""
    a = tmp_path / "a.py"
    a.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                 "    from plancode.x.b import B\n")
    b = tmp_path / "b.py"
    b.write_text("def f():\n    from .a import A\n")
    modules = {"plancode.x.a": parse(a, "plancode.x.a", False),
               "plancode.x.b": parse(b, "plancode.x.b", False),
               "plancode.x": Module("plancode.x", tmp_path / "__init__.py", True)}
    cycle = find_cycle(edges(modules))
    assert cycle == ["plancode.x.a", "plancode.x.b", "plancode.x.a"]


def test_package_edges_count_only_what_init_provides(tmp_path: Path) -> None:
    init = tmp_path / "__init__.py"
    init.write_text("from plancode.x.run import Run\n")
    run = tmp_path / "run.py"
    run.write_text("from plancode.x import helper\n")  # a submodule: no edge to plancode.x
    helper = tmp_path / "helper.py"
    helper.write_text("")
    modules = {"plancode.x": parse(init, "plancode.x", True),
               "plancode.x.run": parse(run, "plancode.x.run", False),
               "plancode.x.helper": parse(helper, "plancode.x.helper", False)}
    assert find_cycle(edges(modules)) is None
    run.write_text("from plancode.x import Run\n")  # a name only __init__ defines: a cycle
    modules["plancode.x.run"] = parse(run, "plancode.x.run", False)
    assert find_cycle(edges(modules)) == ["plancode.x", "plancode.x.run", "plancode.x"]


def test_the_runtime_never_imports_the_trainer_or_training_libraries() -> None:
    bad = []
    for mod in load().values():
        if mod.name == TRAINER or mod.name.startswith(TRAINER + "."):
            continue
        for imp in mod.imports:
            targets = [imp.module] + ([f"{imp.module}.{imp.name}"] if imp.name else [])
            if any(t == TRAINER or t.startswith(TRAINER + ".") for t in targets) or \
                    imp.module.split(".")[0] in HEAVY:
                bad.append(f"{mod.path.relative_to(REPO)}:{imp.line} imports "
                           f"{targets[-1]}")
    assert not bad, "server/ must stay light (DESIGN.md):\n" + "\n".join(bad)


def test_nothing_imports_the_old_top_level_names() -> None:
    """``server`` and ``trainer`` are folders, not packages: plancode's own code, its tests
    and its benchmark scripts import ``plancode...`` (a user's ``server`` package stays theirs).
    """
    paths = [*source_files(), *sorted((REPO / "tests").glob("*.py")),
             *sorted((REPO / "benchmarks").glob("*.py"))]
    bad = [f"{path.relative_to(REPO)}:{imp.line} imports {imp.module}"
           for path in paths for imp in parse(path, "", False).imports
           if imp.level == 0 and imp.module.split(".")[0] in OLD_NAMES]
    assert not bad, "import plancode... (server/ is plancode, trainer/ is plancode.trainer):\n" \
        + "\n".join(bad)


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = config["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    assert {d: p for p, d in setuptools["package-dir"].items()} == ROOTS
    found = {module_name(p)[0] for p in source_files() if p.name == "__init__.py"}
    assert not found - listed, f"package folders missing from pyproject.toml: " \
        f"{sorted(found - listed)}"
    assert not listed - found, f"pyproject.toml lists packages with no folder: " \
        f"{sorted(listed - found)}"
