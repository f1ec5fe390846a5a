"""How llama-cpp-python is built here: the fastest instruction set the CPU has, never AMX.

ggml's default build (`GGML_NATIVE=ON`) compiles its AMX kernels on a CPU that advertises
`amx_tile`; the first matrix product on an OpenMP worker thread then dies with SIGILL, because
ggml asks the kernel for tile permission on the main thread only (upstream llama.cpp PR
#26954). So plancode builds with `GGML_NATIVE=OFF` and turns on, one by one, every ISA
extension /proc/cpuinfo lists that ggml has a switch for, leaving the three AMX switches off.

pip's wheel cache is keyed by the sdist, not by CMAKE_ARGS, so a rebuild with other flags would
silently reuse the old wheel. plancode keeps its own wheel folder keyed by a hash of the
version and the flags (`~/.cache/plancode/wheels/<key>/`) and builds with `--no-cache-dir`.

Stdlib only: the Makefile runs this before plancode is installed
(`python3 -m plancode.doctor.llama_build install --python .venv/bin/python`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LLAMA_VERSION = "0.3.36"
PACKAGE = "llama-cpp-python"

# ggml CMake switch -> the /proc/cpuinfo flags it needs (all of them)
X86_SWITCHES: dict[str, tuple[str, ...]] = {
    "GGML_SSE42": ("sse4_2",),
    "GGML_AVX": ("avx",),
    "GGML_AVX2": ("avx2",),
    "GGML_FMA": ("fma",),
    "GGML_F16C": ("f16c",),
    "GGML_BMI2": ("bmi2",),
    "GGML_AVX_VNNI": ("avx_vnni",),
    "GGML_AVX512": ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"),
    "GGML_AVX512_VBMI": ("avx512f", "avx512vbmi"),
    "GGML_AVX512_VNNI": ("avx512f", "avx512_vnni"),
    "GGML_AVX512_BF16": ("avx512f", "avx512_bf16"),
}
# never on: see the module docstring
AMX_SWITCHES = ("GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16")
# the x86-64-v3 baseline used where the CPU cannot be read (macOS on Intel, containers
# without /proc): every x86 machine sold in the last decade has it
X86_BASELINE = ("GGML_SSE42", "GGML_AVX", "GGML_AVX2", "GGML_FMA", "GGML_F16C", "GGML_BMI2")


@dataclass(frozen=True)
class BuildPlan:
    """The CMake arguments for this machine and the wheel folder they map to."""

    cmake_args: tuple[str, ...]
    reason: str

    @property
    def key(self) -> str:
        text = "\n".join((PACKAGE, LLAMA_VERSION, platform.machine(), *self.cmake_args))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def cmake_string(self) -> str:
        return " ".join(self.cmake_args)


def cpu_flags(cpuinfo: str | None = None) -> set[str] | None:
    """The `flags` of the first processor in /proc/cpuinfo, or None where it cannot be read."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return None
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return set(value.split())
    return None


def plan_for(machine: str, flags: set[str] | None, extra: str = "") -> BuildPlan:
    """CMake arguments for a CPU of architecture `machine` with /proc/cpuinfo `flags`.

    `extra` (the user's own CMAKE_ARGS, e.g. `-DGGML_CUDA=on`) is appended; an extra that turns
    an AMX switch on or GGML_NATIVE back on is refused, since that is the crash this avoids.
    """
    extra_args = tuple(shlex.split(extra))
    for arg in extra_args:
        upper = arg.upper()
        if any(f"-D{s}=ON" in upper for s in AMX_SWITCHES) or "-DGGML_NATIVE=ON" in upper:
            raise ValueError(
                f"CMAKE_ARGS asks for {arg}: that builds ggml's AMX kernels, which crash with "
                "SIGILL on AMX CPUs (llama.cpp PR #26954); remove it"
            )
    if machine not in ("x86_64", "AMD64", "amd64", "i686", "i386"):
        return BuildPlan(extra_args,
                         f"{machine}: ggml's native build (no AMX on this architecture)")
    if flags is None:
        on = set(X86_BASELINE)
        reason = "x86-64 CPU flags unreadable: x86-64-v3 baseline, AMX off"
    else:
        on = {s for s, need in X86_SWITCHES.items() if all(f in flags for f in need)}
        amx = sorted(f for f in flags if f.startswith("amx"))
        reason = "every ISA switch this CPU has, AMX off" + (
            f" (the CPU has {', '.join(amx)})" if amx else ""
        )
    args = ["-DGGML_NATIVE=OFF"]
    args += [f"-D{s}={'ON' if s in on else 'OFF'}" for s in X86_SWITCHES]
    args += [f"-D{s}=OFF" for s in AMX_SWITCHES]
    return BuildPlan(tuple(args) + extra_args, reason)


