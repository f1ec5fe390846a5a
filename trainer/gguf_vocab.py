"""Tokenizer metadata for an exported GGUF: copied from the GGUF the student came from, or
built from a Hugging Face BPE tokenizer the way llama.cpp's ``convert_hf_to_gguf.py`` does.

Why two paths: a student loaded from a GGUF should be served with exactly the vocabulary,
merges, special ids and chat template of that file, so those keys are copied byte for byte.
A student that never was a GGUF needs them built; that mirrors ``get_vocab_base`` and
``_set_vocab_gpt2`` (token list and types from the tokenizer, merges, special ids and chat
template through ``gguf.SpecialVocab``) and names the pre-tokenizer by the same fingerprint
``get_vocab_base_pre`` uses, so llama.cpp splits text exactly as the tokenizer does.
"""

from __future__ import annotations

import json
import tempfile
from hashlib import sha256
from pathlib import Path
from typing import Any

import gguf

from plancode.errors import PlancodeError

# llama.cpp's fingerprint text (get_vocab_base_pre), character for character: the sha256 of
# str(tokenizer.encode(CHKTXT)) identifies the pre-tokenizer.
CHKTXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n\U0001f680 (normal) "
    "\U0001f636\u200d\U0001f32b\ufe0f (multiple emojis concatenated) \u2705 \U0001f999\U0001f999 "
    "3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 "
    "\u1780\u17b6\u1793\u17cb\u178f\u17c2\u1796\u17b7\u179f\u17c1\u179f\u17a2\u17b6\u1785"
    "\U0001f601 ?\u6211\u60f3\u5728apple\u5de5\u4f5c1314151\u5929\uff5e ------======= "
    "\u043d\u0435\u0449\u043e \u043d\u0430 \u0411\u044a\u043b\u0433\u0430\u0440\u0441\u043a\u0438 "
    "''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? "
    "'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"
)

# Hash -> tokenizer.ggml.pre, a subset of convert_hf_to_gguf.py's table (same hashes).
PRE_BY_HASH = {
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",  # Qwen1.5/2/2.5
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": "qwen2",  # Qwen3
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",  # SmolLM(2)
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",  # Llama 3
    "049ecf7629871e3041641907f3de7c733e4dbfdc736f57d882ba0b0845599754": "deepseek-llm",
    "347715f544604f9118bb75ed199f68779f423cabb20db6de6f31b908d04d7821": "deepseek-coder",
    "35d91631860c815f952d711435f48d356ebac988362536bed955d43bfa436e34": "starcoder",
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",
    "6221ad2852e85ce96f791f476e0b390cf9b474c9e3d1362f53a24a06dc8220ff": "refact",
}

_FIX_SOURCE = ("pass source_gguf=<the GGUF the student was loaded from> so its tokenizer "
               "metadata is copied verbatim")


def copy_tokenizer_metadata(writer: gguf.GGUFWriter, source: Path, n_vocab: int) -> None:
    """Copy every ``tokenizer.*`` key of ``source`` into ``writer`` unchanged (strings as raw
    bytes, so nothing is re-encoded). ``n_vocab`` is the model's embedding row count, which must
    match the copied token list or llama.cpp would index past it."""
    try:
        reader = gguf.GGUFReader(source)
    except (OSError, ValueError) as exc:
        raise PlancodeError(f"cannot read tokenizer metadata from {source}: {exc}",
                            "give the GGUF file the student was loaded from") from exc
    fields = {k: f for k, f in reader.fields.items() if k.startswith("tokenizer.")}
    if "tokenizer.ggml.tokens" not in fields:
        raise PlancodeError(f"{source} has no tokenizer metadata",
                            "give the GGUF file the student was loaded from")
    n_tokens = len(fields["tokenizer.ggml.tokens"].data)
    if n_tokens != n_vocab:
        raise PlancodeError(
            f"{source} has {n_tokens} tokens but the model's embedding has {n_vocab} rows",
            "pass the GGUF this student was loaded from (or none, to build the vocabulary)")
    for key, field in fields.items():
        if len(field.types) > 2:
            raise PlancodeError(f"{source}: {key} is a nested array, which is not copied",
                                "export without source_gguf to build the vocabulary")
        writer.add_key_value(key, _field_value(field), field.types[0],
                             sub_type=field.types[1] if len(field.types) == 2 else None)


