"""How `plancode doctor` prints its findings: ✓/!/✗ lines with the fix, or JSON for editors."""

from __future__ import annotations

import json

from plancode.doctor.checks import FAIL, OK, Finding

MARKS = {OK: "✓", "warn": "!", FAIL: "✗"}


def line(finding: Finding) -> str:
    """`✓ title  finding`, plus an indented `fix:` line when there is something to do."""
    text = f"{MARKS[finding.status]} {finding.title:<17} {finding.finding}"
    if finding.fix:
        text += f"\n  {'':<17} fix: {finding.fix}"
    return text


def summary(findings: list[Finding]) -> str:
    failed = sum(f.status == FAIL for f in findings)
    warned = sum(f.status == "warn" for f in findings)
    if not failed and not warned:
        return f"all {len(findings)} checks passed"
    return f"{failed} failed, {warned} warning{'s' if warned != 1 else ''}, " \
           f"{len(findings) - failed - warned} passed"


def as_json(findings: list[Finding]) -> str:
    """One object: `ok` (no check failed), `summary`, and one entry per check."""
    return json.dumps({"ok": not any(f.status == FAIL for f in findings),
                       "summary": summary(findings),
                       "checks": [f.to_json() for f in findings]}, indent=2)
