"""A run's hard time budget, as a cancel token every part of the run already checks.

Decoding checks its cancel token before every token, the sandbox polls it while a test runs,
probes and model-written checks take it too: a token that also reads the clock stops them all
within about one token or one poll of the deadline, with no timer thread. The pipeline then
chooses among what is finished (``choose`` falls back to the test ranking when cancelled) and
says the budget was reached.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from plancode.engine.types import CancelToken


class Deadline(CancelToken):
    """Cancelled by ``cancel()``, by its parent (the user's request), or at ``seconds`` from
    now. ``expired`` tells the budget apart from a cancel by the user."""

    def __init__(self, seconds: float, parent: CancelToken | None = None) -> None:
        super().__init__(parent)
        self.start = time.monotonic()
        self.at = self.start + seconds
        self.seconds = seconds

    @property
    def cancelled(self) -> bool:
        return self.expired or super().cancelled

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def allows(self, seconds: float) -> bool:
        """Whether ``seconds`` of work still fit before the deadline."""
        return not self.cancelled and self.remaining() >= seconds


class Reserve(CancelToken):
    """Cancelled like ``parent``, and also, when ``parent`` is a ``Deadline`` (or a
    ``Reserve`` of one), once less than ``seconds`` of it is left while ``when()`` holds: the
    end of the budget is kept for the work that must follow (the choice among a finished pool,
    the probe after the checks are written, the larger model). ``when`` says whether stopping
    early is worth it yet (say, only once some candidate passed)."""

    def __init__(self, parent: CancelToken | None, seconds: float,
                 when: Callable[[], bool] = lambda: True) -> None:
        super().__init__(parent)
        self.deadline = (parent if isinstance(parent, Deadline)
                         else getattr(parent, "deadline", None))  # a reserve's deadline
        self.seconds, self.when = seconds, when

    @property
    def cancelled(self) -> bool:
        return super().cancelled or (self.deadline is not None
                                     and self.deadline.remaining() < self.seconds
                                     and self.when())
