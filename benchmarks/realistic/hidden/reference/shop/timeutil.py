import re


def parse_duration(text):
    m = re.fullmatch(r"(?:(\d+)[hH])?(?:(\d+)[mM])?(?:(\d+)[sS])?", text)
    if not text or not m:
        raise ValueError(text)
    h, mi, s = (int(g or 0) for g in m.groups())
    return h * 3600 + mi * 60 + s
