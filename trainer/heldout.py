"""pass@1 on the held-out mined problems (never planned, never trained on), besides HumanEval.

Each problem is answered greedily in two modes with the server's own prompts — ``direct``
(code from the problem) and ``plan`` (a plan, then code from it) — and the answer is spliced
into its real file and judged by the codebase's own tests in the sandbox
(``plancode.trainer.checker``),
as plan verification judges training plans. Only the tests the problem's own solution passes
there judge the answers (``plancode.trainer.references``, rule "reference"): pydash ships
pytest-mypy-testing cases (``reveal_type`` checks for a type checker) beside its real tests,
and they fail as plain tests whatever the code. A problem
whose solution passes none of its tests (a *broken* problem) can be solved by no model, so it
is left out, as verification leaves it out. Rows are cached per model label, so an
interrupted evaluation resumes.
"""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from plancode.analysis.functions import functions
from plancode.engine.types import SamplingParams
from plancode.errors import PlancodeError
from plancode.prompts import (
    Message,
    code_from_plan_messages,
    direct_code_messages,
    parse_code,
    parse_plan,
    prefilled,
)
from plancode.prompts import plan_messages as plan_prompt
from plancode.trainer.checker import Checker
from plancode.trainer.data import Problem
from plancode.trainer.heldout_pipeline import Workspaces, pipeline_row
from plancode.trainer.jsonl_cache import Claims, JsonlCache, shared_work
from plancode.trainer.references import (
    judged,
    known_broken,
    partly_judged,
    reference_key,
    reference_row,
)
from plancode.trainer.teacher import ChatModel

if TYPE_CHECKING:
    from plancode.pipeline.run import Pipeline

MODES = ("direct", "plan")  # one greedy answer each
PIPELINE = "select"  # plancode's whole pipeline (plancode.trainer.heldout_pipeline)
ALL_MODES = (*MODES, PIPELINE)


def answer(model: ChatModel, problem: Problem, mode: str, max_tokens: int,
           prefill: bool = False) -> str:
    """The code ``model`` writes for ``problem`` in ``mode`` (greedy). ``prefill``: its code
    reply starts with the function's signature and docstring, as the server's does
    (``prefill_code``; the model must continue a trailing assistant message, as the llama.cpp
    engines do)."""
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    context = str(problem.meta.get("context", ""))

    def code(messages: list[Message]) -> str:
        messages, start = prefilled(messages, problem.problem, prefill)
        return parse_code(start + model.chat(messages, params))

    if mode == "direct":
        return code(direct_code_messages(problem.problem, context))
    plan = parse_plan(model.chat(plan_prompt(problem.problem, context), params))
    return code(code_from_plan_messages(problem.problem, plan, context))


def evaluate_heldout(models: dict[str, ChatModel], problems: list[Problem],
                     caches: dict[str, Path], isolation: str = "auto", timeout: float = 30.0,
                     max_tokens: int = 512, log: bool = True,
                     prefill: bool = False, poll: float = 5.0,
                     references: Path | None = None, modes: tuple[str, ...] = MODES,
                     pipelines: dict[str, Callable[[], Pipeline]] | None = None
                     ) -> dict[str, dict]:
    """Per model label and mode: {"pass@1", "solved", "n"} over ``problems`` with tests whose
    reference passes them (checked once, cached in ``references``; without it every problem
    with tests counts). ``caches`` names each label's rows file (a file named for the model
    rather than the label lets two runs share a model's rows); processes sharing a rows file
    split its problems (:func:`plancode.trainer.jsonl_cache.shared_work`), so a second ``--stage
    eval``
    halves the time."""
    if PIPELINE in modes and set(models) - set(pipelines or {}):
        raise PlancodeError(f"mode {PIPELINE!r} needs a pipeline for every model",
                            "pass pipelines= (label -> a function returning its Pipeline)")
    summary: dict[str, dict] = {}
    refs = JsonlCache(references) if references is not None else None
    with Checker(isolation, timeout) as checker, Workspaces() as workspaces:
        usable = [p for p in problems if checker.has_tests(p)]
        for label, model in models.items():
            cache = JsonlCache(caches[label])
            needed = partial(_needed, cache, refs, modes)

            def answer_row(p: Problem, mode: str, model: ChatModel = model,
                           label: str = label) -> dict:
                if mode == PIPELINE:
                    return pipeline_row(pipelines[label](), checker, workspaces, p)
                return _answer_row(model, checker, p, mode, max_tokens, prefill)

            for p in shared_work(usable, lambda p: p.id, needed, Claims(cache.path), poll):
                scored = p if refs is None else judged(p, reference_row(checker, p, refs),
                                                        "reference")
                if scored is None or not checker.has_tests(scored):
                    continue
                for mode in needed(p):
                    row = answer_row(scored, mode)
                    cache.add(row)
                    if log:
                        print(f"[heldout {label}] {row['key']}: "
                              f"{'PASS' if row['passed'] else 'fail'}", file=sys.stderr,
                              flush=True)
            summary[label] = _summary(cache, refs, usable, modes)
    return summary


