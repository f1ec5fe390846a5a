"""The VS Code extension (editors/vscode): its own unit tests, its package, and an end-to-end
run in a real VS Code.

- ``npm ci && npm test``: the extension's pure logic (server path resolution, settings ->
  initializationOptions, the status state machine, result rendering) under node's test runner.
- The extension's settings mirror the server's ``Settings`` (names, defaults, ranges, choices).
- ``npm run package`` builds a .vsix with @vscode/vsce.
- The extension's doctor code (src/doctor.ts, src/doctorProcess.ts) runs the real
  ``plancode doctor --json`` (a SIGILL injected into its model probe) and renders its report.
- End to end (slow): code-server (VS Code in the browser, from npm) with the .vsix installed,
  driven from headless Chromium by playwright-core: ghost text accepted with Tab, the model
  switched through settings.json, "Plancode: Implement function with plan" on ``median`` in a
  copy of examples/textstats, then the project's median tests pass on the edited file.

Prerequisites are installed when they can be (npm packages, code-server into
~/.cache/plancode/vscode-e2e, Chromium with apt-get when running as root); a test is skipped
only when one truly cannot be, and the skip says what is missing and how to install it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from plancode.config import Settings

REPO = Path(__file__).resolve().parent.parent
EXT = REPO / "editors" / "vscode"
CODE_SERVER_DIR = Path(os.environ.get(
    "CODE_SERVER_DIR", Path.home() / ".cache" / "plancode" / "vscode-e2e" / "code-server"))


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=kw.pop("cwd", EXT), capture_output=True, text=True,
                          timeout=timeout, **kw)


def _node_major() -> int | None:
    node = shutil.which("node")
    if node is None:
        return None
    out = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
    m = re.match(r"v(\d+)", out.strip())
    return int(m.group(1)) if m else None


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """``npm ci`` (skipped when node_modules already matches package-lock.json)."""
    major = _node_major()
    if major is None or shutil.which("npm") is None:
        pytest.skip("Node.js/npm are not installed: `apt-get install -y nodejs npm` "
                    "(Node 20; the extension's tests need node >= 18)")
    if major < 18:
        pytest.skip(f"Node.js {major} is too old for the extension's tests: install Node 20")
    stamp = EXT / "node_modules" / ".package-lock.json"
    lock = EXT / "package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
        proc = _run(["npm", "ci", "--no-audit", "--no-fund"], timeout=900)
        assert proc.returncode == 0, f"npm ci failed:\n{_tail(proc.stdout + proc.stderr)}"
    return EXT / "node_modules"


def test_unit_tests(node_modules: Path) -> None:
    proc = _run(["npm", "test"], timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"npm test failed:\n{_tail(out, 60)}"
    passed = re.search(r"^# pass (\d+)$", out, re.M)
    failed = re.search(r"^# fail (\d+)$", out, re.M)
    assert passed and int(passed.group(1)) >= 30, _tail(out)
    assert failed and failed.group(1) == "0", _tail(out)


def test_typecheck(node_modules: Path) -> None:
    proc = _run(["npm", "run", "typecheck"], timeout=600)
    assert proc.returncode == 0, _tail(proc.stdout + proc.stderr)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def test_settings_mirror_the_server_configuration() -> None:
    """Every server setting is an extension setting with the same default, range and choices,
    and the server accepts the extension's camelCase spelling of each."""
    props = json.loads((EXT / "package.json").read_text())["contributes"]["configuration"][
        "properties"]
    launch = {"plancode.serverPath", "plancode.pythonPath", "plancode.serverArgs",
              "plancode.serverEnv"}
    fields = {f"plancode.{_camel(f.name)}": f for f in dataclasses.fields(Settings)}
    assert set(props) == set(fields) | launch
    for key, f in fields.items():
        prop = props[key]
        assert prop["default"] == f.default, key
        kind = {bool: "boolean", int: "integer", float: "number", str: "string"}[type(f.default)]
        assert prop["type"] == kind, key
        check = f.metadata.get("check")
        if "minimum" in prop:
            assert check is not None, key
            assert check(type(f.default)(prop["minimum"])) == "", key
            assert check(type(f.default)(prop["maximum"])) == "", key
            below = prop["minimum"] - (1 if kind == "integer" else 0.05)
            assert check(type(f.default)(below)) != "", f"{key}: minimum is not the server's"
        if "enum" in prop:
            assert all(check(v) == "" for v in prop["enum"]), key
            assert check("not-a-choice") != "", key
    # what the extension sends (camelCase, under "plancode") is what the server takes
    sent = {k.removeprefix("plancode."): props[k]["default"] for k in fields}
    assert Settings.from_mapping(sent) == Settings()


