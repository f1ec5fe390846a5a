"""Deterministic repairs: missing standard-library imports are added, broken code is refused."""

from __future__ import annotations

from plancode.pipeline.static_repair import check, undefined_names

SLUGIFY = '''"""Text helpers."""
from typing import *
from collections import *


def slugify(text: List[str]) -> str:
    counts = defaultdict(int)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
'''


def test_missing_module_import_is_added_after_the_imports() -> None:
    fixed = check(SLUGIFY)
    assert fixed.error == "" and fixed.added == ["import re"]
    assert fixed.text.splitlines()[:4] == ['"""Text helpers."""', "from typing import *",
                                           "from collections import *", "import re"]
    namespace: dict = {}
    exec(compile(fixed.text, "m.py", "exec"), namespace)
    assert namespace["slugify"]("Hello, World") == "hello-world"


def test_typing_and_well_known_function_names() -> None:
    fixed = check("def f(xs: Optional[List[int]]):\n    return sqrt(reduce(max, xs))\n")
    assert fixed.added == ["from typing import Optional", "from typing import List",
                           "from math import sqrt", "from functools import reduce"]
    assert fixed.text.startswith("from typing import Optional\n")


def test_names_the_code_binds_anywhere_are_not_imported() -> None:
    code = ("def f(re, xs):\n    for math in xs:\n        pass\n"
            "    try:\n        pass\n    except ValueError as string:\n        pass\n"
            "    return [heapq for heapq in xs]\n")
    assert undefined_names(__import__("ast").parse(code)) == []
    assert check(code).added == []


def test_unknown_names_are_reported_not_guessed() -> None:
    fixed = check("def f():\n    return helper_we_do_not_know(1)\n")
    assert fixed.added == [] and fixed.undefined == ["helper_we_do_not_know"]


def test_code_that_does_not_parse_is_refused() -> None:
    fixed = check("def f(:\n    pass\n")
    assert fixed.error.startswith("code does not parse")
