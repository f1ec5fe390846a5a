"""An adaptive debounce learned from the typing interval (as Tabby's agent does).

Editors differ: Neovim's plugin debounces keystrokes itself, VS Code asks for inline
completions on every change. A request that a keystroke supersedes is wasted model time, but
waiting before every model run adds its wait to every suggestion. So the wait follows the
user: while keystrokes come faster than ``max_ms`` apart (a burst), a model run waits about
one typing interval for the next keystroke; at a normal pace it does not wait at all.
Suggestion-cache answers never wait (they cost nothing).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

PAUSE_S = 1.0  # an interval longer than this is a pause, not typing speed
WEIGHT = 0.3  # the newest interval's weight in the moving average
WAIT_FACTOR = 1.2  # wait a little longer than one typical interval


@dataclass
class TypingRhythm:
    """The typing interval per document (an exponential moving average of recent ones)."""

    _last: dict[str, float] = field(default_factory=dict)
    _interval: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, uri: str, now: float) -> None:
        """A keystroke (an inline request) on ``uri`` at monotonic time ``now``."""
        with self._lock:
            last = self._last.get(uri)
            self._last[uri] = now
            if last is None:
                return
            gap = now - last
            if gap > PAUSE_S:
                self._interval.pop(uri, None)  # after a pause the old speed says nothing
                return
            old = self._interval.get(uri)
            self._interval[uri] = gap if old is None else (1 - WEIGHT) * old + WEIGHT * gap

    def interval(self, uri: str) -> float | None:
        with self._lock:
            return self._interval.get(uri)

    def delay(self, uri: str, max_ms: float) -> float:
        """Seconds a model run on ``uri`` should wait for a newer keystroke (0: none)."""
        interval = self.interval(uri)
        if max_ms <= 0 or interval is None or interval * 1000 >= max_ms:
            return 0.0
        return min(max_ms / 1000, WAIT_FACTOR * interval)
