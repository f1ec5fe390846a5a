"""Model backends: in-process llama.cpp (default) behind one small contract.

llama.cpp's CPU backend runs its threads under OpenMP. OpenMP's default makes idle threads
spin, and when anything else wants the same cores (a build, a test run, the editor) the
spinning threads and the one doing the work take turns: measured on 2 cores with other work
running, a 48-token reply of the tiny model took 18-71 s with the default and 2.9-4.2 s with
``OMP_WAIT_POLICY=PASSIVE`` (docs/performance.md). The policy is read once, when llama.cpp's
library loads, so it is set here, before any backend module imports ``llama_cpp``; a value
the user set wins.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from plancode.engine.types import CancelToken, Engine, Generation, SamplingParams  # noqa: E402

__all__ = ["CancelToken", "Engine", "Generation", "SamplingParams"]
