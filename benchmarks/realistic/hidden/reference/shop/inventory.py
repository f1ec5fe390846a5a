def restock_list(stock, minimum):
    return [k for k, v in sorted(stock.items(), key=lambda kv: (kv[1], kv[0])) if v < minimum]