def test_package_vsix(node_modules: Path) -> None:
    proc = _run(["npm", "run", "package"], timeout=600)
    assert proc.returncode == 0, _tail(proc.stdout + proc.stderr)
    vsix = EXT / "plancode.vsix"
    with zipfile.ZipFile(vsix) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read("extension/package.json"))
    assert "extension/dist/extension.js" in names
    assert not any("node_modules" in n or n.startswith("extension/src/") for n in names), names
    assert manifest["main"] == "./dist/extension.js"
    assert manifest["engines"]["vscode"].startswith("^1.")
    commands = {c["command"] for c in manifest["contributes"]["commands"]}
    assert {"plancode.implementFunction", "plancode.showLastResult",
            "plancode.restartServer"} <= commands


# -- the doctor, as the extension runs it ---------------------------------------------------------

# runs the compiled src/doctor.ts + src/doctorProcess.ts the way doctorCommand.ts does
_DOCTOR_JS = r"""
const d = require("./out/doctor.js");
const { runToEnd } = require("./out/doctorProcess.js");
const [command, model, workspace] = process.argv.slice(1);
const plan = { ok: true, command, args: ["serve", "--log-level", "debug"], source: "PATH" };
const inv = d.doctorInvocation(plan, { model, workspace });
const env = { ...process.env, ...d.doctorEnv({ model, nGpuLayers: 0, isolation: "auto" }) };
runToEnd(inv.command, inv.args, { env, cwd: workspace }).then((run) => {
  const outcome = d.interpretDoctor(inv, run);
  const markdown = outcome.ok
    ? d.renderDoctorMarkdown(outcome.report,
      { command: d.commandLine(inv), model, workspace, exitCode: run.exitCode })
    : d.renderDoctorProblem(outcome, run, d.commandLine(inv));
  const notice = outcome.ok ? d.doctorNotice(outcome.report) : undefined;
  process.stdout.write(JSON.stringify(
    { args: inv.args, exitCode: run.exitCode, outcome, markdown, notice }));
});
"""


@pytest.fixture(scope="module")
def compiled(node_modules: Path) -> Path:
    proc = _run(["npm", "run", "compile-tests"], timeout=600)
    assert proc.returncode == 0, _tail(proc.stdout + proc.stderr)
    return EXT / "out"


def _doctor_from_extension(command: str, model: str, workspace: Path, **env: str) -> dict:
    proc = _run(["node", "-e", _DOCTOR_JS, command, model, str(workspace)], timeout=300,
                env={**os.environ, **env})
    assert proc.returncode == 0, _tail(proc.stdout + proc.stderr)
    return json.loads(proc.stdout)


def test_extension_shows_the_real_doctors_findings(compiled: Path, tiny_model_path: Path,
                                                   tmp_path: Path) -> None:
    """A llama.cpp crash in the doctor's probe (SIGILL injected, as on an AMX machine): the
    extension reads the real JSON and shows the failed check with its fix."""
    plancode = str(Path(sys.executable).parent / "plancode")
    (tmp_path / "proj").mkdir()
    got = _doctor_from_extension(plancode, "smollm2-135m", tmp_path / "proj",
                                 PLANCODE_PROBE_FAULT="SIGILL")
    assert got["args"] == ["doctor", "--json", "--model=smollm2-135m",
                           f"--workspace={tmp_path / 'proj'}"]
    assert got["exitCode"] == 1
    outcome = got["outcome"]
    assert outcome["ok"] is True, outcome
    checks = {c["id"]: c for c in outcome["report"]["checks"]}
    assert checks["generation"]["status"] == "fail"
    assert checks["python"]["status"] == "ok"
    md = got["markdown"]
    assert re.search(r"^- ✗ \*\*generation\*\* \(FAILED\): llama\.cpp crashed with SIGILL", md,
                     re.M), md
    assert re.search(r"^  - \*\*Fix:\*\* rebuild llama-cpp-python without AMX", md, re.M), md
    assert re.search(r"^- ✓ \*\*model store\*\* \(passed\): smollm2-135m cached and verified", md,
                     re.M), md
    assert got["notice"]["level"] == "error"
    assert "✗ generation: llama.cpp crashed with SIGILL" in got["notice"]["text"]


