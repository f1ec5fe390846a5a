"""Finding functions and splicing candidate bodies, on awkward real-world files."""

from __future__ import annotations

import ast

import pytest

from plancode.analysis.functions import find_function, functions
from plancode.analysis.splice import SpliceError, splice

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

CANDIDATE = '''from typing import List
import math

def close(self) -> None:
    """The model's own docstring, which must not replace the user's."""
    if self.is_open:
        self.is_open = math.isfinite(1.0) and False

check()
'''


def _line(src: str, needle: str) -> int:
    return next(i for i, line in enumerate(src.splitlines()) if needle in line)


def test_finds_innermost_function_and_its_parts() -> None:
    outer = find_function(SOURCE, _line(SOURCE, "@cache"))
    assert outer is not None and outer.qualname == "outer" and not outer.is_method
    assert outer.header == "@cache\ndef outer(a: int,\n          b: int) -> int:"
    assert outer.docstring is not None and ">>> outer(1, 2)" in outer.docstring
    assert outer.body_state == "complete"
    inner = find_function(SOURCE, _line(SOURCE, "return x"))
    assert inner is not None and inner.qualname == "outer.inner"


def test_methods_async_and_empty_bodies() -> None:
    opener = find_function(SOURCE, _line(SOURCE, "        ..."))
    assert opener is not None and opener.qualname == "Box.open" and opener.is_method
    assert opener.body_is_empty
    closer = find_function(SOURCE, _line(SOURCE, '"""Close it."""'))
    assert closer is not None and closer.body_is_empty and closer.body_indent == "        "
    assert closer.indent_unit == "    "


def test_partial_body_is_told_apart_from_complete() -> None:
    src = "def f(x):\n    y = x + 1\n    # TODO: finish\n    pass\n"
    info = find_function(src, 1)
    assert info is not None and info.body_state == "partial"


def test_cursor_below_an_empty_function_belongs_to_it() -> None:
    src = 'def f(x):\n    """Double x."""\n\n    \n\ndef g():\n    return 1\n'
    info = find_function(src, 3)
    assert info is not None and info.name == "f"


def test_problem_text_is_imports_signature_and_docstring() -> None:
    outer = find_function(SOURCE, 5)
    assert outer is not None
    assert outer.problem.startswith("import os\nfrom typing import Any\n\n@cache\ndef outer(")
    assert outer.problem.rstrip().endswith('    >>> outer(1, 2)\n    3\n    """')
    assert outer.context == "", "siblings it does not name are left out"
    closer = find_function(SOURCE, _line(SOURCE, '"""Close it."""'))
    assert closer is not None
    assert closer.problem.endswith(
        '# a method of class Box\ndef close(self):\n    """Close it."""\n')
    assert closer.context.startswith("class Box:\n")
    assert "async def open(self) -> None:\n        ...\n" in closer.context + "\n"
    assert "def close" not in closer.context


def test_context_shows_siblings_the_docstring_names() -> None:
    src = ('def helper(x):\n    """Scale x."""\n    return 2 * x\n\n\ndef other():\n    pass\n\n\n'
           'def main(v):\n    """Apply helper to v."""\n')
    info = find_function(src, 9)
    assert info is not None and info.name == "main"
    assert info.context == 'def helper(x):\n    """Scale x."""\n    ...'
    assert "other" not in info.context


def test_tolerates_unfinished_code() -> None:
    names = [f.name for f in functions(SOURCE)]
    assert {"outer", "inner", "open", "close"} <= set(names)
    assert find_function(SOURCE, 0) is None


def test_splice_method_keeps_signature_docstring_and_the_rest_of_the_file() -> None:
    info = find_function(SOURCE, _line(SOURCE, '"""Close it."""'))
    assert info is not None
    result = splice(SOURCE, info, CANDIDATE)
    assert "    def close(self):\n        \"\"\"Close it.\"\"\"\n        if self.is_open:\n" \
        in result.text
    assert "model's own docstring" not in result.text and "check()" not in result.text
    assert "pass\n\ndef broken" not in result.text
    assert result.imports == ["import math"], "only imports the body uses are carried"
    before, after = SOURCE.split("    def close(self):")[0], SOURCE.split("        pass\n")[1]
    assert result.text.startswith("import os\nfrom typing import Any\nimport math\n")
    assert result.text.endswith(after)
    assert before.split("import os\nfrom typing import Any\n")[1] in result.text


