"""Mining training problems from a codebase (``plancode.trainer.mine``), on real projects, no mocks.

Two projects: ``examples/textstats`` (the demo project: one implemented, tested function, the
rest placeholders or untested) and ``tests/fixtures/mine_project`` (a package with a function
for every skip reason), copied to a temporary folder where a non-UTF-8 file, a file with a
syntax error and a few directories the miner must not enter are added (kept out of the
repository because ruff cannot read them). One kept problem's tests run in the server's real
sandbox, with the original solution spliced back (they pass) and with a wrong one (they fail).
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest

from plancode.analysis.functions import FunctionInfo, functions
from plancode.errors import PlancodeError
from plancode.testing.discovery import discover
from plancode.testing.index import WorkspaceIndex
from plancode.testing.sandbox import Sandbox
from plancode.testing.types import TestCase
from plancode.trainer.data import Problem
from plancode.trainer.mine import mine, python_files, solution_text
from plancode.trainer.mine import test_cases as rebuild_test_cases

REPO = Path(__file__).resolve().parent.parent
TEXTSTATS = REPO / "examples" / "textstats"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "mine_project"

FIXTURE_KEPT = [
    "inventory/core.py::total_value",
    "inventory/core.py::parse_line",
    "inventory/core.py::by_value",
    "inventory/core.py::Ledger.__init__",
    "inventory/core.py::Ledger.record",
    "inventory/core.py::Ledger.balance",
    "inventory/core.py::Ledger.parse_move",
]
FIXTURE_REASONS = {
    "inventory/broken.py": "parse error",
    "inventory/core.py::restock": "no docstring",
    "inventory/core.py::describe": "no tests",
    "inventory/core.py::by_value.value": "nested function",
    "inventory/core.py::Ledger.forecast": "placeholder body",
    "inventory/core.py::Ledger.label": "duplicate name",  # getter and setter
    "inventory/core.py::Ledger.__len__": "dunder method",
    "inventory/legacy.py": "unreadable",
    "tests/check_core.py": "test file",
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the fixture project, plus files and folders that cannot live in the repo."""
    root = tmp_path / "mine_project"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    documented = '    """Return x."""\n    return x\n'
    (root / "inventory" / "legacy.py").write_bytes(  # Latin-1: not UTF-8
        b'"""Caf\xe9 prices."""\n\n\ndef price(x):\n' + documented.encode())
    (root / "inventory" / "broken.py").write_text(
        f'def price(x:\n{documented}', encoding="utf-8")
    for skipped in (".venv/lib/python3.11/site-packages/inventory", "node_modules/inventory",
                    "build/lib/inventory", "env/lib/inventory"):
        shutil.copytree(root / "inventory", root / skipped)
    (root / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n", encoding="utf-8")
    return root


def _info(root: Path, problem: Problem) -> tuple[str, FunctionInfo]:
    source = (root / problem.meta["file"]).read_text(encoding="utf-8")
    [info] = [i for i in functions(source) if i.qualname == problem.meta["qualname"]]
    return source, info


def _splice(source: str, info: FunctionInfo, solution: str) -> str:
    """Put a column-0 function back where ``info`` was, at its indentation."""
    start = sum(len(line) for line in source.splitlines(keepends=True)[: info.start_line])
    code = "".join(info.def_indent + line if line.strip() else line
                   for line in solution.splitlines(keepends=True))
    return source[:start] + code + source[info.body_end:]


# --- what is kept, what is skipped ------------------------------------------------------


def test_textstats_keeps_only_the_implemented_tested_function() -> None:
    problems, report = mine(TEXTSTATS)
    assert [p.id for p in problems] == ["textstats/words.py::slugify"]
    assert report.reasons == {
        "tests/test_numbers.py": "test file",
        "tests/test_words.py": "test file",
        "textstats/numbers.py::running_mean": "placeholder body",  # ``...``
        "textstats/numbers.py::median": "placeholder body",  # ``pass``
        "textstats/words.py::word_frequencies": "placeholder body",  # docstring only
        "textstats/words.py::top_words": "placeholder body",
        "textstats/words.py::count_lines": "no tests",
    }
    data = report.to_json()
    assert json.loads(json.dumps(data)) == data
    assert (data["files_scanned"], data["functions_seen"], data["kept"]) == (5, 6, 1)
    assert data["skipped_files"] == {"test file": 2}
    assert data["skipped_functions"] == {"no tests": 1, "placeholder body": 4}
    [slugify] = problems
    assert slugify.source == "mined" and slugify.tests == ()
    assert slugify.meta["root"] == str(TEXTSTATS) and slugify.meta["file"] == "textstats/words.py"
    assert [t["id"] for t in slugify.meta["tests"]] == [
        "textstats/words.py::textstats.words.slugify", "tests/test_words.py::test_slugify"]


def test_fixture_project_kept_and_skipped_for_each_reason(project: Path) -> None:
    problems, report = mine(project)
    assert [p.id for p in problems] == FIXTURE_KEPT
    assert report.reasons == FIXTURE_REASONS
    assert report.files_scanned == 5  # __init__, core, legacy, broken, tests/check_core
    assert report.functions_seen == 14  # all in core.py: unreadable files are not parsed
    assert report.kept == 7
    assert dict(report.skipped_files) == {"test file": 1, "unreadable": 1, "parse error": 1}
    assert dict(report.skipped_functions) == {
        "no docstring": 1, "no tests": 1, "nested function": 1, "placeholder body": 1,
        "duplicate name": 2, "dunder method": 1}
    assert python_files(project) == ["inventory/__init__.py", "inventory/broken.py",
                                     "inventory/core.py", "inventory/legacy.py",
                                     "tests/check_core.py"]
    by_id = {p.id: p for p in problems}
    doctest_only = by_id["inventory/core.py::parse_line"].meta["tests"]
    assert [t["kind"] for t in doctest_only] == ["doctest"]
    assert by_id["inventory/core.py::total_value"].meta["tests"] == [{
        "id": "tests/check_core.py::test_total_value", "kind": "pytest",
        "file": "tests/check_core.py", "name": "test_total_value"}]


def test_problem_solution_and_meta_match_the_server(project: Path) -> None:
    problems, _ = mine(project)
    index = WorkspaceIndex(project)
    for problem in problems:
        source, info = _info(project, problem)
        assert problem.problem == info.problem  # exactly what the server prompts with
        assert problem.meta["context"] == info.context
        assert problem.meta["line"] == info.start_line
        assert problem.meta["root"] == str(project.resolve())
        assert problem.meta["tests"] == [t.to_json() for t in discover(
            project, Path(problem.meta["file"]), info.qualname, index=index, source=source)]
        tree = ast.parse(problem.solution)  # a whole function, at column 0 (methods too)
        [func] = tree.body
        assert isinstance(func, ast.FunctionDef) and func.name == info.name
        assert problem.solution.startswith(("def ", "@"))
        body = source[info.body_start:info.body_end]
        dedented = "".join(line.removeprefix(info.def_indent)
                           for line in body.splitlines(keepends=True))
        assert dedented.strip() and dedented in problem.solution
        assert _splice(source, info, problem.solution) == source  # splices back exactly

    parse_move = next(p for p in problems if p.id.endswith("Ledger.parse_move"))
    assert parse_move.solution.startswith("@staticmethod\ndef parse_move(text: str)")
    assert "# a method of class Ledger" in parse_move.problem
    assert "class Ledger:" in parse_move.meta["context"]


def test_solution_of_crlf_tab_indented_method() -> None:
    source = ('class A:\r\n\tdef f(self, x):\r\n\t\t"""Twice x."""\r\n\r\n'
              '\t\ty = 2 * x\r\n\t\treturn y\r\n')
    [info] = functions(source)
    assert solution_text(source, info) == ('def f(self, x):\n\t"""Twice x."""\n\n'
                                           '\ty = 2 * x\n\treturn y\n')


def test_test_cases_round_trip_through_json(project: Path) -> None:
    problems, _ = mine(project)
    for problem in problems:
        cases = rebuild_test_cases(problem)
        assert all(isinstance(c, TestCase) for c in cases)
        assert [c.to_json() for c in cases] == problem.meta["tests"]
        row = json.loads(json.dumps(problem.to_json()))
        again = Problem(**{**row, "tests": tuple(row["tests"])})
        assert again == problem and rebuild_test_cases(again) == cases
    with pytest.raises(PlancodeError, match="no workspace tests"):
        rebuild_test_cases(Problem("x", "p", "s"))
    with pytest.raises(PlancodeError, match="malformed"):
        rebuild_test_cases(Problem("x", "p", "s", meta={"tests": [{"id": "t"}]}))


def test_bad_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PlancodeError, match="does not exist") as missing:
        mine(tmp_path / "nowhere")
    assert missing.value.fix
    (tmp_path / "file.py").write_text("x = 1\n", encoding="utf-8")
    with pytest.raises(PlancodeError, match="not a directory"):
        mine(tmp_path / "file.py")


