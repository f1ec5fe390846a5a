"""The teacher: writes backward-reasoning plans (CodePLAN) and turns plans into code.

Three backends behind one small interface (``ChatModel.chat(messages, params) -> str``):

* ``gguf``   a local GGUF through the server's own llama.cpp engine (CPU or GPU layers);
* ``openai`` any OpenAI-compatible HTTP endpoint (llama.cpp server, vLLM, Ollama, ...), through
  the server's remote engine;
* ``hf``     a local Hugging Face model through transformers (meant for a GPU).

Prompts come from ``plancode.prompts`` only, so the plans the teacher writes are in exactly the
shape the student is trained to write and the server parses.
"""

from __future__ import annotations

from typing import Protocol

from plancode.engine.types import Engine, SamplingParams
from plancode.errors import PlancodeError
from plancode.prompts import Message
from plancode.trainer.config import TeacherConfig

__all__ = ["ChatModel", "EngineChat", "HFChat", "TeacherConfig", "load_teacher"]

BATCH_CELLS_PER_SEQUENCE = 2048  # KV cells a batched conversation may use (prompt + reply)

class ChatModel(Protocol):
    """Anything that answers a chat: the teacher (and the student, at evaluation)."""

    def chat(self, messages: list[Message], params: SamplingParams) -> str: ...


class EngineChat:
    """A server engine (llama.cpp in-process or a remote server) as a ChatModel."""

    def __init__(self, engine: Engine, batch: int = 1) -> None:
        self.engine = engine
        self.batch = batch  # conversations decoded together by chat_many (in-process only)
        self._decoder = None

    def chat(self, messages: list[Message], params: SamplingParams) -> str:
        return self.engine.chat(messages, params).text

    def chat_many(self, conversations: list[list[Message]],
                  params: list[SamplingParams]) -> list[str]:
        """One reply per conversation. With an in-process llama.cpp engine and ``batch`` > 1
        the conversations are decoded together, one llama.cpp batch per step
        (:meth:`plancode.engine.batch.BatchDecoder.generate_each`): on a CPU one step streams
        the weights once for all of them. Otherwise, or when they do not fit, one by one."""
        decoder = self._batch_decoder() if len(conversations) > 1 else None
        if decoder is not None:
            engine = self.engine
            tokens = [engine.tokenize(engine.info.render_chat(m), special=True)  # type: ignore[attr-defined]
                      for m in conversations]
            if sum(len(t) + q.max_tokens for t, q in zip(tokens, params, strict=True)) \
                    < decoder.n_ctx:
                return [g.text for g in decoder.generate_each(tokens, params)]
        return [self.chat(m, q) for m, q in zip(conversations, params, strict=True)]

    def _batch_decoder(self):  # noqa: ANN202 - BatchDecoder, imported only when used
        if self.batch <= 1:
            return None
        if self._decoder is None:
            from plancode.engine.batch import BatchDecoder
            from plancode.engine.llama_engine import LlamaEngine

            if not isinstance(self.engine, LlamaEngine):
                self.batch = 1
                return None
            self._decoder = BatchDecoder(self.engine, n_seq=self.batch,
                                         n_ctx=self.batch * BATCH_CELLS_PER_SEQUENCE)
        return self._decoder


class HFChat:
    """A transformers causal LM as a ChatModel (bf16 on GPU, fp32 on CPU)."""

    def __init__(self, model_id: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        cuda = torch.cuda.is_available()
        self.tokenizer = AutoTokenizer.from_pretrained(model_id)
        self.model = AutoModelForCausalLM.from_pretrained(
            model_id, dtype=torch.bfloat16 if cuda else torch.float32)
        self.model.to("cuda" if cuda else "cpu").eval()

    def chat(self, messages: list[Message], params: SamplingParams) -> str:
        import torch

        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                 return_tensors="pt", return_dict=True)
        ids = {k: v.to(self.model.device) for k, v in ids.items()}
        torch.manual_seed(params.seed)
        kwargs = {"do_sample": False} if params.greedy else {
            "do_sample": True, "temperature": params.temperature, "top_p": params.top_p,
            "top_k": params.top_k}
        with torch.no_grad():
            out = self.model.generate(**ids, max_new_tokens=params.max_tokens,
                                      pad_token_id=self.tokenizer.pad_token_id, **kwargs)
        new = out[0, ids["input_ids"].shape[1]:]
        return self.tokenizer.decode(new, skip_special_tokens=True)


def load_teacher(cfg: TeacherConfig) -> ChatModel:
    """The teacher ``cfg`` names, loaded and ready (fails fast with a fix when it cannot be)."""
    cfg.validate()
    if cfg.backend == "hf":
        try:
            return HFChat(cfg.model)
        except OSError as exc:
            raise PlancodeError(f"cannot load the Hugging Face teacher {cfg.model!r}: {exc}",
                                "give a local model directory, or a hub id with network "
                                "access, or use teacher.backend = 'gguf'") from exc
    from plancode.config import Settings
    from plancode.engine.factory import load_engine

    settings = Settings(model=cfg.model, backend="llama" if cfg.backend == "gguf" else "openai",
                        remote_url=cfg.url or Settings().remote_url,
                        n_gpu_layers=cfg.n_gpu_layers, n_threads=cfg.n_threads,
                        n_ctx=cfg.n_ctx)
    return EngineChat(load_engine(settings), batch=cfg.batch)
