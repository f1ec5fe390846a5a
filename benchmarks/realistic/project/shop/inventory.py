"""Stock levels. Stock is a dict mapping sku to quantity on hand."""


def restock_list(stock: dict[str, int], minimum: int) -> list[str]:
    """The skus whose quantity is below ``minimum``, most urgent first.

    Sorted by quantity ascending; skus with the same quantity are sorted alphabetically.
    A sku whose quantity equals ``minimum`` does not need restocking.
    """
