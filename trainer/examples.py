"""Training examples, built with the server's own prompts (``plancode.prompts``).

CodePLAN's multi-task view: from one verified (problem, plan, solution) triple come

* a ``plan`` example: plan prompt -> the verified plan (canonical ``1. step`` lines);
* a ``code`` example: code-from-plan prompt -> the solution in one fenced block;
* optionally a ``direct`` example: direct-code prompt -> the solution (the server's candidate
  pool starts with the student's direct answer, so that task is worth keeping sharp).

Code replies are shaped as the server asks for them: with ``prefill`` (the server's
``prefill_code``) the reply's start, the problem's function through its docstring, is part of
the prompt (:func:`plancode.prompts.code_prefill`) and the target is the body and the closing
fence; without it, the whole function without its docstring in a fenced block.

The prompt is rendered with the student's chat template and tokenized on its own, exactly as
the server tokenizes it at inference; the reply tokens follow, then the end-of-turn token.
Only reply tokens are labelled. Code replies carry per-token structural flags and AST node
labels (``plancode.trainer.structure``); plan replies carry neither.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from plancode.analysis import pyparse
from plancode.prompts import (
    Message,
    code_from_plan_messages,
    code_prefill,
    direct_code_messages,
    format_code_reply,
    format_plan_reply,
    plan_messages,
    without_docstring,
)
from plancode.trainer.structure import IGNORE, token_structure

TASKS = ("plan", "code", "direct")
CODE_TASKS = ("code", "direct")


@dataclass
class Example:
    task: str
    problem_id: str
    input_ids: list[int]
    labels: list[int]  # IGNORE on prompt tokens
    structural: list[int]  # 1 where the token is structural code (plancode.trainer.structure)
    node_types: list[int]  # AST node kind per position (IGNORE where none)

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class ExampleStats:
    built: dict[str, int] = field(default_factory=dict)
    too_long: int = 0
    structural_tokens: int = 0
    code_tokens: int = 0

    def to_json(self) -> dict:
        return {"built": self.built, "too_long": self.too_long,
                "structural_fraction": round(self.structural_tokens / self.code_tokens, 4)
                if self.code_tokens else 0.0}


def render_prompt(tokenizer, messages: list[dict[str, str]]) -> str:
    """The prompt text under the student's chat template (generation prompt included)."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode(tokenizer, task: str, problem_id: str, messages: list[Message], reply: str,
           code: str | None, prefill: str = "", reply_at: int | None = None) -> Example:
    """One example; ``code`` (the code the reply carries) gets structure weights and labels.
    ``prefill``: the reply's start, given in the prompt (as the server's engine renders a
    trailing assistant message: the prompt, then that text); ``reply_at``: where ``reply``
    starts within ``code`` (default: ``reply`` contains ``code`` whole)."""
    prompt_ids = tokenizer(render_prompt(tokenizer, messages) + prefill,
                           add_special_tokens=False)["input_ids"]
    enc = tokenizer(reply, add_special_tokens=False, return_offsets_mapping=True)
    reply_ids = enc["input_ids"]
    flags = [0] * len(reply_ids)
    nodes = [IGNORE] * len(reply_ids)
    if code is not None:
        shift = reply_at if reply_at is not None else -reply.index(code)
        offsets = [(a + shift, b + shift) for a, b in enc["offset_mapping"]]
        flags, nodes = token_structure(code, offsets)
    eot = tokenizer.eos_token_id  # the chat template's end of turn (<|im_end|> for Qwen)
    n_prompt = len(prompt_ids)
    return Example(
        task=task,
        problem_id=problem_id,
        input_ids=prompt_ids + reply_ids + [eot],
        labels=[IGNORE] * n_prompt + reply_ids + [eot],
        structural=[0] * n_prompt + flags + [0],
        node_types=[IGNORE] * n_prompt + nodes + [IGNORE],
    )


def body_start(code: str) -> int | None:
    """Where the body of ``code``'s first function starts (comment lines just above its first
    statement included), or None when there is no such function."""
    try:
        tree = pyparse.parse(code)
    except SyntaxError:
        return None
    func = next((n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)),
                None)
    if func is None:
        return None
    lines = code.splitlines(keepends=True)
    first = func.body[0].lineno - 1
    while first - 1 > func.lineno - 1 and lines[first - 1].lstrip().startswith("#"):
        first -= 1
    return sum(len(line) for line in lines[:first])


def code_example(tokenizer, task: str, problem_id: str, messages: list[Message], problem: str,
                 code: str, prefill: bool) -> Example:
    """A code reply's example, shaped as the server asks (see the module's docstring); a
    problem the server would not prefill (:func:`code_prefill` is '') gets the plain shape."""
    start = code_prefill(problem) if prefill else ""
    at = body_start(code) if start else None
    if not start or at is None:
        return encode(tokenizer, task, problem_id, messages, format_code_reply(code), code)
    return encode(tokenizer, task, problem_id, messages, code[at:] + "\n```", code,
                  prefill=start, reply_at=at)


def examples_for(tokenizer, problem_id: str, problem: str, plan: str, solution: str,
                 context: str = "", tasks: tuple[str, ...] = ("plan", "code"),
                 prefill: bool = True) -> list[Example]:
    """The examples of one verified triple, one per task in ``tasks``. Code targets are the
    solution as a code reply carries it (without its docstring, see ``format_code_reply``;
    with ``prefill``, its body after the prefilled signature and docstring)."""
    code = without_docstring(solution).strip()
    out = []
    for task in tasks:
        if task == "plan":
            out.append(encode(tokenizer, task, problem_id, plan_messages(problem, context),
                              format_plan_reply(plan), None))
        elif task == "code":
            out.append(code_example(tokenizer, task, problem_id,
                                    code_from_plan_messages(problem, plan, context), problem,
                                    code, prefill))
        elif task == "direct":
            out.append(code_example(tokenizer, task, problem_id,
                                    direct_code_messages(problem, context), problem, code,
                                    prefill))
        else:
            raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    return out


def build_examples(tokenizer, triples: list[dict], tasks: tuple[str, ...],
                   max_len: int, prefill: bool = True) -> tuple[list[Example], ExampleStats]:
    """Examples for ``triples`` ({id, problem, plan, solution, context}); longer than
    ``max_len`` tokens are dropped (truncating would teach a cut-off answer) and counted.
    A problem's direct example is built once, however many plans it has."""
    stats = ExampleStats()
    out: list[Example] = []
    direct_done: set[str] = set()
    for t in triples:
        wanted = tuple(x for x in tasks if x != "direct" or t["id"] not in direct_done)
        direct_done.add(t["id"])
        for ex in examples_for(tokenizer, t["id"], t["problem"], t["plan"], t["solution"],
                               t.get("context", ""), wanted, prefill):
            if len(ex) > max_len:
                stats.too_long += 1
                continue
            stats.built[ex.task] = stats.built.get(ex.task, 0) + 1
            if ex.task in CODE_TASKS:
                pairs = zip(ex.structural, ex.labels, strict=True)
                labelled = [f for f, lab in pairs if lab != IGNORE]
                stats.code_tokens += len(labelled)
                stats.structural_tokens += sum(labelled)
            out.append(ex)
    return out, stats
