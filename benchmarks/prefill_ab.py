"""A/B of prefilling the code reply with the function's signature and docstring.

    python -m benchmarks.prefill_ab --start 0 --end 40 [--model qwen2.5-coder-0.5b]

The raw models copy the whole docstring back into every piece of code they write, whatever
the request says, and the splice throws that copy away: on HumanEval it is about half of a
candidate's tokens. Prefilled, the reply already holds the problem's function up to the end of
its docstring and the model writes only the body. Both variants run through
:mod:`benchmarks.ab` (same engine, interleaved, greedy, direct and plan modes, hidden tests);
it prints pass counts, median seconds, median code tokens and their ratios.
"""

from __future__ import annotations

import sys
from functools import partial

from benchmarks import ab
from plancode.trainer import humaneval


def main() -> int:
    args = ab.arguments(__doc__, "prefill-ab.json")
    summary = ab.run(args, {"plain": partial(humaneval.single, prefill=False),
                            "prefill": partial(humaneval.single, prefill=True)})
    ab.compare(summary, "prefill", "plain")
    return 0


if __name__ == "__main__":
    sys.exit(main())
