"""Build the engine the settings ask for: in-process llama.cpp or a remote OpenAI-style server."""

from __future__ import annotations

from pathlib import Path

from plancode.config import Settings
from plancode.engine.llama_engine import LlamaEngine
from plancode.engine.probe import ensure_runs
from plancode.engine.remote import OpenAIEngine, fim_format_name
from plancode.engine.types import Engine
from plancode.errors import PlancodeError
from plancode.models.store import ModelStore


def load_engine(settings: Settings, store: ModelStore | None = None,
                adapter: Path | None = None) -> Engine:
    """The engine for ``settings``.

    A catalog model with a LoRA adapter (``plancode-student-0.5b``) loads its base GGUF with
    the verified adapter applied; ``adapter`` applies another GGUF LoRA adapter (the trainer
    evaluates a run's student this way, over the untouched base file).

    ``backend = "llama"`` resolves ``settings.model`` to a GGUF (fetching a catalog model if
    needed) and loads it in-process. ``backend = "openai"`` resolves and downloads nothing: it
    checks that a server answers at ``settings.remote_url`` (so a wrong URL fails at load time,
    in seconds, not at the first completion) and sends ``settings.model`` as the model name; the
    FIM format for servers without ``/infill`` is the one that name suggests (default qwen).
    """
    if settings.backend == "openai":
        engine = OpenAIEngine(settings.remote_url, model=settings.model,
                              fim_format=fim_format_name(settings.model))
        engine.check()
        return engine
    if settings.backend != "llama":
        raise PlancodeError(
            f"backend {settings.backend!r} is not available in this version",
            "use backend 'llama' (in-process llama.cpp) or 'openai' (an OpenAI-compatible "
            "server at remote_url)",
        )
    store = store or ModelStore()
    path = store.resolve(settings.model)
    lora = adapter or store.adapter(settings.model)
    # a native crash (SIGILL on AMX CPUs, ...) in a child becomes a PlancodeError here
    ensure_runs(path, settings.n_gpu_layers)
    return LlamaEngine(
        path,
        n_gpu_layers=settings.n_gpu_layers,
        n_threads=settings.threads(),
        n_ctx=settings.n_ctx,
        lora_path=lora,
    )
