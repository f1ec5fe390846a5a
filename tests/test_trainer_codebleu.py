"""CodeBLEU syntax and data-flow match, and the data-flow graph under them."""

from __future__ import annotations

from plancode.trainer.codebleu import corpus_scores, dataflow_match, syntax_match
from plancode.trainer.dataflow import COMES_FROM, COMPUTED_FROM, dataflow, def_use_spans

REFERENCE = '''def count_above(values, limit):
    """How many values exceed limit."""
    total = 0
    for value in values:
        if value > limit:
            total += 1
    return total
'''

RENAMED = '''def count_above(xs, bound):
    """How many values exceed limit."""
    n = 0
    for x in xs:
        if x > bound:
            n += 1
    return n
'''

# same statements, but it returns the wrong variable
WRONG_RETURN = REFERENCE.replace("return total", "return limit")

COMPREHENSION = '''def count_above(values, limit):
    return sum(1 for value in values if value > limit)
'''


def test_identical_code_scores_one():
    assert syntax_match(REFERENCE, REFERENCE) == 1.0
    assert dataflow_match(REFERENCE, REFERENCE) == 1.0


def test_renaming_variables_changes_nothing():
    assert syntax_match(RENAMED, REFERENCE) == 1.0
    assert dataflow_match(RENAMED, REFERENCE) == 1.0


def test_changed_data_flow_scores_lower():
    assert dataflow_match(WRONG_RETURN, REFERENCE) < 1.0
    reference = "def f(a, b):\n    x = a * 2\n    y = x + 1\n    return y\n"
    other_source = "def f(a, b):\n    x = a * 2\n    y = b + 1\n    return y\n"
    assert dataflow_match(other_source, reference) < 1.0
    assert syntax_match(other_source, reference) == 1.0  # same shape, different flow


def test_structurally_different_code_scores_lower_syntax_match():
    score = syntax_match(COMPREHENSION, REFERENCE)
    assert score is not None and score < 0.5
    assert syntax_match(RENAMED, REFERENCE) > score


def test_broken_candidate_scores_low_without_raising():
    broken = "def count_above(values, limit:\n    total = = 0\n    for value in\n"
    syntax, flow = syntax_match(broken, REFERENCE), dataflow_match(broken, REFERENCE)
    assert syntax is not None and syntax < 0.5
    assert flow is not None and flow < 0.5
    assert isinstance(dataflow(broken), list)
    assert isinstance(def_use_spans("x = (1 +\n"), list)


def test_empty_reference_is_undefined():
    assert syntax_match("x = 1\n", "") is None
    assert dataflow_match("x = 1\n", "") is None
    assert dataflow_match("x = 1\n", "pass\n") is None  # no data flow in the reference
    assert dataflow("") == []
    assert syntax_match("", REFERENCE) == 0.0


def test_dataflow_edges_of_a_function():
    code = "def f(a, b):\n    c = a + b\n    return c\n"
    edges = {(e.target.name, e.relation, tuple(v.name for v in e.sources)) for e in dataflow(code)}
    assert ("c", COMPUTED_FROM, ("a", "b")) in edges  # c = a + b
    assert ("a", COMES_FROM, ("a",)) in edges  # the use of a comes from the parameter
    assert ("c", COMES_FROM, ("c",)) in edges  # return c comes from the assignment


def test_dataflow_follows_loops_tuples_and_with():
    code = ("def g(pairs, path):\n"
            "    acc = 0\n"
            "    for k, v in pairs:\n"
            "        acc = acc + v\n"
            "    a, b = acc, k\n"
            "    with open(path) as fh:\n"
            "        text = fh.read()\n"
            "    return [w for w in text.split() if w]\n")
    edges = {(e.target.name, e.relation, tuple(v.name for v in e.sources)) for e in dataflow(code)}
    assert ("acc", COMPUTED_FROM, ("acc", "v")) in edges
    assert ("a", COMPUTED_FROM, ("acc",)) in edges and ("b", COMPUTED_FROM, ("k",)) in edges
    assert ("fh", COMPUTED_FROM, ("open", "path")) in edges
    assert ("w", COMPUTED_FROM, ("text", "split")) in edges
    # the use of acc inside the loop sees the definition before it and the one of the last pass
    inner = next(e for e in dataflow(code)
                 if e.target.name == "acc" and e.relation == COMES_FROM and len(e.sources) == 2)
    assert [v.start for v in inner.sources] == sorted(v.start for v in inner.sources)


def test_def_use_spans_cover_variables_not_the_unused_function_name():
    code = "def f(a, b):\n    c = a + b\n    return c\n"
    spans = def_use_spans(code)
    assert spans == sorted(set(spans))
    # parameters, their uses, c's definition and its use; f is defined but never used, so it is
    # on no edge and gets no extra weight
    assert [code[s:e] for s, e in spans] == ["a", "b", "c", "a", "b", "c"]
    assert (code.index("f"), code.index("f") + 1) not in spans


def test_character_offsets_with_non_ascii_text():
    code = 's = "héllo ✓"\nt = s.upper() + "ü"\nprint(t, s)\n'
    edges = dataflow(code)
    assert edges
    for edge in edges:
        for variable in (edge.target, *edge.sources):
            assert code[variable.start:variable.end] == variable.name
    spans = def_use_spans(code)
    assert [code[s:e] for s, e in spans] == ["s", "t", "s", "upper", "t", "s"]
    assert all(code[s:e].isidentifier() for s, e in spans)  # string literals are left out


def test_corpus_scores_sum_counts_over_pairs():
    small_ref = "def f(a):\n    return a\n"
    pairs = [(REFERENCE, REFERENCE), (COMPREHENSION, REFERENCE), ("x = 1\n", small_ref)]
    candidates, references = [c for c, _ in pairs], [r for _, r in pairs]
    scores = corpus_scores(candidates, references)
    assert scores["n"] == 3
    # counts, not a mean of ratios: the larger reference weighs more than the small one
    ratios = [syntax_match(c, r) for c, r in pairs]
    assert scores["syntax_match"] != sum(ratios) / 3
    assert min(ratios) < scores["syntax_match"] < max(ratios)
    # a pair whose reference has no edges adds nothing (instead of a 0)
    alone = corpus_scores([REFERENCE], [REFERENCE])["dataflow_match"]
    with_empty = corpus_scores([REFERENCE, "y = 2\n"], [REFERENCE, "pass\n"])["dataflow_match"]
    assert alone == with_empty == 1.0
    assert corpus_scores([], []) == {"syntax_match": None, "dataflow_match": None, "n": 0}
