import pytest

from textstats import numbers


def test_running_mean():
    assert numbers.running_mean([1, 2, 3, 4]) == [1.0, 1.5, 2.0, 2.5]


def test_running_mean_empty():
    assert numbers.running_mean([]) == []


def test_median_odd_and_even():
    assert numbers.median([5, 3, 1]) == 3
    assert numbers.median([1, 2, 3, 4]) == 2.5


def test_median_does_not_modify_input():
    values = [3, 1, 2]
    numbers.median(values)
    assert values == [3, 1, 2]


def test_median_empty_raises():
    with pytest.raises(ValueError):
        numbers.median([])
