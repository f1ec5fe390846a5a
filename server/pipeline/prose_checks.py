"""Checks from a docstring's prose (issue 30, item 2): what the text says beyond its examples.

A docstring names inputs without outputs ("``f([])`` returns nothing useful"), states rules
("sorted in ascending order", "rounded to two decimals", "Raises ValueError if n is
negative") and edge-case policies. Each becomes a *check*: a Python statement run on a
candidate in the sandbox (``probes.probe_all``, out of process), of one named kind:

* ``no-raise``  an input the docstring names: calling ``f`` there must not raise (unless the
  docstring says it raises there: that is a ``raises`` check instead);
* ``raises``    ``with pytest.raises(E): f(...)``, from a doctest traceback, a prose call
  followed by "raises E", or a "Raises E if the list is empty / n is negative" rule;
* ``rule``      a property of the result, not its value: ordering, rounding, character
  class, a boolean or the annotated return type, or any other assert a model wrote that does
  not state one exact value;
* ``value``     ``assert f(...) == literal`` as a model writes it (the kind the pipeline's
  model-written checks already are; kept apart so the study can compare them).

Static extraction comes first (:func:`static_checks`); a model writes the rest
(:func:`model_checks`, the prompt is ``prompts.prose_check_messages``), the larger model when
it is in the store (:func:`writer_model`). A check that contradicts a visible test — the same
call with a different expected value or outcome — is dropped (:func:`contradicts`); a rule
check is also tried on an *oracle* module whose function answers only the visible tests'
calls (:func:`oracle_text`, :func:`oracle_checks`), and dropped when the oracle fails it.
Checks never enter the verdict: they only score candidates against each other.
"""

from __future__ import annotations

import ast
import dataclasses
import doctest
import re
import textwrap
from dataclasses import dataclass

from plancode import prompts
from plancode.analysis import pyparse
from plancode.analysis.facts import FunctionFacts
from plancode.config import Settings
from plancode.engine.types import CancelToken, Engine, SamplingParams
from plancode.pipeline import escalate, probes
from plancode.testing.sandbox import Sandbox

KINDS = ("no-raise", "raises", "rule", "value")
STATIC = "static"
LIMIT = 10  # checks a model may add

_LITERAL_ERRORS = (ValueError, SyntaxError, TypeError, MemoryError, RecursionError)


@dataclass(frozen=True)
class Check:
    """One check: its kind, the statement a probe runs, who wrote it and what it rests on."""

    kind: str  # one of KINDS
    statement: str  # Python statement(s), run in a copy of the candidate module's namespace
    writer: str  # "static" or the model's name
    detail: str = ""  # e.g. "ordering", "rounding", "doctest-traceback", "named-input"
    call: str = ""  # the call it is about when it is about one ('' for several)


@dataclass(frozen=True)
class Visible:
    """A visible test's call and outcome: ``expected`` (literal source) or ``raises``."""

    call: str
    expected: str | None = None
    raises: str | None = None


# -- small AST helpers -------------------------------------------------------------------------

def _norm_call(source: str) -> str:
    try:
        return ast.unparse(pyparse.parse(source.strip(), mode="eval").body)
    except SyntaxError:
        return source.strip()


def _is_literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except _LITERAL_ERRORS:
        return False
    return True


