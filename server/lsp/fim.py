"""Inline (fill-in-the-middle) completion: one request from cursor to trimmed suggestion.

The pieces live in small modules and are re-exported here, the one import the server needs:

* :mod:`server.lsp.fim_context` -- ``FimRequest`` and ``build_request`` (the window around the
  cursor, snapped so consecutive keystrokes share the prompt's head and reuse the KV cache);
* :mod:`server.lsp.stops` -- ``stop_strings`` and ``trim`` (where a suggestion ends);
* :mod:`server.lsp.inline_cache` -- ``SuggestionCache`` (exact and typed-ahead hits).

The FIM prompt format itself belongs to the engine and :mod:`server.prompts`; with a model
that has no FIM tokens the engine continues the prefix, and the same trimming applies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from server.engine.types import CancelToken, Generation, SamplingParams
from server.lsp.fim_context import FimRequest, build_request
from server.lsp.inline_cache import SuggestionCache
from server.lsp.stops import stop_strings, trim

__all__ = [
    "FimEngine",
    "FimRequest",
    "FimResult",
    "SuggestionCache",
    "build_request",
    "complete_fim",
    "stop_strings",
    "trim",
]


class FimEngine(Protocol):
    """The one engine call inline completion needs (any :class:`server.engine.Engine` has it)."""

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
    """

    text: str
    cached: bool
    generation: Generation | None
    seconds: float


def complete_fim(
    engine: FimEngine,
    req: FimRequest,
    cache: SuggestionCache | None,
    max_tokens: int = 96,
    cancel: CancelToken | None = None,
) -> FimResult:
    """The trimmed suggestion for ``req``: from ``cache`` when it knows one, else the model.

    Greedy decoding (the same text gives the same suggestion, which is what makes caching
    sound), the request's stop strings, then :func:`trim`. When decoding ran out of tokens or
    was cancelled, the last line is unfinished and is dropped before trimming. A cancelled
    result is not cached: it is partial, and the next request at this spot should run fully.
    """
    start = time.perf_counter()
    if cache is not None:
        hit = cache.get(req)
        if hit is not None:
            return FimResult(hit, True, None, time.perf_counter() - start)
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, stop=stop_strings(req))
    gen = engine.fim(req.prefix, req.suffix, params, cancel)
    raw = gen.text
    if gen.finish_reason in ("length", "cancelled") and "\n" in raw:
        raw = raw[: raw.rfind("\n")]
    text = trim(req, raw)
    cancelled = gen.finish_reason == "cancelled" or (cancel is not None and cancel.cancelled)
    if cache is not None and not cancelled:
        cache.put(req, text)
    return FimResult(text, False, gen, time.perf_counter() - start)
