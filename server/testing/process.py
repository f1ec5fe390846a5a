"""Process control for one run: start the runner with its secret and results pipe, drain the
pipe while it runs, enforce the wall-clock timeout and cancellation, kill everything after.

The results channel is a pipe the server creates: the runner inherits only its write end, so
nothing the candidate does to the file system can make the server follow a symlink, open a
FIFO or read a huge file. The server keeps at most :data:`MAX_RESULTS_BYTES` of it (the rest is
drained and dropped, and the run counts as tampered). The run's secret travels on a second
pipe the plugin reads and closes before any test code is imported.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from plancode.testing.verdicts import RunEnd

if TYPE_CHECKING:
    from plancode.engine.types import CancelToken

POLL_SECONDS = 0.05
TAIL_CHARS = 4000
MAX_RESULTS_BYTES = 4 * 1024 * 1024
KEY_BYTES = 32


@dataclass
class Channel:
    """The run's secret and the server's end of the results pipe."""

    key: bytes
    read_fd: int
    write_fd: int  # the runner's end; closed here once the runner started
    key_fd: int  # read end of the pipe holding the key, for the runner
    data: bytearray
    overflow: bool = False

    @classmethod
    def open(cls) -> Channel:
        key = secrets.token_bytes(KEY_BYTES)
        read_fd, write_fd = os.pipe()
        key_read, key_write = os.pipe()
        try:
            os.write(key_write, key)  # 32 bytes always fit in a fresh pipe
        finally:
            os.close(key_write)
        os.set_blocking(read_fd, False)
        return cls(key, read_fd, write_fd, key_read, bytearray())

    def env(self) -> dict[str, str]:
        return {"PLANCODE_KEY_FD": str(self.key_fd), "PLANCODE_RESULTS_FD": str(self.write_fd)}

    def started(self) -> None:
        """Close the runner's ends in this process."""
        for fd in (self.write_fd, self.key_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.write_fd = self.key_fd = -1

    def drain(self) -> bool:
        """Read what is there without blocking; False once the writers are all gone."""
        while True:
            try:
                chunk = os.read(self.read_fd, 65536)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not chunk:
                return False
            room = MAX_RESULTS_BYTES - len(self.data)
            if len(chunk) > room:
                self.overflow = True
                chunk = chunk[:max(room, 0)]
            self.data += chunk

    def close(self) -> None:
        self.started()
        with contextlib.suppress(OSError):
            os.close(self.read_fd)
        self.read_fd = -1


def run(argv: list[str], cwd: str, env: dict[str, str], log_path: Path, channel: Channel,
        timeout: float, cancel: CancelToken | None, supervised: bool,
        info: bool, prefix: list[str] | tuple[str, ...] = (),
        handed: list[int] | None = None) -> RunEnd:
    """Start ``argv`` in its own session, wait for it (draining the results pipe) until it
    exits, times out or is cancelled, then kill whatever is left. ``supervised``: the launcher
    sweeps its descendants on SIGTERM; ``info``: ``argv`` starts with bubblewrap, which is
    given ``--info-fd`` to report its namespace's init (waited for after the kill);
    ``prefix``: a command that execs the rest in the same process (entering the run's memory
    cgroup before anything else starts); ``handed``: more fds the runner inherits (a split
    run's pipe ends), closed here once it started, each entry then set to -1."""
    info_read, info_write = os.pipe() if info else (-1, -1)
    if info:
        argv = [*argv[:1], "--info-fd", str(info_write), *argv[1:]]
    argv = [*prefix, *argv]
    handed = handed if handed is not None else []
    fds = tuple(fd for fd in (channel.write_fd, channel.key_fd, info_write, *handed) if fd >= 0)
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, cwd=cwd, env={**env, **channel.env()},
                                    stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    close_fds=True, pass_fds=fds)
    finally:
        channel.started()
        if info_write >= 0:
            os.close(info_write)
        close_handed(handed)
    timed_out = cancelled = False
    deadline = time.monotonic() + timeout
    open_pipe = True
    try:
        while True:
            if cancel is not None and cancel.cancelled:
                cancelled = True
                break
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            if open_pipe:  # wakes up as soon as results arrive or the runner exits
                with contextlib.suppress(InterruptedError):
                    select.select([channel.read_fd], [], [], min(POLL_SECONDS, left))
                open_pipe = channel.drain()
                if proc.poll() is not None:
                    break
            else:
                try:
                    proc.wait(timeout=min(POLL_SECONDS, left))
                    break
                except subprocess.TimeoutExpired:
                    pass
    finally:
        returncode = _stop(proc, supervised)
        channel.drain()
        if info_read >= 0:
            _wait_namespace_gone(info_read)
    return RunEnd(timed_out, cancelled, returncode, timeout, _tail(log_path), channel.overflow)


def close_handed(handed: list[int]) -> None:
    """Close the fds in ``handed`` that are still open here, marking each closed (-1): a fd
    number is closed once only, never after another thread got the same number back."""
    for k, fd in enumerate(handed):
        if fd >= 0:
            handed[k] = -1
            with contextlib.suppress(OSError):
                os.close(fd)


def _stop(proc: subprocess.Popen, supervised: bool) -> int | None:
    """Kill whatever is left: the launcher sweeps its subreaped descendants (or its PID
    namespace) on SIGTERM; SIGKILL to the process group takes bubblewrap, and with it the PID
    namespace, or anything the sweep missed."""
    returncode = proc.poll()
    if returncode is None and supervised:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=3.0)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return returncode


def _wait_namespace_gone(info_fd: int, limit: float = 5.0) -> None:
    """Read bubblewrap's info (the PID of the sandbox's init) and wait until that process is
    gone or a zombie: the kernel kills every process of a PID namespace before its init
    finishes exiting, so then nothing the candidate started is left."""
    try:  # bubblewrap writes it before starting the command; never block on the pipe
        os.set_blocking(info_fd, False)
        with os.fdopen(info_fd, "rb") as f:
            info = json.loads(f.read(65536) or b"{}")
        pid = int(info.get("child-pid", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return
    if pid <= 0:
        return
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat_line = f.read()
        except OSError:
            return
        if stat_line[stat_line.rfind(b")") + 2:].startswith(b"Z"):
            return
        time.sleep(0.005)


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - TAIL_CHARS))
            data = f.read()
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")
