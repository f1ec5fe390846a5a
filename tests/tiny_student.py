"""Tiny randomly initialised students with real tokenizers, for export tests.

A real vocabulary (taken from a store GGUF) makes tokenization, special tokens and chat
templates realistic; two small layers keep saving, exporting and running the model to
seconds. Not a test module: test files import it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

# Large enough that an untrained model's next-token distribution is peaked (top-1/top-2 logit
# gaps well above fp16 rounding) and that attention changes the prediction; at the usual 0.02
# the logits are nearly flat and a top-1 comparison with an fp16 copy measures noise.
INIT_RANGE = 0.1


def tokenizer_from_gguf(gguf_path: Path, cache_dir: Path) -> Any:
    """The Hugging Face tokenizer transformers builds from ``gguf_path`` (slow: ~15 s), saved to
    ``cache_dir`` and loaded from there, so every caller gets the same saved form."""
    cache_dir = Path(cache_dir)
    if not (cache_dir / "tokenizer.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        tokenizer.save_pretrained(cache_dir)
    return AutoTokenizer.from_pretrained(cache_dir)


def build_tiny_student(out_dir: Path, tokenizer: Any, arch: str = "qwen2", seed: int = 0) -> Path:
    """Save a 2-layer ``Qwen2ForCausalLM`` or ``LlamaForCausalLM`` over ``tokenizer``'s full
    vocabulary to ``out_dir`` (model and tokenizer), randomly initialised from ``seed``.

    Biases and norm weights are randomised too (transformers starts them at 0 and 1), so an
    export that drops or misnames one changes the logits."""
    torch.manual_seed(seed)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if eos is None or eos == tokenizer.unk_token_id:
        eos = tokenizer.eos_token_id
    common = dict(
        vocab_size=len(tokenizer), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        tie_word_embeddings=True, initializer_range=INIT_RANGE, rms_norm_eps=1e-6,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos,
    )
    if arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(
            **common, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}))
    elif arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(
            **common, rope_parameters={"rope_type": "default", "rope_theta": 100000.0}))
    else:
        raise ValueError(f"unknown arch {arch!r}: use 'qwen2' or 'llama'")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(".bias"):
                param.normal_(0.0, INIT_RANGE)
            elif name.endswith("norm.weight"):
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
