"""The secret values a repair prompt must never carry, collected once per pipeline run.

The sandbox keeps secret-looking files out of the candidate's sight, and the runner gets a
clean environment; but a value can still reach failure text some other way (a file the
patterns miss, a model that was shown it), and then in any encoding. :func:`known_secrets`
gathers the values themselves, so that :func:`plancode.testing.scrub.scrub` can redact them
and their encoded forms:

- from the workspace's secret-pattern files (the same :class:`CopyRules` the sandbox masks
  with): ``KEY=VALUE`` / ``export KEY=VALUE`` / ``key: value`` / TOML ``key = "value"`` lines,
  every string in a JSON file, and every other line whole (a token file, a PEM body);
- from the server's environment: variables whose names sound secret (``KEY``, ``TOKEN``,
  ``SECRET``, ``PASSWORD``, ``CREDENTIAL``, ``AUTH``, ...).

Only values of at least :data:`MIN_LENGTH` characters count (shorter ones would redact
ordinary words). Reading is bounded (files, bytes, entries walked) and never follows a
symlink out of the workspace.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

from plancode.testing.copying import IGNORED_ANYWHERE

MIN_LENGTH = 8
MAX_VALUE = 4096  # longer values are split into lines / JSON strings, never taken whole
MAX_FILE_BYTES = 64 * 1024
MAX_FILES = 200
MAX_ENTRIES = 200_000  # names looked at while walking the workspace
MAX_SECRETS = 128  # each adds about 10 ms to compiling the scrubber's pattern

# secret-sounding variable names; "author" (GIT_AUTHOR_NAME) is not "auth"
_SECRET_NAME = re.compile(r"(?i)key|token|secret|passw|pwd|credential|auth(?!or)|cookie|"
                          r"private|signature|dsn|conn(ection)?_?str")
_NOT_SECRET = frozenset({"PWD", "OLDPWD", "SSH_AUTH_SOCK", "XAUTHORITY", "KEYMAP"})
# KEY=VALUE, export KEY=VALUE, key: value, key = "value" (TOML, YAML, dotenv, ini)
_ASSIGNMENT = re.compile(r"""^\s*(?:export\s+)?["']?([\w.\-]+)["']?\s*[:=]\s*(.*?)\s*$""")
_QUOTED = re.compile(r"""^(["'`])(.*?)\1""")


class Rules(Protocol):
    """What decides that a name is secret (:class:`plancode.testing.copying.CopyRules`)."""

    def secret(self, name: str) -> bool: ...


def known_secrets(workspace: Path, rules: Rules,
                  environ: Mapping[str, str]) -> frozenset[str]:
    """Every secret value in ``workspace``'s secret-pattern files and in ``environ``'s
    secret-sounding variables (at most :data:`MAX_SECRETS`)."""
    found: set[str] = set()
    for text in _secret_files(Path(workspace), rules):
        found.update(values_in(text))
    for name, value in environ.items():
        if name.upper() not in _NOT_SECRET and _SECRET_NAME.search(name):
            found.update(_value(value) if len(value) <= MAX_VALUE else values_in(value))
    return frozenset(sorted(found, key=lambda v: (-len(v), v))[:MAX_SECRETS])


def values_in(text: str) -> set[str]:
    """The values a secret file's text holds: JSON strings, else each line's assigned value,
    else the line itself (a token file, a PEM body). The file printed whole, in any encoding,
    still shows each value whole inside it."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, (dict, list)):
        return {v for s in _json_strings(data) for v in _value(s)}
    found: set[str] = set()
    for line in text.splitlines():
        if line.lstrip().startswith(("#", ";", "//", "[")):
            continue  # comments and TOML/ini section headers
        match = _ASSIGNMENT.match(line)
        found.update(_value(match.group(2) if match else line))
    return found


def _value(raw: str) -> set[str]:
    """``raw`` without quotes and a trailing comment, if it is long enough to be a secret."""
    value = raw.strip()
    quoted = _QUOTED.match(value)
    if quoted:
        value = quoted.group(2)
    elif " #" in value:
        value = value.split(" #", 1)[0].rstrip()
    plausible = MIN_LENGTH <= len(value) <= MAX_VALUE and any(c.isalnum() for c in value)
    return {value} if plausible else set()


def _json_strings(data: object) -> Iterator[str]:
    """Every string in a JSON document, at any depth (keys left out)."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _secret_files(workspace: Path, rules: Rules) -> Iterator[str]:
    """The text of each regular file under ``workspace`` whose name, or a folder's name on its
    way, is secret; within the bounds above, never through a symlink that leads out."""
    root = os.path.realpath(workspace)
    files = entries = budget = 0
    for directory, dirs, names in os.walk(root):
        inside = any(rules.secret(part) for part in Path(directory).relative_to(root).parts)
        dirs[:] = [d for d in dirs if d not in IGNORED_ANYWHERE]
        for name in names:
            entries += 1
            if entries > MAX_ENTRIES or files >= MAX_FILES or budget >= 16 * MAX_FILE_BYTES:
                return
            if not (inside or rules.secret(name)):
                continue
            text = _read(os.path.join(directory, name), root)
            if text is not None:
                files += 1
                budget += len(text)
                yield text


def _read(path: str, root: str) -> str | None:
    """A small text file's content, when ``path`` stays inside ``root``; else None."""
    real = os.path.realpath(path)
    if os.path.commonpath([real, root]) != root:
        return None
    try:
        with open(real, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            data = handle.read(MAX_FILE_BYTES)
    except OSError:
        return None
    if b"\0" in data:
        return None  # binary: a keystore, not text
    return data.decode("utf-8", errors="replace")
