"""The reviewer score: the docstring's likelihood after each candidate's code, on real models."""

from __future__ import annotations

from plancode.engine.types import SamplingParams
from plancode.pipeline.review import scores, without_docstring

ADD = '''def combine(a, b):
    """Return the sum of a and b.

    >>> combine(2, 3)
    5
    """
    return a + b
'''


def test_the_docstring_is_cut_out_and_the_code_kept() -> None:
    bare = without_docstring(ADD)
    assert bare == "def combine(a, b):\n    return a + b\n"
    only_doc = 'def f():\n    """Nothing yet."""\n'
    assert without_docstring(only_doc) == "def f():\n    pass\n"
    assert without_docstring("def f(:\n") is None
    assert without_docstring("def f():\n    return 1\n") == "def f():\n    return 1\n"


def test_scored_text_matches_what_greedy_decoding_reported(tiny_engine) -> None:
    """``score_text`` gives the same log-probabilities the decoder reported for its own greedy
    tokens, and leaves the cache usable: the next generation is unchanged."""
    prompt = "def fibonacci(n):\n"
    params = SamplingParams(max_tokens=12, temperature=0.0)
    first = tiny_engine.complete(prompt, params)
    got = tiny_engine.score_text(prompt, first.text)
    assert got is not None and len(got) == len(first.logprobs)
    assert max(abs(a - b) for a, b in zip(got, first.logprobs, strict=True)) < 0.05
    again = tiny_engine.complete(prompt, params)
    assert again.text == first.text


def test_code_that_does_what_the_docstring_says_reviews_better(default_engine) -> None:
    wrong = ADD.replace("return a + b", "return a * b")
    backwards = ADD.replace("return a + b", "return str(a) + str(b)")
    right, *others = scores(default_engine, [ADD, wrong, backwards],
                            "Return the sum of a and b.\n\n>>> combine(2, 3)\n5")
    assert right is not None and all(o is not None and right > o for o in others)


def test_no_score_without_a_docstring_or_from_an_engine_that_cannot_score() -> None:
    class Remote:  # an OpenAI-style server gives no prompt log-probabilities
        pass

    assert scores(Remote(), [ADD], "Return the sum.") == [None]  # type: ignore[arg-type]
