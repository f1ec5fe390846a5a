"""Another process holding a work claim, as a second worker's ``Claims.take`` does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def hold(path: Path) -> subprocess.Popen:
    """A live process holding the exclusive ``flock`` on ``path`` until it is killed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    other = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; fh = open(sys.argv[1], 'a'); "
         "fcntl.flock(fh, fcntl.LOCK_EX); print('held', flush=True); time.sleep(30)",
         str(path)], stdout=subprocess.PIPE, text=True)
    assert other.stdout is not None and other.stdout.readline() == "held\n"
    return other
