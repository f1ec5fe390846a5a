"""The two structural components of CodeBLEU (Ren et al. 2020, "CodeBLEU: a Method for Automatic
Evaluation of Code Synthesis") that the seed paper reports: *syntax match* (shared AST subtrees)
and *data-flow match* (shared, variable-renamed data-flow edges). Both compare a candidate with
a reference solution and ignore naming and formatting, so a generated solution that is built
like the reference scores high even when its identifiers differ.

Implemented here on tree-sitter (no ``codebleu`` package). Differences from the reference
implementation (microsoft/CodeXGLUE ``syntax_match.py``, ``dataflow_match.py``), on purpose:

* a reference with nothing to match (no subtrees, no data-flow edges) gives ``None``, not 0;
* syntax match counts subtrees as a multiset: each candidate subtree matches one reference
  subtree at most (CodeBLEU tests mere membership, so one ``return x`` matched every return);
* a data-flow edge's source names are sorted, so the score is deterministic (CodeBLEU keeps
  them in set order).
"""

from __future__ import annotations

from collections import Counter

from tree_sitter import Node

from plancode.analysis.functions import parser
from plancode.trainer.dataflow import Edge, dataflow

_NormalEdge = tuple[str, str, tuple[str, ...]]


def _subtrees(code: str) -> Counter[str]:
    """The s-expressions of every named node that has children (the whole tree included).

    ``str(node)`` is tree-sitter's s-expression (node types and field names, no leaf text; what
    ``Node.sexp()`` returned in older bindings), so two subtrees match iff their shapes do.
    """
    root = parser().parse(code.encode("utf-8", "surrogatepass")).root_node
    found: Counter[str] = Counter()
    stack: list[Node] = [root]
    while stack:
        node = stack.pop()
        if node.is_named and node.children:
            found[str(node)] += 1
        stack.extend(node.children)
    return found


def _normalise(edges: list[Edge]) -> Counter[_NormalEdge]:
    """Rename variables var_0, var_1, ... in order of first appearance in the edge list (each
    edge's sources, then its target, as CodeBLEU does): renaming variables changes nothing."""
    names: dict[str, str] = {}

    def rename(name: str) -> str:
        return names.setdefault(name, f"var_{len(names)}")

    result: Counter[_NormalEdge] = Counter()
    for edge in edges:
        sources = [rename(v.name) for v in edge.sources]
        result[(rename(edge.target.name), edge.relation, tuple(sorted(sources)))] += 1
    return result


def _matched(candidate: Counter, reference: Counter) -> tuple[int, int]:
    """(reference items also in the candidate, counted as a multiset; reference items)."""
    return sum((reference & candidate).values()), sum(reference.values())


def _syntax_counts(candidate: str, reference: str) -> tuple[int, int]:
    return _matched(_subtrees(candidate), _subtrees(reference))


def _dataflow_counts(candidate: str, reference: str) -> tuple[int, int]:
    return _matched(_normalise(dataflow(candidate)), _normalise(dataflow(reference)))


def _ratio(matched: int, total: int) -> float | None:
    return matched / total if total else None


def syntax_match(candidate: str, reference: str) -> float | None:
    """Share of the reference's AST subtrees found in the candidate's (ERROR subtrees in a broken
    candidate just fail to match); None when the reference has no subtrees (empty code)."""
    return _ratio(*_syntax_counts(candidate, reference))


def dataflow_match(candidate: str, reference: str) -> float | None:
    """Share of the reference's normalised data-flow edges found in the candidate's; None when
    the reference has no edges (CodeBLEU degenerates to 0 there: we call it undefined)."""
    return _ratio(*_dataflow_counts(candidate, reference))


def corpus_scores(candidates: list[str], references: list[str]) -> dict:
    """Corpus-level scores as CodeBLEU defines them: matched counts summed over all pairs divided
    by reference counts summed over all pairs (not a mean of per-pair ratios), so a pair with no
    reference edges adds nothing instead of a 0. ``n`` is the number of pairs."""
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates for {len(references)} references")
    syntax = [_syntax_counts(c, r) for c, r in zip(candidates, references, strict=True)]
    flow = [_dataflow_counts(c, r) for c, r in zip(candidates, references, strict=True)]
    return {
        "syntax_match": _ratio(sum(m for m, _ in syntax), sum(t for _, t in syntax)),
        "dataflow_match": _ratio(sum(m for m, _ in flow), sum(t for _, t in flow)),
        "n": len(candidates),
    }
