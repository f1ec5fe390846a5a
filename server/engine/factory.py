"""Build the engine the settings ask for (model resolved through the store)."""

from __future__ import annotations

from server.config import Settings
from server.engine.llama_engine import LlamaEngine
from server.engine.types import Engine
from server.errors import PlancodeError
from server.models.store import ModelStore


def load_engine(settings: Settings, store: ModelStore | None = None) -> Engine:
    """Resolve ``settings.model`` to a GGUF (fetching a catalog model if needed) and load it."""
    if settings.backend != "llama":
        raise PlancodeError(
            f"backend {settings.backend!r} is not available in this version",
            "use backend 'llama' (in-process llama.cpp)",
        )
    path = (store or ModelStore()).resolve(settings.model)
    return LlamaEngine(
        path,
        n_gpu_layers=settings.n_gpu_layers,
        n_threads=settings.threads(),
        n_ctx=settings.n_ctx,
    )
