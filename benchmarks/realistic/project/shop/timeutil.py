"""Parsing durations typed by staff (delivery windows, shift lengths)."""


def parse_duration(text: str) -> int:
    """Parse a duration like ``"1h30m"`` or ``"45s"`` into seconds.

    The text is made of up to three parts, in this order: hours ending in ``h``, minutes
    ending in ``m``, seconds ending in ``s``. Each part is optional but at least one must be
    present, and each number is a non-negative integer. Upper-case units are accepted.
    Anything else (empty text, unknown units, parts out of order, repeated units, spaces)
    raises ValueError.
    """
