def median(values):
    if not values:
        raise ValueError("empty")
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def moving_average(values, window):
    if window < 1:
        raise ValueError("window")
    return [sum(values[i:i + window]) / window for i in range(len(values) - window + 1)]
