"""Test cases, per-test verdicts and run results: the contract between discovery, the
sandbox and the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field

OUTCOMES = ("passed", "failed", "error", "timeout", "skipped", "xfail", "skip-raised", "not-run")
# Outcomes that count neither for nor against a candidate: tests the user marked skip or xfail.
# A skip or xfail *raised while the test ran* is "skip-raised" and counts against it.
NEUTRAL = frozenset({"skipped", "xfail"})
# where a verdict was decided (TestVerdict.checked): where the candidate's code cannot reach
# (the server compared values, or a split run's judge decided), or in the candidate's process
OUT_OF_PROCESS = "out-of-process"
IN_PROCESS = "in-process"


@dataclass(frozen=True)
class TestCase:
    """One runnable test, addressed by its pytest node id relative to the workspace root.

    ``kind`` is ``pytest`` (a test function or a method of a ``Test*`` class), ``unittest``
    (a ``TestCase`` method), ``doctest`` (a function's docstring examples, run by pytest's
    ``--doctest-modules``; id ``path/to/mod.py::pkg.mod.func``), ``generated`` (model-written,
    unverified) or ``command`` (the configured ``test_command``, run by the shell).
    """

    __test__ = False  # not a pytest test class

    id: str
    kind: str
    file: str  # workspace-relative path of the file that holds the test
    name: str  # short display name

    def to_json(self) -> dict:
        return {"id": self.id, "kind": self.kind, "file": self.file, "name": self.name}


@dataclass
class TestVerdict:
    """What happened to one test: ``outcome`` is one of OUTCOMES; ``message`` is one short line;
    ``kind`` is the test's :attr:`TestCase.kind` (a ``command`` verdict alone never verifies)."""

    __test__ = False

    id: str
    outcome: str
    message: str = ""
    seconds: float = 0.0
    kind: str = ""
    # who decided: "out-of-process" (the server compared the values the call returned),
    # "in-process" (pytest and plancode's plugin, in the candidate's process), "" (a command)
    checked: str = ""

    def to_json(self) -> dict:
        return {"id": self.id, "outcome": self.outcome, "message": self.message,
                "seconds": round(self.seconds, 3), "checked": self.checked}


@dataclass
class RunResult:
    """One sandboxed run of some tests against one candidate."""

    verdicts: list[TestVerdict]
    isolation: str  # "bwrap", "landlock" or "none"
    isolation_detail: str  # human-readable: what is and is not enforced
    seconds: float
    timed_out: bool = False
    cancelled: bool = False
    output_tail: str = ""  # last lines of the runner's output, for repair prompts
    extra: dict = field(default_factory=dict)
    runner_ok: bool = False  # the runner ended by itself with a success status
    tampered: str = ""  # why the results cannot be trusted ("" when they can)
    flags: list[str] = field(default_factory=list)  # warnings, e.g. a suspicious return type

    @property
    def checked(self) -> str:
        """How the tests that count were checked: ``out-of-process``, ``in-process``,
        ``mixed`` (some each way) or "" (none). In-process verdicts are weaker evidence: code
        written against plancode's plugin can forge them (docs/security.md)."""
        ways = {v.checked for v in self.verdicts if v.checked and v.outcome not in NEUTRAL}
        return ways.pop() if len(ways) == 1 else ("mixed" if ways else "")

    @property
    def passed(self) -> int:
        return sum(v.outcome == "passed" for v in self.verdicts)

    @property
    def failed(self) -> int:
        return sum(v.outcome != "passed" and v.outcome not in NEUTRAL for v in self.verdicts)

    @property
    def all_passed(self) -> bool:
        """Verified: the runner finished cleanly, nothing was tampered with, every test that
        counts passed, and at least one of them is a real test (not only ``test_command``)."""
        if self.tampered or self.timed_out or self.cancelled or not self.runner_ok:
            return False
        counted = [v for v in self.verdicts if v.outcome not in NEUTRAL]
        return (bool(counted) and all(v.outcome == "passed" for v in counted)
                and any(v.kind != "command" for v in counted))
