"""Number helpers for simple statistics."""


def running_mean(values: list[float]) -> list[float]:
    """Return the mean of the first 1, 2, ..., len(values) items.

    >>> running_mean([2, 4, 6])
    [2.0, 3.0, 4.0]
    """
    ...


def median(values: list[float]) -> float:
    """Return the median of a non-empty list without modifying it.

    For an even number of values, return the mean of the two middle values.
    Raise ValueError for an empty list.

    >>> median([3, 1, 2])
    2
    >>> median([4, 1, 3, 2])
    2.5
    """
    pass
