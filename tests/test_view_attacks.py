"""The workspace view and the quotas under attack (issue 31), in both isolation modes, as root
and as an unprivileged user: model code cannot write into the real workspace (its own module's
real path and the tests included), cannot read a masked secret or a file its owner made
unreadable, cannot write more than the run's quota, and cannot hold more memory than the
whole-run cap (cgroup) or, where no cgroup can be made, than the per-process cap.

The attacks and their runner live in ``tests/view_attacks.py``; one runner process per
(mode, user), all in parallel. A set-up this machine cannot provide is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from plancode.errors import PlancodeError
from plancode.testing.sandbox import Sandbox
from tests.view_attacks import ATTACKS, MEMORY_MB, WRITE_MB, user_python

ROOT = Path(__file__).resolve().parent.parent
USER_UID = 4242
MODES = ("bwrap", "landlock")
USERS = ("root", "user")


def _unusable(mode: str) -> str:
    with tempfile.TemporaryDirectory() as d:
        try:
            Sandbox(Path(d), isolation=mode).close()
        except PlancodeError as exc:
            return exc.message
    return ""


@pytest.fixture(scope="module")
def rows() -> tuple[dict[str, list[dict]], dict[str, str]]:
    if os.geteuid() != 0:
        pytest.skip("the matrix drops from root to an unprivileged user (CI runs as root)")
    tmp = Path(tempfile.mkdtemp(prefix="plcview-"))
    skipped: dict[str, str] = {}
    try:
        os.chmod(tmp, 0o777)
        python = user_python(tmp, USER_UID, ROOT)
        procs = {}
        for mode in MODES:
            why = _unusable(mode)
            for user in USERS:
                key, out = f"{mode}/{user}", tmp / f"{mode}-{user}.json"
                if why or (user == "user" and not python):
                    skipped[key] = why or "no interpreter the unprivileged user can run here"
                    continue
                argv = [sys.executable, "-m", "tests.view_attacks", mode, str(out)]
                if user == "user":
                    argv = ["setpriv", f"--reuid={USER_UID}", f"--regid={USER_UID}",
                            "--clear-groups", str(python), *argv[1:]]
                procs[key] = (subprocess.Popen(
                    argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp),
                         "LANG": "C.UTF-8"}), out)
        found = {}
        for key, (proc, out) in procs.items():
            log, _ = proc.communicate(timeout=600)
            assert proc.returncode == 0, f"{key}: the runner failed:\n{log.decode()[-3000:]}"
            found[key] = json.loads(out.read_text())
        return found, skipped
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _number(pattern: str, text: str) -> int | None:
    match = re.search(pattern, text)
    return int(match.group(1)) if match else None


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("mode", MODES)
def test_view_and_quotas_hold(rows: tuple, mode: str, user: str) -> None:
    found, skipped = rows
    key = f"{mode}/{user}"
    if key in skipped:
        pytest.skip(f"{key}: {skipped[key]}")
    by = {r["attack"]: r for r in found[key]}
    assert list(by) == list(ATTACKS)
    for name, r in by.items():
        where = f"{key}/{name}"
        assert not r["error"], f"{where}: the sandbox raised {r['error']}"
        assert r["isolation"] == mode, where
        assert r["changed"] == [], f"{where}: the real workspace changed: {r['changed']}"
        assert r["next_request_ok"], f"{where}: the next run failed"
        assert r["host_disk_used_mb"] < 100, f"{where}: host disk filled {r}"
    # nothing written into the workspace, by any path; no secret or unreadable file read
    assert by["write-workspace"]["outcome"] == "passed", by["write-workspace"]["message"]
    assert by["read-secrets"]["outcome"] == "passed", by["read-secrets"]["message"]
    # the write quota: everything together, a clear failure
    quota = by["write-quota"]
    written = _number(r"WRITTEN_MB=(\d+)", quota["message"])
    assert quota["outcome"] == "failed" and written is not None, quota
    assert written <= WRITE_MB + 8, quota["message"]
    assert "No space left on device" in quota["message"], quota["message"]
    # memory: one process never gets past its own cap...
    assert by["big-allocation"]["message"].endswith("ALLOCATED=no"), by["big-allocation"]
    # ...and with a cgroup, six processes of 400 MB never hold more than the whole-run cap
    bomb = by["fork-bomb"]
    held = _number(r"HELD=(\d+)", bomb["message"])
    if bomb["memory_cap"]:
        assert held is None or held * 400 <= MEMORY_MB, bomb
        assert bomb["outcome"] != "passed", bomb
    else:  # the honest fallback: 1024 MB of address space per process, each one alone
        assert held is not None and held <= 6, bomb
