"""The TTFV table: the first answer's time against the direct greedy answer's, per problem."""

from __future__ import annotations

from benchmarks import ttfv


def _piped(key: str, first: float | None, direct: float | None, passed: bool) -> dict:
    return {"key": f"{key}#select", "mode": "select", "first_seconds": first, "seconds": 40.0,
           "passed": passed, "first_passed": passed, "status": "passes-tests",
           "timings": {} if direct is None else {"direct": direct}}


def test_a_direct_row_of_the_same_run_is_the_baseline() -> None:
    rows = [{"key": "HumanEval/0#direct", "task_id": "HumanEval/0", "mode": "direct",
             "seconds": 2.0, "passed": True},
            {**_piped("HumanEval/0", 3.0, 9.9, True), "task_id": "HumanEval/0"}]
    s = ttfv.summarise(rows, "select")
    assert s["problems"] == 1 and s["ttfv_over_direct_p50"] == 1.5, "the direct row, not 9.9"
    assert s["direct_passed"] == 1
    assert "| 1 / 1 / 1 |" in ttfv.table([s])


def test_held_out_rows_use_the_pipelines_own_greedy_time() -> None:
    """Held-out runs have no direct rows: the pipeline's greedy candidate, decoded first as
    direct mode decodes it, is the baseline, and direct pass@1 is unknown (n/a)."""
    rows = [_piped("pkg/a.py::f", 4.0, 2.0, True), _piped("pkg/b.py::g", 12.0, 3.0, False),
            _piped("pkg/c.py::h", None, 5.0, False), _piped("pkg/d.py::k", 1.0, None, True)]
    s = ttfv.summarise(rows, "select")
    assert s["problems"] == 3, "a row without any direct time is left out"
    assert s["with_first_answer"] == 2 and s["ttfv_over_direct_p50"] == 3.0
    assert s["direct_p50"] == 3.0 and s["direct_passed"] is None
    assert "| n/a / 1 / 1 |" in ttfv.table([s])
