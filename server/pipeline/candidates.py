"""Making one candidate: direct code, plan then code (greedy or with a sampled plan), repair.

The pool mixes strategies on purpose (DESIGN.md): the model's direct greedy answer, its greedy
plan-guided answer, sampled direct answers, and plan-guided answers from sampled plans
(CodePLAN's plan sampling). The
user's tests choose, and each candidate records the strategy that made it, so whether planning
pays off for a model is measured rather than assumed. The strategy names live in ``kinds``
(and read as ``candidates.DIRECT`` etc. here too).
"""

from __future__ import annotations

import dataclasses
import time

from plancode import prompts
from plancode.engine.types import CancelToken, Engine, Generation, SamplingParams
from plancode.pipeline.guards import Guard
from plancode.pipeline.kinds import (
    DIRECT,
    DIRECT_SAMPLED,
    PLAN_GREEDY,
    PLAN_SAMPLED,
    REPAIR,
    Strategy,
)
from plancode.pipeline.result import Candidate


def schedule(n: int, seed: int) -> list[tuple[Strategy, int | None]]:
    """The strategies of ``n`` candidates, by measured yield per second: the direct greedy
    answer first (HumanEval-164 on the 0.5B: 92 solved at ~5 s), a sampled direct answer next
    (as cheap, and right where greedy is not), the greedy plan-guided answer third (73 solved
    at 2.4x the time: it pays only as a different answer on problems the first two missed),
    then sampled code and code from sampled plans alternating (seeds ``seed+1``, ...)."""
    plan: list[tuple[Strategy, int | None]] = [(DIRECT, None), (DIRECT_SAMPLED, seed + 1),
                                               (PLAN_GREEDY, None)]
    i = 2
    while len(plan) < n:
        plan.append((DIRECT_SAMPLED if i % 2 == 0 else PLAN_SAMPLED, seed + i))
        i += 1
    return plan[:n]


def widen(plan: list[tuple[Strategy, int | None]], direct: int,
          seed: int) -> list[tuple[Strategy, int | None]]:
    """``plan`` with sampled direct candidates added until it has ``direct`` direct ones
    (decoded together in one batch, they cost far less than one more plan candidate)."""
    plan = list(plan)
    used = {sd for _, sd in plan if sd is not None}
    i = max(used, default=seed) + 1
    while sum(st in (DIRECT, DIRECT_SAMPLED) for st, _ in plan) < direct:
        plan.append((DIRECT_SAMPLED, i))
        i += 1
    return plan


def _params(base: SamplingParams, seed: int | None, temperature: float) -> SamplingParams:
    if seed is None:
        return dataclasses.replace(base, temperature=0.0)
    return dataclasses.replace(base, temperature=temperature, seed=seed)


def _finish(cand: Candidate, gen: Generation, started: float, tokens: int,
            guard: Guard | None = None) -> Candidate:
    cand.mean_logprob = gen.mean_logprob
    cand.completion_tokens = tokens
    cand.generate_seconds = time.perf_counter() - started
    if guard is not None and guard.salvaged is not None:
        cand.code = guard.salvaged.strip("\n")  # the good code before the bad line
    elif guard is not None and guard.tripped:
        cand.error = f"stopped while decoding: {guard.tripped}"
    elif gen.finish_reason == "cancelled":
        cand.error = "cancelled"
    elif not cand.code:
        cand.error = "the model wrote no code block"
    return cand


def _guarded_chat(engine: Engine, messages: list[prompts.Message], params: SamplingParams,
                  cancel: CancelToken | None, guard: Guard) -> Generation:
    """``engine.chat`` stopped by ``guard`` (a child token: a guard's stop is not a cancel of
    the run; the candidate records why it stopped)."""
    stop = CancelToken(cancel)

    def on_text(text: str) -> None:
        if guard(text):
            stop.cancel()

    return engine.chat(messages, params, stop, on_text)


def _code_reply(engine: Engine, messages: list[prompts.Message], problem: str,
                params: SamplingParams, cancel: CancelToken | None,
                prefill: bool, cap: int | None) -> tuple[Generation, str, Guard]:
    """The generation for a code request, the whole reply text and its guard. With
    ``prefill`` (and an engine that continues a started reply) the reply starts with the
    problem's function up to its docstring (:func:`prompts.code_prefill`): the model writes
    only the body. ``cap``: the code length cap (:func:`guards.code_cap`)."""
    messages, start = prompts.prefilled(messages, problem,
                                        prefill and getattr(engine, "prefills", False))
    guard = Guard(start, cap)
    gen = _guarded_chat(engine, messages, params, cancel, guard)
    return gen, start + gen.text, guard