def this_machine(extra: str | None = None) -> BuildPlan:
    """The build plan for the machine this runs on (extra defaults to $CMAKE_ARGS)."""
    extra = os.environ.get("CMAKE_ARGS", "") if extra is None else extra
    return plan_for(platform.machine(), cpu_flags(), extra)


def wheel_dir(plan: BuildPlan) -> Path:
    home = Path(os.environ.get("PLANCODE_HOME") or Path.home() / ".cache" / "plancode")
    return home / "wheels" / f"{PACKAGE}-{LLAMA_VERSION}-{plan.key}"


def _installed_key(python: str) -> str | None:
    stamp = _stamp_path(python)
    return stamp.read_text().strip() if stamp.exists() else None


def _stamp_path(python: str) -> Path:
    # <venv>/bin/python -> <venv>/.llama-build
    return Path(python).absolute().parent.parent / ".llama-build"


def install(python: str, sdist: str | None = None, force: bool = False) -> Path:
    """Build (once per key) and install llama-cpp-python into the interpreter `python`."""
    plan = this_machine()
    folder = wheel_dir(plan)
    wheels = sorted(folder.glob("*.whl"))
    print(f"llama-cpp-python {LLAMA_VERSION}: {plan.reason}")
    print(f"  CMAKE_ARGS={plan.cmake_string}")
    if not wheels:
        print(f"  building a wheel into {folder} (several minutes on 2 cores) ...", flush=True)
        tmp = folder.with_name(folder.name + ".partial")
        tmp.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, CMAKE_ARGS=plan.cmake_string, FORCE_CMAKE="1")
        source = sdist or f"{PACKAGE}=={LLAMA_VERSION}"
        cmd = [python, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir",
               "--no-binary", PACKAGE, "-w", str(tmp), source]
        subprocess.run(cmd, env=env, check=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        if folder.exists():  # another build finished first
            subprocess.run(["rm", "-rf", str(tmp)], check=False)
        else:
            tmp.rename(folder)
        wheels = sorted(folder.glob("*.whl"))
    else:
        print(f"  wheel for these flags already built: {wheels[-1].name}")
    if force or _installed_key(python) != plan.key:
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--force-reinstall", str(wheels[-1])], check=True)
        # the runtime dependencies the wheel declares (numpy, jinja2, ...)
        subprocess.run([python, "-m", "pip", "install", "--quiet", str(wheels[-1])], check=True)
        _stamp_path(python).write_text(plan.key + "\n")
    print(f"  installed (build key {plan.key})")
    return wheels[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plancode.doctor.llama_build",
                                     description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("cmake-args", help="print the CMAKE_ARGS for this machine")
    sub.add_parser("key", help="print the build key (hash of version and flags)")
    inst = sub.add_parser("install", help="build once per key, install into --python")
    inst.add_argument("--python", default=sys.executable)
    inst.add_argument("--sdist", help="a local llama-cpp-python sdist instead of PyPI's")
    inst.add_argument("--force", action="store_true", help="reinstall even if the key matches")
    args = parser.parse_args(argv)
    try:
        if args.what == "cmake-args":
            print(this_machine().cmake_string)
        elif args.what == "key":
            print(this_machine().key)
        else:
            install(args.python, args.sdist, args.force)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as err:
        print(f"error: building llama-cpp-python failed ({err}); a C/C++ compiler and cmake "
              "are needed (Debian: apt-get install build-essential cmake)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
