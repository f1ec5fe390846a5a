"""A fixed chat prompt for the engine's determinism tests.

Those tests check that llama.cpp gives the same greedy text whatever the cache, batch or load;
they must not move when the product's prompt wording changes (server/prompts.py). On a tiny
model a reworded request can land on a near-tie a few dozen tokens in, where the last bits of
a differently split prompt evaluation pick the other token; the text below has none within
the tests' token limits.
"""

from __future__ import annotations

from plancode.prompts import Message

SYSTEM = ("You are a careful Python programmer. You plan before you code, and your code is "
          "correct, complete and uses only the standard library unless told otherwise.")


def code_messages(problem: str) -> list[Message]:
    """The code request as the tests have always sent it."""
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Implement this Python function:\n```python\n"
             f"{problem.rstrip()}\n```\n\nReply with the complete function, including its "
             "signature, in one ```python code block."}]
