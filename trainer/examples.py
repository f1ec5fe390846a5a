"""Training examples, built with the server's own prompts (``server.prompts``).

CodePLAN's multi-task view: from one verified (problem, plan, solution) triple come

* a ``plan`` example: plan prompt -> the verified plan (canonical ``1. step`` lines);
* a ``code`` example: code-from-plan prompt -> the solution in one fenced block;
* optionally a ``direct`` example: direct-code prompt -> the solution (the server's candidate
  pool starts with the student's direct answer, so that task is worth keeping sharp).

The prompt is rendered with the student's chat template and tokenized on its own, exactly as
the server tokenizes it at inference; the reply tokens follow, then the end-of-turn token.
Only reply tokens are labelled. Code replies carry per-token structural flags and AST node
labels (``trainer.structure``); plan replies carry neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from server.prompts import (
    code_from_plan_messages,
    direct_code_messages,
    format_code_reply,
    format_plan_reply,
    plan_messages,
    without_docstring,
)
from trainer.structure import IGNORE, token_structure

TASKS = ("plan", "code", "direct")
CODE_TASKS = ("code", "direct")


@dataclass
class Example:
    task: str
    problem_id: str
    input_ids: list[int]
    labels: list[int]  # IGNORE on prompt tokens
    structural: list[int]  # 1 where the token is structural code (trainer.structure)
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


def encode(tokenizer, task: str, problem_id: str, messages: list[dict[str, str]], reply: str,
           code: str | None) -> Example:
    """One example; ``code`` (the code inside ``reply``) gets structure weights and labels."""
    prompt_ids = tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False)[
        "input_ids"]
    enc = tokenizer(reply, add_special_tokens=False, return_offsets_mapping=True)
    reply_ids = enc["input_ids"]
    flags = [0] * len(reply_ids)
    nodes = [IGNORE] * len(reply_ids)
    if code is not None:
        start = reply.index(code)
        offsets = [(a - start, b - start) for a, b in enc["offset_mapping"]]
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


def examples_for(tokenizer, problem_id: str, problem: str, plan: str, solution: str,
                 context: str = "", tasks: tuple[str, ...] = ("plan", "code")) -> list[Example]:
    """The examples of one verified triple, one per task in ``tasks``. Code targets are the
    solution as a code reply carries it (without its docstring, see ``format_code_reply``)."""
    code = without_docstring(solution).strip()
    out = []
    for task in tasks:
        if task == "plan":
            out.append(encode(tokenizer, task, problem_id, plan_messages(problem, context),
                              format_plan_reply(plan), None))
        elif task == "code":
            msgs = code_from_plan_messages(problem, plan, context)
            out.append(encode(tokenizer, task, problem_id, msgs, format_code_reply(code), code))
        elif task == "direct":
            msgs = direct_code_messages(problem, context)
            out.append(encode(tokenizer, task, problem_id, msgs, format_code_reply(code), code))
        else:
            raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    return out


def build_examples(tokenizer, triples: list[dict], tasks: tuple[str, ...],
                   max_len: int) -> tuple[list[Example], ExampleStats]:
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
                               t.get("context", ""), wanted):
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
