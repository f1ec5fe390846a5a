"""The prompt contract shared by the server and the trainer. Nothing else defines a prompt.

A student trained by ``trainer`` is served by ``server`` with exactly these prompts, so both
import this module: the trainer renders training examples with the same message builders and
reply formatters that the server's parsers read back.

Tasks (CodePLAN's multi-task view):

* ``plan``       problem -> numbered plan (no code)
* ``code``       problem + plan -> code
* ``direct``     problem -> code
* ``backward``   problem + correct solution -> the plan a programmer followed (teacher only)
* ``repair``     problem + plan + code + failing test output -> corrected plan and code
* ``tests``      problem -> assert-style test cases (CodeT-style fallback when none exist)
* ``fim``        prefix/suffix -> middle, in the model family's fill-in-the-middle format

A *problem* is Python source that states the task: usually the function's signature and
docstring, with any imports or context it needs above it (the HumanEval prompt shape).
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from plancode.analysis import pyparse

Message = dict[str, str]

SYSTEM = (
    "You are a careful Python programmer. You plan before you code, and your code is "
    "correct, complete and uses only the standard library unless told otherwise."
)

PLAN_REQUEST = (
    "Write a short step-by-step plan for implementing this function: numbered steps in plain "
    "English, one line each, at most 8 steps. Do not write any code."
)

# the docstring is left out: the splice keeps the user's own and drops the model's, so copying
# it back only costs decode time and, at the token limit, the end of the code
# (benchmarks/prompt_ab.py measures both requests side by side)
CODE_REQUEST = (
    "Reply with the complete function, its signature and its body but not its docstring, in "
    "one ```python code block."
)


def _problem_block(problem: str) -> str:
    return f"```python\n{problem.rstrip()}\n```"


def _chat(user: str) -> list[Message]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def _task(lead: str, problem: str, context: str) -> str:
    """The problem, preceded by module context the function may use (when there is any)."""
    head = ""
    if context.strip():
        head = ("For reference, the same module already defines these (do not rewrite them):\n"
                f"{_problem_block(context)}\n\n")
    return f"{head}{lead}:\n{_problem_block(problem)}"


def plan_messages(problem: str, context: str = "") -> list[Message]:
    """Ask for a plan for ``problem`` (forward planning, used at inference)."""
    return _chat(f"{_task('Here is a Python function to implement', problem, context)}\n\n"
                 f"{PLAN_REQUEST}")


def code_from_plan_messages(problem: str, plan: str, context: str = "") -> list[Message]:
    """Ask for code that implements ``problem`` by following ``plan``."""
    return _chat(
        f"{_task('Implement this Python function', problem, context)}\n\n"
        f"Follow this plan:\n{format_plan_reply(plan)}\n\n{CODE_REQUEST}"
    )


def direct_code_messages(problem: str, context: str = "") -> list[Message]:
    """Ask for code straight from the problem, with no plan."""
    return _chat(f"{_task('Implement this Python function', problem, context)}\n\n"
                 f"{CODE_REQUEST}")


def backward_plan_messages(problem: str, solution: str) -> list[Message]:
    """Backward reasoning (CodePLAN): the teacher sees a correct solution and writes its plan."""
    return _chat(
        f"Here is a Python function to implement:\n{_problem_block(problem)}\n\n"
        f"And here is a correct solution:\n{_problem_block(solution)}\n\n"
        "Write the plan a programmer would have followed to arrive at this solution. "
        f"{PLAN_REQUEST} Do not mention that you have seen the solution."
    )


def repair_messages(
    problem: str, plan: str, code: str, failure: str, context: str = ""
) -> list[Message]:
    """Show a failed attempt and its test output; ask for a corrected plan, then code."""
    return _chat(
        f"{_task('Here is a Python function to implement', problem, context)}\n\n"
        f"A first attempt followed this plan:\n{format_plan_reply(plan)}\n\n"
        f"and wrote this code:\n{_problem_block(code)}\n\n"
        f"The tests failed:\n```\n{failure.strip()[:2000]}\n```\n\n"
        "Write a corrected plan (numbered steps, one line each), then the corrected complete "
        "function in one ```python code block."
    )


def test_writing_messages(problem: str, name: str) -> list[Message]:
    """Ask for assert-style tests of ``name`` (CodeT-style, used when the user has none)."""
    return _chat(
        f"Here is a Python function to test:\n{_problem_block(problem)}\n\n"
        f"Write 6 different test cases for `{name}` as one-line assert statements of the form "
        f"`assert {name}(...) == expected`. Check every rule the docstring states, including "
        "its edge cases (empty input, boundaries, rounding, ordering); work out each expected "
        "value carefully. For a call the docstring says must raise an error, write "
        f"`with pytest.raises(ValueError): {name}(...)` on one line. Reply with one "
        "```python code block containing only those lines."
    )


def tests_prefill(name: str) -> str:
    """The start of a test-writing reply: the code block opened and the first assert begun,
    up to the function's name. Left to itself the 0.5B model often re-implements the function
    before any assert (the realistic project's ``median``: 240 tokens for 6 asserts, 85 when
    started here). Not up to the ``(``: the model would then begin its arguments with a token
    it never writes after a name (``([`` is one token), and 9 of 12 first asserts came out
    with arguments of the wrong shape (``by_length(2)``, ``sort_even(1, 2, 3)``)."""
    return f"```python\nassert {name}"


def with_reply_start(messages: list[Message], start: str) -> list[Message]:
    """``messages`` with the assistant's reply begun with ``start`` (unchanged when empty);
    an engine that continues a started reply (``prefills``) writes on from there."""
    return [*messages, {"role": "assistant", "content": start}] if start else messages


def prose_check_messages(problem: str, name: str) -> list[Message]:
    """Ask for checks of what ``name``'s docstring states in prose (issue 30, item 2):
    inputs it names, rules about the result rather than exact values, and the errors it says
    are raised (``pipeline/prose_checks.py`` sorts the lines into kinds)."""
    return _chat(
        f"Here is a Python function to test:\n{_problem_block(problem)}\n\n"
        f"Write up to 8 checks of `{name}` that follow from what the docstring says, one "
        "Python line each:\n"
        f"- for an input the docstring mentions: the bare call `{name}(...)`, which must not "
        "raise an error;\n"
        "- for a rule the docstring states about the result (its order, rounding, type, "
        "which characters it may hold, what an empty or edge-case input gives): an assert "
        f"on a property of the result, e.g. `assert {name}(...) == sorted({name}(...))` or "
        f"`assert all(c.islower() for c in {name}(...))`;\n"
        "- for an input the docstring says must raise an error: "
        f"`with pytest.raises(ValueError): {name}(...)`.\n"
        "Use only rules the docstring states. Reply with one ```python code block containing "
        "only those lines."
    )


def parse_asserts(reply: str, name: str) -> list[str]:
    """The one-line ``assert`` (or ``with pytest.raises(E): call``) statements of a reply that
    call ``name``, deduplicated."""
    found: list[str] = []
    for block in code_blocks(reply) or [reply]:
        for line in block.splitlines():
            stmt = line.strip()
            if not stmt.startswith(("assert ", "with pytest.raises(")) or f"{name}(" not in stmt:
                continue
            try:
                pyparse.parse(stmt)
            except SyntaxError:
                continue
            if stmt not in found:
                found.append(stmt)
    return found


# -- reply formats (what the trainer uses as targets, what the parsers read) -----------------

_STEP = re.compile(r"^\s*(?:(?:step\s*)?(\d+)\s*[.):]\s*|[-*\u2022]\s+)(.+?)\s*$", re.IGNORECASE)
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def format_plan_reply(plan: str | list[str]) -> str:
    """The canonical plan text: ``1. step`` lines."""
    steps = plan if isinstance(plan, list) else plan_steps(plan)
    return "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))


def without_docstring(code: str) -> str:
    """``code`` without the docstrings of its top-level functions (what ``CODE_REQUEST`` asks
    for). Code that does not parse, and a function whose docstring is its whole body, are left
    as they are."""
    try:
        tree = pyparse.parse(code)
    except SyntaxError:
        return code
    lines = code.splitlines(keepends=True)
    drop: set[int] = set()
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or len(node.body) < 2:
            continue
        first = node.body[0]
        if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str) and first.end_lineno is not None
                and first.end_lineno < node.body[1].lineno
                and lines[first.lineno - 1][:first.col_offset].strip() == ""):
            drop.update(range(first.lineno - 1, first.end_lineno))
    return "".join(line for i, line in enumerate(lines) if i not in drop)


def code_prefill(problem: str) -> str:
    """The start of a code reply that already holds the problem's function up to the end of
    its docstring (imports above it included), so the model writes only the body: the raw
    models copy the docstring back whatever the request says, and the splice throws that copy
    away. '' when ``problem`` has no top-level function whose body is only a docstring."""
    try:
        tree = pyparse.parse(problem)
    except SyntaxError:
        return ""
    for node in tree.body:
        if (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and len(node.body) == 1
                and isinstance(node.body[0], ast.Expr)
                and isinstance(node.body[0].value, ast.Constant)
                and isinstance(node.body[0].value.value, str)):
            end = node.body[0].end_lineno or node.lineno
            head = "".join(problem.splitlines(keepends=True)[:end]).rstrip("\n")
            return f"```python\n{head}\n"
    return ""


def prefilled(messages: list[Message], problem: str,
              enabled: bool = True) -> tuple[list[Message], str]:
    """``messages`` with the code reply started (a trailing assistant message holding
    :func:`code_prefill`), and that start ('' and the messages unchanged when there is none
    or ``enabled`` is false). The whole reply is the start followed by what the model writes."""
    start = code_prefill(problem) if enabled else ""
    return with_reply_start(messages, start), start


def format_code_reply(code: str) -> str:
    """The canonical code reply: the code without its docstrings, in one fenced python block
    (the training target of the ``code`` and ``direct`` tasks)."""
    return f"```python\n{without_docstring(code).strip()}\n```"


_PROBE = 'def probe(x: int) -> int:\n    """Return x."""\n'


def contract_digest(*tasks: str) -> str:
    """A digest of how the given tasks' prompts and replies look, rendered on a probe problem:
    a stage whose output depends on them fingerprints it, so changing a prompt redoes that
    stage's work instead of mixing two prompts in one cache."""
    solution = _PROBE + "    return x\n"
    render = {
        "plan": lambda: [plan_messages(_PROBE, "C = 1"), format_plan_reply("1. a")],
        "code": lambda: [code_from_plan_messages(_PROBE, "1. a", "C = 1"),
                         format_code_reply(solution)],
        "direct": lambda: [direct_code_messages(_PROBE, "C = 1"), format_code_reply(solution)],
        "backward": lambda: backward_plan_messages(_PROBE, solution),
        "prefill": lambda: code_prefill(_PROBE),
    }
    text = json.dumps([render[t]() for t in tasks])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_steps(reply: str) -> list[str]:
    """The plan's steps, from numbered or bulleted lines of a reply; code blocks are ignored.

    Small models often write an analysis list and then the plan proper ("Step-by-Step Plan:
    1. ..."): numbering that restarts at 1 starts a new list, and the list under a heading
    that mentions a plan or steps wins, else the longest. Lines that continue a step
    (indented, unnumbered) are joined onto it. A reply with no numbered or bulleted lines
    yields its non-empty lines as steps.
    """
    text = _FENCE.sub("", reply)
    lists: list[tuple[str, list[str]]] = []  # (heading, steps)
    heading = ""
    loose: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        match = _STEP.match(raw)
        if match:
            restart = match.group(1) == "1" or not lists or lists[-1][0] != heading
            if restart and (not lists or lists[-1][1]):
                lists.append((heading, []))
            lists[-1][1].append(_clean_step(match.group(2)))
        elif lists and lists[-1][1] and raw[:1].isspace():
            lists[-1][1][-1] = f"{lists[-1][1][-1]} {_clean_step(line)}"
        else:
            heading = line
            loose.append(_clean_step(line))
    if not lists:
        return [s for s in loose if s]
    titled = [steps for head, steps in lists if re.search(r"\b(plan|steps?)\b", head, re.I)]
    best = titled[-1] if titled else max(reversed([s for _, s in lists]), key=len)
    return [s for s in best if s]


def _clean_step(step: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"\1", step).strip()


def parse_plan(reply: str) -> str:
    """The plan in a reply, in canonical ``1. step`` form ('' when there is none)."""
    return format_plan_reply(plan_steps(reply))


def code_blocks(reply: str) -> list[str]:
    """Every fenced code block in a reply that is Python or untagged, in order."""
    return [
        body.rstrip()
        for lang, body in _FENCE.findall(reply)
        if lang.lower() in {"", "python", "py", "python3"}
    ]


def parse_code(reply: str) -> str:
    """The code in a reply: the first fenced block that defines something, else the longest.

    A reply without fences is taken as code when it starts like Python code (``def``,
    ``import``, ``from``, ``class``, ``@``); otherwise the result is ''.
    """
    blocks = [b for b in code_blocks(reply) if b.strip()]
    defining = [b for b in blocks if re.search(r"^\s*(async\s+)?def |^\s*class ", b, re.M)]
    if defining:
        return defining[0].strip("\n")
    if blocks:
        return max(blocks, key=len).strip("\n")
    stripped = reply.strip("\n")
    if re.match(r"\s*(def |async def |import |from |class |@)", stripped):
        return stripped
    return ""


# -- fill-in-the-middle ----------------------------------------------------------------------


@dataclass(frozen=True)
class FimFormat:
    """A model family's fill-in-the-middle tokens (prefix-suffix-middle order)."""

    name: str
    prefix: str
    suffix: str
    middle: str
    stops: tuple[str, ...]  # special tokens after which the middle is over

    def render(self, prefix: str, suffix: str) -> str:
        return f"{self.prefix}{prefix}{self.suffix}{suffix}{self.middle}"

    @property
    def tokens(self) -> tuple[str, str, str]:
        return (self.prefix, self.suffix, self.middle)


FIM_FORMATS: dict[str, FimFormat] = {
    f.name: f
    for f in (
        FimFormat(
            "qwen",
            "<|fim_prefix|>",
            "<|fim_suffix|>",
            "<|fim_middle|>",
            ("<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>", "<|im_end|>",
             "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
        ),
        FimFormat(
            "starcoder",
            "<fim_prefix>",
            "<fim_suffix>",
            "<fim_middle>",
            ("<|endoftext|>", "<fim_pad>", "<file_sep>", "<fim_prefix>", "<fim_suffix>",
             "<fim_middle>"),
        ),
        FimFormat("codellama", "<PRE> ", " <SUF>", " <MID>", ("<EOT>",)),
    )
}


def fim_format_for(is_special_token: Callable[[str], bool]) -> FimFormat | None:
    """The FIM format whose three tokens the model's vocabulary has as single special tokens."""
    for fmt in FIM_FORMATS.values():
        if all(is_special_token(tok.strip()) for tok in fmt.tokens):
            return fmt
    return None
