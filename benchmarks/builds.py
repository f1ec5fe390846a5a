"""Prompt and decode speed of llama-cpp-python builds, side by side in one run.

    python -m benchmarks.builds --build native=/path/to/native.whl \\
        [--models qwen2.5-coder-0.5b] [--rounds 3] [--runs 3] [--out docs/performance.md]

The venv's own llama-cpp-python (plancode's AMX-free build, `plancode.doctor.llama_build`) is
the side called `plancode`; each `--build NAME=WHEEL` is unpacked into its own folder and put
first on PYTHONPATH for its turns. Every round runs `python -m benchmarks.speed --json` once per
build, in turn, so a busy machine slows them alike; the table gives the median of the rounds'
medians and the ratio to the plancode build. The section `## llama.cpp builds` of --out is
replaced; the rest of the file is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.machine import cpu_name
from plancode.doctor.llama_build import this_machine

SECTION = "## llama.cpp builds"


def _unpack(name: str, wheel: Path) -> Path:
    target = Path("/tmp") / f"plancode-bench-build-{name}-{wheel.stat().st_size}"
    if not (target / "llama_cpp").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--target", str(target), str(wheel)], check=True)
    return target


def _measure(path: Path | None, models: list[str], runs: int) -> dict:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-m", "benchmarks.speed", "--json", "--runs",
                           str(runs), "--models", *models], env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _system_info(path: Path | None) -> str:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = str(path)
    code = ("import llama_cpp, re; s = llama_cpp.llama_print_system_info().decode(); "
            "print(' '.join(n for n, v in re.findall(r'([A-Z0-9_]+) = (\\d+)', "
            "s.split('CPU :', 1)[-1]) if v != '0'))")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True).stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", action="append", default=[], metavar="NAME=WHEEL")
    ap.add_argument("--models", nargs="+", default=["qwen2.5-coder-0.5b"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("docs/performance.md"))
    args = ap.parse_args()

    sides: dict[str, Path | None] = {"plancode": None}
    for spec in args.build:
        name, _, wheel = spec.partition("=")
        sides[name] = _unpack(name, Path(wheel))
    samples: dict[str, dict[str, list[dict]]] = {s: {m: [] for m in args.models} for s in sides}
    for rnd in range(args.rounds):
        for side, path in sides.items():
            print(f"round {rnd + 1}/{args.rounds}: {side}", file=sys.stderr, flush=True)
            for model, r in _measure(path, args.models, args.runs).items():
                samples[side][model].append(r)
    features = {side: _system_info(path) for side, path in sides.items()}

    lines = [SECTION, "",
             f"Machine: {cpu_name()}, {os.cpu_count()} cores; llama-cpp-python 0.3.36 built two "
             f"ways; {args.rounds} rounds, each running every build in turn "
             f"(`benchmarks.speed`, {args.runs} runs per round); medians of the round medians.",
             "", f"plancode's flags here: `{this_machine().cmake_string}`", "",
             "| build | model | prompt eval tok/s | decode tok/s | prompt vs plancode | "
             "decode vs plancode |", "|---|---|---:|---:|---:|---:|"]
    base = {m: {k: statistics.median(r[k] for r in samples["plancode"][m])
                for k in ("prompt_tps", "decode_tps")} for m in args.models}
    for side in sides:
        for model in args.models:
            p = statistics.median(r["prompt_tps"] for r in samples[side][model])
            d = statistics.median(r["decode_tps"] for r in samples[side][model])
            lines.append(f"| {side} | {model} | {p:.0f} | {d:.1f} | "
                         f"{p / base[model]['prompt_tps']:.2f}x | "
                         f"{d / base[model]['decode_tps']:.2f}x |")
    lines += ["", "CPU features each build reports (`llama_print_system_info`):", ""]
    lines += [f"- {side}: {features[side]}" for side in sides]
    lines += ["", "Reproduce:", "", "```",
              "python -m benchmarks.builds " + " ".join(f"--build {b}" for b in args.build)
              + f" --models {' '.join(args.models)} --rounds {args.rounds} --runs {args.runs}",
              "```", ""]
    text = args.out.read_text() if args.out.exists() else "# Performance\n"
    head, _, rest = text.partition(SECTION)
    tail = rest[rest.find("\n## "):] if "\n## " in rest else ""
    args.out.write_text(head.rstrip() + "\n\n" + "\n".join(lines) + tail)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
