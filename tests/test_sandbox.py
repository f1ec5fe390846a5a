"""The test sandbox, with real processes and no mocks.

Each test builds a small workspace in tmp_path (``pkg/mod.py`` with a doctest, tests in
``tests/test_mod.py``) and runs candidates against it under both isolation modes where that
makes sense. Threat tests check that the threat is contained (the run returns within its
timeout plus a margin), reported (the verdict says what happened), that the real workspace is
byte-for-byte unchanged, and that no process of the run survives: every candidate test file is
named after a unique marker, so a scan of /proc for that marker finds the runner, its forks and
anything they spawned.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from plancode.engine.types import CancelToken
from plancode.errors import PlancodeError
from plancode.testing.sandbox import Sandbox
from plancode.testing.types import RunResult, TestCase

MOD = '''\
def add(a, b):
    """Add two numbers.

    >>> add(2, 3)
    5
    """
    return a + b


def mul(a, b):
    return a * b
'''

TESTS = '''\
import pytest

from pkg.mod import add, mul


def test_add():
    assert add(1, 2) == 3


def test_add_zero():
    assert add(0, 0) == 0


@pytest.mark.parametrize("a, b, product", [(1, 1, 1), (2, 3, 6)])
def test_mul(a, b, product):
    assert mul(a, b) == product


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass
'''

CASES = [
    TestCase("tests/test_mod.py::test_add", "pytest", "tests/test_mod.py", "test_add"),
    TestCase("tests/test_mod.py::test_add_zero", "pytest", "tests/test_mod.py", "test_add_zero"),
    TestCase("tests/test_mod.py::test_mul", "pytest", "tests/test_mod.py", "test_mul"),
    TestCase("tests/test_mod.py::test_skipped", "pytest", "tests/test_mod.py", "test_skipped"),
    TestCase("pkg/mod.py::pkg.mod.add", "doctest", "pkg/mod.py", "add"),
]


@functools.cache
def bwrap_unusable() -> str:
    """Why bubblewrap cannot be used on this machine ("" when it can)."""
    with tempfile.TemporaryDirectory() as d:
        try:
            Sandbox(Path(d), isolation="bwrap").close()
        except PlancodeError as exc:
            return str(exc)
    return ""


@pytest.fixture(params=["bwrap", "landlock"])
def mode(request: pytest.FixtureRequest) -> str:
    if request.param == "bwrap" and bwrap_unusable():
        pytest.skip(f"bubblewrap is unusable here: {bwrap_unusable()}")
    return request.param


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "tests").mkdir()
    (ws / "pkg" / "__init__.py").write_text("")
    (ws / "pkg" / "mod.py").write_text(MOD)
    (ws / "tests" / "test_mod.py").write_text(TESTS)
    return ws


def snapshot(root: Path) -> dict[str, str]:
    """Every path under root with its type, mode and content hash."""
    state: dict[str, str] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory, name)
            st = path.lstat()
            if path.is_symlink():
                state[str(path.relative_to(root))] = f"link {os.readlink(path)}"
            elif path.is_dir():
                state[str(path.relative_to(root))] = f"dir {st.st_mode:o}"
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                state[str(path.relative_to(root))] = f"file {st.st_mode:o} {digest}"
    return state


def marked_pids(marker: str) -> list[int]:
    """Live processes (not zombies) whose command line mentions ``marker``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(name))
    return found


def survivors(marker: str, wait: float = 2.0) -> list[int]:
    end = time.monotonic() + wait
    while (pids := marked_pids(marker)) and time.monotonic() < end:
        time.sleep(0.05)
    return pids


def new_marker() -> str:
    return "plcmark" + uuid.uuid4().hex[:12]


