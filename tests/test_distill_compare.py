"""Comparing the base with the distilled students from their cached rows: only problems every
compared model answered count, wins and losses are against the base, and the docs section is
rewritten in place."""

from __future__ import annotations

from pathlib import Path

from benchmarks.distill_compare import Model, compare, table
from benchmarks.docs_section import write_section


def _rows(mode: str, passed: dict[str, bool]) -> dict[str, dict[str, dict]]:
    return {mode: {p: {"passed": ok, "seconds": 1.0, "body": "    return x\n"}
                   for p, ok in passed.items()}}


def test_students_are_compared_on_the_problems_every_model_answered() -> None:
    base = Model("base", _rows("plan", {"HumanEval/0": True, "HumanEval/1": False,
                                        "HumanEval/2": True, "HumanEval/10": True}), {})
    # the student's run is still going: HumanEval/10 is not answered yet
    student = Model("student", _rows("plan", {"HumanEval/0": False, "HumanEval/1": True,
                                              "HumanEval/2": True}), {})
    refs = {f"HumanEval/{i}": "    return x\n" for i in (0, 1, 2, 10)}
    tally = compare([base, student], "humaneval", ["direct", "plan"], refs)
    assert list(tally) == ["plan"]  # nobody has direct rows: no direct table
    assert tally["plan"]["base"]["solved"] == 2 and tally["plan"]["base"]["n"] == 3
    s = tally["plan"]["student"]
    assert (s["solved"], s["won"], s["lost"]) == (2, 1, 1)
    assert s["syntax_match"] == 1.0  # same body as the reference
    text = "\n".join(table("HumanEval:", tally))
    assert "| plan | student | 2/3 | 66.7% | 1 / 1 |" in text


def test_a_mode_only_some_models_ran_compares_those() -> None:
    base = Model("base", {**_rows("plan", {"a/1": True}), **_rows("select", {"a/1": True})}, {})
    ablation = Model("student nostruct", _rows("plan", {"a/1": False}), {})
    tally = compare([base, ablation], "humaneval", ["plan", "select"])
    assert set(tally["plan"]) == {"base", "student nostruct"}
    assert set(tally["select"]) == {"base"}
    assert tally["plan"]["student nostruct"]["lost"] == 1
    assert "syntax_match" not in tally["plan"]["base"]  # no references given


def test_the_section_is_replaced_and_the_prose_around_it_kept(tmp_path: Path) -> None:
    doc = tmp_path / "results.md"
    doc.write_text("# Results\n\n## Student\n\nProse before.\n\n## Next\n\nProse after.\n")
    write_section(doc, "### Table", "### Table\n\nfirst\n", "## Student")
    write_section(doc, "### Table", "### Table\n\nsecond\n", "## Student")
    text = doc.read_text()
    assert text.count("### Table") == 1 and "second" in text and "first" not in text
    assert "Prose before." in text and "## Next\n\nProse after." in text
    assert text.index("## Student") < text.index("### Table") < text.index("## Next")


def test_a_new_section_goes_last_in_its_parent(tmp_path: Path) -> None:
    doc = tmp_path / "results.md"
    doc.write_text("# Results\n\n## Student\n\nProse.\n\n### Older\n\nold\n\n## Next\n")
    write_section(doc, "### Table", "### Table\n\nrows\n", "## Student")
    text = doc.read_text()
    assert text.index("old") < text.index("### Table") < text.index("## Next")
    write_section(doc, "### Other", "### Other\n\nx\n", "## Missing")
    assert doc.read_text().rstrip().endswith("## Missing\n\n### Other\n\nx")
