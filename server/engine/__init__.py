"""Model backends: in-process llama.cpp (default) behind one small contract.

llama.cpp's CPU backend runs its threads under OpenMP (GCC's libgomp). By default an idle
thread spins for a long while before it sleeps, and when anything else wants the same cores
(a build, a test run, the editor) the spinning threads and the one doing the work take turns:
measured on 2 cores (docs/performance.md), a 0.5B reply beside two busy processes took
4.8-9.6 s with the default and 3.1-3.3 s with ``GOMP_SPINCOUNT=1000`` (spin briefly, then
sleep), which costs nothing on a quiet machine (1.24-1.33 s against 1.24-1.30 s), where
``OMP_WAIT_POLICY=PASSIVE`` (never spin) cost 50-150%. The setting is read once, when
llama.cpp's library loads, so it is set here, before any backend module imports
``llama_cpp``; a wait policy or spin count the user set wins.
"""

import os

if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")

from plancode.engine.types import CancelToken, Engine, Generation, SamplingParams  # noqa: E402

__all__ = ["CancelToken", "Engine", "Generation", "SamplingParams"]
