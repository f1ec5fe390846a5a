"""Text helpers for product pages and receipts."""


def slugify(text: str) -> str:
    """Turn a product title into a URL slug.

    ASCII letters and digits are kept, lowercased. Every run of any other characters
    (spaces, punctuation, symbols) becomes a single hyphen, and the slug never starts or
    ends with a hyphen. A title with no letters or digits gives the empty string.
    """


def wrap_words(text: str, width: int) -> list[str]:
    """Wrap ``text`` into lines of at most ``width`` characters, greedily.

    Words are separated by any whitespace; lines join words with one space. Each line takes
    as many words as fit. A word longer than ``width`` is put on a line of its own, unbroken.
    Empty or blank text gives an empty list. Raises ValueError when ``width`` is less than 1.
    """


def parse_price(text: str) -> int:
    """Parse a price such as ``"$1,234.50"`` into a whole number of cents.

    Surrounding whitespace and one leading ``$`` are allowed. The integer part may group
    thousands with commas (groups of exactly three digits). At most two decimal digits may
    follow a dot; ``"3.5"`` is 350 cents. Anything else (empty text, letters, a minus sign,
    misplaced commas, three decimals) raises ValueError.
    """
