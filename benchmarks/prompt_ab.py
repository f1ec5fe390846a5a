"""A/B of the code request: copy the docstring back, or leave it out.

    python -m benchmarks.prompt_ab --start 0 --end 40 [--model qwen2.5-coder-0.5b]

The splice keeps the user's own docstring and drops the candidate's, so every docstring token a
model writes is decode time (and, at a token limit, the end of the code) spent for nothing.
Both requests run through :mod:`benchmarks.ab` (same engine, interleaved, greedy, direct and
plan modes, hidden tests), without prefilled replies (those leave the model no docstring to
copy); it prints the pass counts and the ratio of median seconds.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from benchmarks import ab
from plancode import prompts
from plancode.trainer import humaneval

OLD = ("Reply with the complete function, including its signature, in one ```python code "
       "block.")
NEW = prompts.CODE_REQUEST


def asking(request: str) -> Callable[[object, dict, str, int], dict]:
    """A plain (unprefilled) answer under the code request ``request``."""
    def answer(engine: object, problem: dict, strategy: str, max_tokens: int) -> dict:
        prompts.CODE_REQUEST = request
        try:
            return humaneval.single(engine, problem, strategy, max_tokens, prefill=False)
        finally:
            prompts.CODE_REQUEST = NEW
    return answer


def main() -> int:
    args = ab.arguments(__doc__, "prompt-ab-docstring.json")
    if OLD == NEW:
        print("the code request in server/prompts.py is the old one: nothing to compare",
              file=sys.stderr)
        return 2
    summary = ab.run(args, {"with docstring": asking(OLD), "without docstring": asking(NEW)})
    ab.compare(summary, "without docstring", "with docstring")
    return 0


if __name__ == "__main__":
    sys.exit(main())
