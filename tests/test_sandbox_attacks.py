"""Every attack class of issue 12 as a real candidate, in both isolation modes, as root and as
an unprivileged user (docs/security.md has the table), each run as the pipeline runs a
module-level function's tests (value runner and split run) and, in the same row, with every
test that is not value-shaped in the candidate's process (as for a method under test).

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
    for r in rows:
        name = f"{mode}/{user}/{r['attack']}"
        assert not r["in_process"]["verified"], f"{name}: in process: VERIFIED {r['in_process']}"
        # the two value-shaped tests are checked by the server; the doctest and the fixture
        # test by the split run's judge, unless a call could not cross (then in process); in
        # the candidate's process (a method under test) the doctest and fixture test are
        # in-process and, having some checks in process, never verified
        assert r["checked"][:2] == ["out-of-process"] * 2, (name, r["checked"])
        assert r["checked"][2:] == SPLIT_CHECKED.get(r["attack"], ["out-of-process"] * 2), \
            (name, r["checked"])
        assert r["in_process"]["checked"] == ["out-of-process"] * 2 + ["in-process"] * 2, \
            (name, r["in_process"])
    # in the candidate's process the plugin's guards still catch what they caught
    for name in ("forge-then-exit", "forge-at-exit", "forge-then-hang", "wrap-plugin-output",
                 "gc-makereport-hook", "swap-assertionerror", "rewrite-docstring",
                 "channel-flood", "rebind-emit-default", "swap-test-code"):
        alone = by[name]["in_process"]
        assert alone["tampered"] or "timeout" in alone["outcomes"], \
            f"{name}: not flagged as tampering in process: {alone}"
    # split: what the candidate does to its own process reaches no verdict of the judge's
    for name in ("wrap-plugin-output", "gc-makereport-hook", "swap-assertionerror",
                 "rewrite-docstring", "rebind-emit-default", "swap-test-code",
                 "mark-running-item", "closure-forge"):
        assert by[name]["outcomes"][2:] == ["failed", "failed"], (name, by[name])
    # a candidate that exits like a refused command line is an error, never a pass
    assert by["exit-as-usage-error"]["outcomes"] == ["error"] * 4, by["exit-as-usage-error"]
    assert by["exit-as-usage-error"]["in_process"]["outcomes"] == ["error"] * 4
    for name in ("raise-skip", "raise-xfail", "raise-skiptest"):
        assert by[name]["outcomes"][:2] == ["skip-raised", "skip-raised"], by[name]
    assert any("suspicious return type" in f for f in by["eq-always-true"]["flags"])
    assert any("suspicious return type" in f for f in by["eq-numbers-raise-else"]["flags"])
    assert by["mark-running-item"]["in_process"]["outcomes"][3] == "skip-raised", \
        by["mark-running-item"]
    # closure-forge: in the candidate's process its forged stream still passes the fixture test
    # (what remains there, docs/security.md); split, its code never meets the plugin
    assert by["closure-forge"]["in_process"]["outcomes"][3] == "passed", by["closure-forge"]
    # the split run's protocol: every break is an error of the call's test, never a pass
    for name in ("worker-malformed", "worker-oversized", "worker-extra", "worker-out-of-order",
                 "worker-exit-mid-call"):
        assert by[name]["outcomes"][2:] == ["error", "error"], (name, by[name])
        assert all("call proxy" in m for m in by[name]["messages"][2:]), (name, by[name])
    hung = by["worker-never-answers"]["outcomes"][2:]
    assert "timeout" in hung and set(hung) <= {"timeout", "not-run"}, by["worker-never-answers"]
    # right on the values the server compares, a generator where the test is in process, and
    # that test forged there: every test "passes", but it is in process, so not verified
    forged = by["fallback-then-forge"]
    assert forged["all_passed"] and not forged["verified"], forged
    assert not any("reached the judge" in m for m in by["worker-reach-judge"]["messages"]), \
        by["worker-reach-judge"]
    assert "read ssh key" not in by["escape"]["messages"][0]
    assert "append bashrc" not in by["escape"]["messages"][0]
    assert all(m.endswith("seen: nothing") for m in by["read-secret-files"]["messages"][:2]), \
        by["read-secret-files"]
    # the encodings did reach the failure text: the scrubber, not a short message, kept them out
    assert by["leak-encoded"]["encoded_in_raw"] >= 5, by["leak-encoded"]


# where the split run could not take a call across, the test ran in process (doctest, fixture
# test): a value that is not plain data
SPLIT_CHECKED = {
    "eq-always-true": ["in-process", "in-process"],
    "eq-numbers-raise-else": ["in-process", "in-process"],
    "fallback-then-forge": ["out-of-process", "in-process"],
}