def test_extension_explains_a_doctor_without_a_report(compiled: Path, tmp_path: Path) -> None:
    """Exit 2 with `error:`/`fix:` (a workspace that is not a folder) and an executable that
    is not plancode: each is an explained problem with its fix, not a crash."""
    plancode = str(Path(sys.executable).parent / "plancode")
    (tmp_path / "cwd").mkdir()
    # the workspace is checked before any model is loaded, so this is quick
    proc = _run(["node", "-e", _DOCTOR_JS.replace("cwd: workspace", "cwd: process.cwd()"),
                 plancode, "smollm2-135m", str(tmp_path / "missing")], timeout=300)
    assert proc.returncode == 0, _tail(proc.stdout + proc.stderr)
    got = json.loads(proc.stdout)
    assert got["exitCode"] == 2
    assert got["outcome"] == {"ok": False,
                              "problem": f"the doctor stopped: workspace {tmp_path / 'missing'} "
                                         "is not a folder",
                              "fix": "pass --workspace the folder of your project"}
    not_plancode = _doctor_from_extension(shutil.which("true") or "/bin/true", "smollm2-135m",
                                          tmp_path / "cwd")
    assert not_plancode["outcome"]["ok"] is False
    assert "printed no doctor report (no output, exit code 0)" in not_plancode["outcome"]["problem"]
    assert "The doctor could not run" in not_plancode["markdown"]


# -- end to end ---------------------------------------------------------------------------------

def _chromium() -> str:
    given = os.environ.get("CHROMIUM")
    if given:
        if not Path(given).is_file():
            pytest.fail(f"CHROMIUM={given} does not exist: unset it to use Debian's chromium "
                        "(`apt-get install -y chromium`), or point it at a Chromium executable")
        return given
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        proc = subprocess.run(["sh", "-c", "apt-get update -q && apt-get install -y -q chromium"],
                              capture_output=True, text=True, timeout=1200,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        found = shutil.which("chromium")
        if found:
            return found
        pytest.skip("Chromium is not installed and `apt-get install -y chromium` failed:\n"
                    + _tail(proc.stdout + proc.stderr, 10))
    pytest.skip("Chromium is not installed: `apt-get install -y chromium` (Debian), or set "
                "CHROMIUM to a Chromium/Chrome executable")


def _code_server() -> Path:
    exe = CODE_SERVER_DIR / "node_modules" / ".bin" / "code-server"
    if exe.exists() and any(CODE_SERVER_DIR.glob(".complete-*")):
        return exe
    if _node_major() != 20:
        pytest.skip(f"code-server 4.100 (VS Code 1.100) needs Node 20, found node "
                    f"{_node_major()}: install Node 20 to run the end-to-end test")
    proc = subprocess.run([str(EXT / "e2e" / "install-code-server.sh"), str(CODE_SERVER_DIR)],
                          capture_output=True, text=True, timeout=2400)
    if proc.returncode != 0 or not exe.exists():
        pytest.skip("code-server could not be installed from npm (it needs python3, make, g++, "
                    "pkg-config and libkrb5-dev for its native modules): "
                    "editors/vscode/e2e/install-code-server.sh said:\n"
                    + _tail(proc.stdout + proc.stderr, 15))
    return exe


@pytest.mark.slow
def test_end_to_end_in_code_server(node_modules: Path, tiny_model_path: Path,
                                   default_model_path: Path) -> None:
    chromium = _chromium()
    _code_server()
    proc = _run(["npm", "run", "package"], timeout=600)
    assert proc.returncode == 0, _tail(proc.stdout + proc.stderr)
    bindir = Path(sys.executable).parent
    env = {**os.environ, "CHROMIUM": chromium, "CODE_SERVER_DIR": str(CODE_SERVER_DIR),
           "PLANCODE_BIN": str(bindir / "plancode"), "PLANCODE_PYTHON": sys.executable}
    proc = _run(["node", "e2e/run.mjs"], timeout=1800, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"the end-to-end run failed:\n{_tail(out, 80)}"
    assert "E2E OK" in out, _tail(out)
    assert re.search(r"pytest: \d+ passed", out), _tail(out)
