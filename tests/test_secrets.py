"""Secrets never visible, never in a prompt in any encoding (issue 31, docs/security.md).

- the secret-file patterns cover the well-known names;
- ``known_secrets`` finds the values of a workspace's secret files and of the server's
  secret-sounding environment variables, bounded, never through a symlink out;
- ``scrub`` redacts each known value in every encoding a candidate could print it in, and
  leaves ordinary failure text alone;
- real candidates in the real sandbox (each isolation mode that works here) cannot read
  ``.envrc`` or ``secrets.toml``, and what they print encoded never reaches the repair prompt;
- end to end, ``plancode complete`` sends no encoding of a secret to a (scripted) backend.

The attack matrix (``tests/test_sandbox_attacks.py``) replays the same two attacks as root and
as an unprivileged user.
"""

from __future__ import annotations

import base64
import codecs
import json
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from plancode.pipeline.result import Candidate
from plancode.testing.copying import CopyRules
from plancode.testing.sandbox import Sandbox, run_checks
from plancode.testing.scrub import REDACTED, scrub
from plancode.testing.secrets import MAX_FILE_BYTES, known_secrets
from plancode.testing.types import TestCase
from tests.openai_backend import ScriptedBackend, serving
from tests.sandbox_attacks import (
    ATTACKS,
    ENV_SECRET,
    ENVRC_SECRET,
    SECRETS,
    TOML_SECRET,
    leak_forms,
    make_workspace,
    unusable,
)

ROOT = Path(__file__).resolve().parent.parent
VALUE = "PLANCODE-SECRET-7f3a9c"


# -- which names are secret ------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    ".env", ".env.local", ".envrc", "secrets.toml", "secrets.yaml", "secrets.json",
    "prod.tfvars", "prod.tfvars.json", "terraform.tfstate", "credentials", "credentials.json",
    "aws_credentials.ini", ".git-credentials", "kubeconfig", "staging.kubeconfig", ".kube",
    ".netrc", ".pypirc", ".npmrc", ".pgpass", ".ssh", ".aws", ".docker", "id_ed25519",
    "server.key", "cert.pem", ".vault-token",
])
def test_well_known_secret_names_stay_out(name: str) -> None:
    assert CopyRules().secret(name)


@pytest.mark.parametrize("name", ["settings.py", "config.toml", "environment.yml", "keys.py",
                                  "README.md", "test_secret_sauce.py", "credentials.py",
                                  "test_credentials.py", "secrets.py"])
def test_ordinary_names_stay_in(name: str) -> None:
    assert not CopyRules().secret(name)


# -- which values are known ------------------------------------------------------------------


def test_known_secrets_come_from_secret_files_and_the_environment(tmp_path: Path) -> None:
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    (ws / "config" / ".aws").mkdir(parents=True)
    (ws / ".venv").mkdir()
    outside.mkdir()
    (ws / ".envrc").write_text("# direnv\nexport AWS_SECRET_ACCESS_KEY=envrc-value-1234\n"
                               "export SHORT=abc\n")
    (ws / "secrets.toml").write_text('[db]\npassword = "toml-value-5678"  # prod\n'
                                     "port = 5432\n")
    (ws / "config" / ".aws" / "credentials").write_text(
        "[default]\naws_access_key_id = AKIAEXAMPLEEXAMPLE12\n")
    (ws / "prod.tfvars.json").write_text(json.dumps({"db": {"password": "json-value-9012"},
                                                     "replicas": 3}))
    (ws / "token.secrets").write_text("whole-file-token-3456\n")
    (ws / "settings.py").write_text('NOT_A_SECRET_FILE = "visible-value-7890"\n')
    (ws / ".venv" / ".env").write_text("IGNORED=venv-value-1357\n")  # virtualenvs are skipped
    (outside / "real.txt").write_text("outside-value-2468\n")
    (ws / ".env").symlink_to(outside / "real.txt")  # never followed out of the workspace
    (ws / "big.key").write_bytes(b"A" * (2 * MAX_FILE_BYTES))  # read only up to the bound
    environ = {"OPENAI_API_KEY": "env-key-value-1", "GITHUB_TOKEN": "env-token-value-2",
               "DB_PASSWORD": "env-password-3", "PATH": "/usr/bin:/bin", "PWD": "/home/someone",
               "GIT_AUTHOR_NAME": "Jane Developer", "SHORT_TOKEN": "abc"}
    found = known_secrets(ws, CopyRules(), environ)
    assert {"envrc-value-1234", "toml-value-5678", "AKIAEXAMPLEEXAMPLE12", "json-value-9012",
            "whole-file-token-3456", "env-key-value-1", "env-token-value-2",
            "env-password-3"} <= found
    for absent in ("abc", "5432", "visible-value-7890", "venv-value-1357", "outside-value-2468",
                   "/usr/bin:/bin", "/home/someone", "Jane Developer"):
        assert absent not in found
    assert all(len(v) <= 4096 for v in found)


