from shop.inventory import restock_list
from shop.orders import merge_lines, order_total
from shop.stats import median, moving_average
from shop.textutil import parse_price, slugify, wrap_words
from shop.timeutil import parse_duration


def test_slugify():
    assert slugify("Hello World") == "hello-world"


def test_wrap_words():
    assert wrap_words("the quick brown fox", 10) == ["the quick", "brown fox"]


def test_parse_price():
    assert parse_price("$3.50") == 350


def test_order_total():
    assert order_total([("apple", 2, 150)]) == 300


def test_merge_lines():
    assert merge_lines([("a", 1, 100), ("a", 2, 100)]) == [("a", 3, 100)]


def test_median():
    assert median([3, 1, 2]) == 2


def test_moving_average():
    assert moving_average([1, 2, 3, 4], 2) == [1.5, 2.5, 3.5]


def test_parse_duration():
    assert parse_duration("1h30m") == 5400


def test_restock_list():
    assert restock_list({"a": 1, "b": 5}, 3) == ["a"]
