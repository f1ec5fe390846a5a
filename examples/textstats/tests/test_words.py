from textstats.words import slugify, top_words, word_frequencies


def test_word_frequencies_counts_case_insensitively():
    assert word_frequencies("Apple apple APPLE pie") == {"apple": 3, "pie": 1}


def test_word_frequencies_ignores_punctuation():
    assert word_frequencies("Hi! hi, there... there?") == {"hi": 2, "there": 2}


def test_word_frequencies_empty():
    assert word_frequencies("") == {}


def test_top_words_orders_by_count_then_alphabet():
    assert top_words("b a c b a d", 3) == [("a", 2), ("b", 2), ("c", 1)]


def test_top_words_n_larger_than_vocabulary():
    assert top_words("x y", 5) == [("x", 1), ("y", 1)]


def test_slugify():
    assert slugify("Plan, then Code!") == "plan-then-code"
