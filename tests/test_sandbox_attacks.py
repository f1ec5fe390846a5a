"""Every attack class of issue 12 as a real candidate, in both isolation modes, as root and as
an unprivileged user (docs/security.md has the table).

The attacks and the runner live in ``tests/sandbox_attacks.py``: one runner process per
(mode, user) replays them all, and the runners work in parallel. For the unprivileged user the
runner is started through ``setpriv`` with a throw-away virtualenv of the system Python that
sees this project and its dependencies (the project's own interpreter may live under /root).
A mode that does not work here (bubblewrap not installed) is skipped with the sandbox's reason.
The rows go to pytest's temporary directory; ``python -m benchmarks.security_attacks``
regenerates docs/security-attacks.json on purpose.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.sandbox_attacks import ATTACKS, MODES, USERS, run_matrix


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[dict[str, list[dict]], dict[str, str]]:
    if os.geteuid() != 0:
        pytest.skip("the attack matrix drops from root to an unprivileged user (CI runs as root)")
    found, skipped = run_matrix()
    out = tmp_path_factory.mktemp("attacks") / "security-attacks.json"
    out.write_text(json.dumps(found, indent=1))
    return found, skipped


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("mode", MODES)
def test_no_attack_is_verified_or_harms(results: tuple, mode: str, user: str) -> None:
    found, skipped = results
    if f"{mode}/{user}" in skipped:
        pytest.skip(f"{mode}/{user}: {skipped[f'{mode}/{user}']}")
    rows = found[f"{mode}/{user}"]
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
        assert not r["secret_seen"], f"{name}: read a secret: {r['secret_seen']}"
        assert not r["secret_in_prompt"], \
            f"{name}: a secret reached the repair prompt: {r['secret_in_prompt']}"
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
    assert all(m.endswith("seen: nothing") for m in by["read-secret-files"]["messages"][:2]), \
        by["read-secret-files"]
    # the encodings did reach the failure text: the scrubber, not a short message, kept them out
    assert by["leak-encoded"]["encoded_in_raw"] >= 5, by["leak-encoded"]
