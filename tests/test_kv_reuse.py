"""KV reuse beyond the shared prefix: the plan (pure) and the engine applying it (real model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plancode.engine.kv_reuse import Chunk, plan_reuse
from plancode.engine.llama_engine import LlamaEngine
from plancode.engine.types import SamplingParams


def test_identical_prompt_evaluates_only_its_last_token() -> None:
    plan = plan_reuse([1, 2, 3, 4], [1, 2, 3, 4])
    assert plan.head == 3 and plan.chunks == () and plan.gaps == ((3, 4),)
    assert plan.evaluated == 1 and plan.reused == 3


def test_an_insertion_moves_the_rest_and_evaluates_the_inserted_tokens() -> None:
    old = list(range(100))
    new = old[:40] + [900, 901] + old[40:]
    plan = plan_reuse(old, new, min_chunk=8)
    assert plan.head == 40
    assert plan.chunks == (Chunk(src=40, dst=42, size=59),)  # the last token is re-run
    assert plan.gaps == ((40, 42), (101, 102))
    assert plan.evaluated == 3 and plan.reused == 99


def test_a_deletion_and_a_replacement() -> None:
    old = list(range(100))
    deleted = old[:10] + old[30:]  # the window's first lines scrolled away
    plan = plan_reuse(old, deleted, min_chunk=8)
    assert plan.head == 10 and plan.chunks[0].shift == -20 and plan.evaluated == 1
    replaced = old[:50] + [7000] + old[51:]
    plan = plan_reuse(old, replaced, min_chunk=8)
    assert plan.gaps == ((50, 51), (99, 100)) and plan.chunks[0].shift == 0


def test_short_runs_are_evaluated_and_moving_can_be_switched_off() -> None:
    old = list(range(20))
    new = [0, 1, 2, 500, 3, 4, 5, 6, 600, 7, 8, 9]
    assert plan_reuse(old, new, min_chunk=8).chunks == ()  # runs of 4 and 3: not worth it
    plan = plan_reuse(list(range(100)), [0, 1, 555, *range(2, 100)], min_chunk=0)
    assert plan.head == 2 and plan.chunks == () and plan.evaluated == 99


# -- the engine ----------------------------------------------------------------------------

CODE = '''def mean(xs):
    """The arithmetic mean of xs."""
    return sum(xs) / len(xs)


def variance(xs):
    """The population variance of xs."""
    m = mean(xs)
    return sum((x - m) ** 2 for x in xs) / len(xs)


def describe(xs):
    """Mean and variance of xs, as a dict."""
    return {'''

# an edit before the end of the prompt (what a keystroke before the cursor is in a FIM prompt)
EDITS = [
    ("The arithmetic mean", "The arithmetic average"),
    ("def variance(xs):", "def variance(values):"),
    ("Mean and variance", "Mean, variance"),
]


@pytest.fixture(scope="module")
def cold(tiny_model_path: Path) -> LlamaEngine:
    """The same model with prefix reuse only (the reference for a cold evaluation)."""
    return LlamaEngine(tiny_model_path, n_ctx=2048, reuse_chunk=0)


def _logits(engine: LlamaEngine) -> np.ndarray:
    return engine._logits().copy()


@pytest.mark.parametrize(("old", "new"), EDITS)
def test_an_edit_evaluates_only_the_changed_tokens(tiny_engine: LlamaEngine, old: str,
                                                  new: str) -> None:
    before, after = tiny_engine.tokenize(CODE), tiny_engine.tokenize(CODE.replace(old, new))
    plan = plan_reuse(before, after)
    changed = plan.gaps[0][1] - plan.gaps[0][0]
    assert 0 < changed <= 6 and plan.chunks, "a few tokens change, the rest can move"

    tiny_engine.generate(before, SamplingParams(max_tokens=1))
    warm = tiny_engine.generate(after, SamplingParams(max_tokens=4))
    assert warm.evaluated_tokens == changed + 1  # the changed tokens and the last one
    assert warm.reused_tokens == len(after) - changed - 1
    assert tiny_engine.stale_tokens > 0, "the moved cells are known to be approximate"


def _shared(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)))


@pytest.mark.parametrize(("old", "new"), EDITS)
def test_after_settle_greedy_decoding_follows_a_cold_evaluation(
        tiny_engine: LlamaEngine, cold: LlamaEngine, old: str, new: str) -> None:
    """Moved cells keep keys/values computed before the edit (an approximation); settle()
    recomputes them. What remains is rounding: settled cells sit in other cache slots than a
    cold run's, so attention sums in another order, and the 135M model's greedy text can part
    from the cold run's at a near tie after a line or two (docs/engine.md)."""
    params = SamplingParams(max_tokens=24)
    before, after = tiny_engine.tokenize(CODE), tiny_engine.tokenize(CODE.replace(old, new))
    tiny_engine.generate(before, SamplingParams(max_tokens=1))
    tiny_engine.generate(after, SamplingParams(max_tokens=1))
    stale = tiny_engine.stale_tokens
    assert tiny_engine.settle() >= stale and tiny_engine.stale_tokens == 0
    warm = tiny_engine.generate(after, params)
    assert warm.evaluated_tokens == 1
    cold.reset_cache()
    reference = cold.generate(after, params)
    assert reference.evaluated_tokens == len(after)
    assert _shared(warm.text, reference.text) >= 20, (warm.text, reference.text)


