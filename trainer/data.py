"""Training problems: load JSONL ({problem, solution, tests}, MBPP- and APPS-style rows),
deduplicate, and split into train/validation deterministically.

Every bad row is reported with its line number and what is missing, instead of being skipped
silently: a training set that quietly lost half its rows is worse than an error.
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from plancode.analysis import pyparse
from plancode.errors import PlancodeError


@dataclass(frozen=True)
class Problem:
    """One training problem. ``tests`` are Python statements (asserts or test functions)."""

    id: str
    problem: str
    solution: str
    tests: tuple[str, ...] = ()
    source: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> dict:
        data = asdict(self)
        data["tests"] = list(self.tests)
        return data


def _tests(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value.strip() else ()
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return tuple(t for t in value if t.strip())
    raise ValueError("tests must be a string or a list of strings")


def _from_row(row: dict, where: str) -> Problem:
    """Recognise the row's shape: plancode's own, MBPP's, or APPS'."""
    if "problem" in row and "solution" in row:
        return Problem(str(row.get("id", where)), row["problem"], row["solution"],
                       _tests(row.get("tests")), row.get("source", "jsonl"))
    if "text" in row and "code" in row:  # MBPP: text, code, test_list, task_id
        return Problem(f"mbpp/{row.get('task_id', where)}", row["text"], row["code"],
                       _tests(row.get("test_list")), "mbpp")
    if "question" in row and "solutions" in row:  # APPS: solutions is a JSON list of strings
        sols = row["solutions"]
        sols = json.loads(sols) if isinstance(sols, str) and sols.strip() else sols
        if not sols:
            raise ValueError("APPS row without solutions")
        return Problem(f"apps/{row.get('problem_id', where)}", row["question"], sols[0], (),
                       "apps", {"input_output": row.get("input_output", "")})
    raise ValueError("expected keys {problem, solution[, tests]} (or MBPP's text/code/"
                     "test_list, or APPS' question/solutions); found " + ", ".join(sorted(row)))


def load_jsonl(path: Path) -> list[Problem]:
    """All problems in a JSONL file; a malformed row raises, naming the line and the fix."""
    problems: list[Problem] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise PlancodeError(f"{path} does not exist", "check the data path") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("a row must be a JSON object")
            problem = _from_row(row, where)
            if not problem.problem.strip() or not problem.solution.strip():
                raise ValueError("empty problem or solution")
        except (json.JSONDecodeError, ValueError) as exc:
            raise PlancodeError(f"{where}: {exc}",
                                "fix or remove that line; each line is one JSON object "
                                "with problem, solution and tests") from None
        problems.append(problem)
    return problems


def _normal(text: str) -> str:
    text = re.sub(r"#.*", "", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def dedupe(problems: list[Problem]) -> tuple[list[Problem], list[Problem]]:
    """(kept, dropped): a problem whose normalised statement and solution repeat is dropped."""
    seen: set[str] = set()
    kept, dropped = [], []
    for p in problems:
        key = hashlib.sha256((_normal(p.problem) + "\0" + _normal(p.solution)).encode()).hexdigest()
        (dropped if key in seen else kept).append(p)
        seen.add(key)
    return kept, dropped


def split(problems: list[Problem], val_fraction: float = 0.1,
          seed: int = 0) -> tuple[list[Problem], list[Problem]]:
    """A deterministic (train, validation) split; at least one validation problem when
    there are two or more problems."""
    if not 0 <= val_fraction < 1:
        raise PlancodeError(f"val_fraction {val_fraction} must be in [0, 1)",
                            "use e.g. 0.1 for a 10% validation set")
    order = sorted(problems, key=lambda p: p.id)
    random.Random(seed).shuffle(order)
    n_val = round(len(order) * val_fraction)
    if val_fraction > 0 and len(order) >= 2:
        n_val = max(n_val, 1)
    return order[n_val:], order[:n_val]


def _called_names(tests: tuple[str, ...]) -> list[str]:
    names: list[str] = []
    for test in tests:
        names += re.findall(r"\b([A-Za-z_]\w*)\s*\(", test)
    return names


def python_problem(problem: Problem) -> Problem:
    """``problem`` with its statement as Python source (imports + signature + docstring).

    The server prompts with Python problems (the HumanEval shape), and the student is trained on
    the server's prompts; a prose statement (MBPP, APPS) is turned into a stub of the solution's
    function — the one the tests call, else the last one — documented by the prose.
    """
    try:
        pyparse.parse(problem.problem)
        stated = any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
                     for n in pyparse.parse(problem.problem).body)
    except SyntaxError:
        stated = False
    if stated:
        return problem
    try:
        tree = pyparse.parse(problem.solution)
    except SyntaxError as exc:
        raise PlancodeError(f"{problem.id}: the solution does not parse ({exc.msg})",
                            "fix the row's solution; it must be Python") from None
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    if not defs:
        raise PlancodeError(f"{problem.id}: the solution defines no function",
                            "training problems are functions; wrap the solution in a def")
    called = set(_called_names(problem.tests))
    target = next((d for d in defs if d.name in called), defs[-1])
    lines = problem.solution.splitlines()
    imports = [ast.get_source_segment(problem.solution, n) or "" for n in tree.body
               if isinstance(n, ast.Import | ast.ImportFrom)]
    header = "\n".join(lines[target.lineno - 1:target.body[0].lineno - 1]).rstrip()
    if target.body[0].lineno == target.lineno:  # ``def f(x): return x``
        header = lines[target.lineno - 1][:target.body[0].col_offset].rstrip()
    doc = " ".join(problem.problem.split()).replace('"""', "'''").replace("\\", "\\\\")
    stub = "\n".join(imports + ([""] if imports else []) + [header, f'    """{doc}"""', ""])
    return replace(problem, problem=stub)
