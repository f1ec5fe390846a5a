"""Word-level helpers for short texts."""

import re
from collections import Counter


def word_frequencies(text: str) -> dict[str, int]:
    """Count how often each word occurs, case-insensitively.

    Words are runs of letters, digits and apostrophes; everything else separates them.
    Keys are lower-case.

    >>> word_frequencies("The cat and the hat.")
    {'the': 2, 'cat': 1, 'and': 1, 'hat': 1}
    """


def top_words(text: str, n: int) -> list[tuple[str, int]]:
    """Return the n most frequent words with their counts, most frequent first.

    Ties are broken alphabetically. Words are counted as in word_frequencies.

    >>> top_words("b a b c a b", 2)
    [('b', 3), ('a', 2)]
    """


def slugify(title: str) -> str:
    """Turn a title into a URL slug.

    Lower-case the title, replace every run of characters that are not letters or digits
    with a single hyphen, and strip hyphens from both ends.

    >>> slugify("  Hello, World! 2024 ")
    'hello-world-2024'
    """
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def count_lines(text: str) -> Counter:
    """Count identical non-empty lines (already implemented)."""
    return Counter(line for line in text.splitlines() if line.strip())
