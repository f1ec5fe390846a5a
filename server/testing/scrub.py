"""Failure text that may leave the machine: capped, with anything that looks like a key removed.

Verdict messages and runner output are written by the candidate's process, so they can carry
whatever it could read. The sandbox keeps secret files out of the copy; this is the second
line: a repair prompt (which a remote backend sends over the network) gets at most
:data:`MAX_FAILURE_CHARS` of failure text, with private-key blocks, well-known token formats,
``key = value`` assignments of secret-sounding names and long random-looking strings replaced
by ``[redacted]``.
"""

from __future__ import annotations

import re

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


def scrub(text: str, limit: int = MAX_FAILURE_CHARS) -> str:
    """``text`` with key-like substrings redacted, cut to ``limit`` characters."""
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    text = _ASSIGN.sub(lambda m: m.group(1) + REDACTED, text)
    text = _RANDOM.sub(lambda m: REDACTED if _random_looking(m.group(0)) else m.group(0), text)
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return text
