"""Escalation: a larger model tried only when the small model's candidates fail or disagree.

When ``escalate_model`` names another model (e.g. ``qwen2.5-coder-1.5b``), that model makes
more candidates for the same function, tested in the same sandbox, in two cases: no candidate
of the configured model passes the user's tests (after its repair rounds), or the user's tests
are weak and the small model's evidence is thin (few candidates pass them, or those that do
disagree on generated inputs: see :func:`wanted_on_weak`). With strong tests it makes four
candidates and one repair, stopping at a pass; with weak tests a first pass proves little, so
it makes a pool to compare (plan greedy and a batch of direct answers, no early exit). Either
way it then also writes the checks selection scores on.
It is loaded once per process and kept. ``escalate_model = "NAME@URL"`` sends these hard
cases to a larger model on an OpenAI-compatible server (llama-server, vLLM) instead. Its
candidates are labelled with the model's name (``qwen2.5-coder-1.5b:direct-greedy``) so the
result says what the escalation bought, and its time is reported as ``timings.escalation``.

This module is the policy (when, which model, with which settings, how its candidates are
labelled); the pipeline carries it out, making the larger model's candidates with a second
``pool.PoolMaker`` for the same run and choosing again with ``choose``.
"""

from __future__ import annotations

import dataclasses
import threading

from plancode.config import Settings
from plancode.engine.types import Engine
from plancode.pipeline.agreement import Agreement
from plancode.pipeline.kinds import TestsSource
from plancode.pipeline.result import Candidate

_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()


AUTO_MODEL = "qwen2.5-coder-1.5b"
# the least time left for which escalation (loading the larger model, a candidate or two) is
# started at all, and for which the small model gives way to it: less goes to the choice
MIN_SECONDS = 20.0
MIN_POOL = 3  # weak tests passed by fewer candidates than this: too little to compare


def model_of(settings: Settings) -> str:
    """The model to escalate to: ``escalate_model``, where ``auto`` means AUTO_MODEL when it is
    already in the model store (never a download) and the server model is a smaller one, and
    ``NAME@URL`` means the model NAME on the OpenAI-compatible server at URL."""
    name = settings.escalate_model.partition("@")[0]
    if name != "auto":
        return name if settings.escalate_model != settings.model else ""
    if settings.backend != "llama" or settings.model == AUTO_MODEL:
        return ""
    return AUTO_MODEL if auto_available() else ""


def endpoint_of(settings: Settings) -> str:
    """The base URL of the OpenAI-compatible server ``escalate_model`` names (``NAME@URL``), or
    "" when the larger model runs in-process. A team's GPU server takes the hard functions;
    the easy ones never leave the machine (escalation only follows a local failure or doubt)."""
    return settings.escalate_model.partition("@")[2]


def auto_available() -> bool:
    """Whether AUTO_MODEL is already in the model store (escalation never downloads it)."""
    from plancode.models.store import ModelStore

    try:
        return any(m.name == AUTO_MODEL and m.cached for m in ModelStore(progress=False).list())
    except Exception:  # noqa: BLE001 - an unreadable store just means no escalation
        return False


def wanted(settings: Settings, candidates: list[Candidate], tests_source: TestsSource) -> bool:
    """Escalate when a larger model is configured, the user has tests, and none passed."""
    return (tests_source == "user" and not any(c.all_passed for c in candidates)
            and bool(model_of(settings)))


def wanted_on_weak(settings: Settings, tests_source: TestsSource,
                   agreement: Agreement) -> bool:
    """Escalate after selection when the user's tests are weak and the small model's evidence
    is thin: fewer than MIN_POOL candidates pass them, or those that do disagree on the
    generated inputs. The larger model's candidates join the pool and its own checks score
    the groups (the small model's checks often state wrong expected values)."""
    if tests_source != "user" or not agreement.weak or not model_of(settings):
        return False
    return agreement.pool < MIN_POOL or agreement.agreeing < agreement.pool


def hands_over(settings: Settings, tests_source: TestsSource, passing: int) -> bool:
    """Whether the small model stops making its pool for the larger one: there is a larger
    model, the user has tests, and fewer than MIN_POOL of the small model's candidates pass
    them, so escalation follows either way (``wanted``, ``wanted_on_weak``). Asked once its
    direct candidates are tested, and again before its hotter samples and repairs: the time
    its plan candidates (13-26 s each for the 0.5B on 2 cores), samples and repairs would take
    is the larger model's. Measured on the realistic project at the 55-s budget, without
    this: the 0.5B's pool left the 1.5B under its 20 s in 7 of 9 functions (docs/results.md)."""
    return tests_source == "user" and passing < MIN_POOL and bool(model_of(settings))


WEAK_DIRECT = 4  # direct candidates the larger model makes on weak evidence (one batch)


def settings_for(settings: Settings, weak: bool = False) -> Settings:
    """The larger model's run. After a failure: the usual schedule of four candidates
    (``candidates.schedule``) and one repair, stopping at the first that passes. On weak
    evidence (``weak``) a pass proves little, so it makes a pool to compare instead: its
    greedy plan and WEAK_DIRECT direct answers (greedy plus sampled ones, decoded together in
    one llama.cpp batch), every one tested."""
    where = {"backend": "openai", "remote_url": endpoint_of(settings)} \
        if endpoint_of(settings) else {}
    if weak:  # the schedule's first three: direct greedy, direct sampled, plan greedy
        return dataclasses.replace(settings, model=model_of(settings), escalate_model="",
                                   candidates=3, repair_rounds=1,
                                   parallel_candidates=WEAK_DIRECT, **where)
    return dataclasses.replace(settings, model=model_of(settings), escalate_model="",
                               candidates=4, repair_rounds=1, parallel_candidates=1, **where)


def engine_for(settings: Settings) -> Engine:
    """The larger model's engine, loaded on first use and kept for the process."""
    from plancode.engine.factory import load_engine

    name = model_of(settings)
    key = f"{name}@{endpoint_of(settings)}" if endpoint_of(settings) else name
    with _LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = load_engine(settings_for(settings))
        return _ENGINES[key]


def label(candidates: list[Candidate], model: str, first_index: int) -> list[Candidate]:
    """Renumber the larger model's candidates after the small model's and name the model."""
    for k, cand in enumerate(candidates):
        cand.index = first_index + k
        cand.strategy = f"{model}:{cand.strategy}"
    return candidates
