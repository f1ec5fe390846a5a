"""The engine contract: sampling settings in, a generation with its accounting out.

Both engines (in-process llama.cpp and a remote OpenAI-compatible server) speak this contract,
so the pipeline and the language server never care which one runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from plancode.prompts import FimFormat, Message


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens. ``temperature == 0`` is greedy (deterministic, seed unused)."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    seed: int = 0
    stop: tuple[str, ...] = ()
    # prompt-lookup decoding for a greedy reply that copies its prompt (a repair rewrites the
    # failed code): engines that can draft do so; measured in docs/results.md
    lookup: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


class CancelToken:
    """A flag another thread sets to stop a generation at the next token boundary.

    A token made with ``parent`` is also cancelled when its parent is, so one piece of work
    (a candidate) can be stopped alone while a cancelled request stops everything.
    """

    def __init__(self, parent: CancelToken | None = None) -> None:
        self._event = threading.Event()
        self._parent = parent

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set() or (self._parent is not None and self._parent.cancelled)


@dataclass
class Generation:
    """One generation's text and what it cost.

    ``prompt_tokens`` is the whole prompt; ``evaluated_tokens`` is how many of them were run
    through the model this time (the rest came from the KV cache: ``reused_tokens``).
    ``finish_reason`` is ``stop`` (end-of-generation token or stop string), ``length``
    (``max_tokens`` reached) or ``cancelled``. ``tokens`` are the ids of the decoded tokens
    (one per ``logprobs`` entry), ``end_token`` the end-of-generation token that stopped it
    (not part of the text) with its log-probability ``end_logprob``: what a scorer needs to
    re-read exactly the sequence the model sampled (on-policy distillation).
    ``drafted_tokens`` / ``accepted_tokens``: tokens guessed by prompt lookup and verified,
    and how many of them the model's own greedy picks kept (0 / 0 without lookup).
    """

    text: str
    finish_reason: str
    prompt_tokens: int
    evaluated_tokens: int
    reused_tokens: int
    completion_tokens: int
    logprobs: list[float] = field(default_factory=list)
    prompt_seconds: float = 0.0
    decode_seconds: float = 0.0
    tokens: list[int] = field(default_factory=list)
    end_token: int | None = None
    end_logprob: float | None = None
    drafted_tokens: int = 0
    accepted_tokens: int = 0

    @property
    def mean_logprob(self) -> float:
        return sum(self.logprobs) / len(self.logprobs) if self.logprobs else 0.0

    @property
    def decode_tokens_per_second(self) -> float:
        return self.completion_tokens / self.decode_seconds if self.decode_seconds else 0.0

    @property
    def prompt_tokens_per_second(self) -> float:
        return self.evaluated_tokens / self.prompt_seconds if self.prompt_seconds else 0.0


OnText = Callable[[str], None]


class Engine(Protocol):
    """What the pipeline and the server need from a model backend."""

    @property
    def fim_format(self) -> FimFormat | None: ...

    def chat(
        self,
        messages: list[Message],
        params: SamplingParams,
        cancel: CancelToken | None = None,
        on_text: OnText | None = None,
    ) -> Generation: ...

    def complete(
        self,
        prompt: str,
        params: SamplingParams,
        cancel: CancelToken | None = None,
        on_text: OnText | None = None,
    ) -> Generation: ...

    def fim(
        self,
        prefix: str,
        suffix: str,
        params: SamplingParams,
        cancel: CancelToken | None = None,
    ) -> Generation: ...