def _literal_call(node: ast.AST, name: str) -> bool:
    """``node`` is ``name(<literals>)`` (or ``x.name(...)``)."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    called = func.id if isinstance(func, ast.Name) else \
        func.attr if isinstance(func, ast.Attribute) else None
    if called != name or any(isinstance(a, ast.Starred) for a in node.args):
        return False
    return all(_is_literal(v) for v in [*node.args, *(k.value for k in node.keywords)])


def _calls_of(node: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(node) if isinstance(n, ast.Call) and (
        (isinstance(n.func, ast.Name) and n.func.id == name)
        or (isinstance(n.func, ast.Attribute) and n.func.attr == name))]


def _value(source: str) -> object:
    return ast.literal_eval(source)


def _same_value(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(b)))  # type: ignore
        except (TypeError, ValueError):
            return False
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def raises_statement(exc: str, call: str) -> str:
    return f"import pytest\nwith pytest.raises({exc}):\n    {call}"


# -- what the model writes, sorted into kinds --------------------------------------------------

def classify(stmt: str, name: str) -> Check | None:
    """A one-line statement a model wrote, as a check of its kind (None: not a usable one)."""
    try:
        tree = pyparse.parse(stmt.strip())
    except SyntaxError:
        return None
    if len(tree.body) != 1 or not _calls_of(tree, name):
        return None
    node = tree.body[0]
    if isinstance(node, ast.With) and len(node.items) == 1 and len(node.body) == 1:
        ctx = node.items[0].context_expr
        inner = node.body[0]
        if (isinstance(ctx, ast.Call) and ast.unparse(ctx.func) == "pytest.raises" and ctx.args
                and isinstance(inner, ast.Expr) and isinstance(inner.value, ast.Call)):
            exc, call = ast.unparse(ctx.args[0]), ast.unparse(inner.value)
            return Check("raises", raises_statement(exc, call), "", call=call)
        return None
    if isinstance(node, ast.Expr):
        calls = _calls_of(node, name)
        call = ast.unparse(calls[0]) if len(calls) == 1 else ""
        return Check("no-raise", ast.unparse(node), "", call=call)
    if not isinstance(node, ast.Assert):
        return None
    test = node.test
    if (isinstance(test, ast.Compare) and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Eq | ast.Is)
            and _literal_call(test.left, name)):
        right = test.comparators[0]
        if isinstance(right, ast.Name) and right.id.endswith(("Error", "Exception")):
            call = ast.unparse(test.left)  # how small models write "raises"
            return Check("raises", raises_statement(right.id, call), "", call=call)
        if _is_literal(right):
            return Check("value", ast.unparse(node), "", call=ast.unparse(test.left))
    calls = {ast.unparse(c) for c in _calls_of(test, name)}
    return Check("rule", ast.unparse(node), "", call=calls.pop() if len(calls) == 1 else "")


def parse_reply(reply: str, name: str, writer: str, limit: int = LIMIT) -> list[Check]:
    """The checks in a model's reply: one-line statements that call ``name``, deduplicated."""
    out: list[Check] = []
    seen: set[str] = set()
    for block in prompts.code_blocks(reply) or [reply]:
        for line in block.splitlines():
            line = line.strip()
            if not line or line.startswith("#") or f"{name}(" not in line:
                continue
            check = classify(line, name)
            if check is not None and check.statement not in seen:
                seen.add(check.statement)
                out.append(dataclasses.replace(check, writer=writer))
    return out[:limit]


def model_checks(engine: Engine, problem: str, name: str, base: SamplingParams, writer: str,
                 cancel: CancelToken | None = None) -> tuple[list[Check], str]:
    """Ask ``engine`` (the model ``writer``) for checks of ``name``; the checks and the reply."""
    gen = engine.chat(prompts.prose_check_messages(problem, name),
                      dataclasses.replace(base, temperature=0.0, max_tokens=max(base.max_tokens,
                                                                                 384)), cancel)
    return parse_reply(gen.text, name, writer), gen.text


def writer_model(settings: Settings) -> str:
    """The model that writes the checks: the escalation model when it is in the store (the
    larger one writes fewer wrong checks), else the configured one."""
    return escalate.model_of(settings) or settings.model


# -- static extraction -------------------------------------------------------------------------

_RAISE_AFTER = re.compile(r"\braise[sd]?\s+(?:an?\s+)?([A-Z]\w*(?:Error|Exception))")
_RAISES_RULE = re.compile(
    r"(?:\braises?\s+(?:an?\s+)?|^\s*)([A-Z]\w*(?:Error|Exception))\s*:?\s*"
    r"(?:if|when|for|on)\s+([^.;\n]*)", re.IGNORECASE | re.MULTILINE)
_ORDER = re.compile(r"\bin\s+(ascending|increasing|descending|decreasing)\s+order",
                    re.IGNORECASE)
_ROUNDED = re.compile(r"\brounded\s+(?:to|up to)\s+(?:the\s+nearest\s+)?"
                      r"(\d+|one|two|three|four)?\s*(decimal|digit|place|integer|int)",
                      re.IGNORECASE)
_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4}
_CASE = re.compile(r"\b(?:in|to|as)\s+(lower|upper)\s*-?\s*case\b|\b(lower|upper)cased?\b",
                   re.IGNORECASE)
_BOOL = re.compile(r"\breturns?\s+(?:`|'|\")?True(?:`|'|\")?\s+(?:if|when|iff)\b", re.IGNORECASE)
_TYPES = {"int": "int", "str": "str", "bool": "bool", "float": "(int, float)",
          "list": "list", "dict": "dict", "tuple": "tuple", "set": "set"}