def _summary(cache: JsonlCache, refs: JsonlCache | None, usable: list[Problem],
             modes: tuple[str, ...]) -> dict:
    """pass@1 per mode over the problems that are not broken, and how many are."""
    cache.refresh()
    if refs is not None:
        refs.refresh()
    scored = {p.id for p in usable if not _broken(refs, p)}
    rows = [r for r in cache if r["id"] in scored]
    out: dict = {mode: _score([r for r in rows if r["mode"] == mode]) for mode in modes}
    if refs is not None:
        out["broken"] = len(usable) - len(scored)
        out["judged_by_some_tests"] = sum(partly_judged(refs.get(reference_key(p)))
                                          for p in usable)
    return out


def broken_problems(references: Path) -> set[str]:
    """Ids of the held-out problems whose own solution fails their tests, in a references
    file written by :func:`evaluate_heldout` (scored by no model)."""
    if not references.exists():
        return set()
    return {r["id"] for r in JsonlCache(references) if known_broken(r, "reference")}


def _broken(refs: JsonlCache | None, p: Problem) -> bool:
    """Whether ``p``'s reference is known to fail its own tests (as far as ``refs`` has
    read)."""
    return refs is not None and known_broken(refs.get(reference_key(p)), "reference")


def _needed(cache: JsonlCache, refs: JsonlCache | None, modes: tuple[str, ...],
            p: Problem) -> list[str]:
    """The modes of ``p`` not in ``cache`` (re-read: another process may have added them);
    none for a broken problem."""
    if refs is not None:
        refs.refresh()
    if _broken(refs, p):
        return []
    cache.refresh()
    return [m for m in modes if f"{p.id}#{m}" not in cache]


def written_body(code: str, name: str) -> str:
    """The body (below its docstring, dedented) of the function ``name`` in ``code`` (a
    problem's :func:`plancode.trainer.decontam.function_name`): a row's answer or the problem's own
    solution; '' when ``code`` has no such function. What CodeBLEU compares, as HumanEval's
    rows carry their entry point's body."""
    info = next((f for f in functions(code) if f.name == name), None)
    return textwrap.dedent(code[info.body_start:info.body_end]) if info else ""


def _answer_row(model: ChatModel, checker: Checker, p: Problem, mode: str, max_tokens: int,
                prefill: bool) -> dict:
    """``model``'s answer to ``p`` in ``mode``, judged by the problem's own tests."""
    start = time.perf_counter()
    code = answer(model, p, mode, max_tokens, prefill)
    try:
        passed = checker.check(p, code).all_passed
    except PlancodeError:
        passed = False
    return {"key": f"{p.id}#{mode}", "id": p.id, "mode": mode, "passed": passed, "code": code,
            "seconds": round(time.perf_counter() - start, 2)}


def _score(rows: list[dict]) -> dict:
    solved = sum(r["passed"] for r in rows)
    return {"pass@1": solved / len(rows) if rows else 0.0, "solved": solved, "n": len(rows)}
