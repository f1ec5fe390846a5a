"""Regenerate docs/security-attacks.json: every attack of ``tests/sandbox_attacks.py`` in both
isolation modes, as root and as an unprivileged user (docs/security.md's table is made from it).

The test suite checks the same rows but never writes into docs/; this script is the one
deliberate writer. It refuses to overwrite the file with a partial matrix (a mode that does
not work here, no unprivileged interpreter) unless ``--partial`` is given.

Run as root: ``python -m benchmarks.security_attacks [--out PATH] [--partial]`` (about 2–4
minutes; the four runners work in parallel).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tests.sandbox_attacks import run_matrix

OUT = Path(__file__).resolve().parent.parent / "docs" / "security-attacks.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write (default {OUT})")
    parser.add_argument("--partial", action="store_true",
                        help="write even when some set-ups could not run here")
    parser.add_argument("--table", action="store_true",
                        help="only rewrite docs/security.md's attack table from the JSON")
    args = parser.parse_args(argv)
    if args.table:
        return write_table(json.loads(args.out.read_text()))
    if os.geteuid() != 0:
        print("run as root: the matrix drops from root to an unprivileged user", file=sys.stderr)
        return 2
    found, skipped = run_matrix()
    for key, why in skipped.items():
        print(f"skipped {key}: {why}", file=sys.stderr)
    if skipped and not args.partial:
        print(f"not writing {args.out}: the matrix is partial (--partial writes it anyway)",
              file=sys.stderr)
        return 1
    args.out.write_text(json.dumps(found, indent=1))
    harmed = [f"{key}/{r['attack']}" for key, rows in found.items() for r in rows
              if r["verified"] or r["in_process"]["verified"] or r["secret_in_prompt"]
              or r["changed"] or r["error"]]
    print(f"wrote {args.out}: {sum(map(len, found.values()))} rows in {len(found)} set-ups; "
          f"verified, harmed or failed: {', '.join(harmed) or 'none'}")
    return 1 if harmed else 0


HEADER = ("| attack | class | isolation | server as | harm | verdict (split run) | "
          "verdict (in the candidate's process) |")
OLD_HEADERS = ("| attack | class | isolation | server as | harm | verdict |",)


def verdict(row: dict) -> str:
    """What the pipeline concluded: tampering detected, or not verified and how (and when
    every test passed but some in process: "passes-tests")."""
    if row["verified"]:
        return "**VERIFIED**"
    if row["tampered"]:
        return "tampered"
    if row.get("all_passed"):
        return "passes-tests (checked in-process)"
    outcomes = "/".join(dict.fromkeys(row["outcomes"])) or "no verdict"
    names = dict.fromkeys(f.split(":")[0] for f in row["flags"])
    flags = f" (flag: {', '.join(names)})" if names else ""
    return f"not verified: {outcomes}{flags}"


def harm(row: dict) -> str:
    found = [name for name in ("changed", "connections", "leftovers", "secret_seen",
                               "secret_in_prompt") if row.get(name)]
    return ", ".join(found) or "none"


def write_table(found: dict) -> int:
    """docs/security.md's attack table, one line per attack and set-up, from the JSON."""
    lines = [HEADER, "|---|---|---|---|---|---|---|"]
    for rows in found.values():
        for r in rows:
            who = "root (uid 0)" if r["uid"] == 0 else f"user (uid {r['uid']})"
            lines.append(f"| {r['attack']} | {r['class']} | {r['mode']} | {who} | {harm(r)} | "
                         f"{verdict(r)} | {verdict(r['in_process'])} |")
    doc = OUT.parent / "security.md"
    text = doc.read_text().splitlines()
    start = next(i for i, line in enumerate(text) if line in (HEADER, *OLD_HEADERS))
    end = next((i for i in range(start + 2, len(text)) if not text[i].startswith("|")),
               len(text))
    doc.write_text("\n".join(text[:start] + lines + text[end:]) + "\n")
    print(f"{doc}: {len(lines) - 2} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