def run_candidate(ws: Path, mode: str, code: str, names: list[str],
                  cancel: CancelToken | None = None, marker: str | None = None,
                  **limits) -> tuple[RunResult, float, str]:
    """Run test functions ``names`` from ``code`` (a new test file named after a unique marker;
    ``MARK`` in the code is replaced by it) and check the workspace and the process table."""
    marker = marker or new_marker()
    rel = f"tests/test_threat_{marker}.py"
    tests = [TestCase(f"{rel}::{n}", "pytest", rel, n) for n in names]
    before = snapshot(ws)
    with Sandbox(ws, isolation=mode, **limits) as sandbox:
        assert sandbox.isolation == mode
        start = time.monotonic()
        result = sandbox.run_tests({rel: code.replace("MARK", marker)}, tests, cancel=cancel)
        elapsed = time.monotonic() - start
    assert snapshot(ws) == before, "the real workspace changed"
    assert survivors(marker) == [], "processes of the run survived it"
    assert [v.id for v in result.verdicts] == [t.id for t in tests]
    return result, elapsed, marker


def outcomes(result: RunResult) -> list[str]:
    return [v.outcome for v in result.verdicts]


# -- verdicts --------------------------------------------------------------------------------


def test_correct_and_buggy_candidates(workspace: Path, mode: str) -> None:
    before = snapshot(workspace)
    with Sandbox(workspace, isolation=mode) as sandbox:
        good = sandbox.run_tests({}, CASES)
        buggy_mod = MOD.replace("return a + b", "return a - b").replace("a * b", "a + b")
        bad = sandbox.run_tests({"pkg/mod.py": buggy_mod}, CASES)
        undefined = sandbox.run_tests({"pkg/mod.py": MOD.replace("return a + b", "return x")},
                                      CASES[:1])
    assert snapshot(workspace) == before
    assert outcomes(good) == ["passed", "passed", "passed", "skipped", "passed"]
    assert good.all_passed and good.isolation == mode and good.isolation_detail
    assert good.verdicts[3].message == "not today"
    assert outcomes(bad) == ["failed", "passed", "failed", "skipped", "failed"]
    messages = [v.message for v in bad.verdicts]
    assert messages[0] == "AssertionError: assert -1 == 3"
    assert messages[2] == "[1-1-1]: AssertionError: assert 2 == 1"  # first failing case
    assert messages[4] == "doctest: add(2, 3) expected 5, got -1"
    assert all("\n" not in m and len(m) < 200 for m in messages)
    assert "assert -1 == 3" in bad.output_tail
    assert undefined.verdicts[0].outcome == "failed"
    assert undefined.verdicts[0].message == "NameError: name 'x' is not defined"


UNITTEST_FILE = """import unittest

from pkg.mod import add


class TestAdd(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(1, 2), 3)

    @unittest.skip("the user's own: not yet")
    def test_later(self):
        self.assertEqual(add(2, 2), 99)


@unittest.skip("the user's own: whole class")
class TestLater(unittest.TestCase):
    def test_x(self):
        self.assertEqual(add(0, 0), 99)
"""
UNITTEST_CASES = [TestCase(f"tests/test_ut.py::{n}", "unittest", "tests/test_ut.py", n)
                  for n in ("TestAdd::test_add", "TestAdd::test_later", "TestLater::test_x")]
# a candidate that makes every unittest class defined after it skip at run time
SKIP_EVERY_CLASS = MOD.replace("return a + b", "return a - b") + """
import unittest


def _skip_all(cls, **kwargs):
    cls.__unittest_skip__ = True
    cls.__unittest_skip_why__ = "forged"


unittest.TestCase.__init_subclass__ = classmethod(_skip_all)
"""


