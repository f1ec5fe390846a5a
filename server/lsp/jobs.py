"""Verified implementations running in the background, one at a time, cached per function.

A job is keyed by the function's content (its problem text and context) and the settings that
shape the result, so the inline completion can say "not ready yet, here is the fast FIM
suggestion" on one keystroke and serve the verified body on the next, and re-running the code
action on an unchanged function answers from the cache.

A job runs within the ``editor_budget`` setting. With weak tests its first answer that passes
them is offered while the search goes on (``Job.answer``, told to ``answer_listeners``); the
user may accept it (:meth:`Jobs.accept`): the search stops and that answer is the job's result.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from plancode.analysis.functions import FunctionInfo
from plancode.config import Settings
from plancode.engine.types import CancelToken
from plancode.lsp.models import ModelManager
from plancode.pipeline import Pipeline, PipelineResult
from plancode.progress import Event, Listener

log = logging.getLogger(__name__)


@dataclass
class Job:
    key: str
    uri: str
    function: str
    future: Future
    cancel: CancelToken
    listeners: list[Listener] = field(default_factory=list)
    answer: PipelineResult | None = None  # the answer offered before the final one
    answer_listeners: list[Callable[[PipelineResult], None]] = field(default_factory=list)
    accepted: bool = False  # the user took ``answer``: the search stopped there

    def emit(self, event: str, data: dict) -> None:
        for listener in list(self.listeners):
            try:
                listener(event, data)
            except Exception:  # a listener must never break the job
                log.exception("progress listener failed")

    def offer(self, result: PipelineResult) -> None:
        """An answer before the final one (on the pipeline's test thread)."""
        self.answer = result
        for listener in list(self.answer_listeners):
            try:
                listener(result)
            except Exception:
                log.exception("answer listener failed")


def job_key(path: Path, info: FunctionInfo, settings: Settings) -> str:
    parts = [str(path), info.qualname, info.problem, info.context, str(settings.candidates),
             str(settings.seed), settings.model, str(settings.max_tokens)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


class Jobs:
    """Runs pipelines on one worker thread with the background engine."""

    def __init__(self, models: ModelManager) -> None:
        self.models = models
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plancode-implement")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self.last: PipelineResult | None = None

    def get(self, key: str) -> Job | None:
        with self._lock:
            return self._jobs.get(key)

    def start(self, key: str, uri: str, path: Path, line: int, source: str, info: FunctionInfo,
              settings: Settings, listener: Listener | None = None) -> Job:
        """The job for ``key``: the cached or running one, else a new one."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and not (job.future.done() and (
                    job.future.cancelled() or job.future.exception() is not None)):
                if listener is not None:
                    job.listeners.append(listener)
                return job
            cancel = CancelToken()
            job = Job(key, uri, info.qualname, Future(), cancel,
                      [listener] if listener else [])
            job.future = self._pool.submit(self._run, job, path, line, source, settings)
            self._jobs[key] = job
            return job

    def _run(self, job: Job, path: Path, line: int, source: str,
             settings: Settings) -> PipelineResult:
        job.emit(Event.LOADING, {})
        engine = self.models.background()
        result = Pipeline(engine, settings).run(path, line, source=source, cancel=job.cancel,
                                                progress=job.emit,
                                                budget=settings.editor_budget,
                                                on_update=job.offer)
        if job.accepted and job.answer is not None:
            result = job.answer
            result.final = True
            result.change = "accepted before the search finished"
        elif job.cancel.cancelled:
            raise CancelledJob()
        self.last = result
        return result

    def accept(self, uri: str) -> Job | None:
        """Take the answer offered by the running job on ``uri``: the search stops and that
        answer becomes the job's result. None when no job there has an answer to take."""
        with self._lock:
            job = next((j for j in self._jobs.values() if j.uri == uri and
                        j.answer is not None and not j.future.done()), None)
        if job is not None:
            job.accepted = True
            job.cancel.cancel()
        return job

    def cancel(self, key: str) -> None:
        with self._lock:
            job = self._jobs.pop(key, None)
        if job is not None:
            job.cancel.cancel()
            job.future.cancel()

    def cancel_all(self) -> None:
        with self._lock:
            keys = list(self._jobs)
        for key in keys:
            self.cancel(key)

    def shutdown(self) -> None:
        self.cancel_all()
        self._pool.shutdown(wait=False, cancel_futures=True)


class CancelledJob(Exception):
    """The job was cancelled; its partial result is not cached."""
