"""Failure text that may leave the machine: capped, with anything that looks like a key removed.

Verdict messages and runner output are written by the candidate's process, so they can carry
whatever it could read. The sandbox keeps secret files out of the copy; this is the second
line: a repair prompt (which a remote backend sends over the network) gets at most
:data:`MAX_FAILURE_CHARS` of failure text, with private-key blocks, well-known token formats,
``key = value`` assignments of secret-sounding names and long random-looking strings replaced
by ``[redacted]``.

Known secret values (:func:`plancode.testing.secrets.known_secrets`: what the workspace's
secret files and the server's environment hold) are redacted in every form a candidate could
print them in: plain, reversed, upper/lower case, rot13, percent-encoded, hex (any case, with
or without separators, ``\\x`` or ``%`` escapes), decimal or octal byte codes, base64 (standard
and URL-safe, padded or not, and the three alignments of a value inside longer data), and
its letters and digits with other characters between them (``s e c r e t``, ``s-e-c``,
``['s', 'e', 'c']``).
"""

from __future__ import annotations

import base64
import codecs
import functools
import re
import urllib.parse
from collections.abc import Iterable

MAX_FAILURE_CHARS = 2000
REDACTED = "[redacted]"

_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)",
               re.S),
    re.compile(r"\b(sk|pk|rk)-(proj-|ant-|live-|test-)?[A-Za-z0-9_\-]{16,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"),
    re.compile(r"\beyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{5,}"),  # JWT
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),
]
_ASSIGN = re.compile(r"(?i)((?:api[_-]?key|secret|token|passw(?:or)?d|pwd|auth|credential|private"
               r"[_-]?key|access[_-]?key)[A-Za-z0-9_\-]*[\"']?\s*[:=]\s*[\"']?)([^\s\"',;]{4,})")
# long strings that mix upper case, lower case and digits: random tokens, not words or hashes
_RANDOM = re.compile(r"[A-Za-z0-9+/_\-]{32,}={0,2}")


def _random_looking(token: str) -> bool:
    return (any(c.islower() for c in token) and any(c.isupper() for c in token)
            and sum(c.isdigit() for c in token) >= 3)


MAX_SPREAD_VALUE = 128  # longer values are matched only in their unspread forms
MIN_SPREAD_UNITS = 6  # letters and digits a value needs before its spread forms are matched
_SEP_CHARS = r"[^0-9A-Za-z]{1,12}"  # between its letters: "s e c", "s-e-c", "['s', '-', 'e'"
_SEP_HEX = r"(?:\\x|\\u00|%|[^0-9A-Za-z]){0,4}"  # between hex pairs: "73 65", "\\x73\\x65"
_SEP_CODES = r"[^0-9]{1,4}"  # between decimal or octal byte codes: "[115, 101, 99]"


def _spread(units: Iterable[str], sep: str) -> str:
    return sep.join(re.escape(u) for u in units)


def _base64_forms(data: bytes) -> set[str]:
    """The value's base64 text alone, and the part of it that shows whatever bytes come
    before it (each of the three alignments), standard and URL-safe."""
    forms = {base64.b64encode(data).decode()}
    for offset, skip in ((0, 0), (1, 2), (2, 3)):
        text = base64.b64encode(b"\0" * offset + data).decode().rstrip("=")
        end = len(text) - (1 if (offset + len(data)) % 3 else 0)
        forms.add(text[skip:end])
    forms |= {f.rstrip("=") for f in forms}
    return forms | {f.translate(str.maketrans("+/", "-_")) for f in forms}


def secret_forms(value: str) -> list[str]:
    """Regular expressions for every form of ``value`` that :func:`scrub` redacts, longest
    first."""
    data = value.encode()
    literal = {value[::-1], codecs.encode(value, "rot13"), urllib.parse.quote(value, safe=""),
               urllib.parse.quote_plus(value), *_base64_forms(data)}
    forms = [re.escape(f) for f in literal]
    forms.append("(?i:" + _spread((f"{b:02x}" for b in data), _SEP_HEX) + ")")
    # spread forms take the value's letters and digits only: separators are the rest, so the
    # two never overlap and matching stays linear ("********" has nothing to spread)
    units = [c for c in value if c.isascii() and c.isalnum()]
    if MIN_SPREAD_UNITS <= len(units) <= MAX_SPREAD_VALUE:
        for chars in (units, units[::-1]):
            forms.append("(?i:" + _spread(chars, f"(?:{_SEP_CHARS})?") + ")")
        forms += [_spread(map(str, data), _SEP_CODES),
                  _spread((f"{b:o}" for b in data), _SEP_CODES)]
    forms.append("(?i:" + re.escape(value) + ")")
    return sorted(forms, key=len, reverse=True)


@functools.lru_cache(maxsize=8)
def _secrets_pattern(secrets: frozenset[str]) -> re.Pattern[str] | None:
    forms = [form for value in sorted(secrets, key=len, reverse=True)
             for form in secret_forms(value)]
    return re.compile("|".join(forms)) if forms else None


def scrub(text: str, limit: int = MAX_FAILURE_CHARS, secrets: Iterable[str] = ()) -> str:
    """``text`` with ``secrets`` (in any form above) and key-like substrings redacted, cut to
    ``limit`` characters."""
    known = _secrets_pattern(frozenset(secrets))
    if known is not None:
        text = known.sub(REDACTED, text)
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    text = _ASSIGN.sub(lambda m: m.group(1) + REDACTED, text)
    text = _RANDOM.sub(lambda m: REDACTED if _random_looking(m.group(0)) else m.group(0), text)
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return text
