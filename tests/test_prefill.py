"""Prefilled code replies: the model is handed its reply's start (the function's signature and
docstring) and writes only the body; the candidate's code is that start plus what it wrote."""

from __future__ import annotations

from plancode import prompts
from plancode.engine.llama_engine import LlamaEngine
from plancode.engine.types import Generation, SamplingParams
from plancode.pipeline import candidates as cands

PROBLEM = (
    "from typing import List\n\n\n"
    "def total(xs: List[int]) -> int:\n"
    '    """Return the sum of xs.\n\n'
    "    >>> total([1, 2])\n"
    "    3\n"
    '    """\n'
)


def test_the_prefill_is_the_function_through_its_docstring() -> None:
    start = prompts.code_prefill(PROBLEM)
    assert start == "```python\n" + PROBLEM
    # the user's tests shown after the function are not part of the reply's start
    shown = PROBLEM + "\n\n# The user's tests:\ndef test_total():\n    assert total([]) == 0\n"
    assert prompts.code_prefill(shown) == start


def test_no_prefill_without_a_docstring_only_function() -> None:
    assert prompts.code_prefill("def f(x):\n    return x\n") == ""
    assert prompts.code_prefill("def f(x:\n") == ""  # does not parse
    assert prompts.code_prefill("def f(x):\n    pass\n") == ""


def test_a_trailing_assistant_message_is_the_start_of_the_reply(tiny_engine: LlamaEngine) -> None:
    messages = prompts.direct_code_messages(PROBLEM)
    plain = tiny_engine.info.render_chat(messages)
    start = prompts.code_prefill(PROBLEM)
    prefilled = tiny_engine.info.render_chat([*messages, {"role": "assistant",
                                                          "content": start}])
    assert prefilled == plain + start


def test_a_prefilled_candidate_holds_the_signature_and_docstring(
        tiny_engine: LlamaEngine) -> None:
    base = SamplingParams(max_tokens=24)
    cand = cands.generate(tiny_engine, PROBLEM, 0, cands.DIRECT, None, base, 0.7,
                          prefill=True)
    # whatever the tiny model writes, the code parsed from the reply starts with the problem
    assert cand.code.startswith(PROBLEM.rstrip("\n").split("\n")[0])
    assert 'def total(xs: List[int]) -> int:\n    """Return the sum of xs.' in cand.code
    batch = cands.generate_direct_batch(tiny_engine, PROBLEM, [(1, cands.DIRECT, None)], base,
                                        0.7, prefill=True)
    assert batch[0].code == cand.code  # greedy: the batch continues the same start alike


class _Scripted:
    """An engine that cannot continue a started reply (no ``prefills``): a remote server."""

    fim_format = None

    def __init__(self) -> None:
        self.seen: list[list[dict]] = []

    def chat(self, messages, params, cancel=None, on_text=None) -> Generation:
        self.seen.append(messages)
        return Generation(text="```python\ndef total(xs):\n    return sum(xs)\n```",
                          finish_reason="stop", prompt_tokens=50, evaluated_tokens=50,
                          reused_tokens=0, completion_tokens=9)


def test_engines_that_cannot_prefill_get_the_plain_request() -> None:
    engine = _Scripted()
    cand = cands.generate(engine, PROBLEM, 0, cands.DIRECT, None, SamplingParams(), 0.7,
                          prefill=True)
    assert engine.seen[0][-1]["role"] == "user"
    assert cand.code == "def total(xs):\n    return sum(xs)"
