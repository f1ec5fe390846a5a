"""Pipeline settings A/B'd problem by problem (``benchmarks.heldout_ab``): each arm's settings
and constants reach its runs and only its runs, the arms take turns going first, an
interrupted A/B resumes, and a mistyped arm is refused with its fix."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from benchmarks import heldout_ab
from benchmarks.heldout_ab import Arm, parse_arm, rotated, run_ab
from plancode.config import Settings
from plancode.errors import PlancodeError
from plancode.pipeline import Pipeline
from plancode.pipeline import pool as pipeline_pool
from plancode.trainer.checker import Checker
from plancode.trainer.heldout_pipeline import Workspaces, pipeline_row
from plancode.trainer.jsonl_cache import JsonlCache
from tests.test_heldout_pipeline import RIGHT, Scripted, mined

BASE = Settings.from_mapping({"candidates": 1, "repair_rounds": 0, "parallel_candidates": 1,
                              "escalate_model": ""})
RESERVE = "plancode.pipeline.pool.LARGER_MODEL_RESERVE_SECONDS"


def test_arms_parse_settings_and_constants_with_their_types() -> None:
    arm = parse_arm(f"tight=budget=40,candidates=2,{RESERVE}=0", BASE)
    assert arm.name == "tight" and arm.settings == {"budget": 40.0, "candidates": 2}
    assert arm.constants == {RESERVE: 0.0} and isinstance(arm.constants[RESERVE], float)
    assert arm.apply(BASE).candidates == 2 and BASE.candidates == 1
    assert parse_arm("now=", BASE) == Arm("now")


@pytest.mark.parametrize("spec, says", [
    ("budget=40", "the arm's name comes first"),
    ("x=no_such_field=1", "neither a settings field nor a module constant"),
    ("x=candidates=two", "not a value for a int"),
    ("x=candidates=1.5", "is a float"),
    ("x=candidates", "not key=value"),
    ("=candidates=1", "has no name"),
])
def test_a_mistyped_arm_is_refused_with_its_fix(spec: str, says: str) -> None:
    with pytest.raises(PlancodeError, match=says) as e:
        parse_arm(spec, BASE)
    assert e.value.fix


def test_every_arm_goes_first_in_turn() -> None:
    arms = [Arm("a"), Arm("b"), Arm("c")]
    firsts = [rotated(arms, i)[0].name for i in range(6)]
    assert firsts == ["a", "b", "c", "a", "b", "c"]
    assert all(sorted(a.name for a in rotated(arms, i)) == ["a", "b", "c"] for i in range(3))


def test_each_arm_answers_with_its_own_settings_and_resumes(tmp_path: Path) -> None:
    one = mined(tmp_path)
    problems = [one, dataclasses.replace(one, id="pkg/mod.py::triple-again")]
    arms = [parse_arm("now=", BASE), parse_arm(f"more=candidates=2,{RESERVE}=7", BASE)]
    seen: list[tuple[str, int, float]] = []
    caches = {a.name: JsonlCache(tmp_path / f"ab-{a.name}.jsonl") for a in arms}
    with Checker("auto", 30.0) as checker, Workspaces() as workspaces:

        def answer(arm: Arm, problem) -> dict:
            settings = arm.apply(BASE)
            seen.append((arm.name, settings.candidates,
                         pipeline_pool.LARGER_MODEL_RESERVE_SECONDS))
            return pipeline_row(Pipeline(Scripted([RIGHT, RIGHT]), settings), checker,
                                workspaces, problem)

        run_ab(arms, problems, answer, caches, log=False)
        assert pipeline_pool.LARGER_MODEL_RESERVE_SECONDS == 30.0  # restored after the arm
        # problem 0: now, more; problem 1: more, now
        assert seen == [("now", 1, 30.0), ("more", 2, 7.0), ("more", 2, 7.0), ("now", 1, 30.0)]
        rows = {a: list(JsonlCache(tmp_path / f"ab-{a}.jsonl")) for a in ("now", "more")}
        assert [r["order"] for r in rows["now"]] == [0, 1]
        assert [r["settings"]["candidates"] for r in rows["more"]] == [2, 2]
        assert all(r["passed"] for rs in rows.values() for r in rs)  # judged by hidden tests

        seen.clear()  # a second start finds every row and answers nothing
        run_ab(arms, problems, answer, caches, log=False)
        assert seen == []


def test_one_arm_is_not_an_ab(tmp_path: Path, capsys) -> None:
    config = Path(__file__).resolve().parent.parent / "configs" / "heldout-escalate.toml"
    code = heldout_ab.main(["--config", str(config), "--rows-dir", str(tmp_path),
                            "--arm", "now="])
    assert code == 1
    assert "an A/B needs two or more" in capsys.readouterr().err
