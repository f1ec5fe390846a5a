"""Plan-then-code generation for one function.

The model first writes a numbered plan for the problem, then code that follows the plan;
both prompts come from :mod:`server.prompts`. The code-from-plan prompt repeats the problem,
so with KV reuse only the tokens after the shared system prompt are evaluated again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from server import prompts
from server.engine.types import CancelToken, Engine, Generation, OnText, SamplingParams


@dataclass
class PlanAndCode:
    plan: str
    code: str
    plan_generation: Generation
    code_generation: Generation
    seconds: float


def plan_then_code(
    engine: Engine,
    problem: str,
    params: SamplingParams,
    cancel: CancelToken | None = None,
    on_plan_text: OnText | None = None,
    on_code_text: OnText | None = None,
) -> PlanAndCode:
    """One candidate: a plan for ``problem``, then code that follows it."""
    start = time.perf_counter()
    plan_gen = engine.chat(prompts.plan_messages(problem), params, cancel, on_plan_text)
    plan = prompts.parse_plan(plan_gen.text)
    code_gen = engine.chat(
        prompts.code_from_plan_messages(problem, plan), params, cancel, on_code_text
    )
    return PlanAndCode(
        plan=plan,
        code=prompts.parse_code(code_gen.text),
        plan_generation=plan_gen,
        code_generation=code_gen,
        seconds=time.perf_counter() - start,
    )
