"""Finding the function around a line with tree-sitter, on real-world shapes of code."""

from __future__ import annotations

from server.analysis.functions import find_function, functions

SOURCE = '''import os
from typing import Any


@cache
def outer(a: int,
          b: int) -> int:
    """Add.

    >>> outer(1, 2)
    3
    """
    def inner(x):
        return x
    return inner(a) + b


class Box:
    async def open(self) -> None:
        ...

    def close(self):
        """Close it."""
        pass

def broken(x:
'''


def test_finds_innermost_function_and_its_parts() -> None:
    lines = SOURCE.splitlines()
    outer = find_function(SOURCE, lines.index("@cache"))
    assert outer is not None and outer.qualname == "outer"
    assert outer.header.startswith("@cache\ndef outer(a: int,")
    assert outer.docstring is not None and ">>> outer(1, 2)" in outer.docstring
    assert not outer.body_is_empty
    inner = find_function(SOURCE, lines.index("        return x"))
    assert inner is not None and inner.qualname == "outer.inner"


def test_methods_async_and_empty_bodies() -> None:
    lines = SOURCE.splitlines()
    opener = find_function(SOURCE, lines.index("        ..."))
    assert opener is not None and opener.qualname == "Box.open" and opener.body_is_empty
    closer = find_function(SOURCE, lines.index('        """Close it."""'))
    assert closer is not None and closer.body_is_empty and closer.body_indent == "        "


def test_problem_text_is_signature_docstring_and_imports() -> None:
    outer = find_function(SOURCE, 5)
    assert outer is not None
    problem = outer.problem
    assert problem.startswith("import os\nfrom typing import Any\n\n@cache\ndef outer(")
    assert problem.rstrip().endswith('"""')


def test_tolerates_unfinished_code() -> None:
    names = [f.name for f in functions(SOURCE)]
    assert {"outer", "inner", "open", "close"} <= set(names)
    assert find_function(SOURCE, 0) is None
