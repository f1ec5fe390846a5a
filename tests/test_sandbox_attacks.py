"""Every attack class of issue 12 as a real candidate, in both isolation modes, as root and as
an unprivileged user (docs/security.md has the table).

The attacks live in ``tests/sandbox_attacks.py``; one runner process per (mode, user) replays
them all, and the four runners work in parallel. For the unprivileged user the runner is
started through ``setpriv`` with a throw-away virtualenv of the system Python that sees this
project and its dependencies (the project's own interpreter may live under /root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.sandbox_attacks import ATTACKS

ROOT = Path(__file__).resolve().parent.parent
USER_UID = 4242
MODES = ["bwrap", "landlock"]
USERS = ["root", "user"]


def _user_python(tmp: Path) -> str | None:
    """A python the unprivileged user can run, importing this project and its packages."""
    system = shutil.which("python3.11", path="/usr/bin:/bin") or ""
    if not system or sys.version_info[:2] != (3, 11):
        return None
    venv = tmp / "uvenv"
    if subprocess.run([system, "-m", "venv", "--without-pip", str(venv)],
                      capture_output=True, check=False).returncode != 0:
        return None
    site = next((venv / "lib").glob("python3*/site-packages"))
    paths = [str(ROOT)] + [p for p in sys.path if p.endswith("site-packages")]
    (site / "plancode_tests.pth").write_text("\n".join(paths) + "\n")
    for path in [venv, *venv.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    python = str(venv / "bin" / "python")
    # a checkout under a 0700 folder (e.g. /root) is out of the unprivileged user's reach
    if not shutil.which("setpriv") or subprocess.run(
            ["setpriv", f"--reuid={USER_UID}", f"--regid={USER_UID}", "--clear-groups", python,
             "-c", "import plancode.testing.sandbox, pytest"], cwd="/", capture_output=True,
            check=False, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp)}).returncode != 0:
        return None
    return python


@pytest.fixture(scope="module")
def results(request: pytest.FixtureRequest) -> dict[tuple[str, str], list[dict]]:
    if os.geteuid() != 0:
        pytest.skip("the attack matrix drops from root to an unprivileged user (CI runs as root)")
    # pytest's own temporary root is 0700: the unprivileged user needs a directory it can reach
    tmp = Path(tempfile.mkdtemp(prefix="plcattacks-"))
    os.chmod(tmp, 0o777)
    request.addfinalizer(lambda: shutil.rmtree(tmp, ignore_errors=True))
    user_python = _user_python(tmp)
    procs = {}
    for mode in MODES:
        for user in USERS:
            out = tmp / f"{mode}-{user}.json"
            if user == "root":
                argv = [sys.executable, "-m", "tests.sandbox_attacks", mode, str(out)]
            elif user_python and shutil.which("setpriv"):
                argv = ["setpriv", f"--reuid={USER_UID}", f"--regid={USER_UID}",
                        "--clear-groups", user_python, "-m", "tests.sandbox_attacks", mode,
                        str(out)]
            else:
                continue
            procs[(mode, user)] = (subprocess.Popen(
                argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp),
                     "LANG": "C.UTF-8"}), out)
    found = {}
    for key, (proc, out) in procs.items():
        log, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"{key}: the attack runner failed:\n{log.decode()[-3000:]}"
        found[key] = json.loads(out.read_text())
    (ROOT / "docs" / "security-attacks.json").write_text(
        json.dumps({f"{m}/{u}": rows for (m, u), rows in found.items()}, indent=1))
    return found


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("mode", MODES)
def test_no_attack_is_verified_or_harms(results: dict, mode: str, user: str) -> None:
    if (mode, user) not in results:
        pytest.skip(f"no unprivileged interpreter for {mode}/{user} here")
    rows = results[(mode, user)]
    assert [r["attack"] for r in rows] == list(ATTACKS)
    for r in rows:
        name = f"{mode}/{user}/{r['attack']}"
        assert not r["error"], f"{name}: the sandbox raised {r['error']}"
        assert r["isolation"] == mode, name
        assert not r["verified"], f"{name}: wrong code VERIFIED {r['outcomes']}"
        assert r["next_request_ok"], f"{name}: the next request failed"
        assert r["changed"] == [], f"{name}: files changed: {r['changed']}"
        assert r["connections"] == [], f"{name}: reached a listener: {r['connections']}"
        assert r["leftovers"] == [], f"{name}: left behind {r['leftovers']}"
        assert not r["sandbox_dir_left"], f"{name}: temporary directory left"
        assert not r["sentinel_stopped"], f"{name}: stopped a process outside the run"
        assert not r["secret_in_prompt"], f"{name}: a secret reached the repair prompt"
        assert "server environ" not in " ".join(r["messages"]), name
        assert r["rss_growth_mb"] < 200, f"{name}: server memory grew {r['rss_growth_mb']} MB"
    by = {r["attack"]: r for r in rows}
    for name in ("forge-then-exit", "forge-at-exit", "forge-then-hang", "wrap-plugin-output",
                 "gc-makereport-hook", "swap-assertionerror", "rewrite-docstring",
                 "channel-flood"):
        assert by[name]["tampered"] or "timeout" in by[name]["outcomes"], \
            f"{name}: not flagged as tampering: {by[name]}"
    # a candidate that exits like a refused command line is an error, never a pass
    assert by["exit-as-usage-error"]["outcomes"] == ["error"] * 4, by["exit-as-usage-error"]
    for name in ("raise-skip", "raise-xfail", "raise-skiptest"):
        assert by[name]["outcomes"][:2] == ["skip-raised", "skip-raised"], by[name]
    assert any("suspicious return type" in f for f in by["eq-always-true"]["flags"])
    # issue 31: the two pytest tests are checked out of process (the server compares the
    # values add returned), the doctest and the fixture test in process, by the plugin
    for r in rows:
        assert r["checked"] == ["out-of-process"] * 2 + ["in-process"] * 2, r
    assert any("suspicious return type" in f for f in by["eq-numbers-raise-else"]["flags"])
    assert by["mark-running-item"]["outcomes"][3] == "skip-raised", by["mark-running-item"]
    for name in ("rebind-emit-default", "swap-test-code"):
        assert by[name]["tampered"], f"{name}: not flagged as tampering: {by[name]}"
    # a signed stream forged with the plugin's own signer passes the in-process tests (what
    # remains, docs/security.md); the values checked out of process still fail
    assert by["closure-forge"]["outcomes"][:2] == ["failed", "failed"], by["closure-forge"]
    assert "read ssh key" not in by["escape"]["messages"][0]
    assert "append bashrc" not in by["escape"]["messages"][0]
