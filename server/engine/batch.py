"""Several candidates decoded as parallel sequences in one llama.cpp batch.

Decoding one sequence on a CPU is memory-bound: every token streams all the weights through
the cores to do a thin matrix-vector product. Decoding *k* sequences in one ``llama_decode``
call streams the weights once for k tokens, so k candidates cost much less than k times one.

How: the prompt is evaluated once as sequence 0; its KV cells are then shared with sequences
1..k-1 (``llama_memory_seq_cp``: with a unified KV cache the cells are tagged with more
sequence ids, not copied). :meth:`BatchDecoder.generate_each` instead gives every sequence a
prompt of its own (the teacher's plans for k different problems), each evaluated into its own
sequence. Then every step puts one token per unfinished sequence into a
``llama_batch`` (each with its own ``seq_id`` and position, logits requested) and samples each
sequence from its own row of logits (``llama_get_logits_ith``) with its own seeded
``TokenSampler``. Sequences stop independently (end-of-generation token, stop string,
``max_tokens``); the batch shrinks as they do.

The decoder has its own llama.cpp context on the engine's loaded model (weights are shared,
not loaded twice), so the engine's KV cache for inline completion is never disturbed; it
holds the engine's lock while it decodes, because both contexts run on the same cores.
"""

from __future__ import annotations

import ctypes
import threading
import time
import weakref
from collections.abc import Callable, Sequence

import llama_cpp
import numpy as np

from plancode.engine.llama_engine import LlamaEngine
from plancode.engine.sampler import TokenSampler
from plancode.engine.types import CancelToken, Generation, SamplingParams
from plancode.errors import PlancodeError
from plancode.prompts import Message

# a reply's guard: asked with the reply's text so far, True stops it
Stop = Callable[[str], bool] | None

# prompt tokens evaluated between two looks at the cancel token: one llama_decode cannot be
# stopped, and at 256 a chunk of the 1.5B's prompt took ~3.4 s on 2 cores, so a batch started
# near the deadline ran 2.2-2.8 s past the 55-s budget (held-out rows, heldout-escalate-v4);
# 64 is the engine's own prompt chunk (llama_engine.EVAL_CHUNK: 193-224 tok/s from 32 to 512)
PROMPT_CHUNK = 64