def _sentences_with(doc: str, word: str) -> list[str]:
    flat = " ".join(doc.split())
    return [s for s in re.split(r"(?<=[.!?])\s+|\n\s*\n", flat) if word in s.lower()]


def _annotations(facts: FunctionFacts) -> tuple[dict[str, str], str]:
    """Parameter annotations (source) and the return annotation ('' when none)."""
    try:
        tree = pyparse.parse(textwrap.dedent(facts.info.header).strip() + "\n    pass\n")
    except SyntaxError:
        return {}, ""
    func = next((n for n in ast.walk(tree)
                 if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)), None)
    if func is None:
        return {}, ""
    args = [*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs]
    notes = {a.arg: ast.unparse(a.annotation) for a in args if a.annotation is not None}
    return notes, ast.unparse(func.returns) if func.returns is not None else ""


def _doctest_calls(facts: FunctionFacts) -> tuple[list[tuple[str, str | None, int]], set[str]]:
    """``>>>`` calls of the function with literal arguments: (call, exception or None, line)
    for those that show no literal output (a traceback, an object's repr, nothing), and the
    calls whose output is a literal (already examples)."""
    out, with_value = [], set()
    try:
        parsed = doctest.DocTestParser().get_examples(facts.doc)
    except ValueError:
        return [], set()
    for ex in parsed:
        try:
            node = pyparse.parse(ex.source.strip(), mode="eval").body
        except SyntaxError:
            continue
        if not _literal_call(node, facts.name):
            continue
        call = ast.unparse(node)
        if ex.exc_msg is not None:
            exc = ex.exc_msg.split(":")[0].strip().rsplit(".", 1)[-1]
            out.append((call, exc if re.fullmatch(r"\w+", exc) else "Exception", ex.lineno))
            continue
        try:
            ast.literal_eval(ex.want.strip())
            with_value.add(call)
        except _LITERAL_ERRORS:
            out.append((call, None, ex.lineno))
    return out, with_value


def _prose_calls(facts: FunctionFacts) -> list[tuple[str, str | None, int]]:
    """Literal calls of the function in prose lines (not ``>>>``): (call, exception named
    after it on the same line or None, line)."""
    out = []
    call_at = re.compile(rf"(?<![\w.]){re.escape(facts.name)}\s*\(")
    for i, raw in enumerate(facts.doc.splitlines()):
        line = raw.strip()
        if line.startswith((">>>", "...")):
            continue
        for m in call_at.finditer(line):
            end = _close(line, m.end() - 1)
            if end is None:
                continue
            try:
                node = pyparse.parse(line[m.start():end], mode="eval").body
            except SyntaxError:
                continue
            if not _literal_call(node, facts.name):
                continue
            raised = _RAISE_AFTER.search(line[end:end + 80])
            out.append((ast.unparse(node), raised.group(1) if raised else None, i))
    return out


def _close(text: str, start: int) -> int | None:
    depth, quote = 0, ""
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _empty_of(annotation: str) -> str | None:
    a = annotation.lower()
    for word, empty in (("str", "''"), ("list", "[]"), ("sequence", "[]"), ("iterable", "[]"),
                        ("tuple", "()"), ("dict", "{}"), ("mapping", "{}"), ("set", "set()")):
        if re.search(rf"\b{word}\b", a):
            return empty
    return None


def _policy_calls(facts: FunctionFacts, condition: str, seeds: list[tuple]) -> list[str]:
    """Calls that meet a stated condition ("the list is empty", "n is negative", "x is
    None"): one argument replaced in a seed call (or in a call of defaults when there is no
    seed and the function takes one argument)."""
    notes, _ = _annotations(facts)
    params = list(facts.parameters)
    cond = condition.lower()
    named = [p for p in params if re.search(rf"\b{re.escape(p.lower())}\b", cond)]
    targets = named or params
    out = []
    for p in targets:
        note = notes.get(p, "")
        value = None
        if "empty" in cond:
            value = _empty_of(note) if note else None
        elif "negative" in cond and re.search(r"\b(int|float)\b", note):
            value = "-1"
        elif re.search(r"\bzero\b|\b== ?0\b", cond) and re.search(r"\b(int|float)\b", note):
            value = "0"
        elif re.search(r"\bis none\b|\bnone\b", cond):
            value = "None"
        if value is None:
            continue
        k = params.index(p)
        bases = [s for s in seeds if len(s) == len(params)] or ([()] if len(params) == 1 else [])
        for args in bases[:1]:
            shown = [repr(a) for a in args] if args else [value]
            shown[k] = value
            out.append(f"{facts.name}({', '.join(shown)})")
        if out:
            break
    return out


