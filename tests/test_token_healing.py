"""Token healing: ghost text typed inside a word continues the word, not a split token."""

from __future__ import annotations

import numpy as np
import pytest

from plancode.engine.llama_engine import LlamaEngine
from plancode.engine.token_healing import PieceIndex, heal_step, mask, tokens_to_heal
from plancode.engine.types import SamplingParams

PIECES = [b"", b" p", b" pos", b" print", b"p", b"os", b".ch", b"a", b".character", b" q",
          b"<|fim_middle|>"]


def test_the_allowed_tokens_start_with_the_healed_bytes_or_spell_part_of_them() -> None:
    index = PieceIndex(PIECES)
    assert sorted(index.allowed(b" p").tolist()) == [1, 2, 3]
    assert sorted(index.allowed(b" pos").tolist()) == [1, 2], "' p' then 'os' also spells it"
    assert sorted(index.allowed(b".cha").tolist()) == [6, 8]
    assert index.allowed(b"zz").size == 0


def test_a_healing_step_spends_the_healed_bytes_then_emits_the_rest() -> None:
    assert heal_step(b" p", b" pos") == (b"", b"os")
    assert heal_step(b" pos", b" p") == (b"os", b"")
    assert heal_step(b"os", b"os") == (b"", b"")


def test_the_tokens_back_to_the_start_of_the_word_are_healed() -> None:
    assert tokens_to_heal([b"    if", b" p"]) == 1
    assert tokens_to_heal([b" pos", b".ch", b"a"]) == 2, ".ch + a: the word is 'cha'"
    assert tokens_to_heal([b"(", b"x", b"y", b"z", b"w", b"v"]) == 4, "at most MAX_HEALED"
    assert tokens_to_heal([b"    "]) == 0, "indentation only: nothing to heal"
    assert tokens_to_heal([b"    ", b" if", b" "]) == 0
    assert tokens_to_heal([]) == 0


def test_masking_rules_out_everything_else() -> None:
    logits = np.array([5.0, 1.0, 2.0, 9.0])
    masked = mask(logits, np.array([1, 2]))
    assert int(np.argmax(masked)) == 2 and np.isinf(masked[3])


@pytest.mark.slow
def test_the_default_model_finishes_the_word_the_cursor_is_in(
        default_engine: LlamaEngine) -> None:
    """Measured on the typing replay before healing: ``    if p`` gave ``.is_end_of_line:``
    (as if ``p`` were a whole name) and ``raise J`` gave ``RpcInvalidParams(...)``."""
    prefix = ("from lsprotocol import types\n\n\nclass JsonRpcInvalidParams(Exception):\n"
              "    pass\n\n\ndef to_index(lines: list[str], pos: types.Position) -> int:\n"
              "    \"\"\"The offset of ``pos`` in ``lines``.\"\"\"\n")
    suffix = "\n    return sum(len(x) + 1 for x in lines[: pos.line]) + pos.character\n"
    params = SamplingParams(max_tokens=12, temperature=0.0, stop=("\n",))
    word = default_engine.fim(prefix, suffix, params, middle="    if p")
    assert word.text.startswith("os"), word.text
    raise_ = default_engine.fim(prefix, suffix, params, middle="    if pos.line < 0:\n"
                                "        raise J")
    assert raise_.text.startswith("son"), raise_.text