def test_progress_bar_goes_to_stderr(project: Path, capsys: pytest.CaptureFixture) -> None:
    problems, _ = mine(project, progress=True)
    captured = capsys.readouterr()
    assert len(problems) == len(FIXTURE_KEPT)
    assert "mining" in captured.err and "5/5" in captured.err and captured.out == ""


# --- the mined tests really run -----------------------------------------------------------


def test_mined_tests_pass_in_the_sandbox_with_the_original_solution(project: Path) -> None:
    problems, _ = mine(project)
    balance = next(p for p in problems if p.id.endswith("Ledger.balance"))
    source, info = _info(project, balance)
    wrong = balance.solution.replace("total += change", "total = change")
    with Sandbox(Path(balance.meta["root"]), isolation="auto", timeout=20) as sandbox:
        tests = rebuild_test_cases(balance)
        good = sandbox.run_tests(
            {balance.meta["file"]: _splice(source, info, balance.solution)}, tests)
        assert good.all_passed, good.output_tail
        assert [v.outcome for v in good.verdicts] == ["passed"]
        bad = sandbox.run_tests({balance.meta["file"]: _splice(source, info, wrong)}, tests)
        assert [v.outcome for v in bad.verdicts] == ["failed"]


def test_mined_textstats_doctest_and_pytest_pass_in_the_sandbox() -> None:
    [slugify], _ = mine(TEXTSTATS)
    source, info = _info(TEXTSTATS, slugify)
    with Sandbox(TEXTSTATS, isolation="auto", timeout=20) as sandbox:
        result = sandbox.run_tests({slugify.meta["file"]: _splice(source, info, slugify.solution)},
                                   rebuild_test_cases(slugify))
    assert result.all_passed, result.output_tail
    assert [v.outcome for v in result.verdicts] == ["passed", "passed"]  # doctest, pytest


# --- evaluation data stays out -----------------------------------------------------------


def test_mined_problems_do_not_overlap_humaneval(project: Path) -> None:
    from plancode.trainer.decontam import Decontaminator

    problems = mine(TEXTSTATS)[0] + mine(project)[0]
    clean, dropped = Decontaminator().filter(problems)
    assert dropped == [] and clean == problems