def test_the_users_unittest_skips_do_not_count_but_forged_ones_do(workspace: Path,
                                                                   mode: str) -> None:
    """@unittest.skip in the user's file is the user's skip (never counts); a candidate that
    sets unittest's skip flag on the user's classes at run time is a raised skip (counts
    against it): only the decorators in the source, read before any import, are the user's."""
    (workspace / "tests" / "test_ut.py").write_text(UNITTEST_FILE)
    with Sandbox(workspace, isolation=mode) as sandbox:
        good = sandbox.run_tests({}, UNITTEST_CASES)
        forged = sandbox.run_tests({"pkg/mod.py": SKIP_EVERY_CLASS}, UNITTEST_CASES)
        sandbox.check_values = False  # the same, every test under pytest and the plugin
        forged_in_process = sandbox.run_tests({"pkg/mod.py": SKIP_EVERY_CLASS}, UNITTEST_CASES)
    assert outcomes(good) == ["passed", "skipped", "skipped"], good.verdicts
    assert [v.checked for v in good.verdicts] == ["out-of-process", "in-process", "in-process"]
    assert good.all_passed, "the user's skipped tests never make a right candidate fail"
    # out of process the skip flag changes nothing: the server compares add(1, 2) with 3
    assert outcomes(forged)[0] == "failed", forged.verdicts
    assert outcomes(forged_in_process)[0] == "skip-raised", forged_in_process.verdicts
    assert not forged.all_passed and not forged_in_process.all_passed, \
        "a forged skip must not verify wrong code"


def test_private_workspace_modes_are_no_obstacle(workspace: Path, mode: str) -> None:
    """A workspace readable only by its owner (mode 0700, as tempfile makes) still runs."""
    workspace.chmod(0o700)
    (workspace / "pkg").chmod(0o700)
    (workspace / "pkg" / "mod.py").chmod(0o600)
    with Sandbox(workspace, isolation=mode) as sandbox:
        result = sandbox.run_tests({}, CASES)
    assert outcomes(result) == ["passed", "passed", "passed", "skipped", "passed"]
    assert (workspace.stat().st_mode & 0o777) == 0o700, "the real workspace keeps its modes"


def test_collection_errors_and_unknown_tests(workspace: Path, mode: str) -> None:
    broken = MOD + "\nVALUE = undefined_name\n"
    extra = [TestCase("tests/test_mod.py::test_nope", "pytest", "tests/test_mod.py", "nope"),
             TestCase("tests/test_gone.py::test_x", "pytest", "tests/test_gone.py", "x")]
    with Sandbox(workspace, isolation=mode) as sandbox:
        result = sandbox.run_tests({"pkg/mod.py": broken}, [CASES[0], CASES[4]])
        unknown = sandbox.run_tests({}, [CASES[0], *extra])
    assert outcomes(result) == ["error", "error"]
    assert all(v.message == "NameError: name 'undefined_name' is not defined"
               for v in result.verdicts)
    assert outcomes(unknown) == ["passed", "not-run", "error"]
    assert "no test with this id" in unknown.verdicts[1].message
    assert unknown.verdicts[2].message.startswith("file not found")


COVERAGE_ADDOPTS = """\
[tool.pytest.ini_options]
addopts = "--cov=pkg --cov-report term-missing --no-cov-on-fail -ra --strict-markers"
markers = ["slow: a slow test"]
"""

STRICT = "import pytest\n\n\n@pytest.mark.unregistered\ndef test_marked():\n    pass\n"


def test_addopts_of_missing_plugins_are_ignored_and_the_rest_kept(workspace: Path,
                                                                 mode: str) -> None:
    """A project whose pytest config asks for pytest-cov (not loaded in the sandbox) is
    verified, not refused; the options pytest knows (``--strict-markers``) still apply, and
    dropping options turns no failure into a pass."""
    (workspace / "pyproject.toml").write_text(COVERAGE_ADDOPTS)
    marked = TESTS.replace("def test_add_zero", "@pytest.mark.slow\ndef test_add_zero")
    (workspace / "tests" / "test_mod.py").write_text(marked)
    strict = TestCase("tests/test_strict.py::test_marked", "pytest", "tests/test_strict.py",
                      "test_marked")
    with Sandbox(workspace, isolation=mode) as sandbox:
        good = sandbox.run_tests({}, CASES)
        bad = sandbox.run_tests({"pkg/mod.py": MOD.replace("return a + b", "return a - b")},
                                CASES)
        unregistered = sandbox.run_tests({"tests/test_strict.py": STRICT}, [strict])
    assert outcomes(good) == ["passed", "passed", "passed", "skipped", "passed"], good.verdicts
    assert "ignored from the project's pytest addopts" in good.output_tail
    assert "--cov=pkg --cov-report term-missing --no-cov-on-fail" in good.output_tail
    assert outcomes(bad) == ["failed", "passed", "passed", "skipped", "failed"]
    assert not bad.all_passed
    assert outcomes(unregistered) == ["error"]
    assert "not found in `markers`" in unregistered.verdicts[0].message


