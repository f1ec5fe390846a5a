"""Escalation: a larger model tried only when the small model's candidates all fail.

When no candidate of the configured model passes the user's tests (after its repair rounds),
and ``escalate_model`` names another model (e.g. ``qwen2.5-coder-1.5b``), that model makes a
few more candidates (direct greedy, plan greedy, one repair) for the same function, tested in
the same sandbox. It is loaded once per process and kept. Its candidates are labelled with the
model's name (``qwen2.5-coder-1.5b:direct-greedy``) so the result says what the escalation
bought, and its time is reported as ``timings.escalation``.
"""

from __future__ import annotations

import dataclasses
import threading

from server.config import Settings
from server.engine.types import Engine
from server.pipeline.result import Candidate

_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()


def wanted(settings: Settings, candidates: list[Candidate], tests_source: str) -> bool:
    """Escalate when a larger model is configured, the user has tests, and none passed."""
    return (bool(settings.escalate_model) and settings.escalate_model != settings.model
            and tests_source == "user" and not any(c.all_passed for c in candidates))


def settings_for(settings: Settings) -> Settings:
    """The larger model's run: two greedy candidates and one repair, stopping at a pass."""
    return dataclasses.replace(settings, model=settings.escalate_model, escalate_model="",
                               candidates=2, repair_rounds=1, parallel_candidates=1)


def engine_for(settings: Settings) -> Engine:
    """The larger model's engine, loaded on first use and kept for the process."""
    from server.engine.factory import load_engine

    with _LOCK:
        if settings.escalate_model not in _ENGINES:
            _ENGINES[settings.escalate_model] = load_engine(settings_for(settings))
        return _ENGINES[settings.escalate_model]


def label(candidates: list[Candidate], model: str, first_index: int) -> list[Candidate]:
    """Renumber the larger model's candidates after the small model's and name the model."""
    for k, cand in enumerate(candidates):
        cand.index = first_index + k
        cand.strategy = f"{model}:{cand.strategy}"
    return candidates