def static_checks(facts: FunctionFacts, visible: list[Visible] | None = None) -> list[Check]:
    """The checks the docstring's text gives without a model (see the module's docstring)."""
    if not facts.doc.strip():
        return []
    visible_calls = {_norm_call(v.call) for v in visible or []}
    checks: list[Check] = []
    seen: set[str] = set()

    def add(check: Check) -> None:
        if check.statement not in seen:
            seen.add(check.statement)
            checks.append(check)

    traced, with_value = _doctest_calls(facts)
    named = traced + [c for c in _prose_calls(facts) if c[0] not in with_value]
    example_calls = [e.call for e in facts.examples]
    raising = {call for call, exc, _ in named if exc}
    for call, exc, _ in named:
        if exc:
            add(Check("raises", raises_statement(exc, call), STATIC, "doctest-or-prose", call))
        elif call not in example_calls and call not in raising:
            add(Check("no-raise", call, STATIC, "named-input", call))
    for call in dict.fromkeys(example_calls):  # the examples' inputs that are not run as tests
        if call not in visible_calls and call not in raising:
            add(Check("no-raise", call, STATIC, "example-input", call))

    seeds = []
    for call in [*example_calls, *(c for c, exc, _ in named if not exc)]:
        try:
            node = pyparse.parse(call, mode="eval").body
            seeds.append(tuple(ast.literal_eval(a) for a in node.args))  # type: ignore
        except (*_LITERAL_ERRORS, AttributeError):
            continue
    for m in _RAISES_RULE.finditer(facts.doc):
        for call in _policy_calls(facts, m.group(2), seeds):
            if _norm_call(call) not in visible_calls:
                add(Check("raises", raises_statement(m.group(1), call), STATIC, "policy", call))
                raising.add(call)

    rule_calls = [c for c in dict.fromkeys([*example_calls, *(c for c, exc, _ in named
                                                               if not exc)])
                  if c not in raising][:3]
    for rule, detail in _rules(facts):
        for call in rule_calls:
            add(Check("rule", f"_r = {call}\n{rule}", STATIC, detail, call))
    return checks


def _rules(facts: FunctionFacts) -> list[tuple[str, str]]:
    """Property statements on ``_r`` (the result) that the prose states."""
    doc = facts.doc
    out: list[tuple[str, str]] = []
    for s in _sentences_with(doc, "return") + _sentences_with(doc, "output"):
        order = _ORDER.search(s)
        if (order or re.search(r"\bsorted\b", s, re.IGNORECASE)) and not re.search(
                r"\bby\b|\bkey\b", s, re.IGNORECASE):
            down = re.search(r"\b(descending|decreasing|reverse)\b", s, re.IGNORECASE)
            out.append(("if isinstance(_r, (list, tuple)):\n    assert list(_r) == sorted(_r"
                        f"{', reverse=True' if down else ''})", "ordering"))
        rounded = _ROUNDED.search(s)
        if rounded:
            unit = rounded.group(2).lower()
            digits = 0 if unit.startswith("int") else _WORDS.get(
                (rounded.group(1) or "0").lower())
            if digits is None:
                digits = int(rounded.group(1)) if (rounded.group(1) or "").isdigit() else 0
            out.append((f"assert _r == round(_r, {digits})", "rounding"))
        case = _CASE.search(s)
        if case and re.search(r"\breturns?\b|\boutput\b", s, re.IGNORECASE):
            which = (case.group(1) or case.group(2)).lower()
            out.append((f"assert _r == _r.{which}()", "character-class"))
        if _BOOL.search(s):
            out.append(("assert isinstance(_r, bool)", "boolean"))
    _, returns = _annotations(facts)
    base = re.sub(r"\[.*", "", returns).strip().lower()
    if base in _TYPES:
        out.append((f"assert isinstance(_r, {_TYPES[base]})", "return-type"))
    return list(dict.fromkeys(out))


# -- visible tests and contradictions ----------------------------------------------------------

def visible_of(calls: list[tuple[str, str]]) -> list[Visible]:
    """Visible tests from (call, expected literal) pairs (the user's tests as examples)."""
    return [Visible(_norm_call(call), expected) for call, expected in calls]


