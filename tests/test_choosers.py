"""The choosers study (benchmarks/choosers.py) reads HumanEval and held-out pool rows alike."""

from __future__ import annotations

from benchmarks import choosers

CODE = 'def f(x):\n    """Double {0}.\n\n    >>> f(2)\n    4\n    """\n    return {1}\n'


def _cand(index: int, body: str, hidden: bool, group: int | None, chosen: bool = False,
          strategy: str = "sampled") -> dict:
    return {"index": index, "strategy": strategy, "code": CODE.format("x", body), "error": "",
            "visible_passed": 1, "visible_failed": 0, "mean_logprob": -0.1 * index,
            "tokens": 10, "group": group, "checks": 0, "chosen": chosen, "hidden": hidden}


def test_the_docstring_is_read_from_the_candidates_own_code() -> None:
    pool = [{"code": "def f(:\n"}, {"code": CODE.format("x", "2 * x")}]
    assert choosers.docstring(pool) == "Double x.\n\n    >>> f(2)\n    4\n    "


def test_choosers_score_a_contested_held_out_pool() -> None:
    # two wrong candidates agree (x + 2 and 2 + x), one right one is the direct greedy answer
    row = {"id": "pkg/mod.py::f", "mode": "select", "pool": [
        _cand(0, "2 * x", True, 1, strategy="direct-greedy"),
        _cand(1, "x + 2", False, 0, chosen=True), _cand(2, "2 + x", False, 0),
        {**_cand(3, "x", False, None), "visible_passed": 0}]}
    assert len(choosers.eligible(row["pool"])) == 3
    table = choosers.table([row])
    assert table["pipeline"] == 0 and table["size"] == 0
    assert table["direct"] == 1 and table["oracle"] == 1
    assert choosers._task(row) == "pkg/mod.py::f"


def test_a_rerun_is_read_over_the_run_it_amends(tmp_path):
    """``ttfv-v5`` holds only the problems rerun after a change; read after ``ttfv-v4`` its
    rows replace the old ones, and every other row is kept once."""
    import json

    from benchmarks.rows import read_rows
    from plancode.trainer import blobs

    old, new = tmp_path / "v4.jsonl", tmp_path / "v5.jsonl"
    old.write_text("".join(json.dumps({"key": f"HumanEval/{i}#weak", "passed": False}) + "\n"
                           for i in range(3)))
    new.write_text(json.dumps({"key": "HumanEval/1#weak", "passed": True}) + "\n")
    rows = read_rows([old, new])
    assert sorted((r["key"], r["passed"]) for r in rows) == [
        ("HumanEval/0#weak", False), ("HumanEval/1#weak", True), ("HumanEval/2#weak", False)]
    # a finished run's rows packed into the blob store read the same
    results = tmp_path / "results"
    (results / "v4").mkdir(parents=True)
    packed = results / "v4" / "rows.jsonl"
    packed.write_bytes(old.read_bytes())
    blobs.pack(results, globs=("v4/*.jsonl",))
    assert not packed.exists()
    rows = read_rows([packed, new])
    assert sorted((r["key"], r["passed"]) for r in rows) == [
        ("HumanEval/0#weak", False), ("HumanEval/1#weak", True), ("HumanEval/2#weak", False)]
