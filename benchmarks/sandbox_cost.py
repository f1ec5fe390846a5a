"""What a sandbox run costs: before and after a change, on small and big workspaces.

``python -m benchmarks.sandbox_cost workspaces [ROUNDS]`` (issue 31): the per-run cost of one
trivial test (a test file the run brings along, ``assert True``, beside the candidate
``textstats/numbers.py`` of examples/textstats unchanged) on the bare example and on copies padded
to 150 MB in 3,000 files and 2 GB in 50,000 files (sparse files, made under /tmp), in both
isolation modes, for the copying sandbox of commit :data:`BEFORE_VIEW` and the current view
(the test under pytest, and through the out-of-process value runner), and the same pytest
command with no sandbox at all, interleaved run by run. Prints medians side by side (ms), the
overhead of the sandbox over the bare command, the once-per-Sandbox set-up (the scan), and
where the fixed cost of a run goes (interpreter start, pytest start, collection). On a shared
machine only what was measured in the same round compares.

``python -m benchmarks.sandbox_cost [ROUNDS]``: the hardening of issue 12 (commit
:data:`BEFORE`) against now, two tests and a doctest on a small workspace.

``python -m benchmarks.sandbox_cost split [ROUNDS]`` (issue 31): a test that is not
value-shaped (it takes a fixture) run the old way, under pytest and the plugin in the
candidate's process, and as a split run (a judge with the user's file, a worker with the
candidate's, calls over a pipe), interleaved, in both isolation modes; once with one call and
once with 1,000 calls in a loop, so the per-call cost of the proxy shows apart from the second
process's start.

Old versions are checked out of git into a temporary package, so both run in one process.
"""

from __future__ import annotations

import importlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BEFORE = "6628987"
BEFORE_VIEW = "a6dd62c"  # the last sandbox that copied the workspace for every run
FILES = ("sandbox.py", "isolation.py", "types.py", "launcher.py", "pytest_plugin.py")
MOD = 'def add(a, b):\n    """\n    >>> add(1, 2)\n    3\n    """\n    return a + b\n'
TESTS = ("from pkg.mod import add\n\ndef test_add():\n    assert add(1, 2) == 3\n\n"
         "def test_zero():\n    assert add(0, 5) == 5\n")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "textstats"
TRIVIAL = ("tests/test_trivial.py::test_trivial", "pytest", "tests/test_trivial.py",
           "test_trivial")
TRIVIAL_TEST = "def test_trivial():\n    assert True\n"
PADDING = (("bare example", 0, 0), ("150 MB / 3,000 files", 150_000_000, 3_000),
           ("2 GB / 50,000 files", 2_000_000_000, 50_000))


def old_package(root: Path, commit: str = BEFORE, files: tuple[str, ...] = FILES,
                name: str = "oldsandbox") -> str:
    """server/testing of ``commit`` as the package ``name`` under ``root`` (on sys.path)."""
    pkg = root / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    if not files:
        listing = subprocess.run(["git", "ls-tree", "--name-only", f"{commit}:server/testing"],
                                 capture_output=True, text=True, check=True).stdout.split()
        files = tuple(f for f in listing if f.endswith(".py") and f != "__init__.py")
    for file in files:
        text = subprocess.run(["git", "show", f"{commit}:server/testing/{file}"],
                              capture_output=True, text=True, check=True).stdout
        (pkg / file).write_text(text.replace("plancode.testing.", f"{name}.")
                                .replace("from plancode.testing import", f"from {name} import"))
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return name


def main(rounds: int = 9) -> None:
    from plancode.testing.sandbox import Sandbox as New
    from plancode.testing.types import TestCase

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        Old = importlib.import_module(old_package(root) + ".sandbox").Sandbox
        OldCase = importlib.import_module("oldsandbox.types").TestCase
        ws = root / "ws"
        (ws / "pkg").mkdir(parents=True)
        (ws / "tests").mkdir()
        (ws / "pkg" / "__init__.py").write_text("")
        (ws / "pkg" / "mod.py").write_text(MOD)
        (ws / "tests" / "test_mod.py").write_text(TESTS)
        spec = [("tests/test_mod.py::test_add", "pytest", "tests/test_mod.py", "test_add"),
                ("tests/test_mod.py::test_zero", "pytest", "tests/test_mod.py", "test_zero"),
                ("pkg/mod.py::pkg.mod.add", "doctest", "pkg/mod.py", "add")]
        rows = []
        for label, old_mode, new_mode in (("bwrap", "bwrap", "bwrap"),
                                          ("fallback", "rlimit", "landlock")):
            old_box, new_box = Old(ws, isolation=old_mode), New(ws, isolation=new_mode)
            times: dict[str, list[float]] = {"before": [], "after": []}
            for _ in range(rounds):
                for name, box, case in (("before", old_box, OldCase), ("after", new_box,
                                                                        TestCase)):
                    t = time.perf_counter()
                    result = box.run_tests({"pkg/mod.py": MOD}, [case(*s) for s in spec])
                    times[name].append((time.perf_counter() - t) * 1000)
                    assert result.all_passed, (name, result)
            old_box.close()
            new_box.close()
            b, a = statistics.median(times["before"]), statistics.median(times["after"])
            rows.append((label, f"{old_mode} -> {new_mode}", b, a))
        print("| isolation | modes | before (median ms) | after (median ms) | ratio |")
        print("|---|---|---|---|---|")
        for label, modes, b, a in rows:
            print(f"| {label} | {modes} | {b:.0f} | {a:.0f} | {a / b:.2f} |")


