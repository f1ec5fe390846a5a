"""In-process llama.cpp engine: chat, raw and fill-in-the-middle generation with KV reuse.

Every call keeps the longest prefix its prompt shares with what is already in the KV cache
and evaluates only the rest, so consecutive requests that share a prompt head (a plan prompt
followed by its code prompt, keystrokes in one file) pay only for what changed. Each
:class:`Generation` reports how many prompt tokens were evaluated and how many reused.

Prompts are evaluated in small chunks and the cancel flag is checked between chunks and before
every decoded token, so a cancelled request stops within one token (or one chunk).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path

import llama_cpp
import numpy as np
from llama_cpp import Llama

from server.engine.model_info import ModelInfo
from server.engine.sampler import TokenSampler
from server.engine.types import CancelToken, Generation, OnText, SamplingParams
from server.errors import PlancodeError
from server.prompts import FimFormat, Message

EVAL_CHUNK = 64  # prompt tok/s on 2 cores (0.5B): 193 at 32, 214 at 128, 224 at 512


class LlamaEngine:
    """One loaded GGUF model. Thread-safe: calls are serialised on an internal lock."""

    def __init__(
        self,
        model_path: str | Path,
        n_gpu_layers: int = 0,
        n_threads: int = 0,
        n_ctx: int = 4096,
        eval_chunk: int = EVAL_CHUNK,
        lora_path: str | Path | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        # a GGUF LoRA adapter applied over the model at load (a distilled student)
        self.lora_path = Path(lora_path) if lora_path else None
        self.n_ctx = n_ctx
        self.eval_chunk = eval_chunk
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
        self._vocab = self._llm._model.vocab
        self._stop_ids: dict[str, int | None] = {}
        self._n_vocab = self._llm.n_vocab()
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
    ) -> Generation:
        """Fill the hole between ``prefix`` and ``suffix``.

        With a FIM-capable model the user's text is tokenized without special tokens (so code
        that happens to contain the format's control-token strings cannot hijack the prompt)
        between the format's control tokens; a model without FIM tokens continues ``prefix``.
        """
        fmt = self.info.fim
        if fmt is None:
            tokens = self.tokenize(prefix, add_bos=self.info.add_bos)
            return self.generate(tokens, params, cancel)
        tokens = (
            self.tokenize(fmt.prefix, special=True)
            + self.tokenize(prefix)
            + self.tokenize(fmt.suffix, special=True)
            + self.tokenize(suffix)
            + self.tokenize(fmt.middle, special=True)
        )
        stops = tuple(dict.fromkeys(params.stop + fmt.stops))
        return self.generate(tokens, _replace_stop(params, stops), cancel)

    # -- the core loop ---------------------------------------------------------------------
    def generate(
        self,
        tokens: list[int],
        params: SamplingParams,
        cancel: CancelToken | None = None,
        on_text: OnText | None = None,
    ) -> Generation:
        """Evaluate ``tokens`` (reusing the cached prefix) and decode a continuation."""
        if not tokens:
            raise PlancodeError("empty prompt", "give the model some text to continue")
        if len(tokens) >= self.n_ctx:
            raise PlancodeError(
                f"prompt of {len(tokens)} tokens does not fit the {self.n_ctx}-token context",
                "shorten the input or raise the n_ctx setting",
            )
        with self._lock:
            reused = self._keep_prefix(tokens)
            start = time.perf_counter()
            evaluated = self._eval_prompt(tokens[reused:], cancel)
            prompt_seconds = time.perf_counter() - start
            gen = Generation("", "cancelled", len(tokens), evaluated, reused, 0,
                             prompt_seconds=prompt_seconds)
            if evaluated < len(tokens) - reused:
                return gen
            budget = min(params.max_tokens, self.n_ctx - len(tokens))
            self._decode(gen, params, budget, cancel, on_text)
            return gen

    def _keep_prefix(self, tokens: list[int]) -> int:
        """Trim the KV cache to the longest prefix shared with ``tokens``; return its length."""
        llm = self._llm
        n = min(llm.n_tokens, len(tokens))
        cached = llm.input_ids[:n]
        diff = np.nonzero(cached != np.asarray(tokens[:n], dtype=cached.dtype))[0]
        keep = int(diff[0]) if diff.size else n
        if keep == len(tokens):
            keep -= 1  # the last prompt token must be re-run to get fresh logits
        if keep > 0 and llm._ctx.kv_cache_seq_rm(-1, keep, -1):
            llm.n_tokens = keep
            return keep
        llm.reset()
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        return 0

    def _eval_prompt(self, tokens: list[int], cancel: CancelToken | None) -> int:
        """Evaluate in chunks, checking ``cancel`` between them; return how many were run.

        The last prompt token is always evaluated on its own: llama.cpp's batched and
        single-token kernels round differently, and this removes the largest cold/warm
        difference (re-sending an identical prompt reproduces a seeded sample exactly). Tokens
        that fall into different chunk boundaries cold and warm can still round differently,
        so a greedy continuation may occasionally differ between a cold and a warm cache
        (measured in docs/typing.md: 19 of 21 FIM calls matched a cold llama-cpp-python).
        """
        done = 0
        head = tokens[:-1]
        chunks = [head[i : i + self.eval_chunk] for i in range(0, len(head), self.eval_chunk)]
        for chunk in chunks + [tokens[-1:]]:
            if cancel is not None and cancel.cancelled:
                break
            self._llm.eval(chunk)
            done += len(chunk)
        return done

    def _logits(self) -> np.ndarray:
        ptr = llama_cpp.llama_get_logits_ith(self._llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))

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
    ) -> None:
        sampler = TokenSampler(params)
        stop_ids = self._stop_tokens(params.stop)
        text_stops = [s for s in params.stop if s]
        out: list[int] = []
        raw = b""
        text = ""
        gen.finish_reason = "length"
        start = time.perf_counter()
        while len(out) < budget:
            if cancel is not None and cancel.cancelled:
                gen.finish_reason = "cancelled"
                break
            token, logprob = sampler.pick(self._logits())
            if token in stop_ids or llama_cpp.llama_vocab_is_eog(self._vocab, token):
                gen.finish_reason = "stop"
                break
            out.append(token)
            gen.logprobs.append(logprob)
            raw += self._llm.detokenize([token])
            text = raw.decode("utf-8", errors="ignore")
            cut = _first_stop(text, text_stops)
            if cut is not None:
                text = text[:cut]
                gen.finish_reason = "stop"
                break
            if on_text is not None:
                on_text(text)
            if len(out) < budget:
                self._llm.eval([token])
        gen.decode_seconds = time.perf_counter() - start
        gen.text = text
        gen.completion_tokens = len(out)


def _first_stop(text: str, stops: list[str]) -> int | None:
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else None


def _replace_stop(params: SamplingParams, stops: tuple[str, ...]) -> SamplingParams:
    return dataclasses.replace(params, stop=stops)
