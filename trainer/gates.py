"""Gates against forgetting (issue 32, item 3): the judgement, apart from the scoring.

A checkpoint of the student answers fixed slices (HumanEval in direct mode, held-out mined
problems in direct mode) and is compared problem by problem with its base on the same slices
(``plancode.trainer.stages.gate`` makes the rows). Here, without torch or llama.cpp:

* :func:`compare`: solved counts, the problems lost and gained, and McNemar's exact p-value
  on the discordant pairs (:func:`mcnemar`);
* :func:`answer_counts`: truncated, empty and unparseable answers (a "drop" that is really
  truncation is a harness bug, not forgetting);
* :func:`judge`: refused when, on any slice, the checkpoint solves more than ``max_lost``
  fewer problems than the base;
* :func:`anchor_distance`: how far training had moved the checkpoint from its base, read from
  the on-policy run's own log of anchor KLs;
* :func:`gate_verdict`: a checkpoint's report as the export reads it (never ships a refusal).
"""

from __future__ import annotations

import json
from math import comb
from pathlib import Path

from plancode.analysis import pyparse

REPORT = "gate.json"  # next to the checkpoint's adapter


def mcnemar(won: int, lost: int) -> float:
    """McNemar's exact test, two-sided: the probability, were the two models equally good,
    of a split of the ``won + lost`` discordant problems at least this uneven (a binomial
    with p = 1/2). 1.0 when nothing differs."""
    n = won + lost
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(won, lost) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def compare(base: dict[str, bool], checkpoint: dict[str, bool]) -> dict:
    """Per-problem comparison over the problems both answered (``id -> passed``)."""
    ids = sorted(set(base) & set(checkpoint))
    lost = [i for i in ids if base[i] and not checkpoint[i]]
    gained = [i for i in ids if checkpoint[i] and not base[i]]
    solved_base = sum(base[i] for i in ids)
    solved = sum(checkpoint[i] for i in ids)
    return {"n": len(ids), "base_solved": solved_base, "solved": solved,
            "drop": solved_base - solved, "lost": lost, "gained": gained,
            "p_value": round(mcnemar(len(gained), len(lost)), 4)}


def answer_counts(rows: list[dict]) -> dict:
    """How many answers were cut at the token limit, had no code, or did not parse.

    HumanEval rows carry ``truncated``/``empty``/``unparseable`` (``humaneval.single``);
    held-out rows carry only their ``code``, from which emptiness and parsing are judged
    (their finish is not recorded: ``truncated`` counts only rows that say). Rows written
    before these fields existed count under ``unknown``."""
    out = {"answers": len(rows), "truncated": 0, "empty": 0, "unparseable": 0, "unknown": 0}
    for row in rows:
        if "empty" in row:
            out["truncated"] += bool(row.get("truncated"))
            out["empty"] += bool(row["empty"])
            out["unparseable"] += bool(row.get("unparseable"))
        elif "code" in row:
            code = (row["code"] or "").strip()
            out["empty"] += not code
            out["unparseable"] += bool(code) and not _parses(code)
        else:
            out["unknown"] += 1
    return out


def _parses(code: str) -> bool:
    try:
        pyparse.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def judge(slices: dict[str, dict], max_lost: int) -> tuple[bool, list[str]]:
    """Accepted unless a slice's comparison (:func:`compare`) has the checkpoint solving more
    than ``max_lost`` fewer problems than the base; the reasons say which and by how much."""
    reasons = [f"{name}: solves {c['solved']}/{c['n']} against the base's "
               f"{c['base_solved']} (lost {len(c['lost'])}, gained {len(c['gained'])}; "
               f"more than {max_lost} fewer, p = {c['p_value']})"
               for name, c in slices.items() if c["drop"] > max_lost]
    return not reasons, reasons


def anchor_distance(checkpoint: Path) -> dict | None:
    """The last anchor measurement (``anchor_kl``: mean KL from the frozen base on the fixed
    anchor rows; ``anchor_teacher_kl``) logged by the on-policy run up to ``checkpoint``:
    an accelerate checkpoint's ``train_state.json``, or for the final ``adapter`` folder
    the run's ``report.json`` (``anchor_history``) or ``train_state.json``. None when the
    run logged none."""
    checkpoint = Path(checkpoint)
    for path, key in ((checkpoint / "train_state.json", "val_history"),
                      (checkpoint.parent / "report.json", "anchor_history"),
                      (checkpoint.parent / "train_state.json", "val_history")):
        if path.is_file():
            history = json.loads(path.read_text()).get(key) or []
            if history:
                return history[-1]
    return None


def gate_verdict(checkpoint: Path) -> dict | None:
    """The gate report of ``checkpoint`` (its ``gate.json``), or None when it was not gated."""
    path = Path(checkpoint) / REPORT
    return json.loads(path.read_text()) if path.is_file() else None


def log_line(report: dict) -> str:
    """The report as one line for the run's log."""
    parts = [f"{name} {c['solved']}/{c['n']} vs base {c['base_solved']} "
             f"(-{len(c['lost'])} +{len(c['gained'])}, p={c['p_value']})"
             for name, c in report["slices"].items()]
    counts = report["answers"].get("humaneval", {})
    kl = (report.get("distance") or {}).get("anchor_kl")
    return (f"[gate] {report['checkpoint']}: {'ACCEPTED' if report['accepted'] else 'REFUSED'}"
            f"; {'; '.join(parts)}; truncated {counts.get('truncated', 0)}, empty "
            f"{counts.get('empty', 0)}, unparseable {counts.get('unparseable', 0)}"
            + (f"; anchor KL {kl:.4g}" if kl is not None else "")
            + ("" if report["accepted"] else f" -- {' / '.join(report['reasons'])}"))
