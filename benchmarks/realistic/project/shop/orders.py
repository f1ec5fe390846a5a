"""Order arithmetic. An order line is a tuple ``(sku, quantity, unit_price_cents)``."""


def order_total(lines: list[tuple[str, int, int]]) -> int:
    """The total of an order in cents.

    Each line contributes quantity times unit price. Orders whose subtotal is 10000 cents or
    more get a 5% discount, rounded to the nearest cent with halves rounded up. An empty
    order totals 0. Raises ValueError when a quantity is not a positive integer or a unit
    price is negative.
    """


def merge_lines(lines: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Merge order lines that have the same sku, wherever they appear in the order.

    Quantities of the same sku are added up; the merged list keeps each sku at the position
    of its first appearance. Raises ValueError when one sku appears with two different unit
    prices.
    """
