"""Attacks on the workspace view and the quotas (issue 31), and a runner that replays them.

Each attack is a test file a candidate could bring along (new files are laid over the view like
a changed module): it tries the harm and reports in its failure message what it achieved.
Placeholders ``REAL`` (the real workspace), ``NEEDLE`` (the secret, hex-encoded) and
``CAP_MB`` are filled in by the runner. ``python -m tests.view_attacks MODE JSON_OUT`` runs
every attack in MODE (``bwrap`` or ``landlock``) against a fresh workspace and writes what
happened as JSON;
``tests/test_view_attacks.py`` runs it as root and, through ``setpriv``, as an unprivileged
user, and asserts on the rows.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SECRET = "sk-view-attack-0d1e2f3a4b5c6d7e"
MEMORY_MB = 1024
WRITE_MB = 256

WRITE_WORKSPACE = '''
import os, pathlib, pkg.mod

def test_write_workspace():
    done = []
    own = pathlib.Path(pkg.mod.__file__)
    here = pathlib.Path.cwd()
    attempts = {
        "own module (view)": lambda: own.write_text("def add(a, b):\\n    return 0\\n"),
        "own module (real path)": lambda: pathlib.Path("REAL/pkg/mod.py").write_text("x"),
        "tests (view)": lambda: (here / "tests/test_mod.py").write_text("x"),
        "tests (real path)": lambda: pathlib.Path("REAL/tests/test_mod.py").write_text("x"),
        "new file in a package (view)": lambda: (here / "pkg/planted.py").write_text("x"),
        "new file in a package (real path)": lambda: pathlib.Path("REAL/pkg/x.py").write_text(""),
        "overwrite at the top": lambda: (here / "deploy.pem").write_text("x"),
        "remove at the top": lambda: os.remove(here / "pyproject.toml"),
        "remove test file": lambda: os.remove(here / "tests/test_mod.py"),
        "chmod a package": lambda: os.chmod(here / "pkg", 0o777),
        "rename package": lambda: os.rename(here / "pkg", here / "pkg2"),
        "mkdir in a package": lambda: os.mkdir(here / "pkg/newdir"),
        "pycache": lambda: (here / "pkg/__pycache__").mkdir(),
        "pyc at the top": lambda: (here / "__pycache__/conftest.cpython-311.pyc").write_bytes(b""),
        "replace the top __pycache__": lambda: os.rename(here / "__pycache__", here / "old"),
        "symlink in tests": lambda: os.symlink("/etc/passwd", here / "tests/link"),
    }
    for name, attempt in attempts.items():
        try:
            attempt()
            done.append(name)
        except OSError:
            pass
    assert not done, "WROTE " + ", ".join(done)
'''

READ_SECRETS = '''
import os, pathlib

def test_read_secrets():
    needle = bytes.fromhex("NEEDLE").decode()  # the secret, not written in this file
    seen = []
    here = pathlib.Path.cwd()
    for path in ("REAL/.env", ".env", "deploy.pem", ".aws/credentials", "REAL/.aws/credentials",
                 "locked.txt", "REAL/locked.txt", "config/secrets.toml", ".git/config"):
        for base in ([here] if not path.startswith("/") else [pathlib.Path("/")]):
            try:
                text = (base / path).read_text()
            except OSError:
                continue
            if needle in text:
                seen.append(path)
    for directory, _dirs, files in os.walk(here):
        for name in files:
            try:
                if needle in open(os.path.join(directory, name), errors="replace").read():
                    seen.append(os.path.join(directory, name))
            except OSError:
                pass
    assert not seen, "READ " + ", ".join(seen)
'''

WRITE_QUOTA = '''
import os, tempfile

def test_write_quota():
    chunk = b"x" * (1024 * 1024)
    written = 0
    error = ""
    targets = [tempfile.gettempdir(), os.path.expanduser("~"), "/dev/shm", "."]
    try:
        for i in range(48):  # 1.5 GB in files of 32 MB (under the per-file limit)
            where = targets[i % len(targets)]
            with open(os.path.join(where, f"fill{i}.bin"), "wb") as f:
                for _ in range(32):
                    f.write(chunk)
                    written += len(chunk)
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc.strerror}"
    # keep writing into what is left elsewhere: the quota is for everything together
    for where in targets:
        try:
            with open(os.path.join(where, "more.bin"), "wb") as f:
                for _ in range(1536):
                    f.write(chunk)
                    written += len(chunk)
        except OSError:
            pass
    raise AssertionError(f"WRITTEN_MB={written // (1024 * 1024)} {error}")
'''

FORK_BOMB = '''
import os, time

def test_fork_bomb():
    children = []
    for _ in range(6):
        pid = os.fork()
        if pid == 0:
            try:
                block = bytearray(400 * 1024 * 1024)
                for i in range(0, len(block), 4096):
                    block[i] = 1
                time.sleep(2)
                os._exit(0)
            except MemoryError:
                os._exit(3)
        children.append(pid)
    held = 0
    for pid in children:
        _pid, status = os.waitpid(pid, 0)
        held += os.waitstatus_to_exitcode(status) == 0
    raise AssertionError(f"HELD={held}")
'''

BIG_ALLOCATION = '''
def test_big_allocation():
    try:
        block = bytearray((CAP_MB + 512) * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
    except MemoryError:
        raise AssertionError("ALLOCATED=no") from None
    raise AssertionError("ALLOCATED=yes")
'''

ATTACKS: dict[str, tuple[str, str]] = {
    # name: (test file text, test function)
    "write-workspace": (WRITE_WORKSPACE, "test_write_workspace"),
    "read-secrets": (READ_SECRETS, "test_read_secrets"),
    "write-quota": (WRITE_QUOTA, "test_write_quota"),
    "fork-bomb": (FORK_BOMB, "test_fork_bomb"),
    "big-allocation": (BIG_ALLOCATION, "test_big_allocation"),
}

MOD = 'def add(a, b):\n    """\n    >>> add(1, 2)\n    3\n    """\n    return a + b\n'
TESTS = "from pkg.mod import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"


def make_workspace(root: Path) -> Path:
    """A project with tests, secrets in several shapes and a file its owner made unreadable."""
    ws = root / "ws"
    for d in ("pkg", "tests", ".aws", "config", ".git"):
        (ws / d).mkdir(parents=True)
    (ws / "pkg" / "__init__.py").write_text("")
    (ws / "pkg" / "mod.py").write_text(MOD)
    (ws / "tests" / "test_mod.py").write_text(TESTS)
    (ws / "pyproject.toml").write_text("[project]\nname = 'ws'\n")
    (ws / ".env").write_text(f"OPENAI_API_KEY={SECRET}\n")
    (ws / "deploy.pem").write_text(f"-----BEGIN PRIVATE KEY-----\n{SECRET}\n")
    (ws / ".aws" / "credentials").write_text(f"aws_secret_access_key={SECRET}\n")
    (ws / "config" / "secrets.toml").write_text(f"token = '{SECRET}'\n")
    (ws / ".git" / "config").write_text(f"[credential]\n\thelper = store {SECRET}\n")
    (ws / "locked.txt").write_text(f"{SECRET}\n")
    (ws / "locked.txt").chmod(0)
    return ws


def snapshot(root: Path) -> dict[str, str]:
    state = {}
    for directory, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = Path(directory, name)
            st = path.lstat()
            if stat.S_ISREG(st.st_mode):
                state[str(path)] = f"{st.st_mode:o} {st.st_size} {st.st_mtime_ns}"
            else:
                state[str(path)] = f"{st.st_mode:o}"
    return state


def run_all(mode: str, root: Path) -> list[dict]:
    from plancode.testing.sandbox import Sandbox
    from plancode.testing.types import TestCase

    ws = make_workspace(root)
    rows = []
    for name, (code, func) in ATTACKS.items():
        rel = "tests/test_attack.py"
        test = TestCase(f"{rel}::{func}", "pytest", rel, func)
        text = (code.replace("REAL", str(ws)).replace("NEEDLE", SECRET.encode().hex())
                .replace("CAP_MB", str(MEMORY_MB)))
        before = snapshot(ws)
        free = shutil.disk_usage(tempfile.gettempdir()).free
        start = time.monotonic()
        error = ""
        result = None
        try:
            with Sandbox(ws, isolation=mode, timeout=30.0, memory_mb=MEMORY_MB,
                         write_mb=WRITE_MB) as box:
                result = box.run_tests({rel: text}, [test])
                cap = box.memory_cap.kind
                again = box.run_tests({}, [TestCase("tests/test_mod.py::test_add", "pytest",
                                                    "tests/test_mod.py", "test_add")])
        except Exception as exc:  # noqa: BLE001 - recorded, the test fails on it
            error = f"{type(exc).__name__}: {exc}"
            cap, again = "", None
        rows.append({
            "attack": name, "mode": mode, "uid": os.geteuid(), "error": error,
            "seconds": round(time.monotonic() - start, 2),
            "isolation": result.isolation if result else "",
            "outcome": result.verdicts[0].outcome if result else "",
            "message": result.verdicts[0].message if result else "",
            "tail": result.output_tail[-600:] if result else "",
            "memory_cap": cap,
            "next_request_ok": bool(again and again.all_passed),
            "changed": sorted(k for k in set(before) | set(snapshot(ws))
                              if before.get(k) != snapshot(ws).get(k)),
            "host_disk_used_mb": round((free - shutil.disk_usage(
                tempfile.gettempdir()).free) / 1e6),
        })
    return rows


def main(argv: list[str]) -> int:
    mode, out = argv[1], argv[2]
    with tempfile.TemporaryDirectory(prefix="plcview-") as d:
        os.chmod(d, 0o755)
        rows = run_all(mode, Path(d))
        (Path(d) / "ws" / "locked.txt").chmod(0o600)
    Path(out).write_text(json.dumps(rows, indent=1))
    return 0


def user_python(tmp: Path, uid: int, root: Path) -> str | None:
    """A python the unprivileged ``uid`` can run, importing this project and its packages
    (the project's own interpreter may live under /root)."""
    system = shutil.which("python3.11", path="/usr/bin:/bin") or ""
    if not system or sys.version_info[:2] != (3, 11) or not shutil.which("setpriv"):
        return None
    venv = tmp / "uvenv"
    if subprocess.run([system, "-m", "venv", "--without-pip", str(venv)],
                      capture_output=True, check=False).returncode != 0:
        return None
    site = next((venv / "lib").glob("python3*/site-packages"))
    # addsitedir, not a plain path: the project's editable install is itself a .pth file
    lines = [str(root)] + [f"import site; site.addsitedir({p!r})" for p in sys.path
                           if p.endswith("site-packages")]
    (site / "plancode_tests.pth").write_text("\n".join(lines) + "\n")
    for path in [venv, *venv.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    python = str(venv / "bin" / "python")
    if subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", python,
                       "-c", "import plancode.testing.sandbox, pytest"], cwd="/",
                      capture_output=True, check=False,
                      env={"PATH": "/usr/bin:/bin", "HOME": str(tmp)}).returncode != 0:
        return None
    return python


if __name__ == "__main__":
    sys.exit(main(sys.argv))
