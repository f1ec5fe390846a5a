"""`plancode doctor`, the llama.cpp crash probe, and the AMX-free build flags.

The doctor runs every check for real here (the one-token generation in a child included). A
native crash is simulated with PLANCODE_PROBE_FAULT, which makes the probe's child kill itself
with that signal right after loading the model, where ggml's AMX kernels die on Intel Xeon:
the CLI, `plancode complete` and the language server must report it with the fix and live on.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from plancode.doctor import llama_build
from plancode.doctor.checks import CHECKS, Context, build_features, check_build
from plancode.engine.probe import ProbeResult, ensure_runs, run_probe
from plancode.errors import PlancodeError

PLANCODE = [sys.executable, "-m", "plancode"]
AMX_XEON = ("fpu sse4_2 avx avx2 fma f16c bmi2 avx_vnni avx512f avx512cd avx512vl avx512dq "
            "avx512bw avx512vbmi avx512_vnni avx512_bf16 amx_tile amx_int8 amx_bf16")
ZEN3 = "fpu sse4_2 avx avx2 fma f16c bmi2"


def _doctor(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*PLANCODE, "doctor", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


# -- the doctor on this machine ------------------------------------------------------------------


def test_doctor_json_runs_every_check_for_real(textstats: Path, default_model_path: Path) -> None:
    done = _doctor("--json", "--workspace", str(textstats))
    report = json.loads(done.stdout)
    ids = [c["id"] for c in report["checks"]]
    assert ids == [ident for ident, _, _ in CHECKS]  # one entry per check, in order
    by_id = {c["id"]: c for c in report["checks"]}
    for check in report["checks"]:
        assert check["status"] in ("ok", "warn", "fail") and check["finding"], check
        assert check["status"] == "ok" or check["fix"], check  # every problem has a fix
    # the default model, verified, and a real token generated in a child process
    assert by_id["model"]["status"] == "ok", by_id["model"]
    assert by_id["model"]["details"]["sha256"].startswith("1d9614638d18")
    generation = by_id["generation"]
    assert generation["status"] == "ok", generation
    assert generation["details"]["stage"] == "generated" and generation["details"]["token"]
    # the build describes its CPU features, and AMX is never among them
    assert "AMX_INT8" not in by_id["build"]["details"]["features"]
    assert by_id["build"]["details"]["system_info"]
    assert by_id["interpreter"]["details"]["pytest"]
    assert by_id["sandbox"]["details"]["isolation"]
    assert report["ok"] == (done.returncode == 0)


def test_doctor_text_has_one_line_per_check(textstats: Path, tiny_model_path: Path) -> None:
    done = _doctor("--model", "smollm2-135m", "--workspace", str(textstats))
    lines = [ln for ln in done.stdout.splitlines() if ln[:1] in ("✓", "!", "✗")]
    assert len(lines) == len(CHECKS), done.stdout
    assert any(ln.startswith("✓ generation") for ln in lines), done.stdout
    assert done.stdout.rstrip().splitlines()[-1].endswith("passed"), done.stdout


def test_doctor_names_a_missing_model_and_the_fetch(tmp_path: Path) -> None:
    done = _doctor("--json", "--model", "qwen2.5-coder-1.5b", "--workspace", str(tmp_path),
                   env={"PLANCODE_HOME": str(tmp_path / "empty-store"),
                        "PLANCODE_OFFLINE": "1"})
    report = json.loads(done.stdout)
    by_id = {c["id"]: c for c in report["checks"]}
    assert done.returncode == 1 and not report["ok"]
    assert by_id["model"]["status"] == "fail"
    assert by_id["model"]["fix"] == "`plancode model fetch qwen2.5-coder-1.5b`"
    assert by_id["generation"]["status"] == "fail"
    # the build is still described: the child imports llama_cpp before it needs a model
    assert by_id["build"]["details"]["features"]


def test_doctor_warns_about_the_fallback_sandbox_and_names_bubblewrap(
    textstats: Path, tiny_model_path: Path
) -> None:
    done = _doctor("--json", "--model", "smollm2-135m", "--workspace", str(textstats),
                   env={"PLANCODE_ISOLATION": "landlock"})
    sandbox = {c["id"]: c for c in json.loads(done.stdout)["checks"]}["sandbox"]
    assert sandbox["status"] == "warn" and sandbox["details"]["isolation"] == "landlock"
    assert "no bubblewrap" in sandbox["finding"] and "apt-get install bubblewrap" in sandbox["fix"]


def test_the_sandbox_limits_are_the_users_settings(textstats: Path, tiny_model_path: Path
                                                  ) -> None:
    """sandbox_memory_mb and sandbox_write_mb reach the sandbox: the doctor reports the caps
    a run will get."""
    done = _doctor("--json", "--model", "smollm2-135m", "--workspace", str(textstats),
                   env={"PLANCODE_SANDBOX_MEMORY_MB": "256", "PLANCODE_SANDBOX_WRITE_MB": "64"})
    sandbox = {c["id"]: c for c in json.loads(done.stdout)["checks"]}["sandbox"]
    assert sandbox["details"]["memory_cap"].startswith("256 MB"), sandbox["details"]
    assert "at most 64 MB in all" in sandbox["finding"], sandbox["finding"]


def test_doctor_reports_an_injected_sigill_with_the_rebuild_fix(
    textstats: Path, tiny_model_path: Path
) -> None:
    done = _doctor("--json", "--model", "smollm2-135m", "--workspace", str(textstats),
                   env={"PLANCODE_PROBE_FAULT": "SIGILL"})
    assert done.returncode == 1, done.stderr  # an exit status, not a signal
    generation = {c["id"]: c for c in json.loads(done.stdout)["checks"]}["generation"]
    assert generation["status"] == "fail"
    assert "crashed with SIGILL" in generation["finding"]
    assert "llama_build install" in generation["fix"]
    assert generation["details"]["signal"] == "SIGILL"


# -- the probe ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", ["SIGILL", "SIGSEGV", "SIGABRT"])
def test_a_crashing_child_is_reported_and_the_parent_lives_on(
    tiny_model_path: Path, sig: str
) -> None:
    result = run_probe(tiny_model_path, env={**os.environ, "PLANCODE_PROBE_FAULT": sig})
    assert not result.ok and result.signal == sig
    assert result.stage == "loaded"  # it died where AMX kernels die: the first generation
    assert f"crashed with {sig}" in result.message and "first generation" in result.message
    assert "llama_build install" in result.fix
    assert os.getpid()  # still here


def test_a_working_model_passes_the_probe_once(tiny_model_path: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANCODE_HOME", str(tmp_path))
    first = ensure_runs(tiny_model_path)
    assert isinstance(first, ProbeResult) and first.ok and first.info["token"]
    assert ensure_runs(tiny_model_path) is None  # remembered: no second child
    monkeypatch.setenv("PLANCODE_PROBE_FAULT", "SIGILL")
    with pytest.raises(PlancodeError, match="SIGILL") as caught:
        ensure_runs(tiny_model_path)
    assert "llama_build install" in caught.value.fix


def test_a_file_that_is_not_a_model_is_a_load_error_not_a_crash(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF" + b"\0" * 64)
    result = run_probe(bogus)
    assert not result.ok and result.signal is None and result.stage == "imported"
    assert "could not load" in result.message and "model verify" in result.fix


def test_complete_exits_2_with_the_message_when_llama_cpp_crashes(
    textstats: Path, tiny_model_path: Path
) -> None:
    target = f"{textstats / 'textstats' / 'numbers.py'}:13"
    done = subprocess.run([*PLANCODE, "complete", target, "--model", "smollm2-135m"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PLANCODE_PROBE_FAULT": "SIGILL"})
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "error: llama.cpp crashed with SIGILL" in done.stderr
    assert "fix: rebuild llama-cpp-python without AMX" in done.stderr


# -- the language server lives on ------------------------------------------------------------------


@pytest_lsp.fixture(config=ClientServerConfig(
    server_command=[*PLANCODE, "serve"],
    server_env={**os.environ, "PLANCODE_MODEL": "smollm2-135m",
                "PLANCODE_PROBE_FAULT": "SIGILL"}))
async def crashing_client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


async def test_the_server_reports_a_llama_crash_and_keeps_answering(
    crashing_client: LanguageClient, textstats: Path, tiny_model_path: Path
) -> None:
    await crashing_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=textstats.as_uri()))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not crashing_client.messages:
        await asyncio.sleep(0.1)
    shown = [m for m in crashing_client.messages if "SIGILL" in m.message]
    assert shown and shown[0].type == types.MessageType.Error, crashing_client.messages
    assert "llama_build install" in shown[0].message
    path = textstats / "textstats" / "words.py"
    crashing_client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=path.as_uri(), language_id="python",
                                             version=1, text=path.read_text())))
    result = await crashing_client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=path.as_uri()),
            position=types.Position(line=3, character=0),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
    assert result is not None and len(result.items) == 0  # answered, by a live server


# -- build flags ---------------------------------------------------------------------------------


def test_amx_cpu_gets_every_isa_switch_but_amx() -> None:
    plan = llama_build.plan_for("x86_64", set(AMX_XEON.split()))
    args = set(plan.cmake_args)
    assert "-DGGML_NATIVE=OFF" in args
    for on in ("AVX2", "FMA", "F16C", "AVX512", "AVX512_VNNI", "AVX512_BF16", "AVX_VNNI"):
        assert f"-DGGML_{on}=ON" in args
    for amx in ("TILE", "INT8", "BF16"):
        assert f"-DGGML_AMX_{amx}=OFF" in args
    assert "amx_tile" in plan.reason


def test_a_cpu_without_avx512_keeps_it_off_and_other_cpus_get_other_keys() -> None:
    zen3 = llama_build.plan_for("x86_64", set(ZEN3.split()))
    assert "-DGGML_AVX2=ON" in zen3.cmake_args and "-DGGML_AVX512=OFF" in zen3.cmake_args
    xeon = llama_build.plan_for("x86_64", set(AMX_XEON.split()))
    assert zen3.key != xeon.key  # a wheel built for one is never reused for the other
    assert llama_build.plan_for("x86_64", None).cmake_args[:1] == ("-DGGML_NATIVE=OFF",)
    assert llama_build.plan_for("aarch64", {"asimd"}).cmake_args == ()
    cuda = llama_build.plan_for("x86_64", set(ZEN3.split()), "-DGGML_CUDA=on")
    assert cuda.cmake_args[-1] == "-DGGML_CUDA=on" and cuda.key != zen3.key


def test_cmake_args_that_bring_amx_back_are_refused() -> None:
    for extra in ("-DGGML_NATIVE=ON", "-DGGML_AMX_INT8=on"):
        with pytest.raises(ValueError, match="SIGILL"):
            llama_build.plan_for("x86_64", set(AMX_XEON.split()), extra)


def test_the_installed_build_matches_this_machines_plan() -> None:
    stamp = Path(sys.executable).absolute().parent.parent / ".llama-build"
    if not stamp.exists():
        pytest.skip("llama-cpp-python was not installed by plancode.doctor.llama_build")
    assert stamp.read_text().strip() == llama_build.this_machine().key


def test_build_check_fails_an_amx_build_on_an_amx_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    info = ("CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 1 | "
            "AMX_INT8 = 1 | OPENMP = 1 | REPACK = 1 |")
    assert build_features(info)[:3] == ["SSE3", "AVX", "AVX2"]
    monkeypatch.setattr(llama_build, "cpu_flags", lambda: set(AMX_XEON.split()))
    ctx = Context(settings=None, workspace=Path("."),  # type: ignore[arg-type]
                  probe=ProbeResult(True, "generated", "", info={"system_info": info}))
    finding = check_build(ctx)
    assert finding.status == "fail" and "SIGILL" in finding.finding
    assert "llama_build install" in finding.fix
