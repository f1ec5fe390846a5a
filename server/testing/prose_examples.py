"""Examples written in a docstring's prose, turned into checks: the user's tests too.

Many docstrings state examples without ``>>>``::

    For example:
    add([1, 2]) == 3
    is_prime(7) ➞ True
    encode("ab") -> "bc"
    fib(10) should return 55
    Input: arr = [1, 2], k = 1
    Output: 2

Each line that calls the function with literal arguments and gives a literal result becomes
one check, ``assert f(args) == result``, in a test file that exists only in the sandbox copy
(``test_plancode_docstring.py``). The checks are labelled ``docstring``: they are the user's
own words, so they count as the user's tests (early exit, verification), and the result says
where they came from. Nothing is evaluated here: arguments and results are read with
``ast.literal_eval``, so a line whose values are not plain literals is skipped.
"""

from __future__ import annotations

import ast
import doctest
import re
from dataclasses import dataclass

from plancode.analysis import pyparse
from plancode.testing.types import TestCase

FILE = "test_plancode_docstring.py"
KIND = "docstring"
MAX_LINE = 400
_OPERATOR = re.compile(
    r"^\s*#?\s*(==>|=>|==|➞|→|->|=(?!=)|:|,?\s*(?:it\s+)?(?:should\s+(?:return|be|give|output)|"
    r"returns?|gives|outputs?|is|evaluates\s+to)\b)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Example:
    """One example: a call of the function and the value it must give."""

    call: str  # e.g. "add([1, 2])"
    expected: str  # source of a literal, e.g. "3"
    line: int  # 0-based line in the docstring where it starts

    @property
    def text(self) -> str:
        return f"{self.call} == {self.expected}"

    def assertion(self) -> str:
        return f"assert {self.call} == {self.expected}"


_JSONISH = {"true": "True", "false": "False", "null": "None", "none": "None"}


def _pythonic(source: str) -> str:
    """``true``/``false``/``null`` written by people used to other languages, as Python."""
    return _JSONISH.get(source.strip().rstrip(".,;").lower(), source)


def _literal(source: str) -> bool:
    try:
        ast.literal_eval(source.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return bool(source.strip())


def _call_end(text: str, start: int) -> int | None:
    """Index just past the ``)`` closing the call whose ``(`` is at ``start``."""
    depth, quote, i = 0, "", start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1 if ch == ")" else None
        i += 1
    return None


def _literal_call(call: str, name: str) -> bool:
    try:
        node = pyparse.parse(call.strip(), mode="eval").body
    except SyntaxError:
        return False
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == name):
        return False
    values = [*node.args, *(k.value for k in node.keywords)]
    if any(isinstance(a, ast.Starred) for a in node.args):
        return False
    return all(_literal(ast.unparse(v)) for v in values)


def _expected(rest: str) -> str | None:
    """The longest leading literal of ``rest`` (after the last ``=`` of a chain)."""
    rest = rest.strip()
    first = rest.split()[0] if rest.split() else ""
    if first.rstrip(".,;").lower() in _JSONISH:
        return _pythonic(first)
    pieces = [rest]
    if re.search(r"\s=\s", rest):  # "1 + 9 + 0 = 10": the value is the last piece
        pieces.insert(0, re.split(r"\s=\s", rest)[-1])
    for piece in pieces:
        piece = piece.strip().rstrip(".;")
        for end in range(len(piece), 0, -1):
            head = piece[:end]
            if head[-1:].isspace() or not _literal(head):
                continue
            tail = piece[end:].strip()
            # "3 apples" and "3 + x" are not the literal 3; "3.", "3, since ..." are
            if tail and (tail[0].isalnum() or tail[0] in "+-*/%[") and not tail.lower(
                    ).startswith(("because", "since", "as ", "and ", "for ", "if ")):
                continue
            return ast.unparse(pyparse.parse(head.strip(), mode="eval").body)
    return None


def prose_examples(doc: str, name: str, params: list[str] | None = None) -> list[Example]:
    """The prose examples of ``name`` in ``doc`` (``>>>`` lines are left to doctest)."""
    found: dict[tuple[str, str], Example] = {}
    lines = doc.splitlines()
    call_at = re.compile(rf"(?<![\w.]){re.escape(name)}\s*\(")
    for i, raw in enumerate(lines):
        line = raw.strip()
        if line.startswith((">>>", "...")) or len(line) > MAX_LINE:
            continue
        for m in call_at.finditer(line):
            joined = "\n".join(x.strip() for x in [line, *lines[i + 1:i + 4]])
            end = _call_end(joined, m.end() - 1)
            if end is None:
                continue
            call = joined[m.start():end]
            if not _literal_call(call, name):
                continue
            after = joined[end:]
            if not after.split("\n")[0].strip():  # "f(1)" then "==> 4" on the next line
                after = after.replace("\n", " ", 1)
            op = _OPERATOR.match(after)
            if op is None:
                continue
            rest = after[op.end():]
            parts = rest.split("\n")
            value = None
            for k in range(1, len(parts) + 1):  # the rest of the line, else continued
                value = _expected(" ".join(parts[:k]))
                if value is not None:
                    break
            if value is not None:
                call = ast.unparse(pyparse.parse(call, mode="eval").body)
                found.setdefault((call, value), Example(call, value, i))
    if params:
        for ex in _input_output(lines, name, params) + _for_should_be(lines, name, params):
            found.setdefault((ex.call, ex.expected), ex)
    return sorted(found.values(), key=lambda e: e.line)


def _input_output(lines: list[str], name: str, params: list[str]) -> list[Example]:
    """``Input: a = [1, 2], k = 3`` ... ``Output: 5`` blocks (LeetCode style)."""
    out: list[Example] = []
    i = 0
    while i < len(lines):
        m = re.match(r"\s*Input\s*:\s*(.*)$", lines[i], re.IGNORECASE)
        if not m:
            i += 1
            continue
        start, text = i, m.group(1)
        i += 1
        while i < len(lines) and not re.match(r"\s*Output\s*:", lines[i], re.IGNORECASE):
            text += " " + lines[i].strip()
            i += 1
        if i >= len(lines):
            break
        result = _expected(re.sub(r"^\s*Output\s*:", "", lines[i], flags=re.IGNORECASE))
        values = _named_values(text, params)
        if result is not None and values is not None:
            args = ", ".join(values[p] for p in params)
            out.append(Example(f"{name}({args})", result, start))
        i += 1
    return out


_FOR = re.compile(r"^\s*For\s+(.+?)\s*,?\s+(?:the\s+)?(?:output|result|answer|return(?:ed)?"
                  r"\s+value)\s+(?:should\s+be|is|will\s+be)\s+(.+)$", re.IGNORECASE)


def _for_should_be(lines: list[str], name: str, params: list[str]) -> list[Example]:
    """``For lst = [1, 2] the output should be 3`` lines."""
    out = []
    for i, line in enumerate(lines):
        m = _FOR.match(line)
        if not m:
            continue
        values = _named_values(m.group(1), params)
        result = _expected(m.group(2))
        if values is not None and result is not None:
            out.append(Example(f"{name}({', '.join(values[p] for p in params)})", result, i))
    return out


def _named_values(text: str, params: list[str]) -> dict[str, str] | None:
    """``a = [1, 2], k : 3`` -> {"a": "[1, 2]", "k": "3"} when every parameter has a literal."""
    values: dict[str, str] = {}
    marks = [(m.start(), m.end(), m.group(1)) for m in
             re.finditer(rf"\b({'|'.join(map(re.escape, params))})\s*[:=]\s*", text)]
    for k, (_, end, param) in enumerate(marks):
        stop = marks[k + 1][0] if k + 1 < len(marks) else len(text)
        value = _expected(text[end:stop].strip().rstrip(",;").strip())
        if value is None:
            return None
        values[param] = value
    if len(params) == 1 and not values and _literal(text.strip()):
        values[params[0]] = text.strip()
    return values if set(values) == set(params) else None


def doctest_examples(doc: str, name: str) -> list[Example]:
    """``>>>`` examples whose source calls ``name`` with literals and whose output is one."""
    out = []
    try:
        parsed = doctest.DocTestParser().get_examples(doc)
    except ValueError:
        return []
    for ex in parsed:
        call, want = ex.source.strip(), ex.want.strip()
        if "\n" in call or not want or not _literal_call(call, name) or not _literal(want):
            continue
        out.append(Example(ast.unparse(pyparse.parse(call, mode="eval").body),
                           ast.unparse(pyparse.parse(want, mode="eval").body), ex.lineno))
    return out


def all_examples(doc: str, name: str, params: list[str] | None = None) -> list[Example]:
    """Doctest and prose examples together, in docstring order."""
    return sorted(doctest_examples(doc, name) + prose_examples(doc, name, params),
                  key=lambda e: e.line)


def test_file(module: str, name: str, examples: list[Example]) -> str:
    """The sandbox-only pytest file with one test per example. Floats compare approximately
    (``pytest.approx``), so ``0.1 + 0.2`` equals ``0.3`` as a reader of the docstring means.
    Each check is ``assert CALL == LITERAL``: a shape the server checks out of process
    (``shapes.py``)."""
    lines = ["import pytest", "", f"from {module} import {name}", ""]
    for k, ex in enumerate(examples):
        expected = f"pytest.approx({ex.expected})" if _is_float(ex.expected) else ex.expected
        lines += ["", f"def test_docstring_{k}():", f"    assert {ex.call} == {expected}", ""]
    return "\n".join(lines) + "\n"


def _is_float(source: str) -> bool:
    try:
        return isinstance(ast.literal_eval(source.strip()), float)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def docstring_tests(module: str, name: str, examples: list[Example]) -> tuple[list[TestCase],
                                                                            dict[str, str]]:
    """TestCases (kind ``docstring``) and the file that holds them."""
    if not examples:
        return [], {}
    tests = [TestCase(f"{FILE}::test_docstring_{k}", KIND, FILE, ex.text)
             for k, ex in enumerate(examples)]
    return tests, {FILE: test_file(module, name, examples)}
