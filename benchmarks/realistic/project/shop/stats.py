"""Small statistics for sales reports."""


def median(values: list[float]) -> float:
    """The median of ``values``.

    The values need not be sorted and the input list is not modified. With an even number
    of values the median is the mean of the two middle ones. Raises ValueError for an empty
    list.
    """


def moving_average(values: list[float], window: int) -> list[float]:
    """Trailing moving averages of ``values`` over ``window`` consecutive items.

    The result has one average per full window, so ``len(values) - window + 1`` items (an
    empty list when there are fewer values than ``window``). Raises ValueError when
    ``window`` is less than 1.
    """