def _field_value(field: Any) -> Any:
    """A reader field's value in the form GGUFWriter packs back to the same bytes."""
    main, last = field.types[0], field.types[-1]
    if main == gguf.GGUFValueType.ARRAY:
        if last == gguf.GGUFValueType.STRING:
            return [bytes(field.parts[i]) for i in field.data]
        return field.contents()
    if main == gguf.GGUFValueType.STRING:
        return bytes(field.parts[-1])
    return field.contents()


def add_tokenizer_metadata(writer: gguf.GGUFWriter, tokenizer: Any, config: Any) -> None:
    """Build the tokenizer keys from a byte-level BPE Hugging Face tokenizer (gpt2-style), as
    convert_hf_to_gguf's ``_set_vocab_gpt2`` does; anything else raises a PlancodeError."""
    _require_byte_level_bpe(tokenizer)
    tokens, toktypes = _tokens_and_types(tokenizer, int(config.vocab_size))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(tokenizer_pre(tokenizer))
    writer.add_token_list(tokens)
    writer.add_token_types(toktypes)
    with tempfile.TemporaryDirectory(prefix="plancode-vocab-") as tmp:
        tokenizer.save_pretrained(tmp)
        config.to_json_file(str(Path(tmp) / "config.json"))
        special = gguf.SpecialVocab(tmp, load_merges=True)
    if not special.merges:
        raise PlancodeError("the tokenizer has no BPE merges", _FIX_SOURCE)
    if "bos" not in special.add_special_token:  # say it explicitly: llama.cpp's default varies
        bos = special.special_token_ids.get("bos")
        ids = tokenizer("a")["input_ids"]
        special.add_special_token["bos"] = bos is not None and ids[:1] == [bos]
    if special.chat_template is None and getattr(tokenizer, "chat_template", None):
        special.chat_template = tokenizer.chat_template
    special.add_to_gguf(writer, quiet=True)


def tokenizer_pre(tokenizer: Any) -> str:
    """llama.cpp's name for this tokenizer's pre-tokenizer, by convert_hf_to_gguf's
    fingerprint (encode a fixed text, hash the ids)."""
    digest = sha256(str(tokenizer.encode(CHKTXT)).encode()).hexdigest()
    if digest not in PRE_BY_HASH:
        raise PlancodeError(
            f"unrecognised BPE pre-tokenizer (fingerprint {digest[:16]}…): llama.cpp would "
            "split text differently from this tokenizer", _FIX_SOURCE)
    return PRE_BY_HASH[digest]


def _require_byte_level_bpe(tokenizer: Any) -> None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise PlancodeError(f"{type(tokenizer).__name__} is not a fast (tokenizers) tokenizer; "
                            "only byte-level BPE vocabularies can be built for GGUF", _FIX_SOURCE)
    spec = json.loads(backend.to_str())
    model = spec.get("model", {})
    text = json.dumps([spec.get("pre_tokenizer"), spec.get("decoder")])
    if model.get("type") != "BPE" or model.get("byte_fallback") or '"ByteLevel"' not in text:
        raise PlancodeError(
            f"the tokenizer is not a byte-level BPE (gpt2-style) tokenizer (model "
            f"{model.get('type')}); SentencePiece-style vocabularies are not built here",
            _FIX_SOURCE)


def _looks_special(token: str) -> bool:
    """convert_hf_to_gguf's ``does_token_look_special``: added tokens that act as control."""
    return (token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
            or (token.startswith("<|") and token.endswith("|>"))
            or (token.startswith("<\uff5c") and token.endswith("\uff5c>"))
            or (token.startswith("<unused") and token.endswith(">")))


def _tokens_and_types(tokenizer: Any, vocab_size: int) -> tuple[list[str], list[int]]:
    """convert_hf_to_gguf's ``get_vocab_base``: one entry per embedding row. Rows with no
    token, and ``[PAD{i}]`` placeholders that earlier conversions put there, are UNUSED."""
    vocab = tokenizer.get_vocab()
    if max(vocab.values()) >= vocab_size:
        raise PlancodeError(f"the tokenizer has ids up to {max(vocab.values())} but the model's "
                            f"embedding has only {vocab_size} rows",
                            "export the tokenizer the model was trained with")
    reverse = {i: t for t, i in vocab.items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    tokens: list[str] = []
    types: list[int] = []
    for i in range(vocab_size):
        token = reverse.get(i)
        if token is None or (token == f"[PAD{i}]" and token not in added):
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        if token in added:
            if decoder[i].special or _looks_special(token):
                types.append(gguf.TokenType.CONTROL)
            else:
                token = token.replace("\u2581", " ")  # pre-normalize user-defined spaces
                types.append(gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
        tokens.append(token)
    return tokens, types
