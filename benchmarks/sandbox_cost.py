"""Hardening cost per sandbox run: the sandbox before issue 12 vs now, same machine, same run.

The pre-change sandbox (commit 6628987) is checked out into a temporary package and both run
the same passing candidate against the same small workspace (two pytest tests and a doctest),
interleaved, in bubblewrap mode and in each one's fallback (old: ``rlimit``; new: the kernel
fallback). Prints the medians in ms. Run: ``python -m benchmarks.sandbox_cost [ROUNDS]``.
"""

from __future__ import annotations

import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BEFORE = "6628987"
FILES = ("sandbox.py", "isolation.py", "types.py", "launcher.py", "pytest_plugin.py")
MOD = 'def add(a, b):\n    """\n    >>> add(1, 2)\n    3\n    """\n    return a + b\n'
TESTS = ("from pkg.mod import add\n\ndef test_add():\n    assert add(1, 2) == 3\n\n"
         "def test_zero():\n    assert add(0, 5) == 5\n")


def old_package(root: Path) -> str:
    pkg = root / "oldsandbox"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in FILES:
        text = subprocess.run(["git", "show", f"{BEFORE}:server/testing/{name}"],
                              capture_output=True, text=True, check=True).stdout
        (pkg / name).write_text(text.replace("plancode.testing.", "oldsandbox.")
                                .replace("from plancode.testing import", "from oldsandbox import"))
    sys.path.insert(0, str(root))
    return "oldsandbox"


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


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 9)