def test_the_sandbox_exclude_setting_adds_secret_files(tmp_path: Path) -> None:
    (tmp_path / "deploy.cfg").write_text("token = custom-pattern-value\n")
    assert known_secrets(tmp_path, CopyRules(), {}) == frozenset()
    assert known_secrets(tmp_path, CopyRules(["*.cfg"]), {}) == {"custom-pattern-value"}


# -- scrubbing encoded values ----------------------------------------------------------------


def _encodings(value: str) -> dict[str, str]:
    data = value.encode()
    return {
        "plain": value, "lower": value.lower(), "reversed": value[::-1],
        "hex": data.hex(), "HEX": data.hex().upper(), "hex spaced": data.hex(" "),
        "hex colons": data.hex(":"), "\\x": "".join(f"\\x{b:02x}" for b in data),
        "\\u": "".join(f"\\u{b:04x}" for b in data),
        "base64": base64.b64encode(data).decode(),
        "base64 unpadded": base64.b64encode(data).decode().rstrip("="),
        "base64 urlsafe": base64.urlsafe_b64encode(data).decode(),
        "spaced": " ".join(value), "dashed": "-".join(value), "commas": ",".join(value),
        "newlines": "\n".join(value), "list": str(list(value)), "codes": str(list(data)),
        "percent": "".join(f"%{b:02X}" for b in data), "quoted": urllib.parse.quote(value),
        "rot13": codecs.encode(value, "rot13"), "bytes repr": repr(data),
    }


@pytest.mark.parametrize("form", list(_encodings(VALUE)))
def test_every_encoding_of_a_known_value_is_redacted(form: str) -> None:
    text = f"AssertionError: got {_encodings(VALUE)[form]} instead"
    out = scrub(text, secrets={VALUE})
    assert REDACTED in out
    assert "SECRET" not in out.upper() and "7f3a9c" not in out.lower(), out
    assert out.startswith("AssertionError: got ") and out.endswith(" instead")


