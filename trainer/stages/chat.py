"""The models the stages ask, loaded on first use: the teacher, and the coder that turns
plans into code at verification (the teacher itself or the student's GGUF)."""

from __future__ import annotations

from collections.abc import Callable

from plancode.errors import PlancodeError
from plancode.trainer.config import DistillConfig


class LazyChat:
    """A chat model loaded on first use (a run whose plans or verdicts are cached never loads
    it)."""

    def __init__(self, load: Callable[[], object]) -> None:
        self._load = load
        self._model = None

    def chat(self, messages, params) -> str:
        return self.model.chat(messages, params)

    def chat_many(self, conversations, params) -> list[str]:
        """Several conversations at once: batched when the model can (EngineChat), else one
        by one."""
        many = getattr(self.model, "chat_many", None)
        if many is not None:
            return many(conversations, params)
        return [self.model.chat(m, q) for m, q in zip(conversations, params, strict=True)]

    @property
    def model(self):  # noqa: ANN201 - whatever the loader returns (a ChatModel)
        if self._model is None:
            self._model = self._load()
        return self._model


class Teacher(LazyChat):
    """The teacher of ``cfg``, loaded on first use."""

    def __init__(self, cfg: DistillConfig) -> None:
        from plancode.trainer.teacher import load_teacher

        super().__init__(lambda: load_teacher(cfg.teacher))
        self.cfg = cfg


def coder_for(cfg: DistillConfig, teacher: LazyChat) -> LazyChat:
    """Who writes code from plans at verification: the teacher itself, or the student's GGUF
    (``verify.coder = "student"``) through the server's llama.cpp engine."""
    if cfg.verify.coder == "teacher":
        return teacher
    spec = cfg.coder_model

    def load():
        from plancode.config import Settings
        from plancode.engine.factory import load_engine
        from plancode.trainer.teacher import EngineChat

        if not (spec.endswith(".gguf") or _is_catalog(spec)):
            raise PlancodeError(
                f"verify.coder = 'student' needs the student as a GGUF; {spec!r} is not one",
                "set verify.coder_model to the student's GGUF (path or catalog name), or "
                "verify.coder = 'teacher'")
        return EngineChat(load_engine(Settings(model=spec, n_threads=cfg.verify.n_threads,
                                               n_gpu_layers=cfg.verify.n_gpu_layers,
                                               n_ctx=cfg.teacher.n_ctx)),
                          batch=cfg.verify.batch)

    return LazyChat(load)


def _is_catalog(spec: str) -> bool:
    from plancode.models.catalog import CATALOG

    return spec in CATALOG or spec.startswith("hf:")
