"""The checks `plancode doctor` runs, each a function returning one :class:`Finding`.

Every check runs for real: the generation check loads the model and generates a token in a
child process (so a crash there is reported, not suffered), the sandbox check builds the
sandbox the pipeline would use, the interpreter check asks the workspace's Python for pytest.
A check never raises: whatever goes wrong becomes a failed finding with its fix.
"""

from __future__ import annotations

import platform
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from plancode.config import Settings
from plancode.doctor import llama_build
from plancode.engine.probe import ProbeResult, rebuild_fix, run_probe
from plancode.errors import PlancodeError
from plancode.models.catalog import CATALOG

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass
class Finding:
    """One check's outcome: a one-line finding and, unless it is fine, the fix."""

    id: str
    title: str
    status: str  # ok | warn | fail
    finding: str
    fix: str = ""
    details: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Context:
    """What the checks share: the settings, the workspace, and the probe (run once)."""

    settings: Settings
    workspace: Path
    probe: ProbeResult | None = None
    model_path: Path | None = None


def _guard(check: Callable[[Context], Finding], ident: str, title: str) -> Callable:
    def run(ctx: Context) -> Finding:
        try:
            return check(ctx)
        except PlancodeError as exc:
            return Finding(ident, title, FAIL, exc.message, exc.fix)
        except Exception as exc:  # a doctor that crashes helps nobody
            return Finding(ident, title, FAIL, f"the check itself failed: "
                           f"{type(exc).__name__}: {exc}", "report this as a plancode bug")
    return run


def check_python(ctx: Context) -> Finding:
    version = platform.python_version()
    if sys.version_info[:2] >= (3, 11):  # noqa: UP036 - checked at run time on purpose
        return Finding("python", "Python", OK, f"Python {version} at {sys.executable}")
    return Finding("python", "Python", FAIL, f"Python {version} is too old (3.11+ needed)",
                   "install Python 3.11 or newer and re-create the virtualenv")


def check_llama_import(ctx: Context) -> Finding:
    title = "llama-cpp-python"
    try:
        import llama_cpp
    except Exception as exc:
        return Finding("llama_cpp", title, FAIL, f"cannot import llama_cpp: {exc}",
                       f"`{sys.executable} -m plancode.doctor.llama_build install`")
    version = getattr(llama_cpp, "__version__", "?")
    if version != llama_build.LLAMA_VERSION:
        return Finding("llama_cpp", title, WARN, f"llama-cpp-python {version} imports, but "
                       f"plancode is tested with {llama_build.LLAMA_VERSION}",
                       f"`{sys.executable} -m plancode.doctor.llama_build install --force`",
                       {"version": version})
    return Finding("llama_cpp", title, OK, f"llama-cpp-python {version} imports",
                   details={"version": version})


# ggml's system_info names -> the /proc/cpuinfo flags that feature needs
_FEATURE_FLAGS = {
    "AVX": ("avx",), "AVX2": ("avx2",), "FMA": ("fma",), "F16C": ("f16c",),
    "AVX_VNNI": ("avx_vnni",), "AVX512": ("avx512f",), "AVX512_VBMI": ("avx512vbmi",),
    "AVX512_VNNI": ("avx512_vnni",), "AVX512_BF16": ("avx512_bf16",),
    "AMX_INT8": ("amx_int8",),
}


def build_features(system_info: str) -> list[str]:
    """The CPU features a llama.cpp build reports as compiled in (`NAME = 1`)."""
    cpu_part = system_info.split("CPU :", 1)[-1]
    return [name for name, value in re.findall(r"([A-Z0-9_]+) = (\d+)", cpu_part)
            if value != "0"]


def check_build(ctx: Context) -> Finding:
    title = "llama.cpp build"
    info = ctx.probe.info if ctx.probe else {}
    system_info = info.get("system_info", "")
    if not system_info:
        return Finding("build", title, FAIL, "the build could not describe itself (llama_cpp "
                       "did not import in the child)", rebuild_fix())
    features = build_features(system_info)
    flags = llama_build.cpu_flags() or set()
    isa = [f for f in features if f in _FEATURE_FLAGS]
    details = {"features": features, "system_info": system_info,
               "cpu_amx": sorted(f for f in flags if f.startswith("amx"))}
    if "AMX_INT8" in features and "amx_tile" in flags:
        return Finding("build", title, FAIL, "this build has ggml's AMX kernels and this CPU has "
                       "AMX: generation crashes with SIGILL (llama.cpp PR #26954)",
                       rebuild_fix(), details)
    missing = [name for name, need in _FEATURE_FLAGS.items()
               if name != "AMX_INT8" and name not in features and flags
               and all(f in flags for f in need)]
    if missing:
        return Finding("build", title, WARN, f"uses {' '.join(isa) or 'no SIMD'}; the CPU also "
                       f"has {' '.join(missing)} (slower than it could be)", rebuild_fix(),
                       details)
    amx_note = " (AMX off)" if details["cpu_amx"] else ""
    return Finding("build", title, OK, f"uses {' '.join(isa) or 'no x86 SIMD'}{amx_note}",
                   details=details)


