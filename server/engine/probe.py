"""Load a GGUF and generate one token in a child process, before the server trusts llama.cpp.

A llama-cpp-python build can die in native code on its first matrix product (SIGILL from
ggml's AMX kernels on Intel Xeon, llama.cpp PR #26954; a bad GPU driver; a corrupt file). In
the language server that would be a silently dead server; in `plancode complete` a signal
instead of a message. So before a model is loaded in-process, a child process loads it and
generates one token; a crash there becomes a :class:`PlancodeError` naming the signal and the
fix. A success is remembered per (llama.cpp library, model file, GPU layers), so the probe
costs one model load once, not on every start.

The child reports each stage as one JSON line on stdout, so the parent knows how far it got
(imported / loaded / generated) and what the build says about itself (``system_info``).
``PLANCODE_PROBE_FAULT=SIGILL`` (or another signal name) makes the child kill itself with that
signal right after loading: the tests use it to check that a native crash is reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from plancode.errors import PlancodeError

PROBE_TIMEOUT = 180.0
FAULT_ENV = "PLANCODE_PROBE_FAULT"


def rebuild_fix(python: str | None = None) -> str:
    """The one command that rebuilds llama-cpp-python without AMX for this interpreter."""
    python = python or sys.executable
    return (f"rebuild llama-cpp-python without AMX, with this CPU's other instructions: "
            f"`{python} -m plancode.doctor.llama_build install --force` (in a plancode checkout: "
            "`make clean && make demo`)")


@dataclass
class ProbeResult:
    """What the child process got to, and how it ended."""

    ok: bool
    stage: str  # the last stage reached: start, imported, loaded, generated
    message: str  # one line for the user
    fix: str = ""
    signal: str | None = None
    seconds: float = 0.0
    info: dict = field(default_factory=dict)  # version, system_info, gpu_offload, token


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _crash_message(sig: str, stage: str, model: Path) -> tuple[str, str]:
    doing = {"start": "starting", "imported": f"loading {model.name}",
             "loaded": "its first generation"}.get(stage, "generating")
    if sig == "SIGILL":
        return (f"llama.cpp crashed with SIGILL (illegal instruction) during {doing}: this "
                "llama-cpp-python build uses CPU instructions the process may not execute "
                "(ggml's AMX kernels on Intel Xeon, llama.cpp PR #26954)", rebuild_fix())
    return (f"llama.cpp crashed with {sig} during {doing}",
            f"run `plancode doctor`; check the file with `plancode model verify` (or pass "
            f"another model); if every model crashes, {rebuild_fix()}")


def run_probe(model: str | Path, n_gpu_layers: int = 0, timeout: float = PROBE_TIMEOUT,
              python: str | None = None, env: dict | None = None) -> ProbeResult:
    """Load ``model`` and generate one token in a child; never raises for a child's crash."""
    model = Path(model)
    # -P: the working directory is not put on sys.path, so nothing there shadows plancode
    argv = [python or sys.executable, "-P", "-m", "plancode.engine.probe", str(model),
            "--n-gpu-layers", str(n_gpu_layers)]
    child_env = dict(os.environ if env is None else env)
    start = time.monotonic()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=child_env, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        return ProbeResult(False, _last_stage(exc.stdout), f"loading {model.name} and "
                           f"generating one token took over {timeout:.0f} s",
                           "run `plancode doctor`; a smaller model or fewer n_ctx may help",
                           seconds=time.monotonic() - start)
    seconds = time.monotonic() - start
    info = _stages(done.stdout)
    stage = info.get("stage", "start")
    if done.returncode < 0:
        sig = _signal_name(done.returncode)
        message, fix = _crash_message(sig, stage, model)
        return ProbeResult(False, stage, message, fix, sig, seconds, info)
    if done.returncode != 0 or stage != "generated":
        last = (info.get("error") or (done.stderr.strip().splitlines() or ["no output"])[-1])
        return ProbeResult(False, stage, f"llama.cpp could not load and run {model.name}: "
                           f"{last}", "check the file with `plancode model verify NAME` (or "
                           "re-fetch it); run `plancode doctor` for the rest", None, seconds,
                           info)
    return ProbeResult(True, stage, f"loaded {model.name} and generated one token in "
                       f"{seconds:.1f} s", "", None, seconds, info)


