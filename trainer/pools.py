"""A pipeline answer's candidate pool as benchmark rows keep it, for comparing choosers
offline (``benchmarks/choosers.py``): each candidate's code and evidence. The HumanEval and
held-out runners add each candidate's verdict on their hidden tests (``hidden``)."""

from __future__ import annotations

from plancode.pipeline.result import Candidate


def entry(cand: Candidate, chosen: Candidate | None) -> dict:
    return {"index": cand.index, "strategy": cand.strategy, "code": cand.function_code or cand.code,
            "error": cand.error, "visible_passed": cand.passed, "visible_failed": cand.failed,
            "mean_logprob": round(cand.mean_logprob, 4), "tokens": cand.completion_tokens,
            "group": cand.group, "checks": cand.model_checks_passed, "chosen": cand is chosen}