def generate(
    engine: Engine,
    problem: str,
    index: int,
    strategy: Strategy,
    seed: int | None,
    base: SamplingParams,
    temperature: float,
    cancel: CancelToken | None = None,
    context: str = "",
    prefill: bool = False,
    cap: int | None = None,
) -> Candidate:
    """One candidate for ``problem`` by ``strategy`` (``context``: definitions it may use;
    ``prefill``: the code reply starts with the function's signature and docstring; ``cap``:
    the code length cap, relative to the direct answer's)."""
    started = time.perf_counter()
    cand = Candidate(index=index, strategy=strategy, seed=seed)
    greedy = _params(base, None, temperature)
    if strategy in (DIRECT, DIRECT_SAMPLED):
        params = greedy if strategy == DIRECT else _params(base, seed, temperature)
        gen, reply, guard = _code_reply(engine, prompts.direct_code_messages(problem, context),
                                        problem, params, cancel, prefill, cap)
        cand.code = prompts.parse_code(reply)
        return _finish(cand, gen, started, gen.completion_tokens, guard)
    plan_gen = engine.chat(prompts.plan_messages(problem, context),
                           _params(base, seed, temperature), cancel)
    cand.plan = prompts.parse_plan(plan_gen.text)
    if plan_gen.finish_reason == "cancelled":
        return _finish(cand, plan_gen, started, plan_gen.completion_tokens)
    gen, reply, guard = _code_reply(
        engine, prompts.code_from_plan_messages(problem, cand.plan, context), problem, greedy,
        cancel, prefill, cap)
    cand.code = prompts.parse_code(reply)
    return _finish(cand, gen, started, plan_gen.completion_tokens + gen.completion_tokens,
                   guard)


def repair(
    engine: Engine,
    problem: str,
    index: int,
    failed: Candidate,
    base: SamplingParams,
    cancel: CancelToken | None = None,
    context: str = "",
    failures: str | None = None,
    cap: int | None = None,
) -> Candidate:
    """Show the model its plan, code and the failing tests (``failures``: the report to show,
    by default the verdict messages); take its corrected plan and code. Guarded like every
    generation: a repair that stops parsing is stopped (one such round used to decode 512
    tokens for 211 s)."""
    started = time.perf_counter()
    cand = Candidate(index=index, strategy=REPAIR, seed=None)
    messages = prompts.repair_messages(problem, failed.plan or "(no plan)",
                                       failed.function_code or failed.code,
                                       failures if failures is not None else failed.failures(),
                                       context)
    guard = Guard("", cap)
    # the corrected code copies much of the failed one: prompt lookup drafts it (greedy-exact
    # up to llama.cpp's batch rounding; ~15% less CPU per token for the 1.5B, docs/results.md)
    gen = _guarded_chat(engine, messages,
                        dataclasses.replace(base, temperature=0.0, lookup=True), cancel, guard)
    cand.plan = prompts.parse_plan(gen.text.split("```")[0])
    cand.code = prompts.parse_code(gen.text)
    return _finish(cand, gen, started, gen.completion_tokens, guard)


def generate_direct_batch(
    engine: Engine,
    problem: str,
    specs: list[tuple[int, Strategy, int | None]],
    base: SamplingParams,
    temperature: float,
    cancel: CancelToken | None = None,
    context: str = "",
    prefill: bool = False,
    cap: int | None = None,
) -> list[Candidate]:
    """Direct candidates (``specs``: index, strategy, seed) decoded as parallel sequences of
    one llama.cpp batch: they share the direct prompt, which is evaluated once. Each has the
    guard a single candidate has (``cap``: the code length cap; tests after the code,
    repetition, a line that cannot parse), so one rambling sample does not hold the batch to
    ``max_tokens``. Engines that cannot batch (a remote server) get them one after another."""
    from plancode.engine.batch import decoder_for

    decoder = decoder_for(engine, len(specs))
    if decoder is None:
        return [generate(engine, problem, i, st, seed, base, temperature, cancel, context,
                         prefill, cap) for i, st, seed in specs]
    started = time.perf_counter()
    params = [_params(base, seed if st == DIRECT_SAMPLED else None, temperature)
              for _, st, seed in specs]
    # the decoder renders the engine's template, so it continues a started reply
    messages, start = prompts.prefilled(prompts.direct_code_messages(problem, context),
                                        problem, prefill)
    guards = [Guard(start, cap) for _ in specs]
    gens = decoder.chat(messages, params, cancel, guards)
    out = []
    for (index, strategy, seed), gen, guard in zip(specs, gens, guards, strict=True):
        cand = Candidate(index=index, strategy=strategy, seed=seed)
        cand.code = prompts.parse_code(start + gen.text)
        out.append(_finish(cand, gen, started, gen.completion_tokens, guard))
    share = (time.perf_counter() - started) / max(1, len(out))
    for cand in out:  # the batch's time, shared: what each candidate cost
        cand.generate_seconds = share
    return out
