def order_total(lines):
    subtotal = 0
    for _sku, qty, price in lines:
        if not isinstance(qty, int) or isinstance(qty, bool) or qty <= 0:
            raise ValueError("quantity must be a positive integer")
        if price < 0:
            raise ValueError("negative price")
        subtotal += qty * price
    if subtotal >= 10000:
        return (subtotal * 95 + 50) // 100
    return subtotal


def merge_lines(lines):
    merged: dict = {}
    for sku, qty, price in lines:
        if sku in merged:
            if merged[sku][1] != price:
                raise ValueError(f"{sku} has two prices")
            merged[sku][0] += qty
        else:
            merged[sku] = [qty, price]
    return [(sku, q, p) for sku, (q, p) in merged.items()]
