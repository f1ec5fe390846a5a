"""Deterministic repairs of a candidate before any test runs, at no model cost.

Small models often use a standard-library module or a typing name without importing it
(``re.sub`` under ``from typing import *``), which fails every test with a NameError that a
repair round then has to spend a whole generation on. Here the spliced file is analysed with
the ``ast`` module (a pyflakes-style undefined-name check) and each undefined name that is a
standard-library module (``re``, ``math``, ``itertools``...), a ``typing`` name (``List``,
``Optional``...) or a well-known standard-library function or class (``defaultdict``,
``reduce``, ``sqrt``...) gets its import added at the top of the file. Code that does not
parse is reported, never tested.

The check is scope-insensitive on purpose: a name counts as defined when it is bound anywhere
in the file (assignment, parameter, import, def, class, loop or comprehension variable,
``except ... as``, ``global``) or is a builtin. That can miss an undefined name (a false
negative costs a test run) but never adds an import for a name the code defines.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import sys
import typing
from dataclasses import dataclass, field

from plancode.analysis import pyparse

# Names people use bare that come from a standard-library module.
FROM_IMPORTS: dict[str, str] = {
    **{n: "typing" for n in typing.__all__ if n[:1].isupper()},
    **{n: "collections" for n in ("defaultdict", "Counter", "deque", "OrderedDict",
                                   "namedtuple", "ChainMap")},
    **{n: "functools" for n in ("reduce", "lru_cache", "cache", "partial", "cmp_to_key",
                                 "total_ordering", "wraps")},
    **{n: "itertools" for n in ("permutations", "combinations", "product", "accumulate",
                                 "groupby", "islice", "zip_longest",
                                 "combinations_with_replacement", "pairwise")},
    **{n: "math" for n in ("sqrt", "floor", "ceil", "gcd", "lcm", "inf", "pi", "isqrt",
                            "factorial", "comb", "log2", "log10", "prod", "isclose",
                            "hypot")},
    **{n: "heapq" for n in ("heappush", "heappop", "heapify", "nlargest", "nsmallest",
                             "heappushpop")},
    **{n: "bisect" for n in ("bisect_left", "bisect_right", "insort", "bisect")},
    "Fraction": "fractions",
    "Decimal": "decimal",
    "ROUND_HALF_UP": "decimal",
    "dataclass": "dataclasses",
    "Enum": "enum",
    "Path": "pathlib",
    "dedent": "textwrap",
    "ascii_lowercase": "string",
    "ascii_uppercase": "string",
    "ascii_letters": "string",
}
# Modules imported as ``import NAME`` when used bare (public stdlib modules only).
MODULES = frozenset(n for n in sys.stdlib_module_names if not n.startswith("_")
                    and n not in {"this", "antigravity", "idlelib", "turtledemo"})


@dataclass
class StaticCheck:
    """What static analysis found in (and did to) one candidate's file."""

    text: str  # the file, with imports added
    error: str = ""  # why the candidate cannot be tested ('' when it can)
    added: list[str] = field(default_factory=list)  # import lines added
    undefined: list[str] = field(default_factory=list)  # undefined names left unresolved


def _star_names(module: str) -> set[str]:
    """Names ``from module import *`` binds, for standard-library modules only."""
    if module.split(".")[0] not in MODULES:
        return set()
    try:
        mod = importlib.import_module(module)
    except Exception:  # noqa: BLE001 - an odd stdlib module must not break the analysis
        return set()
    names = getattr(mod, "__all__", None)
    return set(names) if names is not None else {n for n in dir(mod) if not n.startswith("_")}


def bound_names(tree: ast.AST) -> set[str]:
    """Every name the code binds anywhere (scope-insensitive)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                if a.name == "*":
                    names |= _star_names(node.module or "") if not node.level else set()
                else:
                    names.add(a.asname or a.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            names |= set(node.names)
        elif isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
    return names


def undefined_names(tree: ast.AST) -> list[str]:
    """Names loaded somewhere but bound nowhere and not builtins, in order of first use."""
    bound = bound_names(tree) | set(dir(builtins)) | {"__name__", "__file__", "__doc__"}
    loads = sorted((node.lineno, node.col_offset, node.id) for node in ast.walk(tree)
                   if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
                   and node.id not in bound)
    return list(dict.fromkeys(name for _, _, name in loads))


def import_for(name: str) -> str | None:
    """The import line that defines ``name``, when it is a known standard-library name."""
    if name in FROM_IMPORTS:
        return f"from {FROM_IMPORTS[name]} import {name}"
    if name in MODULES:
        return f"import {name}"
    return None


def _insert_at(tree: ast.Module, text: str) -> int:
    """Offset after the docstring, ``from __future__`` imports and leading imports."""
    line = 0
    for node in tree.body:
        is_doc = (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                  and isinstance(node.value.value, str) and node is tree.body[0])
        if is_doc or isinstance(node, ast.Import | ast.ImportFrom):
            line = node.end_lineno or line
        else:
            break
    lines = text.splitlines(keepends=True)
    return sum(len(x) for x in lines[:line])


def check(text: str) -> StaticCheck:
    """Parse ``text`` (a whole module with the candidate in it) and add missing imports."""
    try:
        tree = pyparse.parse(text)
    except SyntaxError as exc:
        return StaticCheck(text, f"code does not parse: {exc.msg} (line {exc.lineno})")
    missing = undefined_names(tree)
    added = [line for name in missing if (line := import_for(name))]
    left = [name for name in missing if import_for(name) is None]
    if not added:
        return StaticCheck(text, undefined=left)
    nl = "\r\n" if "\r\n" in text else "\n"
    at = _insert_at(tree, text)
    block = "".join(line + nl for line in added)
    if at and not text[:at].endswith(("\n", "\r")):
        block = nl + block
    return StaticCheck(text[:at] + block + text[at:], added=added, undefined=left)
