"""The keystroke state of ghost text, in one object: :class:`InlineCompleter`.

It holds the FIM worker (one thread: the interactive engine runs one generation at a time),
the suggestion cache, the counters ``plancode/stats`` reports, the per-document request
tokens, the typing rhythm behind the adaptive debounce, and the other-files context ring.

One request, in order:

1. **Cache first, on the event loop.** An exact or typed-ahead hit answers at once, without
   the hop to the worker thread; a generation still finishing in the background (the rest of
   a block, a prefetch) is left running: a keystroke that types into a suggestion still leads
   where that work is going.
2. **Cancel.** A miss cancels whatever the worker is running (the engine stops within one
   token), and a newer request on the same document cancels an older one still waiting.
3. **Debounce** (:mod:`plancode.lsp.debounce`): during a burst of fast keystrokes, wait about
   one typing interval for the next one before starting the model.
4. **Answer first, finish later** (:func:`plancode.lsp.fim.complete_fim`): a block is answered
   with its first whole lines once the budget has passed; the rest is decoded in the
   background and lands in the cache.
5. **Settle**: KV cells the engine moved (approximate) are recomputed exactly, 16 tokens at
   a time, progress kept (:meth:`LlamaEngine.settle`).
6. **Prefetch** (llama.vim's speculative FIM): once a suggestion is complete, the worker
   computes the suggestion for the position after it, as if it had been accepted, so the
   keystroke that finishes typing (or accepting) it is answered from the cache. The next
   keystroke that needs the model cancels it (and the settling).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from plancode.config import Settings
from plancode.engine.types import CancelToken, Engine, Generation
from plancode.lsp.context_ring import ContextRing
from plancode.lsp.debounce import TypingRhythm
from plancode.lsp.fim import FimRequest, FimResult, SuggestionCache, build_request, complete_fim
from plancode.lsp.fim_context import split_lines

log = logging.getLogger(__name__)

SETTLE_CHUNK = 16  # moved KV cells recomputed this many at a time: a keystroke waits <= this


@dataclass
class InlineStats:
    """Counters for ``plancode/stats`` (benchmarks and status bars)."""

    inline_requests: int = 0
    inline_cache_hits: int = 0
    evaluated_tokens_total: int = 0  # prompt tokens the requests' own model calls evaluated
    answered_early: int = 0  # answered before their generation ended (the rest followed)
    debounced: int = 0  # superseded while waiting in the debounce: the model never ran
    cancelled: int = 0  # model calls a newer keystroke cancelled before they answered
    prefetches: int = 0  # speculative suggestions started
    prefetches_cancelled: int = 0
    background_evaluated_tokens: int = 0  # prompt tokens of prefetches and warm-ups
    warmups: int = 0  # suggestions computed where the cursor rests (plancode/cursor)
    settled_tokens: int = 0  # moved cache cells recomputed exactly in spare time
    last_fim: dict[str, Any] | None = None


def accepted(text: str, line: int, col: int, suggestion: str) -> tuple[str, int, int]:
    """The document and cursor (line, code-point column) after ``suggestion`` is accepted at
    ``line``/``col`` (the document's own line breaks are kept)."""
    lines = split_lines(text)
    offset, index = 0, 0
    for i in range(line):  # walk the real line breaks (\r\n, \r or \n) up to the cursor line
        index = offset + len(lines[i])
        offset = index + (2 if text.startswith("\r\n", index) else 1)
    cut = offset + col
    new_text = text[:cut] + suggestion + text[cut:]
    added = suggestion.split("\n")
    if len(added) == 1:
        return new_text, line, col + len(suggestion)
    return new_text, line + len(added) - 1, len(added[-1])


class InlineCompleter:
    """Ghost text for one language server: cache, worker, cancellation, budget, prefetch."""

    def __init__(self, engine: Callable[[], Engine | None],
                 settings: Callable[[], Settings]) -> None:
        self._engine = engine
        self._settings = settings
        self.cache = SuggestionCache()
        self.stats = InlineStats()
        self.rhythm = TypingRhythm()
        self.context = ContextRing()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plancode-fim")
        self._lock = threading.Lock()
        self._waiting: dict[str, CancelToken] = {}  # per document: the request not answered
        self._running: CancelToken | None = None  # what the worker runs after answering
        self._pending = 0  # requests queued for the worker, not started yet
        self._last: tuple[str, str, int] | None = None  # (uri, text, line) of the last request
        self._life = CancelToken()  # the parent of every token: forget() and shutdown() cancel it

    # -- the request ------------------------------------------------------------------------
    async def suggest(self, uri: str, text: str, line: int, col: int) -> str | None:
        """The suggestion at ``line``/``col`` (code points) of ``text``, or None."""
        settings = self._settings()
        self.stats.inline_requests += 1
        self.rhythm.observe(uri, time.monotonic())
        self._moved_to(uri, text, line)
        token = self._supersede(uri)
        req = build_request(text, line, col)
        start = time.perf_counter()
        hit = self.cache.get(req)
        if hit is not None:
            self._record(FimResult(hit, True, None, time.perf_counter() - start))
            return hit
        engine = self._engine()
        if engine is None:
            return None
        self._cancel_running()
        delay = self.rhythm.delay(uri, settings.inline_debounce_ms)
        if delay > 0:
            await asyncio.sleep(delay)
            if token.cancelled:
                self.stats.debounced += 1
                return None
        extra = self.context.extra(uri, req) if settings.inline_context else ()
        answer: Future[FimResult] = Future()
        job = self._submit(self._work, engine, req, token, answer, settings, extra,
                           (uri, text, line, col))
        job.add_done_callback(_log_failure)
        try:
            result = await asyncio.wrap_future(answer)
        except asyncio.CancelledError:  # the client cancelled the request
            token.cancel()
            raise
        if not result.complete or not result.text:
            return None  # superseded (a partial text is not an answer) or nothing to offer
        return result.text

    def _supersede(self, uri: str) -> CancelToken:
        """A token for a new request on ``uri``; an older one still waiting is cancelled."""
        token = CancelToken(parent=self._life)
        with self._lock:
            old = self._waiting.get(uri)
            self._waiting[uri] = token
        if old is not None:
            old.cancel()
        return token

    def _answered(self, uri: str, token: CancelToken) -> None:
        """The request answered: a newer one on its document no longer cancels it."""
        with self._lock:
            if self._waiting.get(uri) is token:
                del self._waiting[uri]

    def _cancel_running(self) -> None:
        with self._lock:
            running, self._running = self._running, None
        if running is not None:
            running.cancel()

    def _submit(self, *job: Any) -> Future[None]:
        """Queue a request's work on the worker. Counted as pending until it starts, so the
        work before it in the queue never claims the worker for background work (settling,
        a prefetch) the request would then wait behind; whatever background work already
        runs is cancelled (it may have started during the debounce)."""
        with self._lock:
            self._pending += 1
            running, self._running = self._running, None
        if running is not None:
            running.cancel()
        return self._pool.submit(*job)

    # -- the worker -------------------------------------------------------------------------
    def _work(self, engine: Engine, req: FimRequest, token: CancelToken,
              answer: Future[FimResult], settings: Settings, extra: tuple[tuple[str, str], ...],
              where: tuple[str, str, int, int]) -> None:
        """Runs on the FIM thread: the suggestion (answered as soon as it may be), then a
        prefetch for the position after it."""
        uri = where[0]
        with self._lock:
            self._pending -= 1
        if token.cancelled:
            self.stats.debounced += 1
            answer.set_result(FimResult("", False, None, 0.0, False))
            return
        start = time.perf_counter()

        def early(text: str, gen: Generation) -> None:
            self._answered(uri, token)
            with self._lock:  # from now on only a keystroke that misses the cache stops it
                self._running = token
            self.stats.answered_early += 1
            result = FimResult(text, False, gen, time.perf_counter() - start)
            self._record(result)
            answer.set_result(result)

        try:
            result = complete_fim(engine, req, self.cache, settings.inline_max_tokens, token,
                                  budget=settings.inline_budget_ms / 1000, answer=early,
                                  extra=extra)
        except BaseException as exc:
            if not answer.done():
                answer.set_exception(exc)
            raise
        if not answer.done():
            self._answered(uri, token)
            if not result.complete:
                self.stats.cancelled += 1
            self._record(result)
            answer.set_result(result)
        with self._lock:
            if self._running is token:
                self._running = None
        # settle first: a prefetch's prompt holds the suggestion, and settling after it
        # would fit the moved cells to text the user has not typed
        self._settle(engine)
        if (settings.inline_prefetch and result.complete and result.text
                and not token.cancelled):
            self._prefetch(engine, where[1:], result.text, settings, extra)

    def _prefetch(self, engine: Engine, where: tuple[str, int, int], suggestion: str,
                  settings: Settings, extra: tuple[tuple[str, str], ...]) -> None:
        """The suggestion after ``suggestion`` is accepted, into the cache (cancellable)."""
        result = self._background_fim(engine, build_request(*accepted(*where, suggestion)),
                                      settings, extra, "prefetches")
        if result is not None and not result.complete:
            self.stats.prefetches_cancelled += 1

    def _background_fim(self, engine: Engine, req: FimRequest, settings: Settings,
                        extra: tuple[tuple[str, str], ...], counter: str) -> FimResult | None:
        """The suggestion for ``req`` into the cache while the worker is idle (cancellable by
        the next keystroke), counted in ``stats.<counter>``; None when it did not run."""
        if self.cache.contains(req) or self._life.cancelled:
            return None
        with self._idle_worker() as token:
            if token is None:
                return None
            setattr(self.stats, counter, getattr(self.stats, counter) + 1)
            result = complete_fim(engine, req, self.cache, settings.inline_max_tokens, token,
                                  extra=extra, origin="prefetch")
        if result.generation is not None:
            self.stats.background_evaluated_tokens += result.generation.evaluated_tokens
        return result

    def warm(self, uri: str, text: str, line: int, col: int) -> bool:
        """The cursor rests at ``line``/``col`` of ``text`` (the editor says so before any
        keystroke): compute the suggestion there in the background, so the first keystroke
        finds the file's prompt in the KV cache instead of evaluating all of it (2-3.5 s on
        2 cores), and often its suggestion in the cache. Only when the worker is idle;
        the next keystroke that needs the model cancels it. True when it was queued."""
        settings = self._settings()
        engine = self._engine()
        if engine is None or not settings.inline_prefetch or self._life.cancelled:
            return False
        req = build_request(text, line, col)
        if self.cache.contains(req):
            return False
        extra = self.context.extra(uri, req) if settings.inline_context else ()
        self._pool.submit(self._background_fim, engine, req, settings, extra,
                          "warmups").add_done_callback(_log_failure)
        return True

    def _settle(self, engine: Engine) -> None:
        """Recompute the cache's moved (approximate) cells exactly while nothing else runs
        (:meth:`LlamaEngine.settle`), in small pieces that are kept: the next keystroke that
        needs the model stops it within one piece, and the next idle moment goes on."""
        settle = getattr(engine, "settle", None)
        if settle is None or not getattr(engine, "stale_tokens", 0) or self._life.cancelled:
            return
        with self._idle_worker() as token:
            if token is not None:
                self.stats.settled_tokens += settle(token, SETTLE_CHUNK)

    @contextmanager
    def _idle_worker(self) -> Iterator[CancelToken | None]:
        """Background work (prefetch, settle) claims the worker only when nothing else runs
        and no request waits for it: yields its cancel token (a keystroke that misses the
        cache cancels it), or None when the worker is wanted; released on the way out."""
        token = CancelToken(parent=self._life)
        with self._lock:
            busy = self._running is not None or self._pending > 0
            if not busy:
                self._running = token
        if busy:
            yield None
            return
        try:
            yield token
        finally:
            with self._lock:
                if self._running is token:
                    self._running = None

    # -- the context ring ---------------------------------------------------------------------
    def opened(self, uri: str, text: str) -> None:
        """A document was opened: its head joins the ring, its definitions are indexed."""
        self.context.add(uri, text, 0)
        self.context.index_definitions(uri, text)

    def saved(self, uri: str, text: str) -> None:
        """A document was saved: the chunk around the last edit in it joins the ring."""
        line = self._last[2] if self._last is not None and self._last[0] == uri else 0
        self.context.add(uri, text, line)
        self.context.index_definitions(uri, text)

    def closed(self, uri: str) -> None:
        self.context.drop(uri)

    def _moved_to(self, uri: str, text: str, line: int) -> None:
        """Leaving a document for another: the code around where the user was joins the ring
        (recently edited code is the likeliest to be used next)."""
        last = self._last
        self._last = (uri, text, line)
        if last is not None and last[0] != uri:
            self.context.add(*last)
            self.context.index_definitions(last[0], last[1])

    # -- accounting and state ----------------------------------------------------------------
    def _record(self, result: FimResult) -> None:
        """Account one request's answer (a cache hit evaluates nothing)."""
        gen = result.generation
        stats = self.stats
        if result.cached:
            stats.inline_cache_hits += 1
        evaluated = gen.evaluated_tokens if gen is not None else 0
        stats.evaluated_tokens_total += evaluated
        stats.last_fim = {
            "cached": result.cached,
            "evaluated_tokens": evaluated,
            "reused_tokens": gen.reused_tokens if gen is not None else 0,
            "prompt_tokens": gen.prompt_tokens if gen is not None else 0,
            "completion_tokens": gen.completion_tokens if gen is not None else 0,
            "seconds": round(result.seconds, 4),
        }

    def report(self) -> dict[str, Any]:
        """The counters, the cache's and the context ring's, as ``plancode/stats`` sends them."""
        return {**asdict(self.stats), "fim_cache": self.cache.stats(),
                "context": self.context.stats()}

    @property
    def busy(self) -> bool:
        """Whether the worker is finishing a suggestion or prefetching."""
        with self._lock:
            return self._running is not None

    def forget(self) -> None:
        """Drop the cache and stop all work, running or about to start (the model changed)."""
        with self._lock:
            life, self._life = self._life, CancelToken()
            self._waiting.clear()
            self._running = None
        life.cancel()
        self.cache = SuggestionCache()

    def shutdown(self) -> None:
        """Stop for good: nothing runs after this (the process can exit at once)."""
        with self._lock:
            self._running = None
        self._life.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _log_failure(job: Future) -> None:
    if not job.cancelled() and job.exception() is not None:
        log.error("inline completion failed", exc_info=job.exception())