def test_splice_into_a_tab_indented_crlf_file_with_unicode() -> None:
    src = ('# -*- coding: utf-8 -*-\r\n"""Módulo de ejemplo 🐍."""\r\n\r\n'
           'def saluda(nombre):\r\n\t"""Devuelve «hola, nombre» 👋."""\r\n\r\n'
           'def otra():\r\n\treturn "ñ"\r\n')
    info = find_function(src, 4)
    assert info is not None and info.name == "saluda" and info.newline == "\r\n"
    cand = ('def saluda(nombre):\n    if nombre:\n        return f"hola, {nombre} 👋"\n'
            '    return "hola"\n')
    out = splice(src, info, cand).text
    assert ('\t"""Devuelve «hola, nombre» 👋."""\r\n\tif nombre:\r\n'
            '\t\treturn f"hola, {nombre} 👋"\r\n\treturn "hola"\r\n') in out
    assert out.endswith('def otra():\r\n\treturn "ñ"\r\n')
    assert "\n" not in out.replace("\r\n", "")
    compile(out, "x.py", "exec")


def test_splice_nested_and_decorated_function_compiles() -> None:
    src = ("import functools\n\n@functools.cache\ndef fib(n: int) -> int:\n"
           '    """Fibonacci."""\n    ...\n\nprint(fib(5))\n')
    info = find_function(src, 3)
    assert info is not None
    out = splice(src, info,
                 "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n").text
    ns: dict = {}
    exec(compile(out.replace("print(fib(5))", "RESULT = fib(10)"), "m.py", "exec"), ns)
    assert ns["RESULT"] == 55
    assert "@functools.cache\ndef fib(n: int) -> int:" in out


def test_splice_one_liner_candidate_and_bare_body() -> None:
    src = 'def double(x):\n    """Twice x."""\n'
    info = find_function(src, 0)
    assert info is not None
    assert splice(src, info, "def double(x): return 2 * x").text.endswith(
        '"""Twice x."""\n    return 2 * x\n')
    assert splice(src, info, "return x + x").text.endswith('"""Twice x."""\n    return x + x\n')


def test_splice_carries_helpers_the_body_calls() -> None:
    src = 'import re\n\n\ndef count_primes(n):\n    """Count primes below n."""\n'
    info = find_function(src, 3)
    assert info is not None
    cand = ("import re\nimport math\n\nLIMIT = 10\n\ndef is_prime(k):\n"
            "    return k > 1 and all(k % d for d in range(2, math.isqrt(k) + 1))\n\n"
            "def unused():\n    pass\n\n"
            "def count_primes(n):\n    return sum(is_prime(k) for k in range(n))\n")
    result = splice(src, info, cand)
    assert result.helpers == ["is_prime"] and result.imports == ["import math"]
    ns: dict = {}
    exec(result.text, ns)
    assert ns["count_primes"](20) == 8
    assert "unused" not in result.text and "LIMIT" not in result.text


def test_splice_rejects_invalid_or_unrelated_code() -> None:
    src = 'def f(x):\n    """Doc."""\n'
    info = find_function(src, 0)
    assert info is not None
    with pytest.raises(SpliceError, match="does not parse"):
        splice(src, info, "def f(x):\n    return (\n")
    with pytest.raises(SpliceError, match="no function named 'f'"):
        splice(src, info, "def g(x):\n    return 1\n\ndef h():\n    pass\n")


def test_splice_preserves_everything_outside_the_body() -> None:
    src = ("x = 1  # keep me\n\n\ndef f(a):\n    '''Doc.'''\n    pass\n\n\n"
           "# trailing comment\ny = [f(i) for i in range(3)]\n")
    info = find_function(src, 4)
    assert info is not None
    out = splice(src, info, "def f(a):\n    return a * 3\n").text
    assert out == src.replace("    pass\n", "    return a * 3\n")
    ast.parse(out)
