"""Strict tests of the realistic project. Never copied into the workspace plancode sees:
the runner adds this file only after every function was completed."""

import pytest
from shop.inventory import restock_list
from shop.orders import merge_lines, order_total
from shop.stats import median, moving_average
from shop.textutil import parse_price, slugify, wrap_words
from shop.timeutil import parse_duration


def test_slugify():
    assert slugify("Hello World") == "hello-world"
    assert slugify("  Hello,  World! ") == "hello-world"
    assert slugify("Tea & Coffee -- 2 for 1") == "tea-coffee-2-for-1"
    assert slugify("already-a-slug") == "already-a-slug"
    assert slugify("!!!") == ""
    assert slugify("") == ""
    assert slugify("MiXeD_case__Words") == "mixed-case-words"


def test_wrap_words():
    assert wrap_words("the quick brown fox", 10) == ["the quick", "brown fox"]
    assert wrap_words("a b c d", 3) == ["a b", "c d"]
    assert wrap_words("  spaced\tout\nwords  ", 20) == ["spaced out words"]
    assert wrap_words("tiny enormousword x", 5) == ["tiny", "enormousword", "x"]
    assert wrap_words("", 5) == []
    assert wrap_words("   ", 5) == []
    with pytest.raises(ValueError):
        wrap_words("a b", 0)


def test_parse_price():
    assert parse_price("$3.50") == 350
    assert parse_price("3.5") == 350
    assert parse_price("  $1,234.56 ") == 123456
    assert parse_price("12") == 1200
    assert parse_price("0.07") == 7
    assert parse_price("1,000,000") == 100000000
    for bad in ["", "abc", "-1", "1,23", "12,3456", "1.234", "$", "$$1", "1.2.3"]:
        with pytest.raises(ValueError):
            parse_price(bad)


def test_order_total():
    assert order_total([("apple", 2, 150)]) == 300
    assert order_total([]) == 0
    assert order_total([("a", 1, 9999)]) == 9999
    assert order_total([("a", 1, 10000)]) == 9500
    assert order_total([("a", 1, 10010)]) == 9510  # 9509.5 rounds half up
    assert order_total([("a", 3, 4000), ("b", 1, 10)]) == 11410
    with pytest.raises(ValueError):
        order_total([("a", 0, 100)])
    with pytest.raises(ValueError):
        order_total([("a", 1, -5)])
    with pytest.raises(ValueError):
        order_total([("a", 1.5, 100)])


def test_merge_lines():
    assert merge_lines([("a", 1, 100), ("a", 2, 100)]) == [("a", 3, 100)]
    assert merge_lines([]) == []
    assert merge_lines([("a", 1, 100), ("b", 1, 50), ("a", 4, 100)]) == [("a", 5, 100),
                                                                          ("b", 1, 50)]
    assert merge_lines([("b", 1, 50), ("a", 1, 100)]) == [("b", 1, 50), ("a", 1, 100)]
    with pytest.raises(ValueError):
        merge_lines([("a", 1, 100), ("a", 1, 120)])


def test_median():
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2.5
    assert median([5]) == 5
    values = [3, 1, 2]
    median(values)
    assert values == [3, 1, 2]
    with pytest.raises(ValueError):
        median([])


def test_moving_average():
    assert moving_average([1, 2, 3, 4], 2) == [1.5, 2.5, 3.5]
    assert moving_average([1, 2, 3], 3) == [2.0]
    assert moving_average([1, 2], 3) == []
    assert moving_average([5, 7], 1) == [5.0, 7.0]
    with pytest.raises(ValueError):
        moving_average([1, 2], 0)


def test_parse_duration():
    assert parse_duration("1h30m") == 5400
    assert parse_duration("45s") == 45
    assert parse_duration("2H") == 7200
    assert parse_duration("1h2m3s") == 3723
    assert parse_duration("90m") == 5400
    assert parse_duration("0s") == 0
    for bad in ["", "h", "1x", "30m1h", "1h1h", "1 h", "-1h", "1.5h"]:
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_restock_list():
    assert restock_list({"a": 1, "b": 5}, 3) == ["a"]
    assert restock_list({}, 3) == []
    assert restock_list({"b": 2, "a": 2, "c": 0}, 3) == ["c", "a", "b"]
    assert restock_list({"a": 3}, 3) == []
    assert restock_list({"x": 10, "y": 1, "z": 5}, 10) == ["y", "z"]