def check_model(ctx: Context) -> Finding:
    from plancode.models.store import ModelStore

    title = "model store"
    name = ctx.settings.model
    store = ModelStore(progress=False)
    if name not in CATALOG:
        path = store.resolve(name, fetch=False)
        ctx.model_path = path
        return Finding("model", title, OK, f"{name}: {path} (not a catalog model, no checksum "
                       "to verify)", details={"path": str(path)})
    result = store.verify(name)
    details = {"path": str(result.path), "sha256": result.actual, "store": str(store.home)}
    if result.ok:
        ctx.model_path = result.path
        return Finding("model", title, OK, f"{name} cached and verified (sha256 "
                       f"{result.actual[:12]}…) in {store.home}", details=details)
    if not result.actual:
        return Finding("model", title, FAIL, f"{name} is not in the store ({store.home})",
                       f"`plancode model fetch {name}`", details)
    return Finding("model", title, FAIL, f"{name} in the store does not match its checksum",
                   f"`plancode model fetch {name} --force`", details)


def run_generation_probe(ctx: Context) -> None:
    """Import llama_cpp and (when the model is there) generate one token, in a child.

    Without a model the child still reports the build (stage 'imported'), then fails to load.
    """
    model = ctx.model_path or Path("/nonexistent/no-model.gguf")
    ctx.probe = run_probe(model, ctx.settings.n_gpu_layers)


def check_generation(ctx: Context) -> Finding:
    title = "generation"
    if ctx.model_path is None:
        return Finding("generation", title, FAIL, "no model to generate with (see the model "
                       "check)", f"`plancode model fetch {ctx.settings.model}`")
    probe = ctx.probe
    assert probe is not None
    details = {"stage": probe.stage, "signal": probe.signal, "seconds": round(probe.seconds, 2),
               "token": probe.info.get("token")}
    if probe.ok:
        return Finding("generation", title, OK, f"{probe.message} (in a child process)",
                       details=details)
    return Finding("generation", title, FAIL, probe.message, probe.fix, details)


def check_gpu(ctx: Context) -> Finding:
    title = "GPU offload"
    info = ctx.probe.info if ctx.probe else {}
    available = bool(info.get("gpu_offload"))
    wants = ctx.settings.n_gpu_layers != 0
    cuda = ('`CMAKE_ARGS="-DGGML_CUDA=on" ' + sys.executable +
            ' -m plancode.doctor.llama_build install --force`')
    if available:
        return Finding("gpu", title, OK, "available (n_gpu_layers="
                       f"{ctx.settings.n_gpu_layers})", details={"available": True})
    if wants:
        return Finding("gpu", title, FAIL, f"n_gpu_layers={ctx.settings.n_gpu_layers}, but this "
                       "llama-cpp-python is a CPU-only build", cuda, {"available": False})
    return Finding("gpu", title, OK, "not available (CPU-only build; n_gpu_layers=0, so none "
                   "is needed)", details={"available": False})


def check_sandbox(ctx: Context) -> Finding:
    """The isolation model code will run under: bubblewrap (ok), the kernel fallback
    (namespaces + Landlock + seccomp: a warning, with what it does not cover), or none (a
    failure even when the user opted in). No mechanism and no opt-in raises, which the guard
    reports with the sandbox's own fix."""
    from plancode.testing.sandbox import Sandbox

    title = "test sandbox"
    with Sandbox(ctx.workspace, isolation=ctx.settings.isolation,
                 timeout=ctx.settings.test_timeout, memory_mb=ctx.settings.sandbox_memory_mb,
                 write_mb=ctx.settings.sandbox_write_mb) as box:
        mode, detail = box.isolation, box.isolation_detail
        memory = box.memory_cap.describe(box.limits.memory_mb, box.limits.max_procs)
    details = {"isolation": mode, "detail": detail, "memory_cap": memory}
    install = ("`apt-get install bubblewrap` (and allow unprivileged user namespaces if your "
               "distribution restricts them)")
    if mode == "bwrap":
        return Finding("sandbox", title, OK, detail, details=details)
    if mode == "none":
        return Finding("sandbox", title, FAIL, "model-written code runs WITHOUT isolation "
                       f"(isolation={ctx.settings.isolation}): {detail}", install, details)
    return Finding("sandbox", title, WARN, f"no bubblewrap, {mode} fallback: {detail}",
                   install, details)