class BatchDecoder:
    """Decodes up to ``n_seq`` sequences that share one prompt, in one batch per step."""

    def __init__(self, engine: LlamaEngine, n_seq: int = 4, n_ctx: int | None = None) -> None:
        if n_seq < 1:
            raise PlancodeError(f"n_seq must be at least 1 (got {n_seq})",
                                "ask for one or more sequences")
        self.engine = engine
        self.n_seq = n_seq
        # the engine's loaded Llama, its lock and its stop-token lookup (LlamaEngine internals,
        # read in one place: the engine's KV-cache code is not touched from here)
        self._llm, self._lock, self._stop_ids = engine._llm, engine._lock, engine._stop_tokens
        llm = self._llm
        self._model = llm._model
        self._vocab = self._model.vocab
        self._n_vocab = llm.n_vocab()
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx or engine.n_ctx * 2
        params.n_batch = max(PROMPT_CHUNK, n_seq)
        params.n_ubatch = max(PROMPT_CHUNK, n_seq)
        params.n_seq_max = n_seq
        params.kv_unified = True  # one cache: the prompt's cells are shared, not copied
        params.n_threads = llm.context_params.n_threads
        params.n_threads_batch = llm.context_params.n_threads_batch
        params.no_perf = True
        ctx = llama_cpp.llama_init_from_model(self._model.model, params)
        if ctx is None:
            raise PlancodeError("llama.cpp could not create a batch context",
                                "lower n_ctx or the number of parallel candidates")
        self._ctx = ctx
        self.n_ctx = params.n_ctx
        self._memory = llama_cpp.llama_get_memory(ctx)
        self._batch = llama_cpp.llama_batch_init(max(PROMPT_CHUNK, n_seq), 0, n_seq)

    def close(self) -> None:
        """Free the batch and the context (the model stays with the engine)."""
        if self._ctx is not None:
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)
            self._ctx = None

    def __del__(self) -> None:
        self.close()

    # -- batch filling ---------------------------------------------------------------------

    def _fill(self, items: Sequence[tuple[int, int, int, bool]]) -> None:
        """Put (token, position, seq_id, wants_logits) items into the batch."""
        b = self._batch
        b.n_tokens = len(items)
        for i, (token, pos, seq, logits) in enumerate(items):
            b.token[i] = token
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = logits

    def _decode(self) -> None:
        code = llama_cpp.llama_decode(self._ctx, self._batch)
        if code != 0:
            raise PlancodeError(f"llama_decode failed in a batch (code {code})",
                                "lower the number of parallel candidates or max_tokens")

    def _logits(self, i: int) -> np.ndarray:
        ptr = llama_cpp.llama_get_logits_ith(self._ctx, i)
        return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)),
                                     shape=(self._n_vocab,)).copy()

    # -- generation ------------------------------------------------------------------------

    def chat(self, messages: list[Message], params: Sequence[SamplingParams],
             cancel: CancelToken | None = None, stops: Sequence[Stop] | None = None
             ) -> list[Generation]:
        """One reply per entry of ``params`` (greedy or seeded), all to ``messages``;
        ``stops``: per reply, a guard asked with its text at each new line (True stops that
        reply alone, as the single-sequence path's guard does, and frees its row of the
        batch)."""
        prompt = self.engine.info.render_chat(messages)
        return self.generate(self.engine.tokenize(prompt, special=True), params, cancel, stops)

    def generate(self, tokens: list[int], params: Sequence[SamplingParams],
                 cancel: CancelToken | None = None, stops: Sequence[Stop] | None = None
                 ) -> list[Generation]:
        k = len(params)
        if not 1 <= k <= self.n_seq:
            raise PlancodeError(f"{k} sequences asked of a decoder made for {self.n_seq}",
                                "make the BatchDecoder with n_seq >= the candidates")
        budget = max(p.max_tokens for p in params)
        if len(tokens) + budget >= self.n_ctx:
            raise PlancodeError(
                f"prompt of {len(tokens)} tokens + {budget} new does not fit the batch "
                f"context of {self.n_ctx}", "shorten the input or lower max_tokens")
        if stops is not None and len(stops) != k:
            raise PlancodeError(f"{len(stops)} stop guards for {k} sequences",
                                "give one guard (or None) per sequence")
        with self._lock:
            return self._generate(tokens, list(params), cancel, stops)

    def generate_each(self, prompts: Sequence[list[int]], params: Sequence[SamplingParams],
                      cancel: CancelToken | None = None) -> list[Generation]:
        """One generation per (prompt, params) pair, the prompts different: each is evaluated
        into a sequence of its own, then all are decoded together, one batch per step."""
        k = len(prompts)
        if k != len(params) or not 1 <= k <= self.n_seq:
            raise PlancodeError(f"{k} prompts with {len(params)} settings asked of a decoder "
                                f"made for {self.n_seq}",
                                "give one SamplingParams per prompt, at most n_seq of them")
        need = sum(len(t) + p.max_tokens for t, p in zip(prompts, params, strict=True))
        if need >= self.n_ctx:
            raise PlancodeError(f"{k} prompts + their new tokens need {need} cells; the batch "
                                f"context holds {self.n_ctx}",
                                "make the BatchDecoder with a larger n_ctx or batch fewer")
        with self._lock:
            return self._generate_each([list(t) for t in prompts], list(params), cancel)

    def _prefill(self, tokens: list[int], seq: int, cancel: CancelToken | None) -> bool:
        """Evaluate ``tokens`` into sequence ``seq`` (positions from 0), in chunks; False when
        cancelled between chunks. The last token's logits are left in the batch's last row."""
        n = len(tokens)
        for at in range(0, n, PROMPT_CHUNK):
            if cancel is not None and cancel.cancelled:
                return False
            chunk = tokens[at:at + PROMPT_CHUNK]
            self._fill([(t, at + j, seq, at + j == n - 1) for j, t in enumerate(chunk)])
            self._decode()
        return True

    def _generate(self, tokens: list[int], params: list[SamplingParams],
                  cancel: CancelToken | None, stops: Sequence[Stop] | None = None
                  ) -> list[Generation]:
        start = time.perf_counter()
        llama_cpp.llama_memory_clear(self._memory, True)
        n = len(tokens)
        if not self._prefill(tokens, 0, cancel):
            return [Generation("", "cancelled", n, 0, 0, 0) for _ in params]
        first = self._logits(self._batch.n_tokens - 1)
        for seq in range(1, len(params)):
            llama_cpp.llama_memory_seq_cp(self._memory, 0, seq, -1, -1)
        prompt_seconds = time.perf_counter() - start
        gens = [Generation("", "length", n, n, 0, 0, prompt_seconds=prompt_seconds)
                for _ in params]
        return self._decode_all(gens, params, [n] * len(params),
                                {s: first for s in range(len(params))}, cancel, stops)

    def _generate_each(self, prompts: list[list[int]], params: list[SamplingParams],
                       cancel: CancelToken | None) -> list[Generation]:
        start = time.perf_counter()
        llama_cpp.llama_memory_clear(self._memory, True)
        first: dict[int, np.ndarray] = {}
        for seq, tokens in enumerate(prompts):
            if not self._prefill(tokens, seq, cancel):
                return [Generation("", "cancelled", len(t), 0, 0, 0) for t in prompts]
            first[seq] = self._logits(self._batch.n_tokens - 1)
        prompt_seconds = time.perf_counter() - start
        gens = [Generation("", "length", len(t), len(t), 0, 0, prompt_seconds=prompt_seconds)
                for t in prompts]
        return self._decode_all(gens, params, [len(t) for t in prompts], first, cancel)

    def _decode_all(self, gens: list[Generation], params: list[SamplingParams],
                    starts: list[int], logits: dict[int, np.ndarray],
                    cancel: CancelToken | None, stops: Sequence[Stop] | None = None
                    ) -> list[Generation]:
        """Decode every sequence from its first logits, one batch per step, until each
        stops; sequence ``s``'s new tokens go at positions ``starts[s]`` on."""
        guards = list(stops) if stops is not None else [None] * len(params)
        samplers = [TokenSampler(p) for p in params]
        stop_ids = [self._stop_ids(p.stop) for p in params]
        outs: list[list[int]] = [[] for _ in params]
        raws = [b"" for _ in params]
        active = list(range(len(params)))
        decode_start = time.perf_counter()
        while active:
            if cancel is not None and cancel.cancelled:
                for s in active:
                    gens[s].finish_reason = "cancelled"
                break
            step: list[tuple[int, int, int, bool]] = []
            for s in list(active):
                token, logprob = samplers[s].pick(logits[s])
                if token in stop_ids[s] or llama_cpp.llama_vocab_is_eog(self._vocab, token):
                    gens[s].finish_reason = "stop"
                    gens[s].end_token, gens[s].end_logprob = token, logprob
                    active.remove(s)
                    continue
                outs[s].append(token)
                gens[s].logprobs.append(logprob)
                piece = self._llm.detokenize([token])
                raws[s] += piece
                if self._stopped(gens[s], raws[s], params[s]):
                    active.remove(s)
                    continue
                guard = guards[s]
                if (guard is not None and b"\n" in piece
                        and guard(raws[s].decode("utf-8", errors="ignore"))):
                    gens[s].finish_reason = "stop"  # the guard's candidate says why
                    active.remove(s)
                    continue
                if len(outs[s]) >= params[s].max_tokens:
                    gens[s].finish_reason = "length"
                    active.remove(s)
                    continue
                step.append((token, starts[s] + len(outs[s]) - 1, s, True))
            if not step:
                break
            self._fill(step)
            self._decode()
            logits = {seq: self._logits(i) for i, (_, _, seq, _) in enumerate(step)}
        seconds = time.perf_counter() - decode_start
        for s, gen in enumerate(gens):
            if not gen.text:
                gen.text = raws[s].decode("utf-8", errors="ignore")
            gen.completion_tokens = len(outs[s])
            gen.tokens = outs[s]
            gen.decode_seconds = seconds
        return gens

    @staticmethod
    def _stopped(gen: Generation, raw: bytes, params: SamplingParams) -> bool:
        text = raw.decode("utf-8", errors="ignore")
        hits = [i for i in (text.find(s) for s in params.stop if s) if i >= 0]
        if hits:
            gen.text = text[:min(hits)]
            gen.finish_reason = "stop"
            return True
        return False


_DECODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_DECODERS_LOCK = threading.Lock()


def decoder_for(engine: object, n_seq: int) -> BatchDecoder | None:
    """A batch decoder on ``engine``'s model with room for ``n_seq`` sequences (kept with the
    engine and reused), or None when the engine is not an in-process llama.cpp engine."""
    if not isinstance(engine, LlamaEngine):
        return None
    with _DECODERS_LOCK:
        dec = _DECODERS.get(engine)
        if dec is None or dec.n_seq < n_seq:
            if dec is not None:
                dec.close()
            dec = BatchDecoder(engine, n_seq=n_seq)
            _DECODERS[engine] = dec
        return dec