@pytest.mark.parametrize("prefix", ["", "k", "ke", "key", "token=", "Authorization: x"])
def test_base64_of_a_value_inside_longer_data_is_redacted(prefix: str) -> None:
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        blob = encode(f"{prefix}{VALUE}&more=1".encode()).decode()
        out = scrub(f"data {blob}", secrets={VALUE})
        assert REDACTED in out, (prefix, blob, out)
        left = out.replace(REDACTED, " ").split()
        # what is left shows at most the prefix and the suffix, not the value's bits
        assert all(len(piece) <= max(12, len(prefix) * 4 // 3 + 4) for piece in left[1:]), out


def test_without_the_known_value_an_encoding_gets_through() -> None:
    """The gain: the shape patterns alone miss a hex- or space-encoded key (issue 31)."""
    for form in ("hex", "spaced", "reversed"):
        text = f"got {_encodings(VALUE)[form]}"
        assert scrub(text) == text
        assert REDACTED in scrub(text, secrets={VALUE})


def test_ordinary_failure_text_is_left_alone() -> None:
    text = ("tests/test_mod.py::test_add: failed: AssertionError: assert -1 == 3\n"
            "  where -1 = add(1, 2)\n" + "=" * 70 + "\n" + "_" * 30 + " test_add " + "_" * 30)
    secrets = {"envrc-value-1234", "********", "------------", "password"}
    assert scrub(text, secrets=secrets) == text


def test_scrubbing_with_many_secrets_stays_fast() -> None:
    secrets = {f"value-{i}-abcdefgh{i}" for i in range(100)} | {"*" * 12, "a-" * 30}
    text = ("=" * 80 + "\n" + "x = 1, y = 2; " * 300 + "-" * 500) * 2
    start = time.perf_counter()
    scrub(text, limit=100_000, secrets=secrets)
    scrub(text, limit=100_000, secrets=secrets)
    assert time.perf_counter() - start < 5.0


# -- real candidates in the real sandbox -----------------------------------------------------

TESTS = [TestCase("tests/test_mod.py::test_add", "pytest", "tests/test_mod.py", "test_add"),
         TestCase("tests/test_mod.py::test_add_zero", "pytest", "tests/test_mod.py",
                  "test_add_zero"),
         TestCase("pkg/mod.py::pkg.mod.add", "doctest", "pkg/mod.py", "add")]


class _Never:
    cancelled = False


@pytest.fixture(params=["bwrap", "landlock"])
def mode(request: pytest.FixtureRequest) -> str:
    why = unusable(request.param)
    if why:
        pytest.skip(f"{request.param} does not work here: {why}")
    return request.param


@pytest.mark.parametrize("attack", ["read-secret-files", "leak-encoded"])
def test_a_candidate_neither_reads_nor_leaks_secrets(mode: str, attack: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANCODE_DEPLOY_TOKEN", ENV_SECRET)
    ws, _outside = make_workspace(tmp_path)
    code = ATTACKS[attack][1].replace("REAL", str(ws))
    with Sandbox(ws, isolation=mode, timeout=8.0) as box:
        known = known_secrets(ws, box.rules, os.environ)
        run = run_checks(box, {"pkg/mod.py": code}, TESTS, _Never(), ("pkg/mod.py", "add"))
    assert {ENV_SECRET, ENVRC_SECRET, TOML_SECRET} <= known
    assert run.isolation == mode and not run.all_passed
    raw = "\n".join([v.message for v in run.verdicts] + [run.output_tail])
    assert not [s for s in SECRETS if s in raw], f"the candidate read a secret: {raw[-2000:]}"
    prompt = Candidate(0, "direct-greedy", None, run=run).failures(known)
    forms = [f for s in SECRETS for f in [s, *leak_forms(s)]]
    assert not [f for f in forms if f in prompt], prompt
    if attack == "read-secret-files":
        assert [v.message for v in run.verdicts[:2]] == ["AssertionError: seen: nothing"] * 2
    else:  # the encodings reached the failure text, and the scrubber took them out
        assert len([f for f in forms if f in raw]) >= 5, raw[-2000:]
        assert prompt.count(REDACTED) >= 5, prompt


# -- end to end: what a remote backend receives ----------------------------------------------

# a crash, not a wrong value: the pipeline repairs crashes (a failed assertion gets fresh samples)
LEAK_BODY = '''def add(a, b):
    import base64
    values = open("deploy/notes.txt").read().split()[1::2]
    raise ValueError(" | ".join(
        f"{v.encode().hex()} {base64.b64encode(v.encode()).decode()} {' '.join(v)}"
        for v in values))
'''


class _Backend(ScriptedBackend):
    """An OpenAI-compatible backend that answers every request with LEAK_BODY."""

    received: list[str] = []

    def reply(self, body: str) -> str:
        type(self).received.append(body)
        return f"```python\n{LEAK_BODY}```\n"


@pytest.fixture
def backend() -> Iterator[str]:
    with serving(_Backend) as url:
        yield url


def _prompt_text(body: str) -> str:
    """Every message's text in one request body (JSON escapes undone)."""
    try:
        request = json.loads(body)
    except ValueError:
        return body
    messages = request.get("messages") or [{"content": request.get("prompt", "")}]
    return "\n".join(str(m.get("content", "")) for m in messages)


def test_complete_sends_no_encoded_secret_to_the_backend(backend: str, tmp_path: Path) -> None:
    ws, _outside = make_workspace(tmp_path)
    (ws / "pyproject.toml").write_text("[project]\nname = 'victim'\n")
    _Backend.received = []
    env = {**os.environ, "PLANCODE_BACKEND": "openai", "PLANCODE_REMOTE_URL": backend,
           "PLANCODE_MODEL": "scripted", "PLANCODE_CANDIDATES": "2",
           "PLANCODE_REPAIR_ROUNDS": "1", "PLANCODE_TEST_TIMEOUT": "8",
           "PLANCODE_DEPLOY_TOKEN": ENV_SECRET}
    proc = subprocess.run([sys.executable, "-m", "plancode", "complete",
                           f"{ws / 'pkg' / 'mod.py'}:1", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    prompts = [_prompt_text(body) for body in _Backend.received]
    assert any("ValueError" in p for p in prompts), "no repair prompt carried the failure"
    forms = {s: [s, s.encode().hex(), base64.b64encode(s.encode()).decode(), " ".join(s)]
             for s in (ENV_SECRET, ENVRC_SECRET, TOML_SECRET)}
    leaked = [f for p in prompts for fs in forms.values() for f in fs if f in p]
    assert not leaked, f"a secret left the machine: {leaked}"