def test_a_configuration_pytest_refuses_is_a_clear_error(workspace: Path) -> None:
    (workspace / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\nrequired_plugins = ["pytest-nonexistent"]\n')
    with Sandbox(workspace) as sandbox:
        result = sandbox.run_tests({}, CASES[:2])
    assert outcomes(result) == ["error", "error"]
    message = result.verdicts[0].message
    assert message.startswith("pytest refused to start (usage error)"), message
    assert "pytest-nonexistent" in message and "tampered" not in message


SUBTESTS = """\
import unittest

from pkg.mod import add


class AddTests(unittest.TestCase):
    def test_cases(self):
        for a, b, want in [(1, 2, 3), (0, 0, 0), (2, 2, 4)]:
            with self.subTest(a=a, b=b):
                self.assertEqual(add(a, b), want)


def test_with_fixture(subtests):
    for a, b, want in [(1, 2, 3), (2, 2, 4)]:
        with subtests.test(a=a):
            assert add(a, b) == want
"""


def test_subtests_count_once_and_only_make_their_test_worse(workspace: Path, mode: str) -> None:
    """unittest ``subTest`` and pytest's ``subtests`` report each block before the test's own
    call: honest code passes (it was flagged as tampering), a failing block fails its test,
    and a candidate that skips inside a block does not pass (attack)."""
    if int(pytest.__version__.split(".")[0]) < 9:
        pytest.skip("the subtests fixture is pytest 9's")
    (workspace / "tests" / "test_sub.py").write_text(SUBTESTS)
    cases = [TestCase(f"tests/test_sub.py::{n}", "pytest", "tests/test_sub.py", n)
             for n in ("AddTests::test_cases", "test_with_fixture")]
    skipping = MOD.replace("    return a + b", "    if a == 2:\n        import unittest\n"
                           "        raise unittest.SkipTest('unsure')\n    return a + b")
    with Sandbox(workspace, isolation=mode) as sandbox:
        good = sandbox.run_tests({}, cases)
        bad = sandbox.run_tests({"pkg/mod.py": MOD.replace("return a + b", "return a * b")},
                                cases)
        skip = sandbox.run_tests({"pkg/mod.py": skipping}, cases)
    assert outcomes(good) == ["passed", "passed"], good.verdicts
    assert outcomes(bad) == ["failed", "failed"], bad.verdicts
    assert bad.verdicts[0].message == "1 failed subtest(s): AssertionError: 2 != 3"
    assert outcomes(skip) == ["skip-raised", "skip-raised"], skip.verdicts
    assert not (good.tampered or bad.tampered or skip.tampered)


def test_new_files_and_src_layout(tmp_path: Path) -> None:
    ws = tmp_path / "proj"
    (ws / "src" / "textlib").mkdir(parents=True)
    (ws / "tests").mkdir()
    (ws / "src" / "textlib" / "__init__.py").write_text("def shout(s):\n    return s\n")
    generated = "from textlib import shout\n\n\ndef test_shout():\n    assert shout('a') == 'A'\n"
    case = TestCase("tests/test_gen.py::test_shout", "generated", "tests/test_gen.py", "shout")
    before = snapshot(ws)
    with Sandbox(ws) as sandbox:
        fixed = sandbox.run_tests({"src/textlib/__init__.py":
                                   "def shout(s):\n    return s.upper()\n",
                                   "tests/test_gen.py": generated}, [case])
        unfixed = sandbox.run_tests({"tests/test_gen.py": generated}, [case])
    assert outcomes(fixed) == ["passed"]
    assert outcomes(unfixed) == ["failed"]
    assert snapshot(ws) == before


FIXTURES = '''\
import pytest


@pytest.fixture
def broken_setup():
    raise RuntimeError("cannot set up")


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("cannot tear down")


def test_setup(broken_setup):
    pass


def test_teardown(broken_teardown):
    pass
'''


def test_setup_and_teardown_errors(workspace: Path) -> None:
    rel = "tests/test_fixtures.py"
    cases = [TestCase(f"{rel}::{n}", "pytest", rel, n) for n in ("test_setup", "test_teardown")]
    with Sandbox(workspace) as sandbox:
        result = sandbox.run_tests({rel: FIXTURES}, cases)
    assert outcomes(result) == ["error", "error"]
    assert result.verdicts[0].message == "error in setup: RuntimeError: cannot set up"
    assert result.verdicts[1].message == "error in teardown: RuntimeError: cannot tear down"


EVERYDAY = '''\
import concurrent.futures
import multiprocessing
import pathlib
import tempfile


def square(x):
    return x * x


def test_processes_threads_and_files():
    with multiprocessing.Pool(2) as pool:
        assert pool.map(square, range(4)) == [0, 1, 4, 9]
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        assert list(ex.map(square, range(3))) == [0, 1, 4]
    with tempfile.TemporaryDirectory() as d:
        pathlib.Path(d, "x").write_text("ok")
    pathlib.Path("written-by-the-test.txt").write_text("ok")
'''


def test_ordinary_tests_work(workspace: Path, mode: str) -> None:
    result, _, _ = run_candidate(workspace, mode, EVERYDAY, ["test_processes_threads_and_files"])
    assert outcomes(result) == ["passed"], result.verdicts[0].message


# -- threats ---------------------------------------------------------------------------------


LOOP = "def test_loop():\n    while True:\n        pass\n"


def test_infinite_loop_is_killed(workspace: Path, mode: str) -> None:
    code = LOOP + "\n\ndef test_after():\n    pass\n"
    result, elapsed, _ = run_candidate(workspace, mode, code, ["test_loop", "test_after"],
                                       timeout=5.0)  # pytest must reach the loop on a busy CI
    assert elapsed < 5.0 + 2.0
    assert result.timed_out and not result.cancelled
    assert outcomes(result) == ["timeout", "not-run"]
    assert result.verdicts[0].message == "timed out after 5 s (killed)"


def test_hang_while_importing(workspace: Path) -> None:
    hang = MOD + "\nwhile True:\n    pass\n"
    with Sandbox(workspace, isolation="landlock", timeout=1.5) as sandbox:
        result = sandbox.run_tests({"pkg/mod.py": hang}, CASES[:2])
    assert result.timed_out and result.seconds < 1.5 + 2.0
    assert outcomes(result) == ["timeout", "timeout"]
    assert "before any test ran" in result.verdicts[0].message


FORK_BOMB = '''\
import os


def test_bomb():
    while True:
        try:
            os.fork()
        except OSError:
            pass
'''


def test_fork_bomb_is_contained(workspace: Path, mode: str) -> None:
    marker = new_marker()
    peak = 0
    stop = threading.Event()

    def sample() -> None:  # count the bomb's processes while it runs
        nonlocal peak
        while not stop.wait(0.1):
            peak = max(peak, len(marked_pids(marker)))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result, elapsed, _ = run_candidate(workspace, mode, FORK_BOMB, ["test_bomb"],
                                           marker=marker, timeout=3.0, max_procs=16)
    finally:
        stop.set()
        sampler.join()
    assert elapsed < 3.0 + 3.0
    assert outcomes(result) == ["timeout"]
    assert 1 < peak <= 16 + 3  # the runner's forks, plus bwrap or the supervisor
    started = time.monotonic()
    subprocess.run(["true"], check=True)
    assert time.monotonic() - started < 1.0, "the machine is not responsive after the bomb"


MEMORY_BOMB = '''\
def test_one_huge_block():
    data = bytearray(10 * 1024 ** 3)
    assert data


def test_growing():
    blocks = []
    while True:
        blocks.append(bytearray(100 * 1024 ** 2))
'''


def test_memory_bomb_is_contained(workspace: Path, mode: str) -> None:
    result, elapsed, _ = run_candidate(workspace, mode, MEMORY_BOMB,
                                       ["test_one_huge_block", "test_growing"], timeout=10.0)
    assert elapsed < 10.0
    assert outcomes(result) == ["failed", "failed"]
    assert all(v.message.startswith("MemoryError") for v in result.verdicts)


VANDAL = '''\
import os
import pathlib
import shutil

COPY = pathlib.Path(__file__).resolve().parents[1]
REAL = "REAL_WORKSPACE"


def test_vandal():
    attacks = [lambda: os.remove(COPY / "tests" / "test_mod.py"),
               lambda: (COPY / "pkg" / "__init__.py").write_text("raise SystemExit('gone')"),
               lambda: shutil.rmtree(COPY / "pkg")]
    if REAL:
        attacks += [lambda: pathlib.Path(REAL, "pkg", "mod.py").write_text("gone"),
                    lambda: shutil.rmtree(REAL)]
    done = []
    for i, attack in enumerate(attacks):
        try:
            attack()
            done.append(i)
        except OSError:
            pass
    assert not done, f"attacks {done} changed the workspace"
    assert (COPY / "pkg" / "mod.py").exists()
'''


def test_vandalism_finds_a_read_only_workspace(workspace: Path, mode: str) -> None:
    # the view is read-only at the path the run sees and at the real path
    real = str(workspace)
    code = VANDAL.replace("REAL_WORKSPACE", real)
    result, _, _ = run_candidate(workspace, mode, code, ["test_vandal"])
    assert outcomes(result) == ["passed"], result.verdicts[0].message
    with Sandbox(workspace, isolation=mode) as sandbox:  # the next run starts afresh
        assert sandbox.run_tests({}, CASES).all_passed


NETWORK = '''\
import socket


def test_loopback():
    socket.create_connection(("127.0.0.1", PORT), timeout=2).close()


def test_external():
    socket.create_connection(("1.1.1.1", 80), timeout=2).close()
'''


def test_network_is_blocked(workspace: Path, mode: str) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.setblocking(False)
        code = NETWORK.replace("PORT", str(server.getsockname()[1]))
        result, elapsed, _ = run_candidate(workspace, mode, code,
                                           ["test_loopback", "test_external"])
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody connected
    assert elapsed < 8.0
    assert outcomes(result) == ["failed", "failed"]
    for verdict in result.verdicts:
        assert any(word in verdict.message for word in
                   ("ConnectionRefusedError", "Network is unreachable", "NetworkBlocked")), \
            verdict.message


HUGE_FILE = '''\
import os
import tempfile


def test_huge_file():
    chunk = b"x" * (1024 * 1024)
    with open(os.path.join(tempfile.gettempdir(), "huge.bin"), "wb") as f:
        for _ in range(1024):
            f.write(chunk)
'''


def test_huge_file_is_stopped(workspace: Path, mode: str) -> None:
    result, elapsed, _ = run_candidate(workspace, mode, HUGE_FILE, ["test_huge_file"],
                                       max_file_mb=16)
    assert elapsed < 8.0
    assert outcomes(result) == ["failed"]
    assert result.verdicts[0].message == "OSError: [Errno 27] File too large"


SNOOP = '''\
def test_secret():
    print(open("SECRET").read())


def test_home():
    print(open("HOME_FILE").read())


def test_real_workspace():
    print(open("REAL_WORKSPACE/pkg/mod.py").read())
'''


def test_files_outside_the_copy_are_invisible(workspace: Path, tmp_path: Path) -> None:
    if bwrap_unusable():
        pytest.skip(f"bubblewrap is unusable here: {bwrap_unusable()}")
    secret = tmp_path / "secret.txt"
    secret.write_text("the secret")
    home = Path.home()
    home_files = sorted(p for p in home.iterdir() if p.is_file()) if home.is_dir() else []
    home_file = home_files[0] if home_files else home / ".bashrc"
    code = (SNOOP.replace("SECRET", str(secret)).replace("HOME_FILE", str(home_file))
            .replace("REAL_WORKSPACE", str(workspace)))
    result, _, _ = run_candidate(workspace, "bwrap", code,
                                 ["test_secret", "test_home", "test_real_workspace"])
    assert outcomes(result) == ["failed", "failed", "failed"]
    for verdict in result.verdicts:
        assert verdict.message.startswith(("FileNotFoundError", "PermissionError")), verdict
    assert "the secret" not in result.output_tail


DAEMON = '''\
import subprocess
import sys


def test_daemon():
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "MARK"],
                     start_new_session=True)
'''


def test_escaped_daemon_is_killed(workspace: Path, mode: str) -> None:
    result, _, _ = run_candidate(workspace, mode, DAEMON, ["test_daemon"])
    assert outcomes(result) == ["passed"]  # run_candidate checked that it did not survive


SLOW = '''\
import subprocess
import sys
import time


def test_slow():
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "MARK"])
    time.sleep(60)
'''


def test_cancel_stops_the_run(workspace: Path, mode: str) -> None:
    token = CancelToken()
    timer = threading.Timer(0.5, token.cancel)
    timer.start()
    try:
        result, elapsed, _ = run_candidate(workspace, mode, SLOW, ["test_slow"], cancel=token,
                                           timeout=30.0)
    finally:
        timer.cancel()
    assert elapsed < 1.5
    assert result.cancelled and not result.timed_out
    assert outcomes(result) == ["not-run"]
    assert result.verdicts[0].message.startswith("cancelled")


# -- configuration errors and choices --------------------------------------------------------


def test_bwrap_missing_is_a_user_error(workspace: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no bwrap on PATH
    with pytest.raises(PlancodeError) as error:
        Sandbox(workspace, isolation="bwrap")
    assert "not installed" in error.value.message
    assert "apt-get install bubblewrap" in error.value.fix and "landlock" in error.value.fix
    with Sandbox(workspace) as sandbox:  # auto falls back to the kernel's own mechanisms
        assert sandbox.isolation == "landlock"
        assert "Landlock" in sandbox.isolation_detail


def test_unknown_isolation(workspace: Path) -> None:
    with pytest.raises(PlancodeError, match="unknown sandbox isolation"):
        Sandbox(workspace, isolation="docker")


def test_python_without_pytest(workspace: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare-python"
    bare.write_text(f'#!/bin/sh\nexec {sys.executable} -I -S "$@"\n')
    bare.chmod(0o755)
    with pytest.raises(PlancodeError) as error:
        Sandbox(workspace, python=str(bare))
    assert "pytest is not importable" in error.value.message
    assert "pip install pytest" in error.value.fix


def test_workspace_venv_python_is_the_default(workspace: Path) -> None:
    venv_bin = workspace / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (venv_bin / "python").chmod(0o755)
    before = snapshot(workspace)
    with Sandbox(workspace) as sandbox:
        assert sandbox.interpreter.path == str(venv_bin / "python")
        assert sandbox.run_tests({}, CASES).all_passed
    assert snapshot(workspace) == before


def test_a_big_workspace_is_not_refused(workspace: Path, mode: str) -> None:
    """2 GB in 50,000 files (sparse: no disk): scanned once, never copied, runs as usual."""
    for d in range(50):
        data = workspace / "data" / f"d{d:02d}"
        data.mkdir(parents=True)
        for i in range(1000):
            with open(data / f"f{i:04d}.bin", "wb") as f:
                f.truncate(40 * 1000)
    with Sandbox(workspace, isolation=mode) as sandbox:
        result = sandbox.run_tests({}, CASES)
        assert "nothing copied" in sandbox.isolation_detail
    assert outcomes(result) == ["passed", "passed", "passed", "skipped", "passed"]


def test_last_resort_copy_is_made_once_and_read_only(workspace: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Without mount namespaces (an ordinary user whose kernel refuses them) the workspace is
    copied once per Sandbox, secrets left out; each run's files go in and out again."""
    from plancode.testing import isolation as iso

    real = iso.probe_landlock

    def without_namespaces(*args, **kwargs):
        found, why = real(*args, **kwargs)
        if found is None:
            return found, why
        return iso.Confinement(False, found.landlock_abi, found.read_cap, found.drop_uid,
                               found.state), why

    monkeypatch.setattr(iso, "probe_landlock", without_namespaces)
    (workspace / ".env").write_text("KEY=sk-not-for-tests\n")
    before = snapshot(workspace)
    bad = MOD.replace("return a + b", "return a - b")
    with Sandbox(workspace, isolation="landlock") as sandbox:
        assert not sandbox.uses_view and "copied once" in sandbox.isolation_detail
        copy = sandbox._base
        assert copy is not None and not (copy / ".env").exists()
        failing = sandbox.run_tests({"pkg/mod.py": bad}, CASES)
        assert (copy / "pkg" / "mod.py").read_text() == MOD, "the run's file was not taken out"
        passing = sandbox.run_tests({}, CASES)
    assert outcomes(failing)[:2] == ["failed", "passed"]
    assert outcomes(passing) == ["passed", "passed", "passed", "skipped", "passed"]
    assert snapshot(workspace) == before


def test_a_too_big_last_resort_copy_is_a_clear_error(workspace: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from plancode.testing import copying

    monkeypatch.setattr(Sandbox, "uses_view", property(lambda self: False))
    monkeypatch.setattr(copying, "MAX_COPY_MB", 1)
    monkeypatch.setattr("plancode.testing.sandbox.MAX_COPY_MB", 1)
    with open(workspace / "data.bin", "wb") as f:
        f.truncate(2 * 1000 * 1000)  # sparse: costs no disk
    with pytest.raises(PlancodeError) as error:
        Sandbox(workspace, isolation="landlock")
    assert "too big" in error.value.message


def test_close_removes_temporary_directories(workspace: Path) -> None:
    sandbox = Sandbox(workspace)
    root = sandbox._root
    assert root.is_dir()
    sandbox.run_tests({}, CASES[:1])
    # the run's directory is gone already; the view's mask files stay until close
    assert sorted(p.name for p in root.iterdir()) == ["lib", "view"]
    sandbox.close()
    sandbox.close()
    assert not root.exists()


def test_configured_command_runs_in_the_copy(workspace: Path, mode: str) -> None:
    before = snapshot(workspace)
    with Sandbox(workspace, isolation=mode, timeout=5.0) as sandbox:
        ok = sandbox.run_command({}, "test -f pkg/mod.py && ! rm -rf pkg 2>/dev/null && "
                                     "test -f pkg/mod.py && echo done")
        bad = sandbox.run_command({}, "echo 'lint: 3 problems' >&2; exit 3")
        slow = sandbox.run_command({}, "sleep 60")
    assert snapshot(workspace) == before
    assert [v.outcome for v in ok.verdicts] == ["passed"]
    assert bad.verdicts[0].outcome == "failed"
    assert bad.verdicts[0].message == "exit status 3: lint: 3 problems"
    assert slow.verdicts[0].outcome == "timeout" and slow.timed_out
