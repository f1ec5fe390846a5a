"""Two pipeline runs side by side (``benchmarks.runs_compare``): the counts issue 30 is judged
by (right, wrong among answers that passed the user's tests, the pool's ceiling) over the
problems both runs answered."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import runs_compare


def _row(task: str, passed: bool, status: str, pool: list[dict]) -> dict:
    return {"key": f"{task}#select", "mode": "select", "passed": passed, "status": status,
            "seconds": 40.0, "budget_reached": False, "pool": pool}


def _cand(right: bool, visible: int, strategy: str = "direct-greedy", chosen: bool = False):
    return {"code": "def f(): pass\n", "error": "", "visible_passed": visible,
            "hidden": right, "strategy": strategy, "chosen": chosen, "group": None}


def test_the_table_counts_wrong_passers_pool_ceilings_and_the_larger_models_help(
        tmp_path: Path, capsys):
    small = [_row("a", False, "passes-tests", [_cand(False, 1, chosen=True), _cand(True, 0)]),
             _row("b", True, "verified", [_cand(True, 1, chosen=True)]),
             _row("c", False, "failing", [_cand(False, 0, chosen=True)]),
             _row("only-here", True, "verified", [_cand(True, 1, chosen=True)])]
    large = [_row("a", True, "passes-tests",
                  [_cand(False, 1), _cand(True, 1, "qwen2.5-coder-1.5b:direct-greedy", True)]),
             _row("b", True, "verified", [_cand(True, 1, chosen=True)]),
             _row("c", False, "failing",
                  [_cand(False, 0, chosen=True), _cand(False, 0, "qwen2.5-coder-1.5b:plan")])]
    for name, rows in (("small", small), ("large", large)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs_compare.main([f"small={tmp_path / 'small.jsonl'}", f"large={tmp_path / 'large.jsonl'}"])
    lines = capsys.readouterr().out.splitlines()
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
             for line in lines[2:]}
    # problems, right, lost/won, p, passed (wrong), verified (right), failing, pool right,
    # larger joined (chosen, right)
    assert cells["small"][:9] == ["3", "1", "-", "-", "2 (1, 50%)", "1 (1)", "1", "1",
                                  "0 (0, 0)"]
    assert cells["large"][:9] == ["3", "2", "0 / 1", "1", "2 (0, 0%)", "1 (1)", "1", "2",
                                  "2 (1, 1)"]
