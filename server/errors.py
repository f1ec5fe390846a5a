"""The one error type users see: what went wrong and how to fix it."""

from __future__ import annotations


class PlancodeError(Exception):
    """An error with a cause a user can act on.

    ``message`` names the problem; ``fix`` says what to do about it. The CLI prints both and
    exits non-zero; the language server shows both in a ``window/showMessage``.
    """

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message}\n  fix: {self.fix}" if self.fix else self.message
