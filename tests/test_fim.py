"""Inline FIM completion: request windows, stop rules, the suggestion cache, real models.

Model outputs fed to ``trim`` were recorded from Qwen2.5-Coder-0.5B (greedy) on these prompts,
or are cut-down versions of them; the last tests run the real models end to end.
"""

from __future__ import annotations

import pytest

from plancode.engine.llama_engine import LlamaEngine
from plancode.engine.types import CancelToken, Generation, SamplingParams
from plancode.lsp.fim import (
    FimRequest,
    SuggestionCache,
    build_request,
    complete_fim,
    stop_strings,
    trim,
)


def at(doc: str, **kw: int) -> FimRequest:
    """The request for the cursor at ``|`` in ``doc``."""
    i = doc.index("|")
    text = doc[:i] + doc[i + 1 :]
    line = doc[:i].count("\n")
    col = i - (doc.rfind("\n", 0, i) + 1)
    return build_request(text, line, col, **kw)


def typed(doc: str, chars: str) -> str:
    """``doc`` after typing ``chars`` at its cursor."""
    return doc.replace("|", chars + "|", 1)


def module(n_funcs: int) -> str:
    """A realistic module of ``n_funcs`` small functions (5 lines each) after some imports."""
    head = '"""Helpers for numbers."""\n\nfrom __future__ import annotations\n\nimport math\n\n'
    funcs = [
        f'\ndef scale_{i}(values: list[float], k: float = {i}.5) -> list[float]:\n'
        f'    """Multiply each value by k, then add {i}."""\n'
        f"    result = [v * k + {i} for v in values]\n"
        f"    return [round(x, {i % 4}) for x in result if not math.isnan(x)]\n"
        for i in range(n_funcs)
    ]
    return head + "\n".join(funcs)


ADD = 'def add(a, b):\n    """Return a + b."""\n    |\n\nprint(add(1, 2))\n'
STACK = (
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n"
    "    def push(self, x):\n|\n    def pop(self):\n        return self.items.pop()\n"
)


# -- build_request -------------------------------------------------------------------------


def test_window_start_is_snapped_so_keystrokes_share_the_prompt_head() -> None:
    text = "\n".join(f"line_{i} = {i}" for i in range(200)) + "\n"
    starts = set()
    for line in range(80, 96):  # typing across 16 lines keeps one window start
        req = build_request(text, line, 3)
        starts.add(req.prefix.split("\n", 1)[0])
    assert starts == {"line_16 = 16"}
    assert build_request(text, 96, 3).prefix.startswith("line_32 = 32\n")
    assert build_request(text, 10, 3).prefix.startswith("line_0 = 0\n")
    # one more character: the old prompt is a prefix of the new one
    doc = "\n".join(f"line_{i} = {i}" for i in range(100)) + "\nx = fo|\n"
    before, after = at(doc), at(typed(doc, "o"))
    assert after.prefix == before.prefix + "o" and after.suffix == before.suffix


def test_suffix_is_the_rest_of_the_line_and_the_next_lines() -> None:
    doc = "a = f(|1)\n" + "".join(f"b{i} = {i}\n" for i in range(30))
    req = at(doc, suffix_lines=3)
    assert req.suffix == "1)\nb0 = 0\nb1 = 1\nb2 = 2\n"
    assert req.prefix == "a = f(" and req.line_prefix == "a = f(" and req.line_suffix == "1)"
    assert at(ADD).suffix == "\n\nprint(add(1, 2))\n"  # at the end of the file: as it is


@pytest.mark.parametrize(
    ("doc", "multiline", "indent"),
    [
        (ADD, True, "    "),  # a blank line inside a body
        ("def add(a, b):|\n", True, "    "),  # after ':'
        ("def add(a, b):\n|\n", True, "    "),  # column 0 under a ':' line
        ("x = compute(|\n", True, "    "),  # after an opening bracket
        ("def f():\n    x = 1|\n", True, "    "),  # first line of a block
        ("x = compute(|)\n", False, "    "),  # mid-line (a hanging indent would follow)
        ("def f():\n    y = 2\n    return a +|\n", False, "    "),  # end of a plain line
        ("def f():\n    |return 1\n", False, "    "),  # code after the cursor
        ("|\n", True, ""),  # an empty file
        ("\tif x:\n|\n", True, "\t\t"),  # tabs
        ("if x:\n  if y:\n|\n", True, "    "),  # two-space indentation
    ],
)
def test_multiline_detection_and_indent(doc: str, multiline: bool, indent: str) -> None:
    req = at(doc)
    assert (req.multiline, req.indent) == (multiline, indent)