def check_interpreter(ctx: Context) -> Finding:
    from plancode.testing.isolation import choose_interpreter

    title = "test interpreter"
    interp = choose_interpreter(ctx.workspace.resolve(), None, sys.executable)
    return Finding("interpreter", title, OK, f"{interp.path} (Python {interp.version}, pytest "
                   f"{interp.pytest_version}) runs the tests of {ctx.workspace}",
                   details={"python": interp.path, "version": interp.version,
                            "pytest": interp.pytest_version})


def check_escalation(ctx: Context) -> Finding:
    from plancode.pipeline import escalate

    title = "escalation model"
    setting = ctx.settings.escalate_model
    if not setting:
        return Finding("escalation", title, OK, "off (escalate_model = ''): only "
                       f"{ctx.settings.model}'s candidates are tried")
    name = escalate.model_of(ctx.settings)
    url = escalate.endpoint_of(ctx.settings)
    if name and url:
        return _remote_escalation(title, name, url)
    if name:
        return Finding("escalation", title, OK, f"{name}: tried when no candidate passes your "
                       "tests, or they are weak and the candidates disagree",
                       details={"model": name})
    if setting == "auto" and ctx.settings.model != escalate.AUTO_MODEL \
            and ctx.settings.backend == "llama":
        return Finding("escalation", title, WARN, f"{escalate.AUTO_MODEL} is not in the "
                       "store, so hard functions get only the small model's candidates "
                       "(measured: 2 of 9 functions of a realistic project right without it, 4 "
                       "with it; docs/results.md)",
                       f"`plancode model fetch {escalate.AUTO_MODEL}` (1.1 GB) to let "
                       "plancode escalate to it, or set escalate_model = '' to silence this")
    return Finding("escalation", title, OK, f"none for {ctx.settings.model} "
                   f"(escalate_model = {setting!r})")


def _remote_escalation(title: str, name: str, url: str) -> Finding:
    """A remote escalation model is only useful if its server answers: asked once, briefly."""
    from plancode.engine.remote import OpenAIEngine
    from plancode.errors import PlancodeError

    try:
        OpenAIEngine(url, model=name, connect_timeout=3.0).check()
    except PlancodeError as exc:
        return Finding("escalation", title, WARN, f"{name} at {url} does not answer: {exc}",
                       "start the server, fix the URL in escalate_model (MODEL@URL), or set "
                       "escalate_model = 'auto' to escalate in-process",
                       details={"model": name, "url": url})
    return Finding("escalation", title, OK, f"{name} at {url}: hard functions go there when "
                   "no local candidate passes your tests, or they are weak and the candidates "
                   "disagree", details={"model": name, "url": url})


CHECKS: list[tuple[str, str, Callable[[Context], Finding]]] = [
    ("python", "Python", check_python),
    ("llama_cpp", "llama-cpp-python", check_llama_import),
    ("model", "model store", check_model),
    ("generation", "generation", check_generation),
    ("build", "llama.cpp build", check_build),
    ("gpu", "GPU offload", check_gpu),
    ("sandbox", "test sandbox", check_sandbox),
    ("interpreter", "test interpreter", check_interpreter),
    ("escalation", "escalation model", check_escalation),
]


def run_checks(settings: Settings, workspace: Path,
               on_finding: Callable[[Finding], None] | None = None) -> list[Finding]:
    """Run every check in order; the child-process probe runs once, after the model check."""
    ctx = Context(settings, workspace)
    findings: list[Finding] = []
    for ident, title, check in CHECKS:
        if ident == "generation":
            try:
                run_generation_probe(ctx)
            except Exception as exc:
                ctx.probe = ProbeResult(False, "start", f"the probe could not start: {exc}")
        finding = _guard(check, ident, title)(ctx)
        findings.append(finding)
        if on_finding:
            on_finding(finding)
    return findings
