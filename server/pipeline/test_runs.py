"""Candidates' test runs, on one worker thread, while the next candidate decodes.

The pipeline hands each spliced candidate over as soon as it exists; its tests run in the
sandbox in the background, and the result is attached to the candidate. The first candidate
that passes every one of the user's tests sets ``solved`` and, with early exit, cancels the
generation in flight (nothing the model writes after that could be suggested instead).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from plancode.engine.types import CancelToken
from plancode.pipeline.result import Candidate
from plancode.testing.sandbox import Sandbox, run_checks
from plancode.testing.types import RunResult, TestCase


class TestRuns:
    """The test runs of one pipeline stage (first candidates, then repairs)."""

    __test__ = False  # not a pytest class

    def __init__(self, sandbox: Sandbox, tests: list[TestCase], files: dict[str, str],
                 rel: str, qualname: str, user_tests: bool, stop: CancelToken | None,
                 cancel: CancelToken | None,
                 on_pass: Callable[[Candidate], None] | None = None) -> None:
        """``files``: sandbox-only files beside the candidate's file ``rel``; ``stop``: the
        generation to cancel when a candidate passes (None: no early exit); ``cancel``: the
        request's own token; ``on_pass``: told (on the test thread) of each candidate that
        passes every user test, the moment its run ends."""
        self.sandbox, self.tests, self.files = sandbox, tests, files
        self.rel, self.qualname = rel, qualname
        self.user_tests, self.stop, self.on_pass = user_tests, stop, on_pass
        self.solved = threading.Event()
        self._cancel = CancelToken(cancel)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plancode-tests")
        self._futures: list[Future[RunResult]] = []

    def testable(self, cand: Candidate) -> bool:
        """Whether there are tests and ``cand`` has code to run them on."""
        return bool(self.tests) and not cand.error and cand.spliced_text is not None

    def submit(self, cand: Candidate) -> None:
        """Start testing ``cand`` (nothing happens when it is not :meth:`testable`)."""
        if not self.testable(cand):
            return
        fut = self._pool.submit(run_checks, self.sandbox,
                                {**self.files, self.rel: cand.spliced_text}, self.tests,
                                self._cancel, (self.rel, self.qualname))
        fut.add_done_callback(lambda f, c=cand: self._on_tested(c, f))
        self._futures.append(fut)

    def wait_all(self) -> None:
        for fut in self._futures:
            _wait(fut)

    def wait_last(self) -> None:
        if self._futures:
            _wait(self._futures[-1])

    def close(self) -> None:
        """Stop what is left (a passing candidate makes the rest moot) and join the thread."""
        if self.solved.is_set():
            self._cancel.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _on_tested(self, cand: Candidate, fut: Future[RunResult]) -> None:
        _attach(cand, fut)
        if self.user_tests and cand.run is not None and cand.run.all_passed:
            self.solved.set()
            if self.stop is not None:
                self.stop.cancel()
            if self.on_pass is not None:
                self.on_pass(cand)


def _attach(cand: Candidate, fut: Future[RunResult]) -> None:
    if not fut.cancelled() and fut.exception() is None:
        cand.run = fut.result()
    elif fut.exception() is not None:
        cand.error = f"test run failed: {fut.exception()}"


def _wait(fut: Future[RunResult]) -> None:
    with contextlib.suppress(Exception):  # a failure is recorded on the candidate by _attach
        fut.result()