def test_crlf_documents_are_sent_with_lf() -> None:
    req = build_request("def f():\r\n    return 1\r\n\r\nx = f(", 3, 6)
    assert req.prefix == "def f():\n    return 1\n\nx = f(" and "\r" not in req.suffix


def test_out_of_range_positions_clamp() -> None:
    req = build_request("abc\n", 7, 99)
    assert req.line_prefix == "" and req.prefix == "abc\n"
    assert build_request("abc", 0, 99).prefix == "abc"


def test_max_chars_caps_a_huge_single_line_and_keeps_the_cut_stable() -> None:
    big = "x = [" + ", ".join(str(i % 10) for i in range(17000)) + "]"  # ~50 000 chars
    text = f"import os\n{big}\nprint(x)\n"
    cursor = 10 + 30000
    req = build_request(text, 1, cursor - 10)
    assert len(req.prefix) + len(req.suffix) <= 12000
    assert text[:cursor].endswith(req.prefix)  # the far end was cut, the cursor side kept
    assert text[cursor:].startswith(req.suffix)
    assert len(req.prefix) >= 12000 - 3000 - 256
    # typing on: the cut does not move with every keystroke (the KV cache stays reusable)
    heads = {build_request(text, 1, cursor - 10 + k).prefix[:50] for k in range(8)}
    assert len(heads) <= 2
    # long lines above a short cursor line: the cut falls on a line start
    text2 = "\n".join(["y = '" + "a" * 5000 + "'"] * 4) + "\nz = |"
    req2 = at(text2, max_chars=12000)
    assert req2.prefix.startswith("y = '") and req2.prefix.endswith("\nz = ")
    assert len(req2.prefix) <= 12000


# -- stop strings ----------------------------------------------------------------------------


def test_stop_strings() -> None:
    assert stop_strings(at("x = compute(|)\n")) == ("\n",)
    body = stop_strings(at(ADD))
    assert "\n\n\n" in body and "\nif __name__" in body and "\nprint(" in body
    assert "\nprint(add(1, 2))\n" in body  # the suffix re-typed
    top = stop_strings(at("import math\n\n\n|\n"))
    assert "\n\ndef " in top and "\ndef " not in top  # top level: a def needs a blank line


# -- trim ----------------------------------------------------------------------------------


def test_trim_cuts_the_test_harness_after_a_correct_body() -> None:
    assert trim(at(ADD), "return a + b\n\nprint(add(5, 3))\n") == "return a + b"
    fib = "def fib(n):\n    if n < 2:\n        return n\n|\n\ndef main():\n    print(fib(10))\n"
    out = ('    else:\n        return fib(n-1) + fib(n-2)\n\n'
           'if __name__ == "__main__":\n    main()\n')
    assert trim(at(fib), out) == "    else:\n        return fib(n-1) + fib(n-2)"
    stack_out = (
        "        self.items.append(x)\n\n    def peek(self):\n        return self.items[-1]\n\n"
        "# Example usage\nstack = Stack()\nstack.push(1)\nprint(stack.peek())  # Output: 1\n"
    )
    assert trim(at(STACK), stack_out) == "        self.items.append(x)"


def test_trim_cuts_a_harness_at_column_0_below_an_indented_body() -> None:
    doc = "def double(x):\n    y = x * 2\n|\n"
    assert trim(at(doc), 'if __name__ == "__main__":\n    print(double(2))') == ""
    assert trim(at(doc), "# Test the function\nassert double(2) == 4") == ""
    assert trim(at(doc), "    return y\n\n\nprint(double(2))") == "    return y"


def test_trim_never_repeats_the_code_below() -> None:
    assert trim(at(ADD), "return a + b\n\nprint(add(1, 2))") == "return a + b"
    doc = "def total(xs):\n    |\n    return total\n"
    out = "total = 0\n    for x in xs:\n        total += x\n    return total\n"
    assert trim(at(doc), out) == "total = 0\n    for x in xs:\n        total += x"
    assert trim(at(doc), "return total") == ""  # only the code below, re-typed


def test_trim_single_line_drops_a_repeated_closing_bracket() -> None:
    req = at("x, y = 2, 3\nresult = compute(|)\n")
    assert trim(req, "x, y)") == "x, y"
    assert trim(req, "x, y)\nprint(result)  # Output: 6\n") == "x, y"
    assert trim(req, "f(x)") == "f(x)"  # closes its own bracket: not a repeat
    assert trim(req, "f(x))") == "f(x)"
    assert trim(req, ")") == ""
    assert trim(at("def add(a, b)|:\n"), " -> int:") == " -> int"
    assert trim(at("def f(xs):\n    return sum(|) / n\n"), "xs) / n") == "xs"
    assert trim(at("x = |\n"), "42  ") == "42"
    assert trim(at("x = 1|  # one\n"), "   ") == ""
    assert trim(at("def f(a|):\n"), ", b)") == ", b"  # ")" of "):" re-typed
    assert trim(at("def f(a|):\n"), ", g(b)") == ", g(b)"
    assert trim(at("y = |x + 1\n"), "2 * x") == "2 * x"  # not punctuation: no partial repeat


