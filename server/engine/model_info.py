"""What a GGUF says about itself: architecture, context length, chat template, FIM tokens.

The server picks its prompt formats from this rather than from the model's name, so a
fine-tuned student exported by the trainer is served correctly whatever it is called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from plancode.errors import PlancodeError
from plancode.prompts import FimFormat, Message, fim_format_for

# A plain ChatML template, used when a GGUF carries none (base models, some exports).
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class ModelInfo:
    architecture: str
    name: str
    context_length: int
    chat_template: str
    has_chat_template: bool
    fim: FimFormat | None
    bos_token: str
    eos_token: str
    add_bos: bool

    @classmethod
    def from_metadata(
        cls,
        metadata: dict[str, str],
        is_special_token: Callable[[str], bool],
        token_text: Callable[[int], str],
    ) -> ModelInfo:
        arch = metadata.get("general.architecture", "unknown")
        template = metadata.get("tokenizer.chat_template", "")

        def token(key: str) -> str:
            raw = metadata.get(key)
            return token_text(int(raw)) if raw is not None and raw.lstrip("-").isdigit() else ""

        return cls(
            architecture=arch,
            name=metadata.get("general.name", ""),
            context_length=int(metadata.get(f"{arch}.context_length", "0") or 0),
            chat_template=template or CHATML_TEMPLATE,
            has_chat_template=bool(template),
            fim=fim_format_for(is_special_token),
            bos_token=token("tokenizer.ggml.bos_token_id"),
            eos_token=token("tokenizer.ggml.eos_token_id"),
            add_bos=metadata.get("tokenizer.ggml.add_bos_token", "false") == "true",
        )

    def render_chat(self, messages: list[Message]) -> str:
        """The prompt text for ``messages`` under the model's own chat template.

        A trailing assistant message is the start of the reply (prefill): the prompt opens
        the assistant's turn and ends with that text, so the model continues it."""
        prefill = ""
        if messages and messages[-1]["role"] == "assistant":
            prefill, messages = messages[-1]["content"], messages[:-1]
        formatter = Jinja2ChatFormatter(
            template=self.chat_template,
            eos_token=self.eos_token,
            bos_token=self.bos_token,
            add_generation_prompt=True,
        )
        try:
            return formatter(messages=messages).prompt + prefill
        except Exception as exc:  # jinja raises many types for a bad template
            raise PlancodeError(
                f"the model's chat template failed to render: {exc}",
                "use a GGUF with a working tokenizer.chat_template",
            ) from exc
