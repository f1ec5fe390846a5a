"""``plancode eval``: HumanEval modes and CodeBLEU metrics side by side, with a table and a plot."""

from __future__ import annotations

import json
from pathlib import Path

from plancode.cli import main as plancode
from plancode.trainer import humaneval
from plancode.trainer.evaluate import summarise


def test_canonical_solutions_score_full_marks() -> None:
    chosen = humaneval.problems(0, 3)
    rows = [{"task_id": p["task_id"], "direct": {"passed": True, "seconds": 1.0,
                                                 "body": humaneval.reference_body(p)}}
            for p in chosen]
    s = summarise(rows, chosen, ("direct",))["direct"]
    assert s["pass@1"] == 1.0 and s["syntax_match"] == 1.0 and s["dataflow_match"] == 1.0
    rows[0]["direct"]["body"] = "return None\n"
    assert summarise(rows, chosen, ("direct",))["direct"]["syntax_match"] < 1.0


def test_eval_compares_models_side_by_side(tiny_model_path: Path, tmp_path: Path,
                                           capsys) -> None:
    """The same (greedy) model twice gives the same numbers, answered once (rows are cached
    per model file and settings); docs get a table and a plot."""
    docs = tmp_path / "docs"
    code = plancode(["eval", "--model", str(tiny_model_path), "--model", str(tiny_model_path),
                     "--label", "a", "--label", "b", "--start", "2", "--end", "4",
                     "--modes", "direct", "plan", "--out", str(tmp_path / "out"),
                     "--docs", str(docs), "--quiet"])
    assert code == 0
    results = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert results["a"]["summary"]["direct"]["n"] == 2
    for mode in ("direct", "plan"):
        assert [r[mode]["passed"] for r in results["a"]["rows"]] == \
            [r[mode]["passed"] for r in results["b"]["rows"]]
        assert [r[mode]["body"] for r in results["a"]["rows"]] == \
            [r[mode]["body"] for r in results["b"]["rows"]]
    # the same file with the same settings: "b" was answered from "a"'s cached rows
    (rows,) = (tmp_path / "out").glob("humaneval-*.jsonl")
    assert len(rows.read_text().splitlines()) == 2 * 2
    table = (docs / "distill-eval.md").read_text()
    assert "| a | direct |" in table and "| b | plan |" in table
    assert (docs / "distill-eval.png").stat().st_size > 5000
    assert "syntax match" in capsys.readouterr().out


def test_each_model_is_evaluated_alone_never_escalated(monkeypatch) -> None:
    """Escalation (``auto`` uses the 1.5B when it is in the store) would put the larger
    model's candidates on both sides of base vs student: evaluation switches it off."""
    from plancode.pipeline import escalate
    from plancode.trainer import evaluate
    from plancode.trainer.config import EvalConfig

    monkeypatch.setattr(escalate, "auto_available", lambda: True)
    seen = {}
    monkeypatch.setattr(evaluate, "load_engine", lambda settings, adapter=None: object())

    def run(pipeline, chosen, modes, max_tokens, log, cache=None):
        seen["settings"] = pipeline.settings
        return []

    monkeypatch.setattr(humaneval, "run", run)
    evaluate.evaluate_model("qwen2.5-coder-0.5b", EvalConfig(), [], log=False)
    assert escalate.model_of(seen["settings"]) == ""
    # a product-like run (issue 30's held-out set as a user gets it) names the larger model
    named = EvalConfig(escalate_model="qwen2.5-coder-1.5b")
    evaluate.evaluate_model("qwen2.5-coder-0.5b", named, [], log=False)
    assert escalate.model_of(seen["settings"]) == "qwen2.5-coder-1.5b"
    from plancode.trainer.config import output_settings
    assert "escalate_model" not in output_settings(EvalConfig()), \
        "runs made before the setting keep their fingerprints"
    assert "escalate_model" in output_settings(named)
