"""Loading models off the event loop, so ``initialize`` is answered at once.

Two engines may be loaded from the same GGUF: an *interactive* one for keystroke completions
and a *background* one for verified implementations, so a minute-long plan-then-code job never
blocks ghost text. Each has its own KV cache.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from plancode.config import Settings
from plancode.engine.factory import load_engine
from plancode.engine.types import Engine
from plancode.errors import PlancodeError
from plancode.models.store import ModelStore

log = logging.getLogger(__name__)

Listener = Callable[[str, str], None]  # (state, message)


class ModelManager:
    """Holds the engines for the current settings; reloads when model settings change."""

    MODEL_KEYS = ("model", "backend", "remote_url", "n_gpu_layers", "n_threads", "n_ctx")

    def __init__(self, listener: Listener | None = None) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._listener = listener or (lambda state, message: None)
        self._settings: Settings | None = None
        self._interactive: Engine | None = None
        self._background: Engine | None = None
        self.state = "idle"
        self.error: PlancodeError | None = None
        self._generation = 0

    def needs_reload(self, new: Settings) -> bool:
        old = self._settings
        return old is None or any(getattr(old, k) != getattr(new, k) for k in self.MODEL_KEYS)

    def load(self, settings: Settings) -> threading.Thread:
        """Start loading in a daemon thread; listeners hear loading -> ready | error."""
        with self._lock:
            self._generation += 1
            generation = self._generation
            self._settings = settings
            self._ready.clear()
            self._interactive = self._background = None
            self.state, self.error = "loading", None
        self._listener("loading", f"loading {settings.model}")
        thread = threading.Thread(target=self._load, args=(settings, generation), daemon=True,
                                  name="plancode-model-load")
        thread.start()
        return thread

    def _load(self, settings: Settings, generation: int) -> None:
        try:
            engine = load_engine(settings, ModelStore(progress=False))
        except PlancodeError as exc:
            self._finish(generation, None, exc)
        except Exception as exc:  # a library error: report it, keep the server alive
            log.exception("model load failed")
            self._finish(generation, None, PlancodeError(f"model load failed: {exc}",
                                                         "check the model setting and the log"))
        else:
            self._finish(generation, engine, None)

    def _finish(self, generation: int, engine: Engine | None, error: PlancodeError | None) -> None:
        with self._lock:
            if generation != self._generation:
                return  # superseded by a newer load
            self._interactive = engine
            self.state = "ready" if engine is not None else "error"
            self.error = error
            self._ready.set()
        if error is None:
            self._listener("ready", f"{self._settings.model if self._settings else ''} ready")
        else:
            self._listener("error", str(error))

    def interactive(self) -> Engine | None:
        """The keystroke engine, or None while loading or after a failed load."""
        return self._interactive

    def wait(self, timeout: float | None = None) -> Engine:
        """Block until loaded; raise the load error (or a timeout) as a PlancodeError."""
        if not self._ready.wait(timeout):
            raise PlancodeError("the model is still loading", "try again in a moment")
        if self._interactive is None:
            raise self.error or PlancodeError("no model loaded", "check the model setting")
        return self._interactive

    def background(self, timeout: float | None = None) -> Engine:
        """The engine for long jobs, loaded on first use (a second context on the same GGUF)."""
        self.wait(timeout)
        with self._lock:
            if self._background is None:
                settings = self._settings
                assert settings is not None
                self._background = load_engine(settings, ModelStore(progress=False))
            return self._background