# -- issue 31: per-run cost against workspace size --------------------------------------------

def padded(root: Path, size: int, files: int) -> Path:
    """examples/textstats plus ``files`` sparse data files of ``size`` bytes in all."""
    ws = root / f"ws-{files}"
    shutil.copytree(EXAMPLE, ws, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    each = size // files if files else 0
    for i in range(files):
        directory = ws / "data" / f"d{i // 1000:03d}"
        if i % 1000 == 0:
            directory.mkdir(parents=True)
        with open(directory / f"f{i:05d}.bin", "wb") as f:
            f.truncate(each)
    return ws


def _median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.0f}" if samples else "refused"


def _timed(argv: list[str], cwd: Path, env: dict, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return times


def fixed_costs(ws: Path, rounds: int) -> list[tuple[str, list[float]]]:
    """Where a run's fixed cost goes, without any sandbox: the same interpreter and flags."""
    (ws / TRIVIAL[2]).write_text(TRIVIAL_TEST)
    py = sys.executable
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1",
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(ws)}
    steps = [("interpreter start (-I -S, the launcher)", [py, "-I", "-S", "-c", "pass"]),
             ("interpreter start (-s, the runner)", [py, "-s", "-c", "pass"]),
             ("+ import pytest", [py, "-s", "-c", "import pytest"]),
             ("+ pytest collects and runs the trivial test",
              [py, "-s", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(ws),
               TRIVIAL[0]])]
    if shutil.which("bwrap"):
        steps.append(("bubblewrap start (nothing bound)",
                      ["bwrap", "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net",
                       "/bin/true"]))
    return [(label, _timed(argv, ws, env, rounds)) for label, argv in steps]


def _bare_pytest(ws: Path) -> list[str]:
    """The same pytest run without any sandbox (the plugin autoload off, as in the sandbox)."""
    return [sys.executable, "-s", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
            str(ws), TRIVIAL[0]]


def workspaces(rounds: int = 9) -> None:
    from plancode.errors import PlancodeError
    from plancode.testing.sandbox import Sandbox as New
    from plancode.testing.types import TestCase

    candidate = {"textstats/numbers.py": (EXAMPLE / "textstats" / "numbers.py").read_text(),
                 TRIVIAL[2]: TRIVIAL_TEST}
    with tempfile.TemporaryDirectory(prefix="plcbench-") as d:
        root = Path(d)
        mod = importlib.import_module(old_package(root, BEFORE_VIEW, (), "copysandbox")
                                      + ".sandbox")
        Old = mod.Sandbox
        OldCase = importlib.import_module("copysandbox.types").TestCase
        spaces = [(label, padded(root, size, files)) for label, size, files in PADDING]
        print(f"rounds: {rounds}, interleaved; one trivial test per run; before = copy per run "
              f"({BEFORE_VIEW}), after = read-only view (pytest: the test under pytest and "
              "the plugin; values: the out-of-process value runner); bare = the same pytest "
              f"command with no sandbox; load average at start: {os.getloadavg()[0]:.2f}")
        print("| workspace | isolation | before | after, pytest | after, values | "
              "bare pytest | after, pytest - bare | Sandbox set-up (once) |")
        print("|---|---|---|---|---|---|---|---|")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1",
               "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        for label, ws in spaces:
            (ws / TRIVIAL[2]).write_text(TRIVIAL_TEST)  # for the bare run only
            env["PYTHONPATH"] = str(ws)
            for mode in ("bwrap", "landlock"):
                times: dict[str, list[float]] = {k: [] for k in ("before", "pytest", "values",
                                                                  "bare")}
                try:
                    old_box = Old(ws, isolation=mode)
                except PlancodeError:  # above its 200 MB limit
                    old_box = None
                t = time.perf_counter()
                new_box = New(ws, isolation=mode)
                setup = time.perf_counter() - t
                plain = New(ws, isolation=mode)
                plain.check_values = False
                for _ in range(rounds):
                    for name, box, case in (("before", old_box, OldCase),
                                            ("pytest", plain, TestCase),
                                            ("values", new_box, TestCase)):
                        if box is None:
                            continue
                        t = time.perf_counter()
                        result = box.run_tests(candidate, [case(*TRIVIAL)])
                        times[name].append(time.perf_counter() - t)
                        assert result.all_passed, (name, label, mode, result.output_tail)
                    times["bare"] += _timed(_bare_pytest(ws), ws, env, 1)
                for box in (old_box, new_box, plain):
                    if box is not None:
                        box.close()
                overhead = [a - b for a, b in zip(times["pytest"], times["bare"], strict=True)]
                print(f"| {label} | {mode} | {_median_ms(times['before'])} | "
                      f"{_median_ms(times['pytest'])} | {_median_ms(times['values'])} | "
                      f"{_median_ms(times['bare'])} | {_median_ms(overhead)} | "
                      f"{setup * 1000:.0f} |", flush=True)
        print("\nfixed cost of a run without a sandbox (bare example; medians, ms):")
        for label, samples in fixed_costs(spaces[0][1], rounds):
            print(f"- {label}: {_median_ms(samples)}")
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")