def test_settle_makes_the_moved_cells_exact(tiny_engine: LlamaEngine,
                                           cold: LlamaEngine) -> None:
    """After settle() the next-token logits agree with a cold run's up to rounding, much
    closer than with the moved cells."""
    before = tiny_engine.tokenize(CODE)
    after = tiny_engine.tokenize(CODE.replace(*EDITS[1]))
    tiny_engine.generate(before, SamplingParams(max_tokens=1))
    tiny_engine.generate(after, SamplingParams(max_tokens=1))
    moved = _logits(tiny_engine)
    tiny_engine.settle()
    tiny_engine.generate(after, SamplingParams(max_tokens=1))
    settled = _logits(tiny_engine)
    cold.reset_cache()
    cold.generate(after, SamplingParams(max_tokens=1))
    reference = _logits(cold)
    assert np.abs(settled - reference).max() < np.abs(moved - reference).max()
    # rounding only: 0.64 and 1.15 measured (summation order differs with thread timing)
    assert np.abs(settled - reference).max() < 2.0


def test_a_cancelled_settle_leaves_the_cache_usable(tiny_engine: LlamaEngine) -> None:
    from plancode.engine.types import CancelToken

    before = tiny_engine.tokenize(CODE)
    after = tiny_engine.tokenize(CODE.replace(*EDITS[0]))
    tiny_engine.generate(before, SamplingParams(max_tokens=1))
    first = tiny_engine.generate(after, SamplingParams(max_tokens=8))
    stale = tiny_engine.stale_tokens
    cancel = CancelToken()
    cancel.cancel()
    assert tiny_engine.settle(cancel) == 0 and tiny_engine.stale_tokens == stale
    again = tiny_engine.generate(after, SamplingParams(max_tokens=8))
    assert again.evaluated_tokens == 1 and again.text == first.text


@pytest.mark.slow
def test_default_model_keystrokes_on_a_line_evaluate_only_what_they_add(
        default_engine: LlamaEngine, default_model_path: Path) -> None:
    """Ghost text in a real file: the cursor line goes after the FIM middle token, so each
    keystroke on it appends to the prompt; it evaluates one token, and the greedy
    suggestion is a cold evaluation's."""
    from plancode.lsp.fim import build_request, complete_fim

    source = Path(__file__).resolve().parent.parent / "server" / "analysis" / "splice.py"
    text = source.read_text()
    at = text.index("    funcs = (ast.FunctionDef")
    cold = LlamaEngine(default_model_path, n_ctx=4096, reuse_chunk=0)
    # the first keystroke starts from an empty cache: what other tests left in the shared
    # engine would be reused as moved chunks, which agree with a cold run only up to
    # rounding (docs/engine.md), and a near tie in this file then parts the two texts
    default_engine.reset_cache()
    for n, typed in enumerate(["    fu", "    fun", "    func", "    funcs"]):
        doc = text[:at] + typed + "\n" + text[text.index("\n", at) + 1 :]
        line = doc[:at].count("\n")
        req = build_request(doc, line, len(typed))
        warm = complete_fim(default_engine, req, None, 16)
        cold.reset_cache()
        reference = complete_fim(cold, req, None, 16)
        assert warm.generation is not None and reference.generation is not None
        if n:
            assert warm.generation.evaluated_tokens <= 2
        assert warm.text == reference.text
