"""How the test writer's reply should start: nothing, ``assert NAME(`` or ``assert NAME``.

    PLANCODE_N_THREADS=2 python -m benchmarks.test_writer_forms \\
        [--model qwen2.5-coder-0.5b] [--json benchmarks/results/test-writer-forms.json]

On the realistic project's two ``stats`` functions and ten HumanEval problems (105, the one
with no runnable example, and nine more spread over the set), the pipeline's own writer
(``generated_tests.reply``, greedy, 512 tokens, stopped at 8 asserts) with each start: the
tokens it decoded, the asserts it gave and the first of them, which the start shapes most.
Tokens, not seconds, are the cost measure: they do not depend on what else runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from plancode import prompts
from plancode.analysis.functions import find_function
from plancode.engine.types import SamplingParams
from plancode.pipeline import generated_tests

REPO = Path(__file__).resolve().parent.parent
HUMANEVAL = (105, 3, 12, 26, 37, 51, 80, 128, 140, 160)
FORMS = {"none": None,
         "paren": lambda name: f"```python\nassert {name}(",
         "name": lambda name: f"```python\nassert {name}"}


def problems() -> list[tuple[str, str]]:
    from plancode.trainer.humaneval import load_humaneval, target

    out = []
    stats = (REPO / "benchmarks/realistic/project/shop/stats.py").read_text()
    for line in (3, 12):
        info = find_function(stats, line)
        out.append((info.name, info.problem))
    by_id = {p["task_id"]: p for p in load_humaneval()}
    for i in HUMANEVAL:
        p = by_id[f"HumanEval/{i}"]
        info = target(p, p["prompt"])
        out.append((info.name, info.problem))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks/results/test-writer-forms.json")
    args = ap.parse_args(argv)
    from plancode.config import Settings
    from plancode.engine.factory import load_engine

    engine = load_engine(Settings.from_mapping({"model": args.model}, Settings.from_env()))
    shipped = prompts.tests_prefill
    rows = []
    try:
        for name, problem in problems():
            for form, start in FORMS.items():
                prompts.tests_prefill = start or shipped  # the writer reads it from here
                text, gen = generated_tests.reply(engine, problem, name,
                                                  SamplingParams(max_tokens=512),
                                                  prefill=start is not None)
                asserts = prompts.parse_asserts(text, name)
                rows.append({"function": name, "form": form, "tokens": gen.completion_tokens,
                             "asserts": len(asserts), "first": asserts[0] if asserts else None,
                             "all": asserts[:8]})
                print(f"{name:18s} {form:6s} {gen.completion_tokens:4d} tokens "
                      f"{len(asserts)} asserts  {asserts[0] if asserts else '-'}", flush=True)
    finally:
        prompts.tests_prefill = shipped
    totals = {f: sum(r["tokens"] for r in rows if r["form"] == f) for f in FORMS}
    print("tokens in all:", totals)
    args.json.write_text(json.dumps({"model": args.model, "totals": totals, "rows": rows},
                                    indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
