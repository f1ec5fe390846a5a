"""What is known about a function beyond its text, worked out once from its ``FunctionInfo``.

``FunctionInfo`` (functions.py) is the function as written: signature, docstring literal,
body span. ``FunctionFacts`` adds what is derived from it: the docstring as a string, the
parameter names, and the examples the docstring states (doctest ``>>>`` lines and prose such
as ``add([1, 2]) == 3``). A run computes it once from the function it already found and passes
it down, so no stage re-reads the docstring or re-parses the signature.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from functools import cached_property

from plancode.analysis import pyparse
from plancode.analysis.functions import FunctionInfo
from plancode.testing.prose_examples import Example, doctest_examples, prose_examples


@dataclass(frozen=True)
class FunctionFacts:
    """A function and the facts its signature and docstring state."""

    info: FunctionInfo
    doc: str  # the docstring as a string ('' when it has none)
    parameters: tuple[str, ...]  # parameter names (self/cls of a method dropped)
    prose: tuple[Example, ...]  # examples stated in prose (``>>>`` lines are doctest's)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def has_examples(self) -> bool:
        """The docstring shows an example of its own (a ``>>>`` line or one in prose)."""
        return ">>>" in self.doc or bool(self.prose)

    @cached_property
    def examples(self) -> list[Example]:
        """Doctest and prose examples together, in docstring order."""
        return sorted(doctest_examples(self.doc, self.name) + list(self.prose),
                      key=lambda e: e.line)


def facts_of(info: FunctionInfo) -> FunctionFacts:
    """The facts of the function ``info`` describes (its docstring read, its header parsed)."""
    doc = docstring_text(info)
    params = parameters(info)
    return FunctionFacts(info, doc, tuple(params), tuple(prose_examples(doc, info.name, params)))


def docstring_text(info: FunctionInfo) -> str:
    """The function's docstring as a string ('' when it has none)."""
    try:
        value = ast.literal_eval(info.docstring or "''")
    except (ValueError, SyntaxError):
        return info.docstring or ""
    return value if isinstance(value, str) else ""


def parameters(info: FunctionInfo) -> list[str]:
    """The function's parameter names, from its signature (self/cls dropped)."""
    try:
        tree = pyparse.parse(textwrap.dedent(info.header).strip() + "\n    pass\n")
    except SyntaxError:
        return []
    func = next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef
                                                         | ast.AsyncFunctionDef)), None)
    if func is None:
        return []
    names = [a.arg for a in [*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs]]
    return names[1:] if info.is_method and names[:1] in (["self"], ["cls"]) else names