# -- issue 31: the split run against the plugin run -------------------------------------------

SPLIT_TESTS = ("import pytest\n\nfrom pkg.mod import add\n\n\n@pytest.fixture\ndef pair():\n"
               "    return (1, 2)\n\n\ndef test_one(pair):\n    assert add(*pair) == 3\n\n\n"
               "def test_many(pair):\n    for k in range(1000):\n"
               "        assert add(k, pair[0]) == k + 1\n")
STUB = 'def add(a, b):\n    """Add two numbers."""\n    raise NotImplementedError\n'
RIGHT = 'def add(a, b):\n    """Add two numbers."""\n    return a + b\n'


def split(rounds: int = 9) -> None:
    from plancode.testing.sandbox import Sandbox
    from plancode.testing.types import TestCase

    with tempfile.TemporaryDirectory(prefix="plcsplit-") as d:
        ws = Path(d) / "ws"
        (ws / "pkg").mkdir(parents=True)
        (ws / "tests").mkdir()
        (ws / "pkg" / "__init__.py").write_text("")
        (ws / "pkg" / "mod.py").write_text(STUB)
        (ws / "tests" / "test_mod.py").write_text(SPLIT_TESTS)
        (ws / "pyproject.toml").write_text("[project]\nname = 'bench'\n")
        cases = {name: [TestCase(f"tests/test_mod.py::{name}", "pytest", "tests/test_mod.py",
                                 name)] for name in ("test_one", "test_many")}
        print(f"rounds: {rounds}, interleaved; load average at start: "
              f"{os.getloadavg()[0]:.2f}; medians in ms")
        print("| isolation | test | plugin (in process) | split run | split - plugin |")
        print("|---|---|---|---|---|")
        for mode in ("bwrap", "landlock"):
            with Sandbox(ws, isolation=mode, timeout=60.0) as box:
                times: dict[tuple[str, str], list[float]] = {}
                for _ in range(rounds):
                    for name, tests in cases.items():
                        for way in ("plugin", "split"):
                            box.split_calls = way == "split"
                            t = time.perf_counter()
                            result = box.run_tests({"pkg/mod.py": RIGHT}, tests,
                                                   target=("pkg/mod.py", "add"))
                            times.setdefault((name, way), []).append(time.perf_counter() - t)
                            want = "out-of-process" if way == "split" else "in-process"
                            assert result.all_passed and result.checked == want, \
                                (mode, name, way, result.output_tail)
            for name in cases:
                a, b = times[(name, "plugin")], times[(name, "split")]
                diff = [y - x for x, y in zip(a, b, strict=True)]
                print(f"| {mode} | {name} | {_median_ms(a)} | {_median_ms(b)} | "
                      f"{_median_ms(diff)} |", flush=True)
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "workspaces":
        workspaces(int(sys.argv[2]) if len(sys.argv) > 2 else 9)
    elif len(sys.argv) > 1 and sys.argv[1] == "split":
        split(int(sys.argv[2]) if len(sys.argv) > 2 else 9)
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 9)