def contradicts(check: Check, visible: list[Visible]) -> bool:
    """The check is about a call a visible test makes and expects a different value or
    outcome there: another value, an exception where a value is expected, or no exception
    where one is."""
    if not check.call:
        return False
    call = _norm_call(check.call)
    for v in visible:
        if _norm_call(v.call) != call:
            continue
        if check.kind == "raises":
            wanted = re.search(r"pytest\.raises\(([\w.]+)", check.statement)
            if v.raises is None or (wanted and wanted.group(1).rsplit(".", 1)[-1]
                                    not in (v.raises, "Exception")):
                return True
        elif check.kind == "no-raise":
            if v.raises is not None:
                return True
        elif check.kind == "value" and v.expected is not None:
            test = pyparse.parse(check.statement).body[0].test  # type: ignore[attr-defined]
            try:
                mine, theirs = ast.literal_eval(test.comparators[0]), _value(v.expected)
            except _LITERAL_ERRORS:
                continue
            if not _same_value(mine, theirs):
                return True
        elif check.kind == "value" and v.raises is not None:
            return True
    return False


def without_contradictions(checks: list[Check], visible: list[Visible]) -> list[Check]:
    return [c for c in checks if not contradicts(c, visible)]


ORACLE_UNKNOWN = "PlancodeUnknownCall"


def oracle_text(name: str, visible: list[Visible]) -> str | None:
    """A module whose ``name`` answers exactly the visible tests' calls (their expected values,
    or their exceptions) and raises ``PlancodeUnknownCall`` for any other: a rule check that
    fails on it contradicts a visible test. None when no visible call can be read."""
    table = {}
    for v in visible:
        try:
            node = pyparse.parse(v.call, mode="eval").body
            args = tuple(ast.literal_eval(a) for a in node.args)  # type: ignore[attr-defined]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}  # type: ignore
            outcome = ("raise", v.raises) if v.raises else ("value", _value(v.expected or ""))
        except (*_LITERAL_ERRORS, AttributeError):
            continue
        table[repr((args, sorted(kwargs.items())))] = outcome
    if not table:
        return None
    return (f"import builtins\n\n\nclass {ORACLE_UNKNOWN}(Exception):\n    pass\n\n\n"
            f"_TABLE = {table!r}\n\n\n"
            f"def {name}(*args, **kwargs):\n"
            "    key = repr((args, sorted(kwargs.items())))\n"
            "    if key not in _TABLE:\n"
            f"        raise {ORACLE_UNKNOWN}(key)\n"
            "    how, what = _TABLE[key]\n"
            "    if how == 'raise':\n"
            "        raise getattr(builtins, what, Exception)(what)\n"
            "    return what\n")


def oracle_checks(checks: list[Check]) -> list[str]:
    """The checks as run on the oracle: a call it does not know passes (no evidence)."""
    return [f"try:\n{textwrap.indent(c.statement, '    ')}\nexcept {ORACLE_UNKNOWN}:\n    pass"
            for c in checks]


def make(facts: FunctionFacts, visible: list[Visible], engine: Engine | None = None,
         base: SamplingParams | None = None, writer: str = "",
         cancel: CancelToken | None = None) -> list[Check]:
    """Static checks, then ``engine``'s (the model ``writer``) when one is given, without
    those that contradict a visible test by their call and outcome."""
    checks = static_checks(facts, visible)
    if engine is not None and base is not None:
        checks += model_checks(engine, facts.info.problem, facts.name, base, writer, cancel)[0]
    return without_contradictions(checks, visible)


def refuted(sandbox: Sandbox, rel: str, module: str, name: str, checks: list[Check],
            visible: list[Visible], cancel: CancelToken | None = None,
            extra_files: dict[str, str] | None = None) -> list[bool]:
    """Per check, whether the oracle module (the visible tests' answers and nothing else)
    fails it: a rule the visible tests refute. All False when there is no oracle or its
    probe failed (no evidence either way)."""
    oracle = oracle_text(name, visible)
    if oracle is None or not checks:
        return [False] * len(checks)
    run = probes.probe_all(sandbox, rel, module, [oracle], [], oracle_checks(checks), cancel,
                           extra_files)
    if run.error or run.behaviours[0].error:
        return [False] * len(checks)
    return [not ok for ok in run.behaviours[0].checks]
