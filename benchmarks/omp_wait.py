"""llama.cpp's decoding time under each OpenMP wait policy, interleaved in one run.

    python -m benchmarks.omp_wait [--model smollm2-135m] [--rounds 2]
                                  [--policies PASSIVE ACTIVE default spin=1000]

A policy is an ``OMP_WAIT_POLICY`` value, ``default`` (OpenMP's own: nothing set) or
``spin=N`` (``GOMP_SPINCOUNT=N``, libgomp's spin before sleeping, what plancode sets).
Each (round, policy) is a fresh process (the policy is read when llama.cpp's library loads)
that makes a 2-thread engine and times three cold 48-token chat replies. Run it twice: on a
quiet machine and beside other work (e.g. a test run); the machine's load average is printed
with each line. docs/performance.md has the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = """
import json, os, sys, time
from plancode.engine.llama_engine import LlamaEngine
from plancode.engine.types import SamplingParams
from plancode.models.store import ModelStore
engine = LlamaEngine(ModelStore(progress=False).resolve(sys.argv[1]), n_threads=2)
ask = [{"role": "user",
        "content": "Write a python function that returns the n-th fibonacci number."}]
times = []
for _ in range(3):
    engine.reset_cache()
    t = time.perf_counter()
    engine.chat(ask, SamplingParams(max_tokens=48))
    times.append(round(time.perf_counter() - t, 2))
print(json.dumps({"seconds": times,
                  "load": float(open("/proc/loadavg").read().split()[0])}))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--policies", nargs="+", default=["spin=1000", "PASSIVE", "default"])
    args = ap.parse_args(argv)
    for _ in range(args.rounds):
        for policy in args.policies:
            env = {k: v for k, v in os.environ.items()
                   if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
            # plancode.engine sets GOMP_SPINCOUNT unless a wait policy is set: "default" (what
            # OpenMP does unasked) sets the policy to a value OpenMP treats as unset
            if policy.startswith("spin="):
                env["GOMP_SPINCOUNT"] = policy.removeprefix("spin=")
            else:
                env["OMP_WAIT_POLICY"] = policy if policy != "default" else ""
            out = subprocess.run([sys.executable, "-c", CHILD, args.model], env=env,
                                 capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["policy"] = policy
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
