"""In-process llama.cpp engine: chat, raw and fill-in-the-middle generation with KV reuse.

Every call keeps the longest prefix its prompt shares with what is already in the KV cache,
and also the cached chunks that reappear later in the prompt (moved to their new positions
with a RoPE shift, as llama-server's ``--cache-reuse`` does; :mod:`plancode.engine.kv_reuse`
plans it), and evaluates only the rest. A keystroke before the cursor in a fill-in-the-middle
prompt then evaluates the changed tokens, not the whole suffix after them. Each
:class:`Generation` reports how many prompt tokens were evaluated and how many reused.

Prompts are evaluated in small chunks and the cancel flag is checked between chunks and before
every decoded token, so a cancelled request stops within one token (or one chunk).

Greedy generations may use prompt-lookup decoding (``lookup_draft`` > 0): tokens copied from
the prompt or the reply so far (:mod:`plancode.engine.lookup`) are evaluated in one batch with
the token before them, and the longest prefix the model itself picks is kept; see
:meth:`LlamaEngine._decode`.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import llama_cpp
import numpy as np
from llama_cpp import Llama
from llama_cpp import _internals as llama_internals
from llama_cpp._utils import suppress_stdout_stderr

from plancode.engine.kv_reuse import MIN_CHUNK, ReusePlan, plan_reuse
from plancode.engine.lookup import DEFAULT_MAX_N, DEFAULT_MIN_N, NgramDrafter
from plancode.engine.model_info import ModelInfo
from plancode.engine.sampler import TokenSampler, log_softmax
from plancode.engine.token_healing import MAX_HEALED, PieceIndex, heal_step, mask, tokens_to_heal
from plancode.engine.types import CancelToken, Generation, OnText, SamplingParams
from plancode.errors import PlancodeError
from plancode.prompts import FimFormat, Message

# tokens a repair drafts by prompt lookup: a batch of 16 is what pays on 2 cores (lookup.py)
LOOKUP_DRAFT = 15
EVAL_CHUNK = 64  # prompt tok/s on 2 cores (0.5B): 193 at 32, 214 at 128, 224 at 512
MAIN_SEQ, SCRATCH_SEQ = 0, 1  # the cache's sequence, and where inserted text is evaluated


# repository-level FIM: the token that starts another file's text, per FIM format
FILE_SEPARATORS = {"qwen": "<|file_sep|>", "starcoder": "<file_sep>"}

OnProgress = Callable[[Generation], None]


class LlamaEngine:
    """One loaded GGUF model. Thread-safe: calls are serialised on an internal lock."""

    # ``chat`` continues a trailing assistant message (the template is rendered here)
    prefills = True

    def __init__(
        self,
        model_path: str | Path,
        n_gpu_layers: int = 0,
        n_threads: int = 0,
        n_ctx: int = 4096,
        eval_chunk: int = EVAL_CHUNK,
        lora_path: str | Path | None = None,
        reuse_chunk: int = MIN_CHUNK,
        n_seq_max: int = 2,
        lookup_draft: int = LOOKUP_DRAFT,
    ) -> None:
        """``reuse_chunk``: the shortest cached run moved to a new position rather than
        re-evaluated (0: keep only the shared prefix). ``n_seq_max``: sequences the context
        holds; moving chunks needs a second one (inserted text is evaluated there).
        ``lookup_draft``: most tokens a greedy generation that asks for it
        (``SamplingParams.lookup``) drafts by prompt lookup and verifies in one batch (0: never;
        an attribute, so benchmarks change it between calls)."""
        self.model_path = Path(model_path)
        # a GGUF LoRA adapter applied over the model at load (a distilled student)
        self.lora_path = Path(lora_path) if lora_path else None
        self.n_ctx = n_ctx
        self.eval_chunk = eval_chunk
        self.reuse_chunk = reuse_chunk
        self.lookup_draft = lookup_draft
        self.lookup_always = False  # draft for every greedy generation, asked or not (A/B)
        # the n-gram lengths a draft is matched on, longest first (lookup.py says why)
        self.lookup_ngram = (DEFAULT_MAX_N, DEFAULT_MIN_N)
        self._lock = threading.RLock()
        threads = n_threads or (os.cpu_count() or 1)
        try:
            self._llm = Llama(
                model_path=str(self.model_path),
                n_gpu_layers=n_gpu_layers,
                n_threads=threads,
                n_threads_batch=threads,
                n_ctx=n_ctx,
                n_batch=512,
                logits_all=False,
                lora_path=str(self.lora_path) if self.lora_path else None,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise PlancodeError(
                f"llama.cpp could not load {self.model_path}: {exc}",
                "check the file with `plancode model verify NAME` (or re-fetch it); for a "
                "custom GGUF make sure this llama-cpp-python version supports its architecture",
            ) from exc
        self._use_sequences(max(n_seq_max, 2 if reuse_chunk > 0 else 1))
        self._exact = 0  # leading cached tokens whose keys/values are what a cold run gives
        self._can_shift = reuse_chunk > 0 and bool(
            llama_cpp.llama_memory_can_shift(self._llm._ctx.memory))
        self._vocab = self._llm._model.vocab
        self._stop_ids: dict[str, int | None] = {}
        self._n_vocab = self._llm.n_vocab()
        self._pieces: PieceIndex | None = None  # built on the first healed prompt
        self.info = ModelInfo.from_metadata(
            self._llm.metadata, self.is_special_token, self._token_text
        )

    # -- vocabulary ------------------------------------------------------------------------
    def tokenize(self, text: str, add_bos: bool = False, special: bool = False) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)

    def detokenize(self, tokens: list[int]) -> str:
        return self._llm.detokenize(tokens).decode("utf-8", errors="replace")

    def is_special_token(self, text: str) -> bool:
        """True when ``text`` is one special token of this model's vocabulary."""
        return (
            len(self.tokenize(text, special=True)) == 1
            and len(self.tokenize(text, special=False)) > 1
        )

    def _token_text(self, token: int) -> str:
        return self._llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def piece_index(self) -> PieceIndex:
        """Every token's bytes, searchable by prefix (token healing), built once."""
        if self._pieces is None:
            buf = ctypes.create_string_buffer(256)
            pieces = []
            for token in range(self._n_vocab):
                n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
                pieces.append(buf.raw[:n] if n > 0 else b"")
            self._pieces = PieceIndex(pieces)
        return self._pieces

    @property
    def fim_format(self) -> FimFormat | None:
        return self.info.fim

    def reset_cache(self) -> None:
        """Forget the KV cache (benchmarks use this to compare modes from a cold start)."""
        with self._lock:
            self._llm.reset()
            self._llm._ctx.kv_cache_seq_rm(-1, 0, -1)

    @property
    def cached_tokens(self) -> int:
        """How many tokens the KV cache holds right now."""
        return self._llm.n_tokens

    # -- public generation entry points ----------------------------------------------------
    def chat(
        self,
        messages: list[Message],
        params: SamplingParams,
        cancel: CancelToken | None = None,
        on_text: OnText | None = None,
    ) -> Generation:
        """Generate the assistant's reply to ``messages`` under the model's chat template."""
        prompt = self.info.render_chat(messages)
        tokens = self.tokenize(prompt, add_bos=False, special=True)
        return self.generate(tokens, params, cancel, on_text)

    def complete(
        self,
        prompt: str,
        params: SamplingParams,
        cancel: CancelToken | None = None,
        on_text: OnText | None = None,
    ) -> Generation:
        """Continue raw text (special-token strings in ``prompt`` are honoured)."""
        tokens = self.tokenize(prompt, add_bos=self.info.add_bos, special=True)
        return self.generate(tokens, params, cancel, on_text)

    def fim(
        self,
        prefix: str,
        suffix: str,
        params: SamplingParams,
        cancel: CancelToken | None = None,
        on_progress: OnProgress | None = None,
        extra: Sequence[tuple[str, str]] = (),
        middle: str = "",
    ) -> Generation:
        """Fill the hole between ``prefix + middle`` and ``suffix``.

        With a FIM-capable model the user's text is tokenized without special tokens (so code
        that happens to contain the format's control-token strings cannot hijack the prompt)
        between the format's control tokens; a model without FIM tokens continues ``prefix``.
        ``extra``: (name, text) snippets of other files put before the FIM prompt, each after
        the format's file-separator token (Qwen2.5-Coder's repository-level format), where the
        model has one; they come first so that the KV cache keeps them across keystrokes.
        ``middle`` is text the middle already starts with, put after the middle token (the
        layout llama-server's README gives ``/infill``'s ``prompt``): the cursor line up to the
        cursor. Typing on that line then only appends to the prompt, and the KV cache keeps
        all of it exactly (in plain prefix-suffix-middle order a keystroke changes the prompt
        before the suffix, whose cached keys and values then no longer match the text). Its
        last token is healed (:mod:`plancode.engine.token_healing`): the cursor is often inside
        a word, and the model re-spells that token itself instead of continuing a split it
        never saw in training.
        ``on_progress`` sees the live generation after the prompt and after every token.
        """
        fmt = self.info.fim
        if fmt is None:
            tokens = self.tokenize(prefix + middle, add_bos=self.info.add_bos)
            return self.generate(tokens, params, cancel, on_progress=on_progress)
        mid = self.tokenize(middle) if middle else []
        k = tokens_to_heal([self._llm.detokenize([t]) for t in mid[-MAX_HEALED:]])
        heal = self._llm.detokenize(mid[len(mid) - k:]) if k else b""
        tokens = (
            self._extra_tokens(fmt, extra)
            + self.tokenize(fmt.prefix, special=True)
            + self.tokenize(prefix)
            + self.tokenize(fmt.suffix, special=True)
            + self.tokenize(suffix)
            + self.tokenize(fmt.middle, special=True)
            + mid[: len(mid) - k]
        )
        stops = tuple(dict.fromkeys(params.stop + fmt.stops))
        return self.generate(tokens, _replace_stop(params, stops), cancel,
                             on_progress=on_progress, heal=heal)

    def _extra_tokens(self, fmt: FimFormat, extra: Sequence[tuple[str, str]]) -> list[int]:
        sep = FILE_SEPARATORS.get(fmt.name)
        if not extra or sep is None or not self.is_special_token(sep):
            return []
        out: list[int] = []
        for name, text in extra:
            out += self.tokenize(sep, special=True) + self.tokenize(f"{name}\n{text}")
        return out

    # -- the core loop ---------------------------------------------------------------------
    def generate(
        self,
        tokens: list[int],
        params: SamplingParams,
        cancel: CancelToken | None = None,
        on_text: OnText | None = None,
        on_progress: OnProgress | None = None,
        heal: bytes = b"",
    ) -> Generation:
        """Evaluate ``tokens`` (reusing what the cache holds) and decode a continuation.

        ``on_progress`` is called with the live :class:`Generation` once the prompt is in the
        cache and after every decoded token (its text and accounting so far), so a caller can
        answer before the generation ends. ``heal``: bytes the continuation must start with
        (the token backed off the prompt), spelled first and left out of the text."""
        if not tokens:
            raise PlancodeError("empty prompt", "give the model some text to continue")
        if len(tokens) >= self.n_ctx:
            raise PlancodeError(
                f"prompt of {len(tokens)} tokens does not fit the {self.n_ctx}-token context",
                "shorten the input or raise the n_ctx setting",
            )
        with self._lock:
            plan = self._plan(tokens)
            start = time.perf_counter()
            evaluated, complete = self._apply(tokens, plan, cancel)
            prompt_seconds = time.perf_counter() - start
            gen = Generation("", "cancelled", len(tokens), evaluated, plan.reused, 0,
                             prompt_seconds=prompt_seconds)
            if not complete:
                return gen
            budget = min(params.max_tokens, self.n_ctx - len(tokens))
            self._decode(gen, params, budget, cancel, on_text, on_progress, heal)
            # decoded in order after an exact prompt. Cells verified in a lookup batch count
            # too: like every decoded cell they attend to exactly the text before them; only
            # the rounding differs from a cold run's chunks, as a single-token decode's does.
            if self._exact >= len(tokens):
                self._exact = self._llm.n_tokens
            return gen

    @property
    def stale_tokens(self) -> int:
        """Cached tokens whose keys/values were computed before an edit earlier in the
        prompt (moved chunks and what follows them); :meth:`settle` recomputes them."""
        return self._llm.n_tokens - min(self._exact, self._llm.n_tokens)

    def settle(self, cancel: CancelToken | None = None, chunk: int | None = None) -> int:
        """Recompute the stale part of the cache exactly, in the background's spare time.

        Moved chunks keep keys/values computed before the edit in front of them; this
        re-evaluates them, ``chunk`` tokens at a time, in the scratch sequence, and swaps
        each piece into the main sequence as soon as it is done (the cells after it are
        stale either way), so a cancel -- checked between pieces -- keeps the progress made.
        By default the pieces fall on the boundaries a cold evaluation uses (multiples of
        ``eval_chunk``, the last cached token on its own), which reproduces a cold run's
        rounding as closely as the cache allows; smaller pieces answer a cancel sooner.
        Returns the tokens evaluated.
        """
        step = chunk or self.eval_chunk
        with self._lock:
            llm, ctx = self._llm, self._llm._ctx
            end = llm.n_tokens
            if self._exact >= end or not self._can_shift:
                return 0
            start = min(self._exact, end)
            if chunk is None:
                start = start // step * step
            tokens = llm.input_ids[start:end].tolist()
            head = tokens[:-1]
            pieces = [head[i : i + step] for i in range(0, len(head), step)] + [tokens[-1:]]
            done = 0
            for piece in pieces:
                if cancel is not None and cancel.cancelled:
                    break
                at = start + done
                ctx.kv_cache_seq_rm(SCRATCH_SEQ, -1, -1)
                ctx.kv_cache_seq_cp(MAIN_SEQ, SCRATCH_SEQ, 0, at)
                self._decode_batch(piece, at, SCRATCH_SEQ)
                ctx.kv_cache_seq_rm(MAIN_SEQ, at, at + len(piece))
                ctx.kv_cache_seq_cp(SCRATCH_SEQ, MAIN_SEQ, at, at + len(piece))
                ctx.kv_cache_seq_rm(SCRATCH_SEQ, -1, -1)
                done += len(piece)
                self._exact = at + len(piece)
            return done

    def score_text(self, prompt: str, text: str,
                   cancel: CancelToken | None = None) -> list[float] | None:
        """The model's log-probability of each token of ``text`` after ``prompt``: one
        forward pass, nothing sampled (the reviewer score reads a docstring after each
        candidate's code this way). The prompt stays cached like a generation's; ``text``'s
        cells are dropped afterwards. None when cancelled or when it does not fit."""
        bos = self.info.add_bos
        whole = self.tokenize(prompt + text, add_bos=bos, special=True)
        head = self.tokenize(prompt, add_bos=bos, special=True)
        if whole[:len(head)] != head:  # a token spans the seam: score text's own tokens
            whole = head + self.tokenize(text)
        tail = whole[len(head):]
        if not head or not tail or len(whole) >= self.n_ctx:
            return None
        with self._lock:
            _, complete = self._apply(head, self._plan(head), cancel)
            if not complete:
                return None
            logprobs = [float(log_softmax(self._logits())[tail[0]])]
            llm, ctx, at = self._llm, self._llm._ctx, len(head)
            batch = llm._batch.batch
            body = tail[:-1]
            step = self.eval_chunk
            try:
                for start in range(0, len(body), step):
                    if cancel is not None and cancel.cancelled:
                        return None
                    chunk = body[start:start + step]
                    batch.n_tokens = len(chunk)
                    for i, token in enumerate(chunk):
                        batch.token[i], batch.pos[i] = token, at + start + i
                        batch.seq_id[i][0], batch.n_seq_id[i] = MAIN_SEQ, 1
                        batch.logits[i] = True
                    ctx.decode(llm._batch)
                    for i in range(len(chunk)):
                        ptr = llama_cpp.llama_get_logits_ith(llm.ctx, i)
                        row = np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))
                        logprobs.append(float(log_softmax(row)[tail[start + i + 1]]))
            finally:
                ctx.kv_cache_seq_rm(-1, at, -1)
                llm.n_tokens = at
            return logprobs

    # -- the KV cache ----------------------------------------------------------------------
    def _use_sequences(self, n_seq_max: int) -> None:
        """Recreate the context with ``n_seq_max`` sequences over one unified KV buffer.

        llama-cpp-python creates its context with one sequence. Evaluating inserted text
        *before* cells that are already cached needs a second one: llama.cpp requires each
        sequence's new tokens to follow its last cached position, so the inserted tokens are
        evaluated in a scratch sequence that shares the cells before them (see :meth:`_apply`).
        A unified buffer lets both sequences use the whole context.
        """
        llm = self._llm
        params = llm.context_params
        if n_seq_max <= params.n_seq_max:
            return
        params.n_seq_max = n_seq_max
        params.kv_unified = True
        old = llm._ctx
        with suppress_stdout_stderr(disable=False):
            llm._ctx = llama_internals.LlamaContext(model=llm._model, params=params,
                                                    verbose=False)
        old.close()
        if getattr(llm, "_lora_adapter", None) is not None:  # adapters belong to a context
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(llm._lora_adapter)
            scales = (ctypes.c_float * 1)(llm.lora_scale)
            if llama_cpp.llama_set_adapters_lora(llm._ctx.ctx, adapters, 1, scales):
                raise PlancodeError(f"llama.cpp could not apply the adapter {self.lora_path}",
                                    "check that the adapter was made for this base model")

    def _plan(self, tokens: list[int]) -> ReusePlan:
        llm = self._llm
        cached = llm.input_ids[: llm.n_tokens].tolist()
        movable = self.reuse_chunk if self._can_shift else 0
        return plan_reuse(cached, tokens, movable)

    def _apply(self, tokens: list[int], plan: ReusePlan,
               cancel: CancelToken | None) -> tuple[int, bool]:
        """Make the KV cache hold ``tokens``: keep the head, move the chunks, evaluate the gaps.

        Returns (tokens evaluated, whether the prompt is complete). The gaps are evaluated in
        position order. A gap with moved chunks after it is *inserted* text: it is evaluated
        in the scratch sequence, which first gets every cell before the gap (a copy of
        sequence ids, not of data), so it attends to exactly the text before it and not to
        the chunks after it; its cells then join the main sequence. The last gap extends the
        main sequence as usual, its final token on its own (llama.cpp's batched and
        single-token kernels round differently; this keeps a re-sent prompt reproducible).
        On cancel the cache is cut back to the prompt's longest complete prefix.
        """
        llm = self._llm
        ctx = llm._ctx
        if plan.head == 0 and not plan.chunks:
            llm.reset()
            ctx.kv_cache_seq_rm(-1, 0, -1)
            self._exact = 0
        else:
            pos = plan.head  # drop the cached cells that are not kept
            for c in plan.chunks:
                if c.src > pos:
                    ctx.kv_cache_seq_rm(MAIN_SEQ, pos, c.src)
                pos = c.src + c.size
            ctx.kv_cache_seq_rm(-1, pos, -1)
            if any(c.shift for c in plan.chunks):
                far = 4 * self.n_ctx  # park every chunk beyond the context, then place it
                for c in plan.chunks:
                    ctx.kv_cache_seq_shift(MAIN_SEQ, c.src, c.src + c.size, far)
                for c in plan.chunks:
                    ctx.kv_cache_seq_shift(MAIN_SEQ, far + c.src, far + c.src + c.size,
                                           c.shift - far)
        llm.input_ids[: len(tokens)] = tokens
        evaluated = 0
        for i, (start, end) in enumerate(plan.gaps):
            last = i == len(plan.gaps) - 1
            done = self._eval_gap(tokens, start, end, inserted=not last, cancel=cancel)
            evaluated += done
            if done < end - start:
                valid = start + (done if last else 0)
                ctx.kv_cache_seq_rm(-1, valid, -1)
                llm.n_tokens = valid
                self._exact = min(self._exact, plan.head if plan.chunks else valid)
                return evaluated, False
        llm.n_tokens = len(tokens)
        if plan.chunks or plan.head > self._exact:
            self._exact = min(self._exact, plan.head)
        else:  # everything after an exact head was evaluated in order
            self._exact = len(tokens)
        return evaluated, True

    def _eval_gap(self, tokens: list[int], start: int, end: int, inserted: bool,
                  cancel: CancelToken | None) -> int:
        """Evaluate ``tokens[start:end]`` at their positions in chunks, checking ``cancel``
        between chunks; return how many were evaluated."""
        ctx = self._llm._ctx
        seq = SCRATCH_SEQ if inserted else MAIN_SEQ
        span = tokens[start:end]
        pieces = [span] if inserted else [span[:-1], span[-1:]]
        chunks = [(p[i : i + self.eval_chunk]) for p in pieces
                  for i in range(0, len(p), self.eval_chunk)]
        if inserted:
            ctx.kv_cache_seq_rm(SCRATCH_SEQ, -1, -1)
            ctx.kv_cache_seq_cp(MAIN_SEQ, SCRATCH_SEQ, 0, start)
        done = 0
        for chunk in chunks:
            if cancel is not None and cancel.cancelled:
                break
            self._decode_batch(chunk, start + done, seq)
            done += len(chunk)
        if inserted:
            if done == len(span):
                ctx.kv_cache_seq_cp(SCRATCH_SEQ, MAIN_SEQ, start, end)
            ctx.kv_cache_seq_rm(SCRATCH_SEQ, -1, -1)
        return done

    def _decode_batch(self, tokens: list[int], pos: int, seq: int,
                      all_logits: bool = False) -> None:
        """One ``llama_decode`` of ``tokens`` at positions ``pos...`` in sequence ``seq``
        (logits for the last one only, or for every one with ``all_logits``)."""
        llm = self._llm
        batch = llm._batch.batch
        batch.n_tokens = len(tokens)
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = pos + i
            batch.seq_id[i][0] = seq
            batch.n_seq_id[i] = 1
            batch.logits[i] = all_logits
        batch.logits[len(tokens) - 1] = True
        llm._ctx.decode(llm._batch)

    def _logits(self, row: int = -1) -> np.ndarray:
        """The logits after the last decode's ``row``-th token (-1: its last)."""
        ptr = llama_cpp.llama_get_logits_ith(self._llm.ctx, row)
        return np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))

    def _verify(self, token: int, draft: list[int]) -> None:
        """Put ``token`` in the cache with ``draft`` after it, in one batch with logits for
        every position: row i is the model's prediction after ``draft[:i]``. ``token`` is
        accepted (``n_tokens`` counts it); the draft's cells wait for :meth:`_decode` to
        accept them one by one, and whatever it rejects is removed before the next batch
        (or at the end). This is what ``Llama.eval([token])`` does, plus the draft."""
        llm = self._llm
        n = llm.n_tokens
        llm._ctx.kv_cache_seq_rm(-1, n, -1)
        self._decode_batch([token, *draft], n, MAIN_SEQ, all_logits=True)
        llm.input_ids[n] = token
        llm.n_tokens = n + 1

    def _stop_tokens(self, stops: tuple[str, ...]) -> set[int]:
        """Ids of the stop strings that are single special tokens (memoised per string)."""
        ids: set[int] = set()
        for stop in stops:
            if stop not in self._stop_ids:
                toks = self.tokenize(stop, special=True)
                special = len(toks) == 1 and self.is_special_token(stop)
                self._stop_ids[stop] = toks[0] if special else None
            if self._stop_ids[stop] is not None:
                ids.add(self._stop_ids[stop])
        return ids

    def _decode(
        self,
        gen: Generation,
        params: SamplingParams,
        budget: int,
        cancel: CancelToken | None,
        on_text: OnText | None,
        on_progress: OnProgress | None = None,
        heal: bytes = b"",
    ) -> None:
        """Decode up to ``budget`` tokens after the cached prompt into ``gen``.

        Plainly, one ``llama_decode`` per token. With prompt lookup (``lookup_draft`` > 0,
        greedy params, no healing) each decode also carries the tokens a
        :class:`~plancode.engine.lookup.NgramDrafter` guesses will follow, with logits for
        every position; each guessed token the greedy pick agrees with is accepted without a
        decode of its own, the first disagreeing pick is the next token, and the guesses after
        it leave the cache. Every token still goes through the same steps in the same order
        (pick, stop checks, callbacks, cancel checked before each), so the text, logprobs,
        stops and ``max_tokens`` are the plain loop's; only llama.cpp's rounding of a batch,
        which differs from a single token's, can flip a near-tie (measured in
        ``benchmarks/lookup_ab.py``).
        """
        sampler = TokenSampler(params)
        pieces = self.piece_index() if heal else None
        stop_ids = self._stop_tokens(params.stop)
        text_stops = [s for s in params.stop if s]
        out: list[int] = []
        raw = b""
        text = ""
        gen.finish_reason = "length"
        start = time.perf_counter()
        if on_progress is not None:
            on_progress(gen)
        llm = self._llm
        drafter = (NgramDrafter(llm.input_ids[: llm.n_tokens].tolist(), k=self.lookup_draft,
                                max_n=self.lookup_ngram[0], min_n=self.lookup_ngram[1])
                   if self.lookup_draft > 0 and (params.lookup or self.lookup_always)
                   and params.greedy and not heal else None)
        pending: list[int] = []  # drafted tokens in the cache after the last accepted one
        row = -1  # the logits row of the next pick
        while len(out) < budget:
            if cancel is not None and cancel.cancelled:
                gen.finish_reason = "cancelled"
                break
            logits = self._logits(row)
            if heal and pieces is not None:  # spell the healed bytes first
                token, logprob = sampler.pick(mask(logits, pieces.allowed(heal)))
                heal, piece = heal_step(heal, pieces.pieces[token])
            else:
                token, logprob = sampler.pick(logits)
                if token in stop_ids or llama_cpp.llama_vocab_is_eog(self._vocab, token):
                    gen.finish_reason = "stop"
                    gen.end_token, gen.end_logprob = token, logprob
                    break
                piece = self._llm.detokenize([token])
            drafted = bool(pending) and token == pending[0]
            if drafted:  # its cell is in the cache already, its logits are the next row
                pending.pop(0)
                gen.accepted_tokens += 1
                llm.input_ids[llm.n_tokens] = token
                llm.n_tokens += 1
                row += 1
            else:
                pending = []
            if drafter is not None:
                drafter.push(token)
            out.append(token)
            gen.logprobs.append(logprob)
            raw += piece
            text = raw.decode("utf-8", errors="ignore")
            cut = _first_stop(text, text_stops)
            if cut is not None:
                text = text[:cut]
                gen.finish_reason = "stop"
                break
            if on_text is not None:
                on_text(text)
            if on_progress is not None:
                gen.text, gen.completion_tokens = text, len(out)
                gen.decode_seconds = time.perf_counter() - start
                on_progress(gen)
            if len(out) < budget and not drafted:
                if drafter is None:
                    self._llm.eval([token])
                else:
                    pending = drafter.propose(budget - len(out) - 1)
                    gen.drafted_tokens += len(pending)
                    self._verify(token, pending)
                    row = 0
        if drafter is not None:  # drafted cells never accepted
            llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)
        gen.decode_seconds = time.perf_counter() - start
        gen.text = text
        gen.completion_tokens = len(out)
        gen.tokens = out


def _first_stop(text: str, stops: list[str]) -> int | None:
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else None


def _replace_stop(params: SamplingParams, stops: tuple[str, ...]) -> SamplingParams:
    return dataclasses.replace(params, stop=stops)
