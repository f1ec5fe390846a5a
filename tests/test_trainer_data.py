"""Training data: loading (plancode, MBPP, APPS rows), errors, dedupe, split, and
decontamination against the real HumanEval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plancode.errors import PlancodeError
from plancode.trainer.data import Problem, dedupe, load_jsonl, split
from plancode.trainer.decontam import Decontaminator, load_humaneval


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_loads_plancode_mbpp_and_apps_rows(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "problem": "def f(x):\n    'Double.'", "solution": "def f(x):\n    return 2*x",
         "tests": ["assert f(2) == 4"]},
        {"task_id": 7, "text": "Write a function to add.", "code": "def add(a, b): return a + b",
         "test_list": ["assert add(1, 2) == 3"]},
        {"problem_id": 9, "question": "Read n, print n+1.",
         "solutions": json.dumps(["print(int(input()) + 1)"]), "input_output": "{}"},
    ]
    problems = load_jsonl(_write(tmp_path / "d.jsonl", rows))
    assert [p.id for p in problems] == ["a", "mbpp/7", "apps/9"]
    assert problems[1].tests == ("assert add(1, 2) == 3",)
    assert problems[2].solution == "print(int(input()) + 1)"


@pytest.mark.parametrize(("line", "message"), [
    ('{"problem": "x"}', "d.jsonl:2: expected keys"),
    ("not json", "d.jsonl:2"),
    ('{"problem": "", "solution": "y"}', "empty problem"),
    ('["a list"]', "must be a JSON object"),
    ('{"problem": "p", "solution": "s", "tests": 3}', "tests must be"),
])
def test_bad_rows_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"problem": "p", "solution": "s"}\n' + line + "\n")
    with pytest.raises(PlancodeError, match=message) as err:
        load_jsonl(path)
    assert "fix or remove that line" in err.value.fix


def test_dedupe_ignores_whitespace_case_and_comments() -> None:
    a = Problem("1", "Add two numbers.", "def add(a, b):\n    return a + b")
    b = Problem("2", "add  two numbers.", "def add(a, b):  # sum\n    return a + b\n")
    c = Problem("3", "Add two numbers.", "def add(a, b):\n    return b + a")
    kept, dropped = dedupe([a, b, c])
    assert [p.id for p in kept] == ["1", "3"] and [p.id for p in dropped] == ["2"]


def test_split_is_deterministic_and_disjoint() -> None:
    problems = [Problem(str(i), f"p{i}", f"s{i}") for i in range(20)]
    train, val = split(problems, 0.2, seed=3)
    again_train, again_val = split(list(reversed(problems)), 0.2, seed=3)
    assert [p.id for p in val] == [p.id for p in again_val] and len(val) == 4
    assert {p.id for p in train} | {p.id for p in val} == {p.id for p in problems}
    assert not {p.id for p in train} & {p.id for p in val}
    with pytest.raises(PlancodeError):
        split(problems, 1.5)


def test_decontamination_drops_humaneval_copies_and_keeps_the_rest() -> None:
    humaneval = load_humaneval()
    assert len(humaneval) == 164
    checker = Decontaminator(humaneval)
    copied = Problem("leak", humaneval[0]["prompt"], "def f(): pass")
    solution_leak = Problem("leak2", "Check closeness.",
                            humaneval[0]["prompt"] + humaneval[0]["canonical_solution"])
    clean = Problem("ok", "def fizz(n):\n    '''Return 'Fizz' for multiples of three.'''",
                    "def fizz(n):\n    return 'Fizz' if n % 3 == 0 else str(n)")
    kept, dropped = checker.filter([copied, solution_leak, clean])
    assert [p.id for p in kept] == ["ok"]
    assert {d.problem_id for d in dropped} == {"leak", "leak2"}
    assert all(d.humaneval_task == "HumanEval/0" for d in dropped)
    assert dropped[0].field == "problem" and dropped[0].overlap


def test_punctuation_only_overlaps_are_kept() -> None:
    """A list literal shares ``[2, 3, 4, 5, 6, 7, 8]`` with HumanEval: punctuation is not a word
    and numbers are data, so no 13-word n-gram of identifiers is shared (the old rule, which
    counted ``,`` and ``[`` as words, dropped 146 of 1,205 mined problems for such lists)."""
    humaneval = load_humaneval()
    checker = Decontaminator(humaneval)
    literal = "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]"
    tables = Problem("tables", 'def chunk(xs, n):\n    """Split xs into lists of n.\n\n'
                     f"    >>> chunk({literal}, 3)\n    \"\"\"",
                     f"def chunk(xs, n):\n    return [xs[i:i + n] for i in range(0, len(xs), n)]"
                     f"\n\nDATA = {literal}\nMORE = {literal}\n")
    kept, report = checker.decontaminate([tables])
    assert [p.id for p in kept] == ["tables"] and report.dropped == []


def test_entry_point_twins_are_dropped_and_look_alikes_reported() -> None:
    """Same name and purpose as a HumanEval entry point (no 13 shared words): dropped. Same
    name, another purpose (a method of a container class): kept, and listed as kept."""
    checker = Decontaminator(load_humaneval())
    twin = Problem("algorithms/string/is_palindrome.py::is_palindrome",
                   'def is_palindrome(s):\n    """Check whether the string s reads the same '
                   'forwards and backwards: a palindrome."""',
                   "def is_palindrome(s):\n    return s == s[::-1]",
                   meta={"qualname": "is_palindrome"})
    prime = Problem("rabin_miller::is_prime", 'def is_prime(n, k):\n    """Rabin-Miller: True '
                    'if n is probably prime."""', "def is_prime(n, k):\n    return n > 1",
                    meta={"qualname": "is_prime"})
    method = Problem("setutils::IndexedSet.add", 'def add(self, item):\n    """Add an item to '
                     'the set, keeping insertion order."""',
                     "def add(self, item):\n    self.items.append(item)",
                     meta={"qualname": "IndexedSet.add"})
    kept, report = checker.decontaminate([twin, prime, method])
    assert [p.id for p in kept] == [method.id]
    reasons = {h.problem_id: (h.reason, h.humaneval_task) for h in report.dropped}
    assert reasons == {twin.id: ("entry-point twin", "HumanEval/48"),
                       prime.id: ("entry-point twin", "HumanEval/31")}
    assert [(h.problem_id, h.reason) for h in report.kept_same_name] == [
        (method.id, "same name")]
    summary = report.to_json()
    assert summary["by_reason"] == {"entry-point twin": 2}
    assert {row["id"] for row in summary["contaminated"]} == {twin.id, prime.id}