def test_trim_stops_where_the_block_dedents() -> None:
    doc = "def f(xs):\n    for x in xs:\n        |\n    return xs\n"
    out = "if x < 0:\n            raise ValueError(x)\n    print(xs)\n    return xs"
    assert trim(at(doc), out) == "if x < 0:\n            raise ValueError(x)"
    after_colon = at("def sub(a, b):|\n")
    assert trim(after_colon, "\n    return a - b\n\n\ndef mul(a, b):\n") == "\n    return a - b"


def test_trim_at_top_level_stops_at_the_next_top_level_statement() -> None:
    req = at("import math\n\n\ndef area(r):\n    return math.pi * r * r\n\n\n|\n")
    out = (
        "def circumference(r):\n    return 2 * math.pi * r\n\n\ndef main():\n"
        '    r = float(input("Enter the radius: "))\n'
    )
    assert trim(req, out) == "def circumference(r):\n    return 2 * math.pi * r"
    assert trim(req, "X = 1\nY = 2\n\nprint(X)") == "X = 1\nY = 2"
    assert trim(req, "try:\n    import numpy\n\nexcept ImportError:\n    numpy = None\n\nZ = 1") \
        == "try:\n    import numpy\n\nexcept ImportError:\n    numpy = None"


def test_trim_ends_a_call_when_its_bracket_closes() -> None:
    req = at("def f(a):\n    return g(|\n")
    out = "\n        a,\n        b,\n    )\n    return x"
    assert trim(req, out) == "\n        a,\n        b,\n    )"
    assert trim(at("    print(|\n"), 'f"{name}")\n```\n\nThis prints:') == 'f"{name}")'


def test_trim_limits_lines_and_whitespace() -> None:
    req = at(ADD)
    many = "\n".join(f"    x{i} = {i}" for i in range(40))
    assert trim(req, "x = 0\n" + many, max_lines=5).count("\n") == 4
    assert trim(req, "return a + b   \n    \n\n") == "return a + b"
    assert trim(req, "   \n  \n") == ""
    assert trim(req, "") == ""


# -- SuggestionCache -------------------------------------------------------------------------


def test_cache_exact_and_typed_ahead_hits() -> None:
    cache = SuggestionCache()
    req = at(ADD)
    assert cache.get(req) is None
    cache.put(req, "return a + b")
    assert cache.get(req) == "return a + b"
    assert cache.get(at(typed(ADD, "ret"))) == "urn a + b"
    assert cache.get(at(typed(ADD, "return a + "))) == "b"
    assert (cache.hits, cache.misses) == (3, 1)
    stats = cache.stats()
    assert stats["typed_ahead_hits"] == 2 and stats["entries"] == 1


def test_cache_typed_ahead_across_lines() -> None:
    cache = SuggestionCache()
    doc = "def f(xs):\n    |\n" + "".join(f"x{i} = {i}\n" for i in range(60))
    cache.put(at(doc), "total = 0\n    for x in xs:\n        total += x")
    assert cache.get(at(typed(doc, "total = 0\n    "))) == "for x in xs:\n        total += x"


def test_cache_near_misses_do_not_hit() -> None:
    cache = SuggestionCache()
    cache.put(at(ADD), "return a + b")
    other_suffix = ADD.replace("print(add(1, 2))", "print(add(3, 4))")
    assert cache.get(at(other_suffix)) is None
    assert cache.get(at(typed(other_suffix, "ret"))) is None
    assert cache.get(at(typed(ADD, "rex"))) is None  # typed text diverges from the suggestion
    assert cache.get(at(typed(ADD, "return a + b"))) is None  # all typed: nothing left
    assert cache.get(at(typed(ADD, "return a + bc"))) is None
    assert cache.get(at(ADD.replace("a + b", "a - b"))) is None  # other text before
    assert cache.hits == 0 and cache.misses == 6


def test_cache_is_an_lru() -> None:
    cache = SuggestionCache(capacity=2)
    reqs = [at(f"x{i} = |\n") for i in range(3)]
    cache.put(reqs[0], "0")
    cache.put(reqs[1], "1")
    assert cache.get(reqs[0]) == "0"  # now the most recent
    cache.put(reqs[2], "2")
    assert cache.get(reqs[1]) is None and cache.get(reqs[0]) == "0" and len(cache) == 2


