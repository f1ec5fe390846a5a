"""Structure weights and AST labels: tokens of real code aligned with tree-sitter nodes."""

from __future__ import annotations

import pytest

from plancode.trainer.structure import IGNORE, analyse, language, node_type_count, token_structure

CODE = '''def mean(xs: list[float]) -> float:
    """Average of xs (empty -> error)."""  # the docstring is not structure
    total = 0.0
    for x in xs:
        total += x
    if not xs:
        raise ValueError("empty list: nothing to average")
    return total / len(xs)
'''


@pytest.fixture(scope="module")
def tokens(qwen_tokenizer):
    enc = qwen_tokenizer(CODE, add_special_tokens=False, return_offsets_mapping=True)
    flags, labels = token_structure(CODE, enc["offset_mapping"])
    return [(CODE[a:b], f, lab) for (a, b), f, lab in zip(enc["offset_mapping"], flags, labels,
                                                           strict=True)]


def _flag(tokens, text: str, nth: int = 0) -> int:
    hits = [f for t, f, _ in tokens if t.strip() == text]
    return hits[nth]


def _kind(tokens, text: str) -> str:
    label = next(lab for t, _, lab in tokens if t.strip() == text)
    return language().node_kind_for_id(label)


def test_structural_tokens_are_the_skeleton(tokens) -> None:
    assert _flag(tokens, "def") == 1 and _flag(tokens, "mean") == 1  # definition header
    assert _flag(tokens, "for") == 1 and _flag(tokens, "if") == 1  # control-flow headers
    assert _flag(tokens, "return") == 1 and _flag(tokens, "raise") == 1
    assert _flag(tokens, "len") == 1 and _flag(tokens, "ValueError") == 1  # callees
    assert _flag(tokens, "total") == 1  # assignment target / def-use identifier


def test_punctuation_comments_and_strings_are_plain(tokens) -> None:
    for text in ("=", "+=", ":", "/"):
        assert _flag(tokens, text) == 0, text
    assert _flag(tokens, "structure") == 0  # comment
    assert _flag(tokens, "Average") == 0  # docstring body
    assert _flag(tokens, "nothing") == 0  # string body inside a structural raise


def test_every_code_token_gets_the_node_kind_it_sits_in(tokens) -> None:
    assert _kind(tokens, "def") == "function_definition"
    assert _kind(tokens, "for") == "for_statement"
    assert _kind(tokens, "return") == "return_statement"
    assert _kind(tokens, "mean") == "identifier"
    assert _kind(tokens, "structure") == "comment"
    labels = [lab for t, _, lab in tokens if t.strip()]
    assert all(0 <= lab < node_type_count() for lab in labels)
    assert all(lab == IGNORE for t, _, lab in tokens if not t.strip())


def test_offsets_are_characters_not_bytes() -> None:
    code = 's = "héllo ✓"\nn = len(s)\n'
    info = analyse(code)
    assert any(code[a:b] == "len" for a, b in info.structural)
    assert any(code[a:b] == "n" for a, b in info.structural)
    assert len(info.node_at) == len(code)


def test_tokens_outside_the_code_are_ignored() -> None:
    code = "x = 1\n"
    flags, labels = token_structure(code, [(-5, -1), (0, 1), (40, 44)])
    assert flags == [0, 1, 0] and labels[0] == IGNORE and labels[2] == IGNORE


def test_broken_code_does_not_raise() -> None:
    flags, labels = token_structure("def f(:\n  return", [(0, 3), (4, 5)])
    assert len(flags) == len(labels) == 2
