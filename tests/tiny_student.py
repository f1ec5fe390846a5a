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

# The untrained model must have a peaked next-token distribution, or a top-1 comparison with
# an fp16 copy measures rounding noise (with 150k tokens the top-2 logit gap is tiny for
# Gaussian logits), and attention must matter, or a wrong q/k layout goes unnoticed.
# Measured over 15 seeds x ~235 positions (hidden 256, llama.cpp CPU vs torch fp32):
# * std 0.02: the model mostly predicts its input token (tied embeddings), attention is
#   irrelevant and an export without the llama q/k permutation still agrees 100%;
# * std 0.06-0.1: 0.5-1% of top-1s flip under fp16 (chaotic amplification of rounding);
# * std 0.04 with log-normal embedding row norms (spread 0.5), as trained models have: no flip
#   in ~3500 positions, 30-60 distinct predictions per 230, and dropping the permutation cuts
#   agreement to 50-75%.
INIT_RANGE = 0.04
EMBED_NORM_SPREAD = 0.5


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
    export that drops or misnames one changes the logits; embedding rows get log-normal norms
    (see INIT_RANGE)."""
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
        emb = model.get_input_embeddings().weight
        emb.mul_(torch.exp(EMBED_NORM_SPREAD * torch.randn(emb.shape[0], 1)))
        for name, param in model.named_parameters():
            if name.endswith(".bias"):
                param.normal_(0.0, INIT_RANGE)
            elif name.endswith("norm.weight"):
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
