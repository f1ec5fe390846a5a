"""Inline (fill-in-the-middle) completion: one request from cursor to trimmed suggestion.

The pieces live in small modules and are re-exported here, the one import the server needs:

* :mod:`plancode.lsp.fim_context` -- ``FimRequest`` and ``build_request`` (the window around the
  cursor, snapped so consecutive keystrokes share the prompt's head and reuse the KV cache);
* :mod:`plancode.lsp.stops` -- ``stop_strings`` and ``trim`` (where a suggestion ends);
* :mod:`plancode.lsp.inline_cache` -- ``SuggestionCache`` (exact and typed-ahead hits).

:func:`complete_fim` answers first and finishes later: a multi-line suggestion is answered
with its first whole lines once a wall-clock budget has passed (llama.vim's
``t_max_predict_ms``), and the rest is decoded in the same call and lands in the cache.

The FIM prompt format itself belongs to the engine and :mod:`plancode.prompts`; with a model
that has no FIM tokens the engine continues the prefix, and the same trimming applies.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from plancode.engine.types import CancelToken, Generation, SamplingParams
from plancode.lsp.fim_context import FimRequest, build_request
from plancode.lsp.inline_cache import SuggestionCache
from plancode.lsp.stops import stop_strings, trim

__all__ = [
    "FimEngine",
    "FimRequest",
    "FimResult",
    "SuggestionCache",
    "build_request",
    "complete_fim",
    "stop_strings",
    "trim",
    "whole_lines",
]


class FimEngine(Protocol):
    """The one engine call inline completion needs (any :class:`plancode.engine.Engine` has it)."""

    def fim(
        self,
        prefix: str,
        suffix: str,
        params: SamplingParams,
        cancel: CancelToken | None = None,
    ) -> Generation: ...


@dataclass
class FimResult:
    """A suggestion (possibly '') and where it came from.

    ``generation`` is the engine's accounting (evaluated vs reused prompt tokens, timings);
    it is None when the cache answered. ``seconds`` is the wall time of the whole call.
    ``complete`` is False when a newer keystroke cancelled the generation (the text then
    holds the whole lines decoded before that).
    """

    text: str
    cached: bool
    generation: Generation | None
    seconds: float
    complete: bool = True


Answer = Callable[[str, Generation], None]


class _LineWatcher:
    """Follows a multi-line generation token by token (the engine's ``on_progress``).

    * **Answer first**: once the budget has passed and the whole lines decoded so far make a
      non-empty suggestion, ``answer`` gets it (once); the generation goes on.
    * **Finish later**: every further whole line is trimmed and put in the cache, so a
      request that types into the suggestion gets the longer text as soon as it exists.
    * **Stop when final**: when a new non-blank line does not make the trimmed suggestion
      longer, a stop rule cut it there (the block dedented, the code below resumed...):
      nothing later can change it, so the generation is stopped.
    """

    def __init__(self, req: FimRequest, cache: SuggestionCache | None, budget: float,
                 answer: Answer | None, stop: CancelToken, origin: str) -> None:
        self.req, self.cache, self.budget, self.answer = req, cache, budget, answer
        self.stop, self.origin = stop, origin
        self.start = time.perf_counter()
        self.lines = 0  # whole lines seen
        self.best = ""  # the trimmed suggestion of the whole lines so far
        self.answered = False
        self.final = False

    def __call__(self, gen: Generation) -> None:
        text = gen.text
        lines = text.count("\n")
        if lines > self.lines:
            whole = text[: text.rfind("\n")]
            newest = whole[whole.rfind("\n") + 1 :] if lines > 1 else whole
            trimmed = trim(self.req, whole)
            if newest.strip() and trimmed == self.best and self.best:
                self.final = True
                self.stop.cancel()
            self.lines, self.best = lines, trimmed
            if self.answered and self.cache is not None and trimmed:
                self.cache.put(self.req, trimmed, self.origin)
        if (not self.answered and self.best and self.answer is not None
                and time.perf_counter() - self.start >= self.budget):
            self.answered = True
            if self.cache is not None:
                self.cache.put(self.req, self.best, self.origin)
            self.answer(self.best, gen)


def whole_lines(text: str) -> str:
    """``text`` without its unfinished last line ('' when no line is finished)."""
    return text[: text.rfind("\n")] if "\n" in text else ""


def complete_fim(
    engine: FimEngine,
    req: FimRequest,
    cache: SuggestionCache | None,
    max_tokens: int = 96,
    cancel: CancelToken | None = None,
    *,
    budget: float = 0.0,
    answer: Answer | None = None,
    extra: Sequence[tuple[str, str]] = (),
    origin: str = "model",
) -> FimResult:
    """The trimmed suggestion for ``req``: from ``cache`` when it knows one, else the model.

    Greedy decoding (the same text gives the same suggestion, which is what makes caching
    sound), the request's stop strings, then :func:`trim`. When decoding ran out of tokens or
    was cancelled, the last line is unfinished and is dropped before trimming.

    With ``answer`` (and an engine that reports progress), a multi-line suggestion is answered
    first and finished later: ``answer`` gets the whole lines decoded once ``budget`` seconds
    have passed (the first line as soon as it is done, when that is later), and decoding goes
    on in this call, updating the cache line by line. A result cancelled before it answered
    is not cached (it is partial; the next request at this spot should run fully); one
    cancelled after it answered keeps the whole lines the user may already be typing into.
    ``extra`` is other files' text for the engine (see ``LlamaEngine.fim``); ``origin`` tags
    the cache entry (``model`` or ``prefetch``).
    """
    start = time.perf_counter()
    if cache is not None:
        hit = cache.get(req)
        if hit is not None:
            return FimResult(hit, True, None, time.perf_counter() - start)
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, stop=stop_strings(req))
    kwargs: dict[str, Any] = {}
    watcher: _LineWatcher | None = None
    inner = CancelToken(parent=cancel)
    if _takes(engine, "on_progress"):
        if req.multiline:
            watcher = _LineWatcher(req, cache, budget, answer, inner, origin)
            kwargs["on_progress"] = watcher
        if extra and _takes(engine, "extra"):
            kwargs["extra"] = tuple(extra)
    prefix = req.prefix
    if _takes(engine, "middle") and req.line_prefix and prefix.endswith(req.line_prefix):
        prefix = prefix[: len(prefix) - len(req.line_prefix)]  # the cursor line goes after
        kwargs["middle"] = req.line_prefix  # the middle token: typing on it only appends
    gen = engine.fim(prefix, req.suffix, params, inner, **kwargs)
    raw = gen.text
    if gen.finish_reason in ("length", "cancelled") and "\n" in raw:
        raw = raw[: raw.rfind("\n")]
    text = trim(req, raw)
    final = watcher is not None and watcher.final
    cancelled = not final and (gen.finish_reason == "cancelled"
                               or (cancel is not None and cancel.cancelled))
    if final:
        gen.finish_reason = "stop"
    answered = watcher is not None and watcher.answered
    if cache is not None and (not cancelled or (answered and text)):
        cache.put(req, text, origin)
    return FimResult(text, False, gen, time.perf_counter() - start, not cancelled)


def _takes(engine: object, name: str) -> bool:
    """Whether ``engine.fim`` accepts keyword ``name`` (the in-process engine does)."""
    try:
        return name in inspect.signature(engine.fim).parameters  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return False