# -- complete_fim with a stand-in engine (the bookkeeping) -----------------------------------


class ScriptedEngine:
    """Answers every FIM call with one recorded text (for the bookkeeping, not the model)."""

    def __init__(self, text: str, finish_reason: str = "stop") -> None:
        self.text, self.finish_reason = text, finish_reason
        self.params: list[SamplingParams] = []

    def fim(self, prefix: str, suffix: str, params: SamplingParams,
            cancel: CancelToken | None = None) -> Generation:
        self.params.append(params)
        return Generation(self.text, self.finish_reason, 10, 10, 0, 5)


def test_complete_fim_trims_caches_and_skips_cancelled_results() -> None:
    engine = ScriptedEngine("return a + b\n\nprint(add(5, 3))\n")
    cache = SuggestionCache()
    first = complete_fim(engine, at(ADD), cache)
    assert first.text == "return a + b" and not first.cached and first.generation is not None
    assert engine.params[0].stop == stop_strings(at(ADD)) and engine.params[0].temperature == 0
    again = complete_fim(engine, at(ADD), cache)
    assert again.cached and again.generation is None and again.text == "return a + b"
    assert len(engine.params) == 1

    partial = ScriptedEngine("total = 0\n    for x in", "length")
    doc = "def f(xs):\n    |\n"
    assert complete_fim(partial, at(doc), None).text == "total = 0"
    cancelled = ScriptedEngine("total = 0\n", "cancelled")
    complete_fim(cancelled, at(doc), cache)
    assert cache.get(at(doc)) is None


# -- real models ---------------------------------------------------------------------------


def test_tiny_model_completes_and_caches(tiny_engine: LlamaEngine) -> None:
    cache = SuggestionCache()
    req = at('def add(a, b):\n    """Return a + b."""\n    return a|\n')
    first = complete_fim(tiny_engine, req, cache, max_tokens=16)
    assert first.text.strip() and not first.cached and first.generation is not None
    second = complete_fim(tiny_engine, req, cache, max_tokens=16)
    assert second.cached and second.generation is None and second.text == first.text
    assert cache.hits == 1 and cache.misses == 1


def test_consecutive_keystrokes_reuse_the_kv_cache(tiny_engine: LlamaEngine) -> None:
    doc = module(16) + "\n\ndef mean(values):\n    total = sum(val|\n"
    assert 95 <= doc.count("\n") <= 110
    first = complete_fim(tiny_engine, at(doc), None, max_tokens=8).generation
    second = complete_fim(tiny_engine, at(typed(doc, "u")), None, max_tokens=8).generation
    assert first is not None and second is not None
    assert second.reused_tokens >= 0.8 * first.prompt_tokens
    assert second.evaluated_tokens <= 0.2 * second.prompt_tokens


@pytest.mark.slow
def test_default_model_fills_a_body_without_the_harness(default_engine: LlamaEngine) -> None:
    req = at(ADD)
    assert req.suffix == "\n\nprint(add(1, 2))\n" and req.multiline
    result = complete_fim(default_engine, req, SuggestionCache())
    assert "return" in result.text and "a + b" in result.text.replace("b + a", "a + b")
    assert "print(add(1, 2))" not in result.text
    assert all(ln.startswith((" ", "\t")) or not ln.strip()
               for ln in result.text.split("\n")[1:])
    assert not result.text.split("\n")[0].startswith("def ")


@pytest.mark.slow
def test_default_model_mid_line_does_not_repeat_the_closing_bracket(
    default_engine: LlamaEngine,
) -> None:
    doc = "def compute(a, b):\n    return a * b\n\n\nx, y = 2, 3\nresult = compute(|)\n"
    req = at(doc)
    assert not req.multiline and req.line_suffix == ")"
    result = complete_fim(default_engine, req, None)
    assert result.text and "\n" not in result.text
    line = req.line_prefix + result.text + req.line_suffix
    assert line.count("(") == line.count(")"), line


@pytest.mark.slow
def test_default_model_keystrokes_evaluate_only_the_tail(default_engine: LlamaEngine) -> None:
    doc = (module(24) + "\n\ndef mean(values):\n    total = sum(val|\n"
           "    return total / len(values)\n\n\ndef spread(values):\n"
           "    return max(values) - min(values)\n")
    assert 150 <= doc.count("\n") <= 160
    cold = complete_fim(default_engine, at(doc), None, max_tokens=4).generation
    warm = complete_fim(default_engine, at(typed(doc, "u")), None, max_tokens=4).generation
    assert cold is not None and warm is not None
    assert warm.reused_tokens >= 0.8 * cold.prompt_tokens
    assert warm.evaluated_tokens < cold.prompt_tokens / 4
