"""Candidates decoded as parallel sequences in one llama.cpp batch (server/engine/batch.py)."""

from __future__ import annotations

import dataclasses

import pytest

from plancode.engine.batch import BatchDecoder
from plancode.engine.llama_engine import LlamaEngine
from plancode.engine.types import CancelToken, SamplingParams
from plancode.errors import PlancodeError
from plancode.prompts import parse_code
from tests.engine_prompts import code_messages

PROBLEM = "def add(a, b):\n    '''Return the sum of a and b.'''\n"


@pytest.fixture(scope="module")
def decoder(tiny_engine: LlamaEngine):
    dec = BatchDecoder(tiny_engine, n_seq=4)
    yield dec
    dec.close()


def test_batched_greedy_equals_sequential_greedy(tiny_engine, decoder) -> None:
    messages = code_messages(PROBLEM)
    greedy = SamplingParams(max_tokens=24)
    sequential = tiny_engine.chat(messages, greedy)
    batched = decoder.chat(messages, [greedy] * 4)
    # the code is what a candidate is; past it, a batch's other matmul shapes may swap a
    # near-tie in the prose (measured on an AVX2-only CPU: "This function takes" / "uses")
    assert [parse_code(g.text) for g in batched] == [parse_code(sequential.text)] * 4
    alone = decoder.chat(messages, [greedy])
    assert parse_code(alone[0].text) == parse_code(sequential.text)


def test_sampled_sequences_differ_and_repeat_for_their_seeds(decoder) -> None:
    messages = code_messages(PROBLEM)
    params = [SamplingParams(max_tokens=16, temperature=0.9, seed=s) for s in (1, 2, 3)]
    greedy = SamplingParams(max_tokens=16)
    first = decoder.chat(messages, [greedy, *params])
    again = decoder.chat(messages, [greedy, *params])
    assert [g.text for g in first] == [g.text for g in again]
    assert len({g.text for g in first}) > 1, "sampled sequences are not copies of each other"
    assert all(g.logprobs and len(g.logprobs) == g.completion_tokens for g in first)


def test_sequences_stop_on_their_own(decoder) -> None:
    messages = code_messages(PROBLEM)
    short = SamplingParams(max_tokens=5)
    long = SamplingParams(max_tokens=16)
    stop = dataclasses.replace(long, stop=("return",))
    out = decoder.chat(messages, [short, long, stop])
    assert out[0].completion_tokens == 5 and out[0].finish_reason == "length"
    assert out[1].completion_tokens > 5
    assert "return" not in out[2].text and out[2].finish_reason in {"stop", "length"}


def test_a_guard_stops_its_own_sequence_at_a_new_line_and_no_other(decoder) -> None:
    """A rambling sample no longer holds the batch to max_tokens: its guard (the pipeline's
    tests-after-the-code, repetition and length guards) stops it alone, and the sequences
    beside it decode exactly as without it."""
    messages = code_messages(PROBLEM)
    greedy = SamplingParams(max_tokens=40)
    seen: list[str] = []

    def first_line(text: str) -> bool:
        seen.append(text)
        return True  # stop at the first complete line

    free = decoder.chat(messages, [greedy, greedy])
    guarded = decoder.chat(messages, [greedy, greedy], stops=[None, first_line])
    assert guarded[0].text == free[0].text
    assert guarded[1].finish_reason == "stop" and seen and "\n" in seen[0]
    assert guarded[1].completion_tokens < free[1].completion_tokens
    assert free[1].text.startswith(guarded[1].text)
    with pytest.raises(PlancodeError, match="one guard"):
        decoder.chat(messages, [greedy, greedy], stops=[None])


def test_batched_candidates_have_the_single_candidates_guards(tiny_engine) -> None:
    """The pipeline's batch of samples is guarded like a lone candidate: past the code length
    cap each sample stops and says why, instead of decoding to max_tokens."""
    from plancode.pipeline.candidates import DIRECT_SAMPLED, generate_direct_batch

    specs = [(k, DIRECT_SAMPLED, k) for k in (1, 2, 3)]
    base = SamplingParams(max_tokens=64)
    free = generate_direct_batch(tiny_engine, PROBLEM, specs, base, 0.7)
    capped = generate_direct_batch(tiny_engine, PROBLEM, specs, base, 0.7, cap=10)
    long = [k for k, c in enumerate(free) if len(c.code) > 10]
    assert long, "the tiny model wrote no code longer than the cap"
    for k in long:
        assert capped[k].error.startswith("stopped while decoding: length")
        assert capped[k].completion_tokens < free[k].completion_tokens


def test_too_many_sequences_is_a_clear_error(decoder) -> None:
    with pytest.raises(PlancodeError, match="n_seq"):
        decoder.chat(code_messages(PROBLEM), [SamplingParams()] * 5)


def test_different_prompts_decoded_together_equal_each_alone(tiny_engine, decoder) -> None:
    """generate_each: k prompts of their own (the teacher's plans for k problems) in one
    batch per step give each prompt's sequential greedy text."""
    problems = [PROBLEM, "def neg(x):\n    '''Return -x.'''\n",
                "def first(xs):\n    '''The first item of xs, or None when it is empty.'''\n"]
    greedy = SamplingParams(max_tokens=24)
    alone = [tiny_engine.chat(code_messages(p), greedy).text for p in problems]
    tokens = [tiny_engine.tokenize(tiny_engine.info.render_chat(
        code_messages(p)), special=True) for p in problems]
    together = decoder.generate_each(tokens, [greedy] * 3)
    assert [parse_code(g.text) for g in together] == [parse_code(t) for t in alone]
    assert [g.prompt_tokens for g in together] == [len(t) for t in tokens]
    with pytest.raises(PlancodeError, match="one SamplingParams per prompt"):
        decoder.generate_each(tokens, [greedy] * 2)


class SecondLook(CancelToken):
    """Not cancelled at its first look, cancelled from the second on."""

    def __init__(self) -> None:
        super().__init__()
        self.looks = 0

    @property
    def cancelled(self) -> bool:
        self.looks += 1
        return self.looks > 1


def test_a_cancel_reaches_the_prompt_within_one_short_chunk(decoder, monkeypatch) -> None:
    """A batch started near the deadline stops within one prompt chunk: one llama_decode of
    256 of the 1.5B's prompt tokens took ~3.4 s, past the budget; 64 take under a second."""
    filled: list[int] = []
    real = decoder._fill
    monkeypatch.setattr(decoder, "_fill", lambda rows: (filled.append(len(rows)), real(rows)))
    long = code_messages(PROBLEM + "    # " + "word " * 400 + "\n")
    out = decoder.chat(long, [SamplingParams(max_tokens=8)] * 2, cancel=SecondLook())
    assert all(g.finish_reason == "cancelled" for g in out)
    assert filled and sum(filled) <= 64, f"{sum(filled)} prompt tokens decoded after a cancel"