def _stages(stdout: str | bytes | None) -> dict:
    """Merge the child's JSON lines (later stages win); garbage lines are ignored."""
    if isinstance(stdout, bytes):
        stdout = stdout.decode("utf-8", "replace")
    merged: dict = {}
    for line in (stdout or "").splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            merged.update(item)
    return merged


def _last_stage(stdout: str | bytes | None) -> str:
    return _stages(stdout).get("stage", "start")


# -- the cached gate the engine factory uses ---------------------------------------------------

def _library_identity() -> str:
    """Path, size and mtime of the llama.cpp shared library: changes when it is rebuilt."""
    import importlib.util

    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        return "no-llama-cpp"
    lib_dir = Path(spec.origin).parent / "lib"
    parts = []
    for lib in sorted(lib_dir.glob("*.so*")) + sorted(lib_dir.glob("*.dylib")):
        st = lib.stat()
        parts.append(f"{lib}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts) or str(spec.origin)


def _cache_file(model: Path, n_gpu_layers: int) -> Path:
    st = model.stat()
    key = "\n".join((_library_identity(), str(model.resolve()), str(st.st_size),
                     str(st.st_mtime_ns), str(n_gpu_layers)))
    home = Path(os.environ.get("PLANCODE_HOME") or Path.home() / ".cache" / "plancode")
    return home / "probes" / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")


def ensure_runs(model: str | Path, n_gpu_layers: int = 0) -> ProbeResult | None:
    """Raise a PlancodeError when llama.cpp cannot load ``model`` and generate in a child.

    Returns the probe's result when one ran, None when an earlier success was remembered.
    A fault injected through PLANCODE_PROBE_FAULT always runs the probe.
    """
    model = Path(model)
    cache = _cache_file(model, n_gpu_layers)
    if cache.exists() and not os.environ.get(FAULT_ENV):
        return None
    result = run_probe(model, n_gpu_layers)
    if not result.ok:
        raise PlancodeError(result.message, result.fix)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps({"model": str(model), "seconds": result.seconds,
                                   "info": result.info}))
        tmp.replace(cache)
    except OSError:
        pass  # a read-only store only costs a probe per start
    return result


# -- the child ---------------------------------------------------------------------------------

def _say(**item: object) -> None:
    print(json.dumps(item), flush=True)


def _child(model: str, n_gpu_layers: int) -> int:
    _say(stage="start")
    try:
        import llama_cpp
    except Exception as exc:  # an ImportError, or a missing shared library
        _say(error=f"cannot import llama_cpp: {exc}")
        return 1
    _say(stage="imported", version=getattr(llama_cpp, "__version__", "?"),
         system_info=llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip(),
         gpu_offload=bool(llama_cpp.llama_supports_gpu_offload()))
    try:
        llm = llama_cpp.Llama(model_path=model, n_ctx=128, n_batch=32, n_gpu_layers=n_gpu_layers,
                              verbose=False)
    except Exception as exc:
        _say(error=f"{type(exc).__name__}: {exc}")
        return 1
    _say(stage="loaded")
    fault = os.environ.get(FAULT_ENV, "")
    if fault:
        os.kill(os.getpid(), getattr(signal, fault.upper(), signal.SIGILL))
    started = time.monotonic()
    tokens = llm.tokenize(b"def add(a, b):\n    return", add_bos=False)
    llm.eval(tokens)
    token = int(llm.sample(temp=0.0))
    _say(stage="generated", token=llm.detokenize([token]).decode("utf-8", "replace"),
         generate_seconds=round(time.monotonic() - started, 3))
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m plancode.engine.probe")
    parser.add_argument("model")
    parser.add_argument("--n-gpu-layers", type=int, default=0)
    args = parser.parse_args(argv)
    return _child(args.model, args.n_gpu_layers)


if __name__ == "__main__":
    sys.exit(main())
